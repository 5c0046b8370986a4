// Runs two clients of the ws package against a redcast server (REDCAST_URL,
// the full-protocol endpoint): one offering permessage-deflate, one not.
// Each subscribes to a channel; the first publishes a compressible
// publication (its own frames compressed too), and both print what they
// negotiated and the bytes their sockets read for the publication, as JSON
// lines for the Go test.
import WebSocket from 'ws';

const url = process.env.REDCAST_URL;
const data = { players: Array.from({ length: 100 }, (_, i) => ({ name: 'player' + (i % 7), score: 1000 + i, ready: true })) };

function open(name, deflate) {
  return new Promise((resolve, reject) => {
    let socket;
    const ws = new WebSocket(url, { perMessageDeflate: deflate ? { threshold: 0 } : false });
    ws.on('upgrade', (res) => { socket = res.socket; });
    ws.on('error', reject);
    const lines = [];
    let waiting = null;
    ws.on('message', (buf) => {
      for (const l of buf.toString().split('\n')) lines.push(JSON.parse(l));
      if (waiting) waiting();
    });
    ws.on('open', () => resolve({
      name, ws, socket,
      async next(pred) {
        for (;;) {
          const i = lines.findIndex(pred);
          if (i >= 0) return lines.splice(i, 1)[0];
          await new Promise((r) => { waiting = r; });
          waiting = null;
        }
      },
    }));
  });
}

const a = await open('deflate', true);
const b = await open('plain', false);
for (const c of [a, b]) {
  c.ws.send(JSON.stringify({ id: 1, method: 'connect' }));
  await c.next((m) => m.id === 1);
  c.ws.send(JSON.stringify({ id: 2, method: 'subscribe', params: { channel: 'chat:ws' } }));
  const r = await c.next((m) => m.id === 2);
  if (r.error) throw new Error(JSON.stringify(r.error));
}
const before = [a.socket.bytesRead, b.socket.bytesRead];
a.ws.send(JSON.stringify({ id: 3, method: 'publish', params: { channel: 'chat:ws', data } }));
for (const [i, c] of [a, b].entries()) {
  const p = await c.next((m) => m.push === 'publication');
  if (c === a) await c.next((m) => m.id === 3);
  console.log(JSON.stringify({
    client: c.name,
    extensions: c.ws.extensions,
    same: JSON.stringify(p.pub.data) === JSON.stringify(data),
    bytes: c.socket.bytesRead - before[i],
    size: JSON.stringify(data).length,
  }));
}
a.ws.close();
b.ws.close();
