// Checks redcast's delta publications against fossil-delta, an independent
// implementation of Fossil's delta format, and measures bytes on the wire.
// REDCAST_URL is the full-protocol endpoint, REDCAST_JS the path of
// redcast.js. Prints JSON lines for the Go test (package test).
import WebSocket from 'ws';
import { createDelta, applyDelta as fossilApply } from 'fossil-delta';
import { readFileSync } from 'node:fs';

const url = process.env.REDCAST_URL;
const redcast = await import('data:text/javascript,' + encodeURIComponent(readFileSync(process.env.REDCAST_JS, 'utf8')));
const N = Number(process.env.FEED || 1000);
const channel = process.env.CHANNEL || 'chat:match';
const enc = new TextEncoder();
const dec = new TextDecoder();
const out = (o) => console.log(JSON.stringify(o));

// 1. redcast.js's applyDelta against fossil-delta's create.
{
  let n = 0;
  const rand = (k) => Math.floor(Math.random() * k);
  for (let i = 0; i < 500; i++) {
    const a = new Uint8Array(rand(3000)).map(() => 32 + rand(20));
    const b = a.slice(rand(100)).map((x) => (rand(30) ? x : 32 + rand(90)));
    const d = createDelta(a, b);
    const got = redcast.applyDelta(a, Uint8Array.from(d));
    if (Buffer.compare(Buffer.from(got), Buffer.from(b)) !== 0) throw new Error('applyDelta differs from fossil-delta');
    // The checksum is checked: the same delta with another last digit
    // of its checksum (the digits before the final ';') is refused.
    // (Applying it over other bytes proves nothing: Fossil's checksum is a
    // plain sum, which flipped bits can leave unchanged.)
    const bad = Uint8Array.from(d);
    const end = bad.lastIndexOf(0x3b);
    bad[end - 1] = bad[end - 1] === 0x30 ? 0x31 : 0x30;
    let threw = false;
    try { redcast.applyDelta(a, bad); } catch { threw = true; }
    if (!threw) throw new Error('applyDelta took a delta whose checksum does not match');
    n++;
  }
  out({ check: 'applyDelta', cases: n });
}

// The feed: the state of a match, about 2 KB, published after every
// event: one player's counters move, the last event changes, the minute
// and the possession now and then, the score rarely.
function match(n) {
  const players = [];
  for (let i = 0; i < 22; i++) {
    const mine = Math.floor(n / 22) + (i < n % 22 ? 1 : 0); // events of player i so far
    players.push({ id: 100 + i, name: `Player ${String.fromCharCode(65 + i)}. Surname${i}`, team: i < 11 ? 'home' : 'away',
      touches: mine, passes: Math.floor(mine * 0.8), yellow: mine > 40 });
  }
  return { match: 'Rovers – United', minute: Math.floor(n / 11), score: { home: Math.floor(n / 300), away: Math.floor(n / 450) },
    possession: { home: 50 + (Math.floor(n / 10) % 9), away: 50 - (Math.floor(n / 10) % 9) }, last_event: `event ${n}: pass by player ${n % 22}`, players };
}

// raw returns the text of a publication push's data, as the server sent it.
function raw(line) {
  const start = line.indexOf('"data":', line.indexOf('"pub":{')) + 7;
  let depth = 0;
  for (let i = start, s = false; i < line.length; i++) {
    const c = line[i];
    if (s) { if (c === '\\') i++; else if (c === '"') { s = false; if (depth === 0) return line.slice(start, i + 1); } continue; }
    if (c === '"') s = true;
    else if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') { if (depth === 0) return line.slice(start, i); if (--depth === 0) return line.slice(start, i + 1); }
    else if (c === ',' && depth === 0) return line.slice(start, i);
  }
  throw new Error('no data');
}

// A subscriber on a raw ws socket, applying deltas with fossil-delta.
function subscriber(name, { delta = false, deflate = false } = {}) {
  const sub = { name, received: 0, deltas: 0, missed: 0, bytes: 0, prev: null, pos: null, errors: [], socket: null, ws: null };
  sub.done = new Promise((resolve) => { sub.finish = resolve; });
  sub.open = (since) => new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: deflate });
    sub.ws = ws;
    ws.on('upgrade', (res) => { sub.socket = res.socket; });
    ws.on('error', reject);
    // A connection the server closes fails the subscriber, instead of
    // leaving the script waiting for publications until it is killed.
    ws.on('close', (code, reason) => {
      if (ws === sub.cut || sub.received >= N) return;
      sub.errors.push(`connection closed by the server after ${sub.received} publications: ${code} ${reason}`);
      sub.finish();
    });
    ws.on('open', () => {
      const params = { channel };
      if (delta) params.delta = 'fossil';
      if (since) params.since = since;
      ws.send(JSON.stringify({ id: 1, method: 'connect' }) + '\n' + JSON.stringify({ id: 2, method: 'subscribe', params }));
    });
    ws.on('message', (buf) => {
      for (const line of buf.toString().split('\n')) {
        const m = JSON.parse(line);
        if (m.id === 2) {
          if (m.error) { reject(new Error(JSON.stringify(m.error))); return; }
          sub.result = m.result;
          for (const p of m.result.publications || []) sub.take(p, JSON.stringify(p.data));
          sub.prev = null; // the first live one comes whole
          resolve();
        }
        if (m.push === 'publication') sub.take(m.pub, line);
      }
    });
  });
  sub.take = (p, line) => {
    if (sub.pos && p.offset <= sub.pos.offset) return;
    let data;
    if (p.delta) {
      sub.deltas++;
      if (!sub.prev) { sub.errors.push(`delta at ${p.offset} without a base`); return; }
      data = Uint8Array.from(fossilApply(sub.prev, enc.encode(p.data)));
    } else {
      data = enc.encode(line.startsWith('{"push"') ? raw(line) : line);
    }
    const want = JSON.stringify(match(p.offset - sub.base));
    if (dec.decode(data) !== want) sub.errors.push(`offset ${p.offset}: ${dec.decode(data).slice(0, 80)}… want ${want.slice(0, 80)}…`);
    sub.prev = data;
    sub.pos = { offset: p.offset, epoch: sub.result?.epoch };
    sub.received++;
    sub.last = Math.round(performance.now());
    if (sub.received === N) sub.finish();
  };
  return sub;
}

