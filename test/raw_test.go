package test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/redcast/redcast/internal/wsframe"
	"github.com/redcast/redcast/protocol"
)

// rawConn is a WebSocket connection driven frame by frame, for what a
// well-behaved client would not do: malformed lines, binary or oversized
// frames, batches of commands in one frame, not reading, not answering
// pings (it never answers them by itself). Its methods must be called from
// the test goroutine.
type rawConn struct {
	t      *testing.T
	nc     net.Conn
	br     *bufio.Reader
	lastID uint32

	pings  int                      // ping frames received
	queued []protocol.ServerMessage // lines read but not yet returned
	closed *closeFrame              // the close frame received, if any
}

// closeFrame is a close frame the server sent, returned as an error by the
// read methods.
type closeFrame struct {
	code   ws.StatusCode
	reason string
}

func (c *closeFrame) Error() string { return fmt.Sprintf("close frame %d %q", c.code, c.reason) }

// rawTimeout bounds each read of a rawConn.
const rawTimeout = waitTimeout

// dialRaw opens a WebSocket connection to url without sending anything.
func dialRaw(t *testing.T, url string) *rawConn {
	t.Helper()
	c, err := dialRawDialer(t, ws.Dialer{}, url)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	return c
}

func dialRawDialer(t *testing.T, d ws.Dialer, url string) (*rawConn, error) {
	nc, br, _, err := d.Dial(testContext(t), url)
	if err != nil {
		return nil, err
	}
	if br == nil {
		br = bufio.NewReader(nc)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawConn{t: t, nc: nc, br: br}, nil
}

// dialRawConnected opens a raw full-protocol connection and sends connect.
// It returns the connection and the client id.
func dialRawConnected(t *testing.T, base, name string) (*rawConn, string) {
	t.Helper()
	c := dialRaw(t, protocolURL(base))
	return c, c.connect(name)
}

// writeFrame writes one masked frame.
func (c *rawConn) writeFrame(op ws.OpCode, fin bool, payload []byte) {
	c.t.Helper()
	f := wsframe.AppendFrame(nil, ws.Header{Fin: fin, OpCode: op, Masked: true, Mask: ws.NewMask()}, payload)
	_ = c.nc.SetWriteDeadline(time.Now().Add(rawTimeout))
	if _, err := c.nc.Write(f); err != nil {
		c.t.Fatalf("raw write: %v", err)
	}
}

// send writes lines as one text frame, joined by '\n'.
func (c *rawConn) send(lines ...string) {
	c.t.Helper()
	c.writeFrame(ws.OpText, true, []byte(strings.Join(lines, "\n")))
}

// command encodes a command with the next id and returns the id and line.
func (c *rawConn) command(method string, params any) (uint32, string) {
	c.t.Helper()
	c.lastID++
	cmd := protocol.Command{ID: c.lastID, Method: method}
	if params != nil {
		b, err := json.Marshal(params)
		if err != nil {
			c.t.Fatal(err)
		}
		cmd.Params = b
	}
	line, err := json.Marshal(cmd)
	if err != nil {
		c.t.Fatal(err)
	}
	return c.lastID, string(line)
}

// call sends one command in its own frame and returns its reply; pushes
// read meanwhile are dropped.
func (c *rawConn) call(method string, params any) protocol.Reply {
	c.t.Helper()
	id, line := c.command(method, params)
	c.send(line)
	return c.reply(id)
}

// connect sends connect and returns the client id.
func (c *rawConn) connect(name string) string {
	c.t.Helper()
	r := c.call(protocol.MethodConnect, protocol.ConnectParams{Name: name})
	var res protocol.ConnectResult
	decodeResult(c.t, r, &res)
	if res.Client == "" {
		c.t.Fatalf("connect result %s has no client id", r.Result)
	}
	return res.Client
}

// reply reads messages until the reply with id and returns it, failing on
// a reply with another id. Pushes read meanwhile are dropped.
func (c *rawConn) reply(id uint32) protocol.Reply {
	c.t.Helper()
	for {
		m, err := c.next()
		if err != nil {
			c.t.Fatalf("waiting for the reply to command %d: %v", id, err)
		}
		if m.IsPush() {
			continue
		}
		if m.ID != id {
			c.t.Fatalf("got reply %d (%s %v), want the reply to %d", m.ID, m.Result, m.Error, id)
		}
		return m.Reply
	}
}

// next returns the next line the server sent, reading a frame when none is
// left from the last one. It returns a *closeFrame error on a close frame.
func (c *rawConn) next() (protocol.ServerMessage, error) {
	c.t.Helper()
	for len(c.queued) == 0 {
		payload, err := c.nextText()
		if err != nil {
			return protocol.ServerMessage{}, err
		}
		protocol.Lines(payload, func(line []byte) bool {
			var m protocol.ServerMessage
			if err := json.Unmarshal(line, &m); err != nil {
				c.t.Fatalf("server sent a line that is not JSON: %q: %v", line, err)
			}
			c.queued = append(c.queued, m)
			return true
		})
	}
	m := c.queued[0]
	c.queued = c.queued[1:]
	return m, nil
}

// nextText returns the payload of the next data frame, which must be a
// text frame; control frames are handled on the way.
func (c *rawConn) nextText() ([]byte, error) {
	c.t.Helper()
	op, payload, err := c.nextData()
	if err != nil {
		return nil, err
	}
	if op != ws.OpText {
		c.t.Fatalf("server sent opcode %v, want text frames only", op)
	}
	return payload, nil
}

// nextData returns the next data message (reassembled if fragmented),
// counting pings (not answered) and returning a *closeFrame
// error on a close frame.
func (c *rawConn) nextData() (ws.OpCode, []byte, error) {
	var (
		op  ws.OpCode
		msg []byte
	)
	for {
		h, payload, err := c.readFrame()
		if err != nil {
			return 0, nil, err
		}
		switch h.OpCode {
		case ws.OpPing:
			c.pings++
			continue
		case ws.OpPong:
			continue
		case ws.OpClose:
			code, reason := ws.ParseCloseFrameData(payload)
			c.closed = &closeFrame{code: code, reason: reason}
			return 0, nil, c.closed
		case ws.OpContinuation:
		default:
			op = h.OpCode
		}
		msg = append(msg, payload...)
		if h.Fin {
			return op, msg, nil
		}
	}
}

// readFrame reads one frame from the server, which must not be masked.
func (c *rawConn) readFrame() (ws.Header, []byte, error) {
	_ = c.nc.SetReadDeadline(time.Now().Add(rawTimeout))
	var hdr [ws.MaxHeaderSize]byte
	h, err := wsframe.ReadHeader(c.br, &hdr, ws.StateClientSide, 64<<20)
	if errors.Is(err, wsframe.ErrProtocol) || errors.Is(err, wsframe.ErrTooLarge) {
		c.t.Fatalf("server frame: %v", err)
	}
	if err != nil {
		return h, nil, err
	}
	payload := make([]byte, h.Length)
	if _, err := io.ReadFull(c.br, payload); err != nil {
		return h, nil, err
	}
	return h, payload, nil
}

// expectDisconnect reads until the connection closes and checks that the
// server sent a disconnect push with code and then a close frame with the
// same code, and closed the connection.
func (c *rawConn) expectDisconnect(code uint16) {
	c.t.Helper()
	var last *protocol.Push
	for {
		m, err := c.next()
		if err == nil {
			if m.IsPush() {
				p := m.Push
				last = &p
			} else {
				last = nil
			}
			continue
		}
		var cf *closeFrame
		if !errors.As(err, &cf) {
			c.t.Fatalf("want disconnect %d, connection ended with %v", code, err)
		}
		if last == nil || last.Type != protocol.PushDisconnect {
			c.t.Errorf("the last message before the close frame is %+v, want a disconnect push %d", last, code)
		} else {
			d := protocol.Disconnect{Code: code}
			if last.Code != code || last.Reconnect != d.Reconnect() || last.Reason == "" {
				c.t.Errorf("disconnect push %+v, want code %d, a reason and reconnect %v", last, code, d.Reconnect())
			}
			if cf.reason != last.Reason {
				c.t.Errorf("close frame reason %q, disconnect push reason %q: want the same", cf.reason, last.Reason)
			}
		}
		if uint16(cf.code) != code {
			c.t.Errorf("close frame code %d, want %d", cf.code, code)
		}
		c.expectEOF()
		return
	}
}

// expectCloseCode reads until a close frame (skipping data) and checks its
// code, then that the connection closes; for plain mode.
func (c *rawConn) expectCloseCode(code ws.StatusCode) {
	c.t.Helper()
	for {
		_, _, err := c.nextData()
		if err == nil {
			continue
		}
		var cf *closeFrame
		if !errors.As(err, &cf) {
			c.t.Fatalf("want close code %d, connection ended with %v", code, err)
		}
		if cf.code != code {
			c.t.Errorf("close frame %d %q, want code %d", cf.code, cf.reason, code)
		}
		c.expectEOF()
		return
	}
}

// expectEOF checks that the server closes the TCP connection (after its
// close frame, once we answered it).
func (c *rawConn) expectEOF() {
	c.t.Helper()
	if c.closed != nil {
		// Answer the close frame, as a client should; the server may
		// already have closed the socket.
		f := wsframe.AppendClientFrame(nil, ws.OpClose, ws.NewCloseFrameBody(c.closed.code, ""))
		_ = c.nc.SetWriteDeadline(time.Now().Add(rawTimeout))
		_, _ = c.nc.Write(f)
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(rawTimeout))
	n, err := io.Copy(io.Discard, c.br)
	if err != nil && !isConnClosed(err) {
		c.t.Errorf("after the close frame: %v (%d more bytes), want the connection closed", err, n)
	}
	if n > 0 {
		c.t.Errorf("server sent %d bytes after its close frame", n)
	}
	c.nc.Close()
}

// isConnClosed reports whether err is how a read on a connection the peer
// closed ends (io.Copy turns EOF into nil).
func isConnClosed(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "connection reset")
}

