// Package rediscmd sends single commands to one Redis server: enough for
// the test helpers and the chaos test to start, check and steer the
// redis-server processes they run. It is a thin layer over rueidis, the
// client the broker uses, set up for servers that are killed, restarted
// and frozen on purpose: each command has a connection of its own, is
// never retried, and fails within its context.
package rediscmd

import (
	"context"
	"crypto/tls"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/redis/rueidis"
)

// defaultTimeout bounds a command whose context has no deadline.
const defaultTimeout = 10 * time.Second

// Do sends one command to the Redis at addr and returns the reply when it
// is a simple string, a bulk string or an integer (as its decimal text). A
// Redis error reply is returned as an error, a nil reply as rueidis.Nil
// (rueidis.IsRedisNil).
func Do(ctx context.Context, addr string, args ...string) (string, error) {
	var out string
	err := command(ctx, addr, args, func(r rueidis.RedisResult) error {
		m, err := r.ToMessage()
		if err != nil {
			return err
		}
		out, err = scalar(m)
		return err
	})
	return out, err
}

// DoList sends one command whose reply is a flat array of strings or
// integers (CLUSTER GETKEYSINSLOT, PUBSUB SHARDCHANNELS) and returns its
// elements, a nil element as "".
func DoList(ctx context.Context, addr string, args ...string) ([]string, error) {
	var out []string
	err := command(ctx, addr, args, func(r rueidis.RedisResult) error {
		ms, err := r.ToArray()
		if err != nil {
			return err
		}
		for _, m := range ms {
			v, err := scalar(m)
			if err != nil && !rueidis.IsRedisNil(err) {
				return err
			}
			out = append(out, v)
		}
		return nil
	})
	return out, err
}

// command sends args on a client of its own and hands the reply to read.
// The client asks the server at addr itself, whatever it is: a Cluster
// node answers MOVED rather than being followed, a Sentinel answers for
// itself. Replies are RESP2, as redis-cli shows them.
func command(ctx context.Context, addr string, args []string, read func(rueidis.RedisResult) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, defaultTimeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	var socks sockets
	c, err := rueidis.NewClient(rueidis.ClientOption{
		InitAddress:       []string{addr},
		ForceSingleClient: true,
		AlwaysRESP2:       true,
		DisableRetry:      true,
		DisableCache:      true,
		ClientSetInfo:     rueidis.DisableClientSetInfo,
		Dialer:            net.Dialer{Timeout: time.Until(deadline)},
		DialCtxFn: func(_ context.Context, addr string, d *net.Dialer, _ *tls.Config) (net.Conn, error) {
			return socks.dial(ctx, d, addr)
		},
	})
	if err != nil {
		socks.close()
		return err
	}
	defer func() {
		// Sockets first: Client.Close waits for the answer to a PING,
		// which a paused or frozen server holds back for a second.
		socks.close()
		c.Close()
	}()
	return read(c.Do(ctx, c.B().Arbitrary(args...).Build()))
}

// sockets keeps the connections a client dialed, to close them under it.
type sockets struct {
	mu    sync.Mutex
	conns []net.Conn
}

func (s *sockets) dial(ctx context.Context, d *net.Dialer, addr string) (net.Conn, error) {
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.conns = append(s.conns, nc)
	s.mu.Unlock()
	return nc, nil
}

func (s *sockets) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, nc := range s.conns {
		_ = nc.Close()
	}
}

// scalar returns a string or an integer reply as text.
func scalar(m rueidis.RedisMessage) (string, error) {
	if m.IsInt64() {
		n, err := m.AsInt64()
		return strconv.FormatInt(n, 10), err
	}
	return m.ToString()
}
