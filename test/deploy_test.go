package test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// The files under deploy/ name flags, environment variables, ports and
// durations of redcast and of each other. These tests read them and check
// that every flag and REDCAST_ variable exists in `redcast --help`, that
// ports agree with each other, and that the stop timeouts nest: the
// balancer notices a drain within --shutdown-delay, which fits in
// --shutdown-timeout, which fits in what the supervisor waits before it
// kills. The HAProxy and nginx files are also run as they are
// (balancer_test.go).

// The shipped balancer configurations.
const (
	haproxyConfig = "../deploy/haproxy/haproxy.cfg"
	nginxSite     = "../deploy/nginx/redcast.conf"
)

// redcastFlags returns the flags of `redcast --help` with their defaults
// ("" when the help shows none).
func redcastFlags(t *testing.T) map[string]string {
	t.Helper()
	r := runCLI(t, "", nil, "--help")
	if r.code != 0 {
		t.Fatalf("redcast --help: %v", r)
	}
	flagRE := regexp.MustCompile(`^  -([a-z0-9-]+)`)
	defRE := regexp.MustCompile(`\(default "?([^")]*)"?\)$`)
	flags := map[string]string{}
	name := ""
	for _, line := range strings.Split(r.stderr, "\n") {
		if m := flagRE.FindStringSubmatch(line); m != nil {
			name = m[1]
			flags[name] = ""
		}
		if m := defRE.FindStringSubmatch(line); m != nil && name != "" {
			flags[name] = m[1]
		}
	}
	if len(flags) < 20 || flags["addr"] != ":8080" {
		t.Fatalf("redcast --help: read %d flags (%v) from:\n%s", len(flags), flags, r.stderr)
	}
	return flags
}

// settings are the flags one deployed node is given, by flag name, from
// its command line and its REDCAST_ variables.
type settings map[string]string

// addArgs adds "--name value" and "--name=value" arguments, failing on
// flags that do not exist.
func (s settings) addArgs(t *testing.T, flags map[string]string, where string, args []string) {
	t.Helper()
	for i := 0; i < len(args); i++ {
		name, ok := strings.CutPrefix(args[i], "--")
		if !ok {
			t.Errorf("%s: argument %q is not a flag", where, args[i])
			continue
		}
		name, value, hasValue := strings.Cut(name, "=")
		def, known := flags[name]
		if !known {
			t.Errorf("%s: redcast has no flag --%s", where, name)
			continue
		}
		if !hasValue && def != "true" && def != "false" {
			i++
			if i == len(args) {
				t.Errorf("%s: --%s has no value", where, name)
				continue
			}
			value = args[i]
		}
		s[name] = value
	}
}

// addEnv adds a REDCAST_ variable, failing unless it names a flag; other
// variables are ignored.
func (s settings) addEnv(t *testing.T, flags map[string]string, where, key, value string) {
	t.Helper()
	rest, ok := strings.CutPrefix(key, "REDCAST_")
	if !ok {
		return
	}
	name := strings.ToLower(strings.ReplaceAll(rest, "_", "-"))
	if _, known := flags[name]; !known {
		t.Errorf("%s: %s names no flag of redcast (--%s)", where, key, name)
		return
	}
	s[name] = value
}

// get returns the flag's value, or its default.
func (s settings) get(flags map[string]string, name string) string {
	if v, ok := s[name]; ok {
		return v
	}
	return flags[name]
}

// duration returns a duration flag's value, or its default.
func (s settings) duration(t *testing.T, flags map[string]string, where, name string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(s.get(flags, name))
	if err != nil {
		t.Fatalf("%s: --%s: %v", where, name, err)
	}
	return d
}

// port returns the port of the --addr flag.
func (s settings) port(t *testing.T, flags map[string]string, where string) int {
	t.Helper()
	return mustPort(t, where+": --addr", s.get(flags, "addr"))
}

func mustPort(t *testing.T, where, hostport string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Fatalf("%s: %q: %v", where, hostport, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("%s: %q: %v", where, hostport, err)
	}
	return n
}