// decodeResult fails unless r is a result, and decodes it into dst.
func decodeResult(t *testing.T, r protocol.Reply, dst any) {
	t.Helper()
	if r.Error != nil {
		t.Fatalf("reply %d: error %v, want a result", r.ID, r.Error)
	}
	if r.Result == nil {
		t.Fatalf("reply %d has neither result nor error", r.ID)
	}
	if dst != nil {
		if err := json.Unmarshal(r.Result, dst); err != nil {
			t.Fatalf("reply %d: result %s: %v", r.ID, r.Result, err)
		}
	}
}

// wantReplyError fails unless r is an error reply with id and code.
func wantReplyError(t *testing.T, what string, r protocol.Reply, id uint32, code *protocol.Error) {
	t.Helper()
	if r.ID != id || r.Error == nil || r.Error.Code != code.Code || r.Result != nil {
		t.Errorf("%s: reply %+v (error %v), want id %d with error %d", what, r, r.Error, id, code.Code)
	}
	if r.Error != nil && r.Error.Message == "" {
		t.Errorf("%s: error %d has no message", what, r.Error.Code)
	}
}

// dialStatus tries to open a WebSocket at url and returns the HTTP status
// of a refused upgrade (0 when it was accepted).
func dialStatus(ctx context.Context, url string) (int, error) {
	nc, _, _, err := ws.Dialer{}.Dial(ctx, url)
	if err == nil {
		nc.Close()
		return 0, nil
	}
	var se ws.StatusError
	if errors.As(err, &se) {
		return int(se), nil
	}
	return 0, err
}
