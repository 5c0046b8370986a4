package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/redcast/redcast/protocol"
)

// keepBuffer is the largest read buffer kept between messages; a larger one
// (for a rare big history reply) is dropped so that idle clients stay small.
const keepBuffer = 64 << 10

// readLoop is the reader goroutine: it reads frames until the connection
// ends, answers pings (through the writer), hands replies to their calls and
// pushes to OnPush.
func (c *Client) readLoop() {
	defer c.exited()
	rd := wsutil.Reader{
		Source:         c.br,
		State:          ws.StateClientSide,
		CheckUTF8:      true,
		MaxFrameSize:   c.opts.MaxMessageSize,
		MaxMessageSize: c.opts.MaxMessageSize,
		OnIntermediate: c.control,
	}
	handle := c.handleLine
	var buf []byte
	for {
		if d := c.readTimeout.Load(); d > 0 {
			if err := c.conn.SetReadDeadline(time.Now().Add(time.Duration(d))); err != nil {
				c.lost(err)
				return
			}
		}
		h, err := rd.NextFrame()
		if err != nil {
			c.lost(err)
			return
		}
		if h.OpCode.IsControl() {
			err = c.control(h, &rd)
			if err == nil {
				err = rd.Discard()
			}
			if err != nil {
				c.lost(err)
				return
			}
			continue
		}
		if h.OpCode != ws.OpText {
			c.fail(fmt.Errorf("%w: binary frame", ErrProtocol), ws.NewCloseFrameBody(ws.StatusUnsupportedData, ""))
			return
		}
		buf, err = readMessage(&rd, h, buf[:0])
		if err != nil {
			c.lost(err)
			return
		}
		protocol.Lines(buf, handle)
		if cap(buf) > keepBuffer {
			buf = nil
		}
		select {
		case <-c.quit:
			return // ended by a line or by Close; the writer closes the socket
		default:
		}
	}
}

// readMessage reads the payload of the message whose first frame header is
// h into buf, growing it as bytes arrive rather than trusting h.Length.
func readMessage(rd *wsutil.Reader, h ws.Header, buf []byte) ([]byte, error) {
	if h.Fin && int64(cap(buf)) < h.Length && h.Length <= keepBuffer {
		buf = make([]byte, 0, h.Length)
	}
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := rd.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// closeReceived is how control reports the server's close frame.
type closeReceived struct {
	code   ws.StatusCode
	reason string
}

func (e *closeReceived) Error() string { return fmt.Sprintf("close frame %d %q", e.code, e.reason) }

// control handles a control frame: a ping is answered by the writer, a close
// frame is returned as a *closeReceived, a pong is ignored.
func (c *Client) control(h ws.Header, r io.Reader) error {
	var p [ws.MaxControlFramePayloadSize]byte
	n := min(int(h.Length), len(p)) // ws.CheckHeader has checked the length
	if _, err := io.ReadFull(r, p[:n]); err != nil {
		return err
	}
	switch h.OpCode {
	case ws.OpPing:
		c.mu.Lock()
		c.pong = append(c.pong[:0], p[:n]...)
		c.pongDue = true
		c.mu.Unlock()
		c.signal()
	case ws.OpClose:
		code, reason := ws.ParseCloseFrameData(p[:n])
		return &closeReceived{code: code, reason: reason}
	}
	return nil
}

// lost ends the connection after the reader stopped with err: a disconnect
// when the server sent a disconnect push or a close frame (whose code is
// echoed), a lost connection otherwise.
func (c *Client) lost(err error) {
	c.mu.Lock()
	d := c.disc
	c.mu.Unlock()
	var cr *closeReceived
	switch {
	case errors.As(err, &cr):
		if d == nil {
			code := cr.code
			if code.Empty() {
				code = ws.StatusNoStatusRcvd
			}
			d = &protocol.Disconnect{Code: uint16(code), Reason: cr.reason}
		}
		echo := []byte{}
		if !cr.code.Empty() {
			echo = ws.NewCloseFrameBody(cr.code, "")
		}
		c.fail(disconnectError(*d), echo)
	case d != nil:
		c.fail(disconnectError(*d), nil)
	default:
		c.fail(fmt.Errorf("%w: %w", ErrConnectionLost, err), nil)
	}
}

// handleLine handles one line from the server. It returns false when the
// line broke the protocol, which ends the connection, or when the
// connection has ended already, so that the rest of the frame is skipped.
func (c *Client) handleLine(line []byte) bool {
	if c.ended() {
		return false
	}
	var m protocol.ServerMessage
	if err := json.Unmarshal(line, &m); err != nil {
		c.fail(fmt.Errorf("%w: %v", ErrProtocol, err), ws.NewCloseFrameBody(ws.StatusProtocolError, ""))
		return false
	}
	if m.IsPush() {
		p := m.Push
		if p.Type == protocol.PushDisconnect {
			c.mu.Lock()
			c.disc = &protocol.Disconnect{Code: p.Code, Reason: p.Reason, Delay: time.Duration(min(max(p.Delay, 0), maxAdvisedDelay)) * time.Millisecond}
			c.discReconnect, c.discPush = p.Reconnect, true
			c.mu.Unlock()
		}
		if c.onPush != nil {
			c.onPush(c, &p)
		}
		return true
	}
	c.mu.Lock()
	fn, ok := c.pending[m.ID]
	delete(c.pending, m.ID)
	c.mu.Unlock()
	if !ok {
		return true // the call was cancelled, or a reply to no command (id 0)
	}
	if m.Error != nil {
		fn(reply{err: m.Error})
	} else {
		fn(reply{result: m.Result})
	}
	return true
}