// checkStop fails unless the drain nests: the balancer's detection time
// within --shutdown-delay, the delay within --shutdown-timeout, the
// timeout within grace (what the supervisor waits before it kills).
func checkStop(t *testing.T, flags map[string]string, where string, s settings, detect, grace time.Duration) {
	t.Helper()
	delay := s.duration(t, flags, where, "shutdown-delay")
	timeout := s.duration(t, flags, where, "shutdown-timeout")
	if delay < detect || timeout <= delay || grace <= timeout {
		t.Errorf("%s: want the balancer's detection (%v) <= --shutdown-delay (%v) < --shutdown-timeout (%v) < the stop grace period (%v)",
			where, detect, delay, timeout, grace)
	}
}

// haproxyFile is what the tests need of deploy/haproxy/haproxy.cfg.
type haproxyFile struct {
	bind    int   // port of the redcast frontend
	servers []int // ports of the nodes
	detect  time.Duration
}

// readHAProxy reads the frontend port, the node ports and how long the
// health checks take to mark a node down (inter + (fall-1) × fastinter).
func readHAProxy(t *testing.T) haproxyFile {
	t.Helper()
	b, err := os.ReadFile(haproxyConfig)
	if err != nil {
		t.Fatal(err)
	}
	var h haproxyFile
	section := ""
	check := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if !strings.HasPrefix(line, " ") {
			section = strings.Join(f, " ")
			continue
		}
		switch {
		case section == "frontend redcast" && f[0] == "bind":
			h.bind = mustPort(t, "haproxy.cfg bind", f[1])
		case section == "backend redcast_nodes" && f[0] == "server":
			h.servers = append(h.servers, mustPort(t, "haproxy.cfg server", f[2]))
		case section == "backend redcast_nodes" && f[0] == "default-server":
			for i := 1; i < len(f); i++ {
				if f[i] != "check" && i+1 < len(f) { // check alone has no value
					check[f[i]] = f[i+1]
					i++
				}
			}
		case section == "backend redcast_nodes" && f[0] == "http-check" && f[1] == "send":
			if !slicesContainsPair(f, "uri", "/readyz") {
				t.Errorf("haproxy.cfg: health check %q, want GET /readyz", line)
			}
		}
	}
	inter, err1 := time.ParseDuration(check["inter"])
	fastinter, err2 := time.ParseDuration(check["fastinter"])
	fall, err3 := strconv.Atoi(check["fall"])
	if err := errors.Join(err1, err2, err3); err != nil {
		t.Fatalf("haproxy.cfg default-server %v: %v", check, err)
	}
	h.detect = inter + time.Duration(fall-1)*fastinter
	if h.bind == 0 || len(h.servers) != 3 {
		t.Fatalf("haproxy.cfg: frontend port %d, node ports %v", h.bind, h.servers)
	}
	return h
}

func slicesContainsPair(f []string, k, v string) bool {
	for i := 0; i+1 < len(f); i++ {
		if f[i] == k && f[i+1] == v {
			return true
		}
	}
	return false
}

