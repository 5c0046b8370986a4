package websocket

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redcast/redcast/hub"
	"github.com/redcast/redcast/outbox"
)

// The writer's hot paths: assembling a flush, and Send through the writer
// to a socket, with the flush window that coalesces a stream.
//
//	go test -run '^$' -bench . -benchmem ./transport/websocket/

// countConn is a net.Conn that counts and discards writes, and the
// messages in them (benchMsg holds no '\n').
type countConn struct {
	net.Conn
	writes, msgs atomic.Int64
}

func (c *countConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	c.msgs.Add(int64(countMessages(p)))
	return len(p), nil
}

// countMessages counts the messages in server frames: a message per frame
// and per '\n' in a frame.
func countMessages(p []byte) int {
	n := 0
	for len(p) >= 2 {
		size, hl := int(p[1]&0x7f), 2
		switch size {
		case 126:
			size, hl = int(binary.BigEndian.Uint16(p[2:])), 4
		case 127:
			size, hl = int(binary.BigEndian.Uint64(p[2:])), 10
		}
		n += 1 + bytes.Count(p[hl:hl+size], []byte{'\n'})
		p = p[hl+size:]
	}
	return n
}
func (c *countConn) SetWriteDeadline(time.Time) error { return nil }
func (c *countConn) SetReadDeadline(time.Time) error  { return nil }
func (c *countConn) Close() error                     { return nil }

var benchMsg = []byte(`{"push":"publication","channel":"bench-0","pub":{"offset":123456,"data":{"text":"0123456789012345678901234567890123456789012345678901"}}}`)

// BenchmarkFlush assembles and writes one flush of batch queued messages:
// ns and allocations per message.
func BenchmarkFlush(b *testing.B) {
	for _, format := range []hub.Format{hub.FormatProtocol, hub.FormatPlain} {
		for _, n := range []int{1, 16, 256} {
			name := fmt.Sprintf("format=%s/batch=%d", formatName(format), n)
			b.Run(name, func(b *testing.B) {
				cc := &countConn{}
				c := newConn(cc, format, limits{writeTimeout: time.Second}, outbox.Options{})
				batch := make([][]byte, n)
				for i := range batch {
					batch[i] = benchMsg
				}
				var buf []byte
				b.ReportAllocs()
				for b.Loop() {
					buf = c.AppendFrames(buf[:0], batch)
					if err := c.Write(buf); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/msg")
			})
		}
	}
}

func formatName(f hub.Format) string {
	if f == hub.FormatPlain {
		return "plain"
	}
	return "protocol"
}

// BenchmarkSend pushes bursts of messages to a connection's outbox and
// waits until its writer wrote them: the cost per message of Push, waking
// the writer and its write, without a flush window. A burst is what a connection gets
// between two runs of its writer; under load the window makes it larger.
func BenchmarkSend(b *testing.B) {
	for _, burst := range []int{1, 16, 128} {
		b.Run(fmt.Sprintf("burst=%d", burst), func(b *testing.B) {
			cc := &countConn{}
			c := newConn(cc, hub.FormatProtocol, limits{writeTimeout: time.Second, pingInterval: time.Hour}, outbox.Options{})
			var want int64
			b.ReportAllocs()
			for b.Loop() {
				for range burst {
					if !c.out.Push(benchMsg) {
						b.Fatal("queue full")
					}
				}
				want += int64(burst)
				for cc.msgs.Load() < want {
					runtime.Gosched()
				}
			}
			c.out.Close(peerClosed)
			<-c.out.Done()
			msgs := float64(b.N * burst)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/msgs, "ns/msg")
			b.ReportMetric(msgs/float64(cc.writes.Load()), "msgs/write")
		})
	}
}
