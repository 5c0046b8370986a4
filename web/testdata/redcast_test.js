// Unit tests of redcast.js against a scripted fake WebSocket. TestRedcastJS
// (browser_test.go) loads redcast_test.html in Chromium and reads
// window.results: one {name, error} per test, error '' when it passed.

import { Client, ErrorCode, RedcastError } from '/redcast.js';

// FakeSocket stands in for WebSocket: the test plays the server.
class FakeSocket {
  static all = [];

  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.frames = [];
    this.closedByClient = false;
    FakeSocket.all.push(this);
  }

  send(frame) {
    if (this.readyState !== 1) throw new Error('send on a socket that is not open');
    this.frames.push(frame);
  }

  close() {
    this.readyState = 3;
    this.closedByClient = true;
  }

  // Test side.
  open() {
    this.readyState = 1;
    this.onopen?.({});
  }

  receive(...msgs) {
    this.onmessage?.({ data: msgs.map((m) => JSON.stringify(m)).join('\n') });
  }

  serverClose(code, reason = '') {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }

  commands() {
    return this.frames.flatMap((f) => f.split('\n')).map((l) => JSON.parse(l));
  }

  last(method) {
    const cmds = this.commands().filter((c) => c.method === method);
    return cmds[cmds.length - 1];
  }
}

const tick = () => new Promise((r) => setTimeout(r, 0));