const pubWS = new WebSocket(url);
await new Promise((r) => pubWS.on('open', r));
let replies = 0;
let lastReply = 0; // ms since the start
let waitReplies = null;
pubWS.on('message', (buf) => {
  for (const line of buf.toString().split('\n')) {
    const m = JSON.parse(line);
    if (m.error) throw new Error(JSON.stringify(m.error));
    if (m.id > 1) { replies++; lastReply = Math.round(performance.now()); }
  }
  if (waitReplies) waitReplies();
});
let published = false;
pubWS.on('close', (code, reason) => {
  if (!published) throw new Error(`the publisher's connection closed: ${code} ${reason}`);
});
pubWS.send(JSON.stringify({ id: 1, method: 'connect' }));

const subs = {
  plain: subscriber('plain'),
  delta: subscriber('delta', { delta: true }),
  deflate: subscriber('deflate', { deflate: true }),
  both: subscriber('delta+deflate', { delta: true, deflate: true }),
  reconnecting: subscriber('reconnecting', { delta: true }),
};
for (const s of Object.values(subs)) await s.open();
const base = subs.plain.result.offset; // publications before this run
for (const s of Object.values(subs)) s.base = base;
const before = Object.fromEntries(Object.entries(subs).map(([k, s]) => [k, s.socket.bytesRead]));

// redcast.js's Client over ws, with deltas.
const js = { received: 0, errors: [] };

// Killed by the Go test's timeout: say where the feed was.
let at = 'subscribing redcast.js';
process.on('SIGTERM', () => {
  const state = Object.fromEntries(Object.entries(subs).map(([k, s]) => [k, { received: s.received, last: s.last, errors: s.errors.slice(0, 3) }]));
  console.error(JSON.stringify({ at, ms: Math.round(performance.now()), replies, lastReply, subscribers: state, js: { received: js.received, errors: js.errors.slice(0, 3) } }));
  process.exit(1);
});
const client = new redcast.Client(url, { WebSocket });
client.subscribe(channel, {
  delta: true,
  onSubscribed: (e) => { js.subscribed = e; },
  onPublication: (p) => {
    if (p.delta || JSON.stringify(p.data) !== JSON.stringify(match(p.offset - base))) js.errors.push(`offset ${p.offset}`);
    js.received++;
  },
  onError: (e) => js.errors.push(String(e.error)),
});
client.connect();
await new Promise((r) => { const t = setInterval(() => { if (js.subscribed) { clearInterval(t); r(); } }, 5); });

for (let n = 1; n <= N; n++) {
  at = `publishing ${n}`;
  // One space after the brace: the server sends data compacted, and
  // deltas go between the compacted forms.
  pubWS.send(`{"id":${n + 1},"method":"publish","params":{"channel":${JSON.stringify(channel)},"data":${JSON.stringify(match(n)).replace('{', '{ ')}}}`);
  if (n % 50 === 0) {
    while (replies < n) await new Promise((r) => { waitReplies = r; });
  }
  if (n === 300 || n === 700) {
    // All n are acknowledged; those the subscriber has not received yet
    // (more on a busy machine) come back whole, from history.
    const r = subs.reconnecting;
    // The channel's history keeps 100 publications: the subscriber must
    // not be further behind than that to recover (on a busy machine its
    // deliveries trailed the acknowledgements by over 150).
    at = `letting the subscriber come within 50 of ${n}`;
    await new Promise((res) => { const t = setInterval(() => { if ((r.pos && r.pos.offset - base >= n - 50) || r.errors.length) { clearInterval(t); res(); } }, 5); });
    r.cut = r.ws;
    r.ws.terminate();
    r.missed += n - (r.pos ? r.pos.offset - base : 0);
    await new Promise((res) => setTimeout(res, 10));
    at = `reconnecting at ${n}`;
    await r.open(r.pos ?? { offset: base, epoch: r.result.epoch }); // recover from the last position, with deltas again
    // Publishing goes on once it has caught up (or failed to recover, which
    // the test reports), so that what it recovers is only what it missed,
    // and later publications come as deltas.
    at = `catching up at ${n}`;
    await new Promise((res) => { const t = setInterval(() => { if ((r.pos && r.pos.offset - base >= n) || r.errors.length || r.result.recovered !== true) { clearInterval(t); res(); } }, 5); });
  }
}
at = 'waiting for the subscribers';
await Promise.all(Object.values(subs).map((s) => s.done));
at = 'waiting for redcast.js';
await new Promise((r) => { const t = setInterval(() => { if (js.received >= N) { clearInterval(t); r(); } }, 5); });

for (const [k, s] of Object.entries(subs)) {
  out({ subscriber: s.name, received: s.received, deltas: s.deltas, missed: s.missed, errors: s.errors.slice(0, 3),
    bytes: k === 'reconnecting' ? 0 : s.socket.bytesRead - before[k], recovered: s.result.recovered === true });
}
out({ subscriber: 'redcast.js', received: js.received, errors: js.errors.slice(0, 3) });
out({ feed: N, data_bytes: JSON.stringify(match(N)).length, ms: Math.round(performance.now()) });
client.disconnect();
published = true;
pubWS.close();
for (const s of Object.values(subs)) s.ws.close();
