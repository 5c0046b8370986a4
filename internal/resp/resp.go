// Package resp sends single commands to a Redis server over a connection of
// their own and reads simple replies: enough for the test helpers and the
// chaos test to start, check and steer redis-server processes without a
// client library. The broker uses rueidis.
package resp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// defaultTimeout bounds a command whose context has no deadline.
const defaultTimeout = 10 * time.Second

// Do sends one command to the Redis at addr and returns the reply when it
// is a simple string, a bulk string or an integer (as its decimal text). A
// Redis error reply is returned as an error; a nil reply as ErrNil.
func Do(ctx context.Context, addr string, args ...string) (string, error) {
	var out string
	err := roundTrip(ctx, addr, args, func(r *bufio.Reader, line string) (err error) {
		out, err = readScalar(r, line)
		return err
	})
	return out, err
}

// DoList sends one command whose reply is a flat array of strings or
// integers (CLUSTER GETKEYSINSLOT, PUBSUB SHARDCHANNELS) and returns its
// elements, a nil element as "".
func DoList(ctx context.Context, addr string, args ...string) ([]string, error) {
	var out []string
	err := roundTrip(ctx, addr, args, func(r *bufio.Reader, line string) error {
		if line[0] == '-' {
			return errors.New(line[1:])
		}
		if line[0] != '*' {
			return fmt.Errorf("reply %q is not an array", line)
		}
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return fmt.Errorf("bad array length %q", line)
		}
		for range max(n, 0) {
			line, err := readLine(r)
			if err != nil {
				return err
			}
			v, err := readScalar(r, line)
			if err != nil && !errors.Is(err, ErrNil) {
				return err
			}
			out = append(out, v)
		}
		return nil
	})
	return out, err
}

// ErrNil is the error of a nil reply.
var ErrNil = errors.New("resp: nil reply")

// roundTrip sends args as a RESP array on a new connection and reads the
// reply with read, given its first line.
func roundTrip(ctx context.Context, addr string, args []string, read func(r *bufio.Reader, line string) error) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(defaultTimeout)
	}
	_ = conn.SetDeadline(dl)
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := conn.Write([]byte(b.String())); err != nil {
		return err
	}
	r := bufio.NewReader(conn)
	line, err := readLine(r)
	if err != nil {
		return err
	}
	return read(r, line)
}

// readLine reads one line of a reply, without its CRLF.
func readLine(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return "", errors.New("resp: empty reply")
	}
	return line, nil
}

// readScalar reads a simple string, an error, an integer or a bulk string
// whose first line is line.
func readScalar(r *bufio.Reader, line string) (string, error) {
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", errors.New(line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return "", fmt.Errorf("resp: bad bulk length %q", line)
		}
		if n < 0 {
			return "", ErrNil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	default:
		return "", fmt.Errorf("resp: unsupported reply type %q", line[0])
	}
}