// TestDeployCompose checks deploy/compose.yaml: three nodes on the ports
// haproxy.cfg balances, HAProxy publishing its frontend port with that
// very file, only existing flags, a drain that fits the stop grace period.
func TestDeployCompose(t *testing.T) {
	flags, lb := redcastFlags(t), readHAProxy(t)
	var compose struct {
		Services map[string]struct {
			Image           string
			NetworkMode     string `yaml:"network_mode"`
			Command         []string
			Environment     map[string]string
			Ports           []string
			Volumes         []string
			StopGracePeriod string `yaml:"stop_grace_period"`
		}
	}
	decodeYAML(t, "../deploy/compose.yaml", func(d *yaml.Decoder) error { return d.Decode(&compose) })
	var nodePorts []int
	for name, svc := range compose.Services {
		where := "compose.yaml " + name
		switch {
		case strings.Contains(svc.Image, "REDCAST_IMAGE"):
			if svc.NetworkMode != "service:haproxy" {
				t.Errorf("%s: network_mode %q, want service:haproxy (the nodes listen where haproxy.cfg expects them)", where, svc.NetworkMode)
			}
			s := settings{}
			s.addArgs(t, flags, where, svc.Command)
			for k, v := range svc.Environment {
				s.addEnv(t, flags, where, k, v)
			}
			if _, ok := svc.Environment["REDCAST_ADDR"]; !ok {
				t.Errorf("%s: no REDCAST_ADDR (the image's health check reads it)", where)
			}
			nodePorts = append(nodePorts, s.port(t, flags, where))
			grace, err := time.ParseDuration(svc.StopGracePeriod)
			if err != nil {
				t.Fatalf("%s: stop_grace_period: %v", where, err)
			}
			checkStop(t, flags, where, s, lb.detect, grace)
		case strings.HasPrefix(svc.Image, "docker.io/library/haproxy:"):
			if want := strconv.Itoa(lb.bind) + ":" + strconv.Itoa(lb.bind); len(svc.Ports) != 1 || svc.Ports[0] != want {
				t.Errorf("%s: ports %v, want [%s]", where, svc.Ports, want)
			}
			if len(svc.Volumes) != 1 || !strings.HasPrefix(svc.Volumes[0], "./haproxy/haproxy.cfg:") {
				t.Errorf("%s: volumes %v, want ./haproxy/haproxy.cfg", where, svc.Volumes)
			}
		case strings.HasPrefix(svc.Image, "docker.io/library/redis:"):
			if !strings.Contains(strings.Join(svc.Command, " "), "--appendonly yes") {
				t.Errorf("%s: command %v, want AOF (--appendonly yes)", where, svc.Command)
			}
		default:
			t.Errorf("%s: unexpected image %q", where, svc.Image)
		}
	}
	if !sameInts(nodePorts, lb.servers) {
		t.Errorf("compose.yaml: nodes on ports %v, haproxy.cfg balances %v", nodePorts, lb.servers)
	}
}

