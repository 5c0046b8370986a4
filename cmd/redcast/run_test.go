package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/redcast/redcast/auth"
	"github.com/redcast/redcast/transport/pusher"
)

func TestParseWithEnv(t *testing.T) {
	env := map[string]string{"REDCAST_ADDR": ":9999", "REDCAST_MAX_CHANNELS": "7"}
	var out strings.Builder
	// An unknown log format fails after flags are parsed, before serving.
	err := run(context.Background(), []string{"--max-channels", "3", "--log-format", "xml"},
		func(k string) string { return env[k] }, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "--log-format") {
		t.Fatalf("run with a bad log format = %v", err)
	}
	env["REDCAST_MAX_FRAME_SIZE"] = "lots"
	err = run(context.Background(), nil, func(k string) string { return env[k] }, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "REDCAST_MAX_FRAME_SIZE") {
		t.Fatalf("run with a bad environment value = %v, want it named", err)
	}
	delete(env, "REDCAST_MAX_FRAME_SIZE")
	env["REDCAST_PUSHER_KEY"] = "app-key"
	err = run(context.Background(), nil, func(k string) string { return env[k] }, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "--pusher-secret go together") {
		t.Fatalf("run with a Pusher key alone = %v, want the three flags asked for", err)
	}
	if err := run(context.Background(), []string{"nope"}, func(string) string { return "" }, &out, &out); err == nil {
		t.Fatal("run accepted an unknown command")
	}
	out.Reset()
	if err := run(context.Background(), []string{"version"}, func(string) string { return "" }, &out, &out); err != nil || !strings.HasPrefix(out.String(), "redcast ") {
		t.Fatalf("version: %q, %v", out.String(), err)
	}
}

// TestServeAndShutdown runs the server as main does, checks /healthz and
// the Pusher app of the environment, and stops it by cancelling the
// context, as SIGTERM does.
func TestServeAndShutdown(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	env := map[string]string{"REDCAST_PUSHER_APP_ID": "1", "REDCAST_PUSHER_KEY": "app-key", "REDCAST_PUSHER_SECRET": "app-secret"}
	go func() {
		done <- run(ctx, []string{"--addr", "127.0.0.1:0", "--log-format", "text"}, func(k string) string { return env[k] }, io.Discard, pw)
		pw.Close()
	}()
	addrRE := regexp.MustCompile(`addr=(\S+)`)
	lines := bufio.NewScanner(pr)
	var addr string
	for addr == "" && lines.Scan() {
		if m := addrRE.FindStringSubmatch(lines.Text()); m != nil && strings.Contains(lines.Text(), "serving") {
			addr = m[1]
		}
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	if addr == "" {
		t.Fatalf("server never logged its address: %v", <-done)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz = %d", resp.StatusCode)
	}
	dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
	defer dcancel()
	nc, br, _, err := ws.Dial(dctx, "ws://"+addr+"/app/app-key?protocol=7")
	if err != nil {
		t.Fatal(err)
	}
	_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	var rw io.ReadWriter = nc
	if br != nil { // the first frame came with the upgrade
		rw = struct {
			io.Reader
			io.Writer
		}{io.MultiReader(br, nc), nc}
	}
	msg, err := wsutil.ReadServerText(rw)
	nc.Close()
	if err != nil || !strings.Contains(string(msg), "pusher:connection_established") {
		t.Fatalf("Pusher app of the environment: %q, %v", msg, err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run returned %v after shutdown", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not return after its context was cancelled")
	}
}

// TestServeTLS serves https and wss from a certificate made for the test.
func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := writeTestCert(t, dir)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--addr", "127.0.0.1:0", "--tls-cert", certFile, "--tls-key", keyFile}, func(string) string { return "" }, io.Discard, pw)
		pw.Close()
	}()
	addr := serveAddr(t, pr, done)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Get("https://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz over TLS = %d", resp.StatusCode)
	}
	dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
	defer dcancel()
	conn, _, _, err := ws.Dialer{TLSConfig: &tls.Config{RootCAs: pool}}.Dial(dctx, "wss://"+addr+"/connection/websocket")
	if err != nil {
		t.Fatalf("wss dial: %v", err)
	}
	conn.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), []string{"--tls-cert", certFile}, func(string) string { return "" }, io.Discard, io.Discard); err == nil {
		t.Fatal("--tls-cert without --tls-key was accepted")
	}
}

