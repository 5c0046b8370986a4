package client

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/redcast/redcast/internal/wsframe"
	"github.com/redcast/redcast/protocol"
)

// These helpers play the server side of a connection so that the client can
// be tested without package server: a test scripts what the server reads
// and writes, frame by frame.

// fakeTimeout bounds every read and write of the fake server.
const fakeTimeout = 10 * time.Second

// peer is the server end of one connection.
type peer struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader
}

// serveOne starts a fake server that accepts one connection and runs script
// on it, and returns the URL to dial. The cleanup waits for script.
func serveOne(t *testing.T, script func(p *peer)) string {
	t.Helper()
	return serveSeq(t, script)
}

// serveSeq starts a fake server that accepts len(scripts) connections one
// after the other, running scripts[i] on the i-th, and returns the URL to
// dial. The cleanup waits for the scripts.
func serveSeq(t *testing.T, scripts ...func(p *peer)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for _, script := range scripts {
			if !serveConn(t, ln, script) {
				return
			}
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return "ws://" + ln.Addr().String() + "/connection/websocket"
}

// serveConn accepts one connection and runs script on it; it reports false
// when the listener was closed.
func serveConn(t *testing.T, ln net.Listener, script func(p *peer)) bool {
	conn, err := ln.Accept()
	if err != nil {
		return false
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(fakeTimeout))
	br := bufio.NewReader(conn)
	if _, err := ws.Upgrade(struct {
		io.Reader
		io.Writer
	}{br, conn}); err != nil {
		t.Errorf("fake server: upgrade: %v", err)
		return true
	}
	script(&peer{t: t, conn: conn, br: br})
	return true
}

// readFrame reads one frame and unmasks it, failing on a frame a client
// must not send (unmasked, say).
func (p *peer) readFrame() (ws.Header, []byte, error) {
	var hdr [ws.MaxHeaderSize]byte
	h, err := wsframe.ReadHeader(p.br, &hdr, ws.StateServerSide, 1<<20)
	if errors.Is(err, wsframe.ErrProtocol) || errors.Is(err, wsframe.ErrTooLarge) {
		p.t.Errorf("fake server: frame from client: %v", err)
	}
	if err != nil {
		return h, nil, err
	}
	payload := make([]byte, h.Length)
	if _, err := io.ReadFull(p.br, payload); err != nil {
		return h, nil, err
	}
	ws.Cipher(payload, h.Mask, 0)
	return h, payload, nil
}

// commands reads the next data frame and decodes its command lines.
func (p *peer) commands() []protocol.Command {
	for {
		h, payload, err := p.readFrame()
		if err != nil {
			p.t.Errorf("fake server: read: %v", err)
			return nil
		}
		if h.OpCode != ws.OpText {
			p.t.Errorf("fake server: got opcode %v, want a text frame", h.OpCode)
			return nil
		}
		var cmds []protocol.Command
		protocol.Lines(payload, func(line []byte) bool {
			cmd, err := protocol.DecodeCommand(line)
			if err != nil {
				p.t.Errorf("fake server: bad command %q: %v", line, err)
			}
			cmds = append(cmds, cmd)
			return true
		})
		return cmds
	}
}

// command reads a frame that must hold exactly one command.
func (p *peer) command() protocol.Command {
	cmds := p.commands()
	if len(cmds) != 1 {
		p.t.Errorf("fake server: got %d commands in a frame, want 1", len(cmds))
		return protocol.Command{}
	}
	return cmds[0]
}

// connect reads the connect command and accepts it, announcing ping
// seconds.
func (p *peer) connect(ping int) protocol.ConnectParams {
	cmd := p.command()
	if cmd.Method != protocol.MethodConnect {
		p.t.Errorf("fake server: first command is %q, want connect", cmd.Method)
	}
	var params protocol.ConnectParams
	if err := protocol.DecodeParams(cmd, &params); err != nil {
		p.t.Errorf("fake server: %v", err)
	}
	p.send(replyLine(cmd.ID, protocol.ConnectResult{Client: "C1", Version: "test", Ping: ping}))
	return params
}

// send writes lines in one text frame.
func (p *peer) send(lines ...string) {
	p.writeFrame(ws.OpText, []byte(strings.Join(lines, "\n")))
}

// writeFrame writes a final frame, unmasked as a server sends it.
func (p *peer) writeFrame(op ws.OpCode, payload []byte) {
	p.write(wsframe.AppendFrame(nil, ws.Header{Fin: true, OpCode: op}, payload))
}

// write writes encoded frames.
func (p *peer) write(frames []byte) {
	if _, err := p.conn.Write(frames); err != nil {
		p.t.Errorf("fake server: write: %v", err)
	}
}

// closeWith sends a close frame with code and reason.
func (p *peer) closeWith(code ws.StatusCode, reason string) {
	p.writeFrame(ws.OpClose, ws.NewCloseFrameBody(code, reason))
}

// expectClose reads frames until a close frame and returns its code.
func (p *peer) expectClose() ws.StatusCode {
	for {
		h, payload, err := p.readFrame()
		if err != nil {
			p.t.Errorf("fake server: waiting for a close frame: %v", err)
			return 0
		}
		if h.OpCode == ws.OpClose {
			code, _ := ws.ParseCloseFrameData(payload)
			return code
		}
	}
}

func replyLine(id uint32, result any) string {
	b, err := protocol.AppendReply(nil, id, result)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func errorLine(id uint32, e *protocol.Error) string {
	return string(protocol.AppendError(nil, id, e))
}

func pushLine(p *protocol.Push) string {
	b, err := protocol.AppendPush(nil, p)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func pubPush(ch string, offset uint64) *protocol.Push {
	return &protocol.Push{
		Type:    protocol.PushPublication,
		Channel: ch,
		Pub:     &protocol.Publication{Offset: offset, Data: json.RawMessage(fmt.Sprintf(`{"n":%d}`, offset))},
	}
}

// wantDisconnect fails unless err carries a protocol.Disconnect with code.
func wantDisconnect(t *testing.T, err error, code uint16) {
	t.Helper()
	var d protocol.Disconnect
	if !errors.As(err, &d) || d.Code != code {
		t.Fatalf("error %v, want a disconnect with code %d", err, code)
	}
}
