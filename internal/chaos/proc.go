package chaos

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// process is a child process chaos starts, kills and restarts.
type process struct {
	name string
	path string
	args []string
	log  string // file its output goes to
	cmd  *exec.Cmd
	done chan struct{}
}

func (p *process) start() error {
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.path, p.args...)
	cmd.Stdout, cmd.Stderr = f, f
	setDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	p.cmd, p.done = cmd, make(chan struct{})
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return nil
}

// startReady starts p and waits until ready holds. When the process exits
// first (its port was taken by another process, say) it reports exited.
func (p *process) startReady(ctx context.Context, timeout time.Duration, ready func() bool) (exited bool, err error) {
	if err := p.start(); err != nil {
		return false, err
	}
	done := p.done
	gone := func() bool {
		select {
		case <-done:
			return true
		default:
			return false
		}
	}
	err = waitFor(ctx, timeout, p.name+" ready", func() bool { return gone() || ready() })
	if err == nil && gone() {
		err = fmt.Errorf("%s exited at start (see %s)", p.name, p.log)
	}
	if err != nil {
		exited = gone()
		p.kill()
	}
	return exited, err
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *process) kill() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	p.cmd = nil
}

// signal sends sig to the process (SIGSTOP, SIGCONT).
func (p *process) signal(sig syscall.Signal) error {
	if p.cmd == nil {
		return fmt.Errorf("%s is not running", p.name)
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal %v to %s: %w", sig, p.name, err)
	}
	return nil
}

// stop sends SIGTERM and waits up to timeout, then kills.
func (p *process) stop(timeout time.Duration) {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		p.cmd = nil
	case <-time.After(timeout):
		p.kill()
	}
}

// freePort returns a TCP port free on 127.0.0.1 right now.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitFor polls cond every 20ms until it holds, ctx ends or timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v waiting for %s", timeout, what)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// redisProc is a redis-server persisting every write to its append-only
// file, so that restarting it loses nothing acknowledged.
type redisProc struct {
	process
	port int
}

// startRedis starts a redis-server named name with its data in dir (a
// Cluster node when cluster is set) on free ports, and waits until it
// answers. A port found free can be taken by another process before the
// server binds it: then the server exits, and another port is tried.
func startRedis(ctx context.Context, bin, dir, name string, cluster bool) (*redisProc, error) {
	var last error
	for range 5 {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		r := &redisProc{port: port}
		r.process = process{
			name: name, path: bin, log: filepath.Join(dir, "redis.log"),
			args: []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
				"--save", "", "--appendonly", "yes", "--appendfsync", "always", "--protected-mode", "no"},
		}
		if cluster {
			bus, err := freePort()
			if err != nil {
				return nil, err
			}
			r.args = append(r.args, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
				"--cluster-port", strconv.Itoa(bus), "--cluster-node-timeout", "2000")
		}
		exited, err := r.startReady(ctx, 30*time.Second, r.ready)
		if err == nil {
			return r, nil
		}
		if last = err; !exited {
			return nil, err
		}
	}
	return nil, last
}

func (r *redisProc) addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

func (r *redisProc) url() string { return "redis://" + r.addr() + "/0" }

// ready reports whether Redis answers PING with PONG.
func (r *redisProc) ready() bool {
	pong, err := redisDo(r.addr(), "PING")
	return err == nil && pong == "PONG"
}

// nodeProc is one redcast node process.
type nodeProc struct {
	process
	port int
}

func (n *nodeProc) base() string { return "127.0.0.1:" + strconv.Itoa(n.port) }

func (n *nodeProc) wsURL() string { return "ws://" + n.base() + "/connection/websocket" }

// ready reports whether the node answers /readyz with 200.
func (n *nodeProc) ready() bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + n.base() + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

var errNoBinary = errors.New("chaos: no redcast binary")