async function until(what, cond, ms = 2000) {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

function eq(got, want, what) {
  const g = JSON.stringify(got);
  const w = JSON.stringify(want);
  if (g !== w) throw new Error(`${what}: got ${g}, want ${w}`);
}

function newClient(opts = {}) {
  FakeSocket.all = [];
  return new Client('ws://test/connection/websocket', {
    WebSocket: FakeSocket,
    name: 'tester',
    minReconnectDelay: 1,
    maxReconnectDelay: 8,
    pingInterval: 0,
    ...opts,
  });
}

// connected opens the current socket and answers connect.
async function connected(c, clientId = 'C1') {
  await until('a socket', () => FakeSocket.all.length > 0 && FakeSocket.all.at(-1).readyState === 0);
  const ws = FakeSocket.all.at(-1);
  ws.open();
  await tick();
  const cmd = ws.last('connect');
  if (!cmd) throw new Error('no connect command');
  ws.receive({ id: cmd.id, result: { client: clientId, version: 'test', ping: 25 } });
  await until('connected', () => c.state === 'connected');
  await tick();
  return ws;
}

const pub = (offset, text) => ({ offset, time: 1, data: { text }, from: { client: 'X', info: { name: 'x' } } });

const tests = {
  async 'rpc sends method and data and resolves with the backend data'() {
    const c = newClient();
    c.connect();
    const ws = await connected(c);
    const p1 = c.rpc('add', [2, 3]);
    const p2 = c.rpc('nothing');
    await tick();
    const [add, nothing] = ws.commands().filter((cmd) => cmd.method === 'rpc');
    eq(add.params, { method: 'add', data: [2, 3] }, 'rpc params');
    eq(nothing.params, { method: 'nothing' }, 'rpc params without data');
    ws.receive({ id: add.id, result: { data: { sum: 5 } } }, { id: nothing.id, error: { code: 117, message: 'backend unavailable' } });
    eq(await p1, { sum: 5 }, 'rpc result');
    try {
      await p2;
      throw new Error('rpc resolved');
    } catch (err) {
      if (!(err instanceof RedcastError)) throw err;
      eq(err.code, 117, 'rpc error');
    }
    c.disconnect();
  },

  async 'server-side subscriptions are announced and their publications passed on'() {
    const c = newClient();
    const events = [];
    c.on('serverSubscribed', (ctx) => events.push(`subscribed ${ctx.channel} ${ctx.offset}`));
    c.on('serverPublication', (ctx) => events.push(`pub ${ctx.channel} ${ctx.offset} ${ctx.data.text}`));
    c.connect();
    const ws = await connected(c);
    ws.receive(
      { push: 'publication', channel: 'news', pub: pub(1, 'before') }, // not subscribed yet: dropped
      { push: 'subscribe', channel: 'news', sub: { offset: 4, epoch: 'E', recoverable: true, recovered: false } },
      { push: 'publication', channel: 'news', pub: pub(5, 'hello') },
      { push: 'publication', channel: 'other', pub: pub(1, 'nope') },
    );
    eq(events, ['subscribed news 4', 'pub news 5 hello'], 'events');
    c.disconnect();
  },

  async 'a connect refused with 117 (backend unavailable) is retried'() {
    const c = newClient();
    c.connect();
    await until('a socket', () => FakeSocket.all.length === 1);
    const ws = FakeSocket.all[0];
    ws.open();
    await tick();
    ws.receive({ id: ws.last('connect').id, error: { code: 117, message: 'backend unavailable' } });
    await connected(c, 'C2');
    eq(FakeSocket.all.length, 2, 'sockets');
    c.disconnect();
  },

  async 'connect sends name and token and reports the connection'() {
    const c = newClient({ token: 'tok' });
    const events = [];
    c.on('connecting', () => events.push('connecting'));
    c.on('connected', (ctx) => events.push(`connected ${ctx.client}`));
    const ready = c.connect();
    const ws = await connected(c);
    eq(ws.url, 'ws://test/connection/websocket', 'url');
    eq(ws.commands()[0], { id: 1, method: 'connect', params: { name: 'tester', token: 'tok' } }, 'connect command');
    eq((await ready).client, 'C1', 'connect() result');
    eq(c.clientId, 'C1', 'clientId');
    eq(events, ['connecting', 'connected C1'], 'events');
    c.disconnect();
  },

  async 'commands resolve with results and reject with {code, message}'() {
    const c = newClient();
    c.connect();
    const ws = await connected(c);
    const p1 = c.publish('chat:a', { text: 'hi' });
    const p2 = c.presence('chat:a');
    const p3 = c.history('chat:a', { limit: 2, since: { offset: 1, epoch: 'E' } });
    await tick();
    // Commands issued together go out in one frame, in order.
    eq(ws.frames.length, 2, 'frames (connect, then the batch)');
    const [pubCmd, presCmd, histCmd] = ws.commands().slice(1);
    eq(pubCmd.params, { channel: 'chat:a', data: { text: 'hi' } }, 'publish params');
    eq(histCmd.params, { channel: 'chat:a', limit: 2, since: { offset: 1, epoch: 'E' } }, 'history params');
    ws.receive(
      { id: pubCmd.id, result: { offset: 7, epoch: 'E' } },
      { id: presCmd.id, error: { code: 111, message: 'presence is off' } },
      { id: histCmd.id, result: { publications: null, offset: 7, epoch: 'E' } },
    );
    eq(await p1, { offset: 7, epoch: 'E' }, 'publish result');
    try {
      await p2;
      throw new Error('presence resolved');
    } catch (err) {
      if (!(err instanceof RedcastError)) throw err;
      eq([err.code, err.message], [111, 'presence is off'], 'presence error');
    }
    eq(await p3, { publications: [], offset: 7, epoch: 'E' }, 'history result');
    c.disconnect();
  },

  async 'publish sends an idempotency key only when given one'() {
    const c = newClient();
    c.connect();
    const ws = await connected(c);
    const p1 = c.publish('chat:a', 1, { idempotencyKey: 'k-1' });
    const p2 = c.publish('chat:a', 2);
    await tick();
    const [withKey, without] = ws.commands().slice(1);
    eq(withKey.params, { channel: 'chat:a', data: 1, idempotency_key: 'k-1' }, 'publish params with a key');
    eq(without.params, { channel: 'chat:a', data: 2 }, 'publish params without a key');
    ws.receive({ id: withKey.id, result: { offset: 3, epoch: 'E' } }, { id: without.id, result: { offset: 4, epoch: 'E' } });
    eq(await p1, { offset: 3, epoch: 'E' }, 'publish result');
    await p2;
    c.disconnect();
  },

  async 'publish rejects at once while disconnected'() {
    const c = newClient();
    try {
      await c.publish('chat:a', { text: 'x' });
      throw new Error('publish resolved');
    } catch (err) {
      eq(err.code, ErrorCode.DISCONNECTED, 'code');
    }
    c.connect();
    const ws = await connected(c);
    ws.serverClose(1006);
    try {
      await c.publish('chat:a', { text: 'x' });
      throw new Error('publish resolved while reconnecting');
    } catch (err) {
      eq(err.code, ErrorCode.DISCONNECTED, 'code while reconnecting');
    }
    c.disconnect();
  },

  async 'waiting commands reject when the connection drops'() {
    const c = newClient();
    c.connect();
    const ws = await connected(c);
    const p = c.publish('chat:a', 1);
    await tick();
    ws.serverClose(1006);
    try {
      await p;
      throw new Error('publish resolved');
    } catch (err) {
      eq(err.code, ErrorCode.DISCONNECTED, 'code');
    }
    c.disconnect();
  },

  async 'a subscribe reply and the pushes after it in one frame'() {
    const c = newClient();
    c.connect();
    const ws = await connected(c);
    const got = [];
    const subscribed = [];
    c.subscribe('chat:a', {
      history: 2,
      onSubscribed: (ctx) => subscribed.push(ctx),
      onPublication: (p) => got.push(p.offset),
    });
    await tick();
    const cmd = ws.last('subscribe');
    eq(cmd.params, { channel: 'chat:a', history: 2 }, 'subscribe params');
    ws.onmessage({
      data: [
        { id: cmd.id, result: { offset: 5, epoch: 'E', recoverable: true, publications: [pub(4, 'a'), pub(5, 'b')] } },
        { push: 'publication', channel: 'chat:a', pub: pub(6, 'c') },
        { push: 'publication', channel: 'chat:a', pub: pub(6, 'c') }, // duplicate
        { push: 'publication', channel: 'chat:b', pub: pub(9, 'other channel') },
        { push: 'publication', channel: 'chat:a', pub: pub(7, 'd') },
      ].map((m) => JSON.stringify(m)).join('\n') + '\n',
    });
    eq(got, [4, 5, 6, 7], 'delivered offsets');
    eq(subscribed.map((s) => [s.recovering, s.recovered, s.offset, s.epoch]), [[false, false, 5, 'E']], 'onSubscribed');
    eq(c.getSubscription('chat:a').position, { offset: 7, epoch: 'E' }, 'position');
    c.disconnect();
  },

  async 'reconnect resubscribes with since and delivers only what was missed'() {
    const c = newClient();
    const states = [];
    c.on('connecting', (ctx) => states.push(`connecting ${ctx.code}`));
    c.on('connected', () => states.push('connected'));
    c.connect();
    let ws = await connected(c);
    const got = [];
    const subscribed = [];
    c.subscribe('chat:a', {
      history: 50,
      onSubscribed: (ctx) => subscribed.push([ctx.recovering, ctx.recovered]),
      onPublication: (p) => got.push(p.offset),
    });
    await tick();
    ws.receive({ id: ws.last('subscribe').id, result: { offset: 3, epoch: 'E', recoverable: true, publications: [pub(3, 'a')] } });
    ws.receive({ push: 'publication', channel: 'chat:a', pub: pub(4, 'b') });

    ws.serverClose(1006, '');
    ws = await connected(c, 'C2');
    const cmd = ws.last('subscribe');
    eq(cmd.params, { channel: 'chat:a', since: { offset: 4, epoch: 'E' }, history: 50 }, 'resubscribe params');
    ws.receive({
      id: cmd.id,
      result: { offset: 6, epoch: 'E', recoverable: true, recovered: true, publications: [pub(4, 'b'), pub(5, 'c'), pub(6, 'd')] },
    });
    ws.receive({ push: 'publication', channel: 'chat:a', pub: pub(7, 'e') });
    eq(got, [3, 4, 5, 6, 7], 'delivered offsets');
    eq(subscribed, [[false, false], [true, true]], 'onSubscribed recovering/recovered');
    eq(states, ['connecting 0', 'connected', 'connecting 1006', 'connected'], 'states');
    c.disconnect();
  },

  async 'recovered absent from the reply means not recovered'() {
    const c = newClient();
    c.connect();
    let ws = await connected(c);
    const log = [];
    c.subscribe('chat:a', {
      history: 2,
      onSubscribed: (ctx) => log.push(`subscribed recovering=${ctx.recovering} recovered=${ctx.recovered}`),
      onPublication: (p) => log.push(p.offset),
    });
    await tick();
    ws.receive({ id: ws.last('subscribe').id, result: { offset: 3, epoch: 'E', recoverable: true } });
    ws.serverClose(3002, 'slow consumer');
    ws = await connected(c);
    ws.receive({
      id: ws.last('subscribe').id,
      result: { offset: 300, epoch: 'E', recoverable: true, publications: [pub(299, 'y'), pub(300, 'z')] },
    });
    eq(log, [
      'subscribed recovering=false recovered=false',
      'subscribed recovering=true recovered=false',
      299, 300,
    ], 'callbacks');
    c.disconnect();
  },

  async 'an epoch change is not a recovery'() {
    const c = newClient();
    c.connect();
    let ws = await connected(c);
    const log = [];
    c.subscribe('chat:a', {
      onSubscribed: (ctx) => log.push(`recovered=${ctx.recovered}`),
      onPublication: (p) => log.push(p.offset),
    });
    await tick();
    ws.receive({ id: ws.last('subscribe').id, result: { offset: 9, epoch: 'OLD', recoverable: true } });
    c.reconnect();
    ws = await connected(c);
    ws.receive({ id: ws.last('subscribe').id, result: { offset: 1, epoch: 'NEW', recoverable: true, recovered: true, publications: [pub(1, 'a')] } });
    eq(log, ['recovered=false', 'recovered=false', 1], 'callbacks');
    eq(c.getSubscription('chat:a').position, { offset: 1, epoch: 'NEW' }, 'position');
    c.disconnect();
  },

  async 'a gap restarts the subscription from the last offset'() {
    const c = newClient();
    c.connect();
    const ws = await connected(c);
    const got = [];
    c.subscribe('chat:a', { onPublication: (p) => got.push(p.offset) });
    await tick();
    ws.receive({ id: ws.last('subscribe').id, result: { offset: 3, epoch: 'E', recoverable: true } });
    ws.receive({ push: 'publication', channel: 'chat:a', pub: pub(5, 'after a gap') });
    await tick();
    const cmds = ws.commands().slice(-2);
    eq(cmds.map((x) => x.method), ['unsubscribe', 'subscribe'], 'commands after the gap');
    eq(cmds[1].params.since, { offset: 3, epoch: 'E' }, 'since');
    ws.receive({ push: 'publication', channel: 'chat:a', pub: pub(6, 'ignored while resubscribing') });
    ws.receive({ id: cmds[1].id, result: { offset: 6, epoch: 'E', recoverable: true, recovered: true, publications: [pub(4, 'a'), pub(5, 'b'), pub(6, 'c')] } });
    eq(got, [4, 5, 6], 'delivered offsets');
    c.disconnect();
  },

  async 'joins and leaves reach the subscription'() {
    const c = newClient();
    c.connect();
    const ws = await connected(c);
    const log = [];
    const sub = c.subscribe('chat:a', {
      onJoin: (info) => log.push(`join ${info.client}`),
      onLeave: (info) => log.push(`leave ${info.client}`),
      onUnsubscribed: (ctx) => log.push(`unsubscribed ${ctx.reason}`),
    });
    await tick();
    eq(ws.last('subscribe').params, { channel: 'chat:a', join_leave: true }, 'onJoin asks for join_leave');
    ws.receive({ push: 'join', channel: 'chat:a', client: { client: 'J1' } });
    ws.receive({ id: ws.last('subscribe').id, result: { offset: 0, epoch: 'E', recoverable: true, join_leave: true } });
    ws.receive({ push: 'leave', channel: 'chat:a', client: { client: 'J1' } });
    sub.unsubscribe();
    await tick();
    eq(ws.last('unsubscribe').params, { channel: 'chat:a' }, 'unsubscribe command');
    ws.receive({ push: 'join', channel: 'chat:a', client: { client: 'J2' } });
    eq(log, ['join J1', 'leave J1', 'unsubscribed unsubscribe called'], 'callbacks');
    eq(sub.state, 'unsubscribed', 'state');
    c.disconnect();
  },

  async 'a disconnect push without reconnect stops the client'() {
    const c = newClient();
    const log = [];
    c.on('disconnected', (ctx) => log.push(`${ctx.code} ${ctx.reason}`));
    c.connect();
    const ws = await connected(c);
    ws.receive({ push: 'disconnect', code: 3501, reason: 'frame too large' });
    ws.serverClose(3501, 'frame too large');
    eq(c.state, 'disconnected', 'state');
    eq(c._reconnectTimer, 0, 'reconnect timer');
    eq(log, ['3501 frame too large'], 'disconnected events');
    eq(FakeSocket.all.length, 1, 'sockets opened');
  },

  async 'a disconnect push with reconnect reconnects'() {
    const c = newClient();
    const log = [];
    c.on('connecting', (ctx) => log.push(`connecting ${ctx.code} ${ctx.reason}`));
    c.connect();
    const ws = await connected(c);
    ws.receive({ push: 'disconnect', code: 3001, reason: 'server shutting down', reconnect: true });
    ws.serverClose(3001, 'server shutting down');
    await connected(c);
    eq(log, ['connecting 0 connect called', 'connecting 3001 server shutting down'], 'events');
    c.disconnect();
  },

  async 'a close code 3500-3999 stops the client'() {
    const c = newClient();
    c.connect();
    const ws = await connected(c);
    ws.serverClose(3502, 'no connect in time');
    eq(c.state, 'disconnected', 'state');
  },

  async 'backoff grows with full jitter up to the cap'() {
    const c = newClient({ minReconnectDelay: 1, maxReconnectDelay: 8 });
    const delays = [];
    c.on('connecting', (ctx) => delays.push(ctx.delay));
    const ready = c.connect();
    for (let i = 0; i < 6; i++) {
      await until('a new socket', () => FakeSocket.all.length === i + 1);
      FakeSocket.all.at(-1).serverClose(1006);
    }
    c.disconnect();
    try {
      await ready;
      throw new Error('connect() resolved without a connection');
    } catch (err) {
      eq(err.code, ErrorCode.CLIENT_CLOSED, 'connect() rejection');
    }
    const caps = [0, 1, 2, 4, 8, 8, 8];
    delays.forEach((d, i) => {
      if (d < 0 || d > caps[i]) throw new Error(`attempt ${i}: delay ${d} outside [0, ${caps[i]}]`);
    });
    eq(delays.length, 7, 'connecting events');
  },

  async 'no ping reply reconnects'() {
    const c = newClient({ pingInterval: 5, pingTimeout: 20 });
    const log = [];
    c.on('connecting', (ctx) => log.push(ctx.reason));
    c.connect();
    const ws = await connected(c);
    await until('a ping', () => ws.last('ping'));
    await until('a new socket', () => FakeSocket.all.length === 2, 1000);
    if (!ws.closedByClient) throw new Error('the dead socket was not closed');
    if (!log.at(-1).includes('ping')) throw new Error(`reason ${log.at(-1)}`);
    c.disconnect();
  },

  async 'answered pings keep the connection'() {
    const c = newClient({ pingInterval: 5, pingTimeout: 50 });
    c.connect();
    const ws = await connected(c);
    for (let i = 0; i < 3; i++) {
      await until('a ping', () => ws.commands().filter((x) => x.method === 'ping').length > i);
      ws.receive({ id: ws.last('ping').id, result: {} });
    }
    eq(FakeSocket.all.length, 1, 'sockets opened');
    eq(c.state, 'connected', 'state');
    c.disconnect();
  },

  async 'a connect error other than 100 and 112 stops the client'() {
    const c = newClient();
    const ready = c.connect();
    await until('a socket', () => FakeSocket.all.length === 1);
    const ws = FakeSocket.all[0];
    ws.open();
    await tick();
    ws.receive({ id: ws.last('connect').id, error: { code: 107, message: 'permission denied' } });
    eq(c.state, 'disconnected', 'state');
    try {
      await ready;
      throw new Error('connect() resolved');
    } catch (err) {
      eq(err.code, 107, 'code');
    }
  },

  async 'a subscribe error ends the subscription'() {
    const c = newClient();
    c.connect();
    const ws = await connected(c);
    const log = [];
    c.subscribe('bad channel', {
      onError: (err) => log.push(`error ${err.code}`),
      onUnsubscribed: (ctx) => log.push(`unsubscribed ${ctx.code}`),
    });
    await tick();
    ws.receive({ id: ws.last('subscribe').id, error: { code: 105, message: 'invalid channel name' } });
    eq(log, ['error 105', 'unsubscribed 105'], 'callbacks');
    eq(c.getSubscription('bad channel'), undefined, 'registry');
    c.disconnect();
  },

  async 'an unsubscribe push ends the subscription for good'() {
    const c = newClient();
    c.connect();
    const ws = await connected(c);
    const log = [];
    const sub = c.subscribe('chat:a', {
      onPublication: (p) => log.push(`pub ${p.offset}`),
      onUnsubscribed: (ctx) => log.push(`unsubscribed ${ctx.code} ${ctx.server} ${ctx.reason}`),
    });
    await tick();
    ws.receive({ id: ws.last('subscribe').id, result: { offset: 0, epoch: 'E', recoverable: true } });
    ws.receive({ push: 'publication', channel: 'chat:a', pub: pub(1, 'a') },
      { push: 'unsubscribe', channel: 'chat:a', reason: 'unsubscribed by the server' },
      { push: 'publication', channel: 'chat:a', pub: pub(2, 'late') });
    eq(log, ['pub 1', 'unsubscribed 0 true unsubscribed by the server'], 'callbacks');
    eq(sub.state, 'unsubscribed', 'state');
    eq(c.getSubscription('chat:a'), undefined, 'registry');
    // A reconnect does not subscribe again.
    ws.serverClose(1006);
    const ws2 = await connected(c, 'C2');
    await tick();
    eq(ws2.commands().filter((cmd) => cmd.method === 'subscribe').length, 0, 'subscribes after reconnect');
    c.disconnect();
  },

  async 'a disconnect push with a delay is followed'() {
    const c = newClient({ minReconnectDelay: 1, maxReconnectDelay: 2 });
    const states = [];
    c.on('connecting', (ctx) => states.push(ctx));
    c.connect();
    const ws = await connected(c);
    ws.receive({ push: 'disconnect', code: 3001, reason: 'server shutting down', reconnect: true, delay: 150 });
    const t0 = performance.now();
    ws.serverClose(3001, 'server shutting down');
    eq(states.at(-1).delay, 150, 'advised delay');
    await connected(c, 'C2');
    const waited = performance.now() - t0;
    if (waited < 140) throw new Error(`reconnected after ${waited} ms, before the advised 150 ms`);
    c.disconnect();
  },

  async 'disconnect keeps subscriptions and connect recovers them'() {
    const c = newClient();
    c.connect();
    let ws = await connected(c);
    c.subscribe('chat:a', {});
    await tick();
    ws.receive({ id: ws.last('subscribe').id, result: { offset: 4, epoch: 'E', recoverable: true } });
    c.disconnect();
    if (!ws.closedByClient) throw new Error('socket not closed');
    c.connect();
    ws = await connected(c);
    eq(ws.last('subscribe').params, { channel: 'chat:a', since: { offset: 4, epoch: 'E' } }, 'resubscribe');
    c.disconnect();
  },
};

const results = [];
for (const [name, fn] of Object.entries(tests)) {
  try {
    await fn();
    results.push({ name, error: '' });
  } catch (err) {
    results.push({ name, error: String(err && err.stack ? err.stack : err) });
  }
}
window.results = results;
