package client

import (
	"bytes"
	"fmt"
	"time"

	"github.com/gobwas/ws"

	"github.com/redcast/redcast/internal/wsframe"
)

// closeTimeout bounds the write of the close frame when the connection ends.
const closeTimeout = time.Second

// writeLoop is the writer goroutine: it owns writes to the socket. It writes
// pongs first, then every queued command line packed into as few frames as
// MaxFrameSize allows, and when the connection ends the close frame, then
// closes the socket (which stops the reader).
func (c *Client) writeLoop() {
	defer c.exited()
	defer c.conn.Close()
	// spare is the buffer swapped with c.out, so that commands can be
	// queued while the writer writes.
	spare := make([]byte, frameHeadroom, 512)
	var pong [ws.MaxControlFramePayloadSize]byte
	for {
		select {
		case <-c.wake:
		case <-c.quit:
		}
		select {
		case <-c.quit:
			// Nothing more after the close frame: the calls queued have
			// failed already.
			c.writeClose()
			return
		default:
		}
		c.mu.Lock()
		buf := c.out
		c.out = spare[:frameHeadroom]
		n := copy(pong[:], c.pong)
		pongDue := c.pongDue
		c.pongDue = false
		c.mu.Unlock()

		var err error
		if pongDue {
			err = c.writeControl(ws.OpPong, pong[:n], c.opts.WriteTimeout)
		}
		if err == nil {
			err = c.writeLines(buf)
		}
		spare = buf
		if cap(spare) > keepBuffer {
			spare = make([]byte, frameHeadroom, 512) // a burst is over: do not keep its buffer
		}
		if err != nil {
			c.fail(fmt.Errorf("%w: %w", ErrConnectionLost, err), nil)
			return
		}
	}
}

// writeLines writes the command lines in buf[frameHeadroom:] as text frames
// of at most MaxFrameSize bytes, each holding whole lines. It masks buf in
// place and writes each frame's header into the bytes just before it (the
// headroom, or the end of the frame already written).
func (c *Client) writeLines(buf []byte) error {
	start := frameHeadroom
	for start < len(buf) {
		end := len(buf)
		if end-start > c.opts.MaxFrameSize+1 {
			// Cut after the last line that fits; queue() refuses lines
			// that fit in no frame.
			i := bytes.LastIndexByte(buf[start:start+c.opts.MaxFrameSize+1], '\n')
			if i < 0 {
				return ErrFrameTooLarge // cannot happen: queue() checks sizes
			}
			end = start + i + 1
		}
		payload := buf[start : end-1] // without the last '\n'
		h := wsframe.ClientHeader(ws.OpText, len(payload))
		var hb [ws.MaxHeaderSize]byte
		hdr := wsframe.AppendHeader(hb[:0], h)
		hs := copy(buf[start-len(hdr):start], hdr)
		ws.Cipher(payload, h.Mask, 0)
		if err := c.write(buf[start-hs:end-1], c.opts.WriteTimeout); err != nil {
			return err
		}
		start = end
	}
	return nil
}

// writeControl writes one control frame with payload p (at most 125 bytes).
func (c *Client) writeControl(op ws.OpCode, p []byte, timeout time.Duration) error {
	var frame [ws.MaxHeaderSize + ws.MaxControlFramePayloadSize]byte
	return c.write(wsframe.AppendClientFrame(frame[:0], op, p), timeout)
}

// writeClose sends the close frame fail asked for, if any.
func (c *Client) writeClose() {
	c.mu.Lock()
	body := c.closeBody
	c.mu.Unlock()
	if body != nil {
		_ = c.writeControl(ws.OpClose, body, closeTimeout) // best effort: the socket is closed next
	}
}

func (c *Client) write(p []byte, timeout time.Duration) error {
	if err := c.conn.SetWriteDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	_, err := c.conn.Write(p)
	return err
}