// serveAddr reads the server's log until it says where it serves.
func serveAddr(t *testing.T, logs io.Reader, done <-chan error) string {
	t.Helper()
	addrRE := regexp.MustCompile(`addr=(\S+)`)
	lines := bufio.NewScanner(logs)
	for lines.Scan() {
		if m := addrRE.FindStringSubmatch(lines.Text()); m != nil && strings.Contains(lines.Text(), "serving") {
			go func() { _, _ = io.Copy(io.Discard, logs) }()
			return m[1]
		}
	}
	t.Fatalf("server never logged its address: %v", <-done)
	return ""
}

// writeTestCert writes a self-signed certificate for 127.0.0.1 and its key
// to dir and returns their paths and a pool that trusts the certificate.
func writeTestCert(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "redcast test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestConfigFile: a bad configuration file stops the server at start with
// the wrong key named; so does refusing anonymous clients without any way
// to verify tokens.
func TestConfigFile(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"namespces": {}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	noenv := func(string) string { return "" }
	err := run(context.Background(), []string{"--config", bad}, noenv, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), `"namespces"`) {
		t.Fatalf("run with a misspelt key = %v, want the key named", err)
	}
	err = run(context.Background(), []string{"--allow-anonymous=false"}, noenv, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "anonymous") {
		t.Fatalf("run refusing anonymous clients without tokens = %v", err)
	}
	err = run(context.Background(), []string{"--token-secret", "short"}, noenv, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "token verification") {
		t.Fatalf("run with a short token secret = %v", err)
	}
}

// TestDebugAddr serves pprof on --debug-addr only, never on the public
// address.
func TestDebugAddr(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--addr", "127.0.0.1:0", "--debug-addr", "127.0.0.1:0"}, func(string) string { return "" }, io.Discard, pw)
		pw.Close()
	}()
	debugRE := regexp.MustCompile(`pprof listening" debug_addr=(\S+)`)
	addrRE := regexp.MustCompile(`redcast serving" addr=(\S+)`)
	lines := bufio.NewScanner(pr)
	var debugAddr, addr string
	for (debugAddr == "" || addr == "") && lines.Scan() {
		if m := debugRE.FindStringSubmatch(lines.Text()); m != nil {
			debugAddr = m[1]
		}
		if m := addrRE.FindStringSubmatch(lines.Text()); m != nil {
			addr = m[1]
		}
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	if debugAddr == "" || addr == "" {
		t.Fatalf("addresses not logged (debug %q, public %q): %v", debugAddr, addr, <-done)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	get := func(url string) (int, string) {
		t.Helper()
		resp, err := client.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("http://" + debugAddr + "/debug/pprof/goroutine?debug=1"); code != http.StatusOK || !strings.Contains(body, "goroutine profile") {
		t.Fatalf("pprof on the debug address: %d %.100q", code, body)
	}
	if code, _ := get("http://" + addr + "/debug/pprof/"); code != http.StatusNotFound {
		t.Fatalf("pprof on the public address: %d, want 404", code)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
}

// The Pusher apps of the file get namespaces of their own, and the app of
// the flags joins them.
func TestPusherConfigFromFile(t *testing.T) {
	fc := &auth.FileConfig{PusherApps: []auth.PusherApp{
		{ID: "1", Key: "k1", Secret: "s1"},
		{ID: "2", Key: "k2", Secret: "s2", Namespace: "b", PresenceNamespace: "b-presence", MaxConnections: 5, ClientEventRate: 2, MaxEventSize: 100, MaxPresenceMembers: 3},
	}}
	cfg, err := pusherConfig(fc, "3", "k3", "s3")
	if err != nil {
		t.Fatal(err)
	}
	want := []pusher.App{
		{ID: "1", Key: "k1", Secret: "s1", Namespace: "pusher-1", PresenceNamespace: "pusher-presence-1"},
		{ID: "2", Key: "k2", Secret: "s2", Namespace: "b", PresenceNamespace: "b-presence", MaxConnections: 5, ClientEventRate: 2, MaxEventSize: 100, MaxPresenceMembers: 3},
		{ID: "3", Key: "k3", Secret: "s3"},
	}
	if !slices.Equal(cfg.Apps, want) {
		t.Errorf("apps %+v, want %+v", cfg.Apps, want)
	}
	if _, err := pusherConfig(fc, "3", "", ""); err == nil {
		t.Error("an app id without key and secret accepted")
	}
}