// TestDeployKubernetes checks deploy/kubernetes/: the container's flags
// and variables exist, its port is --addr's, probes and Service and
// Ingress name that port, selectors match the pods, and preStop plus the
// drain fit the termination grace period.
func TestDeployKubernetes(t *testing.T) {
	flags := redcastFlags(t)
	type port struct {
		Name          string
		ContainerPort int `yaml:"containerPort"`
	}
	type probe struct {
		HTTPGet struct {
			Path string
			Port string
		} `yaml:"httpGet"`
	}
	type servicePort struct {
		Name       string
		TargetPort string `yaml:"targetPort"`
	}
	type object struct {
		Kind     string
		Metadata struct{ Name string }
		Spec     struct {
			// Deployment, PodDisruptionBudget
			Selector struct {
				MatchLabels map[string]string `yaml:"matchLabels"`
			}
			Template struct {
				Metadata struct{ Labels map[string]string }
				Spec     struct {
					TerminationGracePeriodSeconds int `yaml:"terminationGracePeriodSeconds"`
					Containers                    []struct {
						Args           []string
						Env            []struct{ Name, Value string }
						Ports          []port
						ReadinessProbe *probe `yaml:"readinessProbe"`
						LivenessProbe  *probe `yaml:"livenessProbe"`
						Lifecycle      struct {
							PreStop struct {
								Sleep struct{ Seconds int }
							} `yaml:"preStop"`
						}
					}
				}
			}
			// Service (whose selector is a plain map: read apart)
			Ports []servicePort
			// Ingress
			Rules []struct {
				HTTP struct {
					Paths []struct {
						Backend struct {
							Service struct {
								Name string
								Port struct{ Name string }
							}
						}
					}
				}
			}
		}
	}
	var objects []object
	var serviceSelectors []map[string]string
	for _, file := range []string{"../deploy/kubernetes/redcast.yaml", "../deploy/kubernetes/ingress.yaml"} {
		decodeYAML(t, file, func(d *yaml.Decoder) error {
			for {
				var n yaml.Node
				if err := d.Decode(&n); err != nil {
					return err
				}
				var o object
				if err := n.Decode(&o); err != nil {
					return err
				}
				objects = append(objects, o)
				if o.Kind == "Service" {
					var svc struct {
						Spec struct{ Selector map[string]string }
					}
					if err := n.Decode(&svc); err != nil {
						return err
					}
					serviceSelectors = append(serviceSelectors, svc.Spec.Selector)
				}
			}
		})
	}
	kinds := map[string]object{}
	for _, o := range objects {
		kinds[o.Kind] = o
	}
	for _, k := range []string{"Deployment", "Service", "PodDisruptionBudget", "Ingress"} {
		if _, ok := kinds[k]; !ok {
			t.Fatalf("deploy/kubernetes: no %s", k)
		}
	}
	dep := kinds["Deployment"]
	pod := dep.Spec.Template
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("Deployment: %d containers, want 1", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]
	s := settings{}
	s.addArgs(t, flags, "Deployment args", c.Args)
	for _, e := range c.Env {
		s.addEnv(t, flags, "Deployment env", e.Name, e.Value)
	}
	portNames := map[string]int{}
	for _, p := range c.Ports {
		portNames[p.Name] = p.ContainerPort
	}
	if addr := s.port(t, flags, "Deployment"); portNames["http"] != addr {
		t.Errorf("Deployment: containerPort http %d, --addr port %d", portNames["http"], addr)
	}
	for name, pr := range map[string]*probe{"readinessProbe": c.ReadinessProbe, "livenessProbe": c.LivenessProbe} {
		want := map[string]string{"readinessProbe": "/readyz", "livenessProbe": "/healthz"}[name]
		if pr == nil || pr.HTTPGet.Path != want || portNames[pr.HTTPGet.Port] == 0 {
			t.Errorf("Deployment: %s %+v, want GET %s on a declared port", name, pr, want)
		}
	}
	// Kubernetes stops sending connections during the preStop sleep; the
	// node then drains within --shutdown-timeout.
	preStop := time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
	grace := time.Duration(pod.Spec.TerminationGracePeriodSeconds) * time.Second
	if preStop == 0 {
		t.Error("Deployment: no preStop sleep")
	}
	checkStop(t, flags, "Deployment", s, 0, grace-preStop)
	for _, sel := range append(serviceSelectors, dep.Spec.Selector.MatchLabels, kinds["PodDisruptionBudget"].Spec.Selector.MatchLabels) {
		if len(sel) == 0 || !labelsMatch(sel, pod.Metadata.Labels) {
			t.Errorf("selector %v does not select the pods (labels %v)", sel, pod.Metadata.Labels)
		}
	}
	svc := kinds["Service"]
	for _, p := range svc.Spec.Ports {
		if portNames[p.TargetPort] == 0 {
			t.Errorf("Service: targetPort %q is not a port of the container", p.TargetPort)
		}
	}
	for _, r := range kinds["Ingress"].Spec.Rules {
		for _, p := range r.HTTP.Paths {
			b := p.Backend.Service
			named := func(p servicePort) bool { return p.Name == b.Port.Name }
			if b.Name != svc.Metadata.Name || !slices.ContainsFunc(svc.Spec.Ports, named) {
				t.Errorf("Ingress: backend %s port %q is not the Service's", b.Name, b.Port.Name)
			}
		}
	}
}

// TestDeploySystemd checks deploy/systemd/: the variables of the unit and
// of the environment file name flags, the drain fits TimeoutStopSec and
// LimitNOFILE is above the connection limit.
func TestDeploySystemd(t *testing.T) {
	flags, lb := redcastFlags(t), readHAProxy(t)
	unit := readKeyValues(t, "../deploy/systemd/redcast.service", "=")
	s := settings{}
	for _, env := range unit["Environment"] {
		for _, kv := range strings.Fields(env) {
			k, v, _ := strings.Cut(kv, "=")
			s.addEnv(t, flags, "redcast.service", k, v)
		}
	}
	for _, exec := range unit["ExecStart"] {
		f := strings.Fields(exec)
		if f[0] != "/usr/local/bin/redcast" {
			t.Errorf("redcast.service: ExecStart %q", exec)
		}
		s.addArgs(t, flags, "redcast.service ExecStart", f[1:])
	}
	for k, vs := range readKeyValues(t, "../deploy/systemd/redcast.env", "=") {
		s.addEnv(t, flags, "redcast.env", k, vs[0])
	}
	if len(unit["TimeoutStopSec"]) != 1 || len(unit["LimitNOFILE"]) != 1 {
		t.Fatalf("redcast.service: want one TimeoutStopSec and one LimitNOFILE, got %v and %v", unit["TimeoutStopSec"], unit["LimitNOFILE"])
	}
	grace, err := time.ParseDuration(unit["TimeoutStopSec"][0])
	if err != nil {
		t.Fatal(err)
	}
	checkStop(t, flags, "redcast.service", s, lb.detect, grace)
	nofile, err1 := strconv.Atoi(unit["LimitNOFILE"][0])
	maxConns, err2 := strconv.Atoi(s.get(flags, "max-connections"))
	if err := errors.Join(err1, err2); err != nil || nofile <= maxConns {
		t.Errorf("redcast.service: LimitNOFILE %s, want above --max-connections %s (%v)", unit["LimitNOFILE"][0], s.get(flags, "max-connections"), err)
	}
}

// TestDeployNginx checks deploy/nginx/redcast.conf: the layout of
// haproxy.cfg, the same frontend port and nodes.
func TestDeployNginx(t *testing.T) {
	lb := readHAProxy(t)
	b, err := os.ReadFile(nginxSite)
	if err != nil {
		t.Fatal(err)
	}
	var listen int
	var servers []int
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(strings.TrimSuffix(strings.TrimSpace(line), ";"))
		switch {
		case len(f) >= 2 && f[0] == "listen":
			listen, err = strconv.Atoi(f[1])
			if err != nil {
				t.Fatalf("redcast.conf: %q: %v", line, err)
			}
		case len(f) >= 2 && f[0] == "server" && f[1] != "{": // a node, not the server block
			servers = append(servers, mustPort(t, "redcast.conf server", f[1]))
		}
	}
	if listen != lb.bind || !sameInts(servers, lb.servers) {
		t.Errorf("redcast.conf: listen %d, servers %v; haproxy.cfg: bind %d, servers %v", listen, servers, lb.bind, lb.servers)
	}
}

// TestDeployContainerfile checks deploy/Containerfile: it exposes the port
// of its REDCAST_ADDR, whose variables name flags, as a user other than
// root.
func TestDeployContainerfile(t *testing.T) {
	flags := redcastFlags(t)
	cf := readKeyValues(t, "../deploy/Containerfile", " ")
	s := settings{}
	for _, env := range cf["ENV"] {
		k, v, _ := strings.Cut(env, "=")
		s.addEnv(t, flags, "Containerfile", k, v)
	}
	if want := strconv.Itoa(s.port(t, flags, "Containerfile")); len(cf["EXPOSE"]) != 1 || cf["EXPOSE"][0] != want {
		t.Errorf("Containerfile: EXPOSE %v, want %s", cf["EXPOSE"], want)
	}
	if u := cf["USER"]; len(u) != 1 || strings.HasPrefix(u[0], "0") || strings.HasPrefix(u[0], "root") {
		t.Errorf("Containerfile: USER %v, want one user other than root", u)
	}
}

// readKeyValues reads a file of "KEY<sep>value" lines (a systemd unit, an
// environment file, a Containerfile): every value of each key, comments
// and section headers left out, continuation lines joined.
func readKeyValues(t *testing.T, file, sep string) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	b = bytes.ReplaceAll(b, []byte("\\\n"), nil)
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "[") {
			continue
		}
		k, v, ok := strings.Cut(line, sep)
		if !ok {
			t.Fatalf("%s: line %q has no %q", file, line, sep)
		}
		out[k] = append(out[k], strings.TrimSpace(v))
	}
	return out
}

// decodeYAML opens file and hands a decoder to decode, which may stop at
// io.EOF.
func decodeYAML(t *testing.T, file string, decode func(*yaml.Decoder) error) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := decode(yaml.NewDecoder(f)); err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("%s: %v", file, err)
	}
}

func labelsMatch(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// sameInts reports whether a and b hold the same numbers in any order.
func sameInts(a, b []int) bool {
	return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
}
