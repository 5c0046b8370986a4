// redcast.js: the browser client of the redcast WebSocket protocol.
//
// One Client holds one WebSocket to /connection/websocket. It sends
// commands with ids and settles a Promise per reply, reconnects with
// exponential backoff and full jitter when the connection is lost, and
// resubscribes every channel from the last position it saw, so that an
// application receives every publication exactly once and in order, or is
// told explicitly (recovered: false) that it cannot.
//
// The wire protocol is in docs/protocol.md; usage is in docs/client-js.md.
// Everything here runs on the page's single thread: callbacks are called
// synchronously, in the order in which the server's lines arrive.

/** Error codes the client produces itself. Server error codes are 100 and up. */
export const ErrorCode = Object.freeze({
  /** No reply within the command timeout. */
  TIMEOUT: 1,
  /** The client is not connected, or the connection closed before the reply. */
  DISCONNECTED: 2,
  /** disconnect() was called while the command was waiting. */
  CLIENT_CLOSED: 3,
});

/** RedcastError is how every command rejects: a server error {code, message} or one of ErrorCode. */
export class RedcastError extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'RedcastError';
    this.code = code;
  }
}

const defaults = Object.freeze({
  name: '',
  token: '',
  minReconnectDelay: 500,
  maxReconnectDelay: 20000,
  pingInterval: 25000,
  pingTimeout: 10000,
  commandTimeout: 10000,
  WebSocket: globalThis.WebSocket,
});

// Lines of one outgoing frame are kept well under the server's 64 KiB frame
// limit, counting the worst case of 3 UTF-8 bytes per UTF-16 code unit.
const maxFrameChars = 16 * 1024;

// Server errors after which a command may succeed if tried again later.
const transientCodes = new Set([100, 112, 117]);

/**
 * Client is a connection to a redcast server that survives network drops.
 *
 * States: 'disconnected' (initial, and after disconnect() or a disconnect the
 * server says not to retry), 'connecting' (opening, or waiting to reconnect),
 * 'connected' (the connect command succeeded).
 */
export class Client {
  /**
   * @param {string} [url] ws:// or wss:// URL, or a path on the page's host;
   *   default '/connection/websocket'.
   * @param {object} [options] name, token, minReconnectDelay, maxReconnectDelay,
   *   pingInterval, pingTimeout, commandTimeout (milliseconds), WebSocket.
   */
  constructor(url = '/connection/websocket', options = {}) {
    this.url = resolveURL(url);
    this.options = { ...defaults, ...options };
    /** 'disconnected' | 'connecting' | 'connected' */
    this.state = 'disconnected';
    /** The id the server gave the current connection ('' before connect). */
    this.clientId = '';
    this._connectResult = null;
    this._serverSubs = new Set(); // channels of the connection's server-side subscriptions
    this._ws = null;
    this._lastId = 0;
    this._pending = new Map(); // id -> {cb, timer}
    this._outbox = [];
    this._flushQueued = false;
    this._subs = new Map(); // channel -> Subscription
    this._listeners = new Map(); // event -> Set<fn>
    this._attempt = 0;
    this._reconnectTimer = 0;
    this._pingTimer = 0;
    this._disconnectPush = null;
    this._hold = false;
    this._onOnline = () => {
      if (this.state === 'connecting' && !this._ws && !this._hold) {
        this._attempt = 0;
        this._open();
      }
    };
  }

  // ---- events ----

  /**
   * on registers fn for an event and returns a function that removes it.
   * Events: 'connecting' {code, reason, delay}, 'connected' {client, version,
   * ping, user, data}, 'disconnected' {code, reason}, 'error' {error}, and
   * for the channels the server's backend subscribes the connection to
   * (server-side subscriptions, see backend.md) 'serverSubscribed'
   * {channel, offset, epoch, ...} and 'serverPublication' {channel,
   * offset, data, from, ...}.
   */
  on(event, fn) {
    let set = this._listeners.get(event);
    if (!set) this._listeners.set(event, (set = new Set()));
    set.add(fn);
    return () => this.off(event, fn);
  }

  /** off removes fn registered with on. */
  off(event, fn) {
    this._listeners.get(event)?.delete(fn);
  }

  _emit(event, ctx) {
    const set = this._listeners.get(event);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        fn(ctx);
      } catch (err) {
        console.error('redcast: %s listener threw', event, err);
      }
    }
  }

  _setState(state, ctx) {
    this.state = state;
    this._emit(state, ctx);
  }

  // ---- connection ----

  /**
   * connect starts connecting (a no-op when already connecting or connected)
   * and returns a Promise that resolves with the connect result once
   * connected, or rejects if the client ends up disconnected first.
   */
  connect() {
    if (this.state === 'disconnected') {
      this._attempt = 0;
      this._hold = false;
      globalThis.addEventListener?.('online', this._onOnline);
      this._setState('connecting', { code: 0, reason: 'connect called', delay: 0 });
      this._open();
    }
    return this.ready();
  }

  /** ready resolves once connected (at once if already connected). */
  ready() {
    if (this.state === 'connected') return Promise.resolve(this._connectResult);
    if (this.state === 'disconnected') {
      return Promise.reject(new RedcastError(ErrorCode.DISCONNECTED, 'not connected'));
    }
    return new Promise((resolve, reject) => {
      const offs = [
        this.on('connected', (ctx) => { offs.forEach((off) => off()); resolve(ctx); }),
        this.on('disconnected', (ctx) => {
          offs.forEach((off) => off());
          reject(new RedcastError(ctx.code || ErrorCode.CLIENT_CLOSED, ctx.reason));
        }),
      ];
    });
  }

  /**
   * disconnect closes the connection and stops reconnecting. Subscriptions
   * stay registered, with their positions: a later connect() resubscribes and
   * recovers them. Waiting commands reject with ErrorCode.CLIENT_CLOSED.
   */
  disconnect() {
    if (this.state === 'disconnected') return;
    globalThis.removeEventListener?.('online', this._onOnline);
    this._closeTransport(ErrorCode.CLIENT_CLOSED, 'client disconnected');
    this._setState('disconnected', { code: 0, reason: 'disconnect called' });
  }

  /**
   * reconnect drops the current connection, as a network failure would, and
   * connects again at once; subscriptions recover. Use it when the app knows
   * the network is back.
   */
  reconnect() {
    if (this.state === 'disconnected') return;
    this._hold = false;
    this._attempt = 0;
    this._closeTransport(ErrorCode.DISCONNECTED, 'reconnect called');
    this._setState('connecting', { code: 0, reason: 'reconnect called', delay: 0 });
    this._open();
  }

  /**
   * _drop is a test hook: it drops the connection like a network failure.
   * With {hold: true} the client then waits, in state 'connecting', until
   * _resume() is called, so that a test can act while it is offline.
   */
  _drop({ hold = false } = {}) {
    if (this.state === 'disconnected') return;
    this._hold = hold;
    this._lost(0, 'connection dropped (test)', true);
  }

  /** _resume ends a hold started by _drop and reconnects at once. */
  _resume() {
    this._hold = false;
    if (this.state === 'connecting' && !this._ws) {
      clearTimeout(this._reconnectTimer);
      this._open();
    }
  }

  _open() {
    clearTimeout(this._reconnectTimer);
    this._reconnectTimer = 0;
    let ws;
    try {
      ws = new this.options.WebSocket(this.url);
    } catch (err) {
      this._emit('error', { error: err });
      this._lost(0, `cannot open WebSocket: ${err.message}`, true);
      return;
    }
    this._ws = ws;
    this._disconnectPush = null;
    ws.onopen = () => {
      if (ws === this._ws) this._sendConnect(ws);
    };
    ws.onmessage = (e) => {
      if (ws === this._ws) this._onFrame(ws, e.data);
    };
    ws.onclose = (e) => {
      if (ws === this._ws) this._onClose(e);
    };
    ws.onerror = () => {}; // a close event follows and says more
  }

  _sendConnect(ws) {
    const params = {};
    if (this.options.name) params.name = this.options.name;
    if (this.options.token) params.token = this.options.token;
    this._send('connect', params, (err, res) => {
      if (ws !== this._ws) return;
      if (err) {
        if (err.code === ErrorCode.DISCONNECTED) return; // the close handler decides
        // A timeout or a transient server error is worth another try;
        // anything else (bad name, refused token) would fail the same way.
        const retry = err.code === ErrorCode.TIMEOUT || transientCodes.has(err.code);
        this._lost(err.code === ErrorCode.TIMEOUT ? 0 : err.code, `connect failed: ${err.message}`, retry);
        return;
      }
      this.clientId = res.client;
      this._connectResult = res;
      this._serverSubs.clear(); // the server makes them again after this reply
      this._attempt = 0;
      this.state = 'connected';
      for (const sub of this._subs.values()) this._subscribe(sub);
      this._schedulePing(ws);
      this._setState('connected', res);
    }, { early: true });
  }

  _schedulePing(ws) {
    clearTimeout(this._pingTimer);
    if (!(this.options.pingInterval > 0)) return;
    this._pingTimer = setTimeout(() => {
      if (ws !== this._ws || this.state !== 'connected') return;
      this._send('ping', undefined, (err) => {
        if (ws !== this._ws) return;
        if (err?.code === ErrorCode.TIMEOUT) {
          this._lost(0, 'no reply to ping: connection presumed dead', true);
          return;
        }
        this._schedulePing(ws);
      }, { timeout: this.options.pingTimeout });
    }, this.options.pingInterval);
  }

  _onClose(e) {
    const push = this._disconnectPush;
    if (push) {
      this._lost(push.code, push.reason || '', push.reconnect === true, push.delay);
      return;
    }
    // Codes 3500-3999 say reconnecting would fail the same way, and so do
    // 4500-4999 of the application's backend (as with Centrifugo).
    const noRetry = (e.code >= 3500 && e.code <= 3999) || (e.code >= 4500 && e.code <= 4999);
    this._lost(e.code, e.reason || 'connection closed', !noRetry);
  }

  // _lost handles the end of the current connection, whatever ended it.
  _lost(code, reason, reconnect, advisedDelay = 0) {
    this._closeTransport(ErrorCode.DISCONNECTED, 'connection closed');
    if (this.state === 'disconnected') return;
    if (!reconnect) {
      globalThis.removeEventListener?.('online', this._onOnline);
      this._setState('disconnected', { code, reason });
      return;
    }
    const cap = Math.min(this.options.maxReconnectDelay, this.options.minReconnectDelay * 2 ** this._attempt);
    // The server's advice (a node shutting down spreads its clients'
    // reconnects), capped at a minute; otherwise full jitter.
    const advised = Math.min(Math.max(Number(advisedDelay) || 0, 0), 60000);
    const delay = advised > 0 ? advised : Math.floor(Math.random() * cap);
    this._attempt = Math.min(this._attempt + 1, 30);
    this._setState('connecting', { code, reason, delay });
    if (!this._hold && !this._ws) {
      this._reconnectTimer = setTimeout(() => this._open(), delay);
    }
  }

  // _closeTransport forgets the current WebSocket, closes it, rejects every
  // waiting command and marks subscriptions for resubscription.
  _closeTransport(errCode, errMessage) {
    clearTimeout(this._reconnectTimer);
    clearTimeout(this._pingTimer);
    this._reconnectTimer = 0;
    this._pingTimer = 0;
    const ws = this._ws;
    this._ws = null;
    this._outbox = [];
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = null;
      try {
        ws.close(1000);
      } catch {
        // already closed
      }
    }
    if (this.state === 'connected') this.state = 'connecting';
    const pending = [...this._pending.values()];
    this._pending.clear();
    const err = new RedcastError(errCode, errMessage);
    for (const p of pending) {
      clearTimeout(p.timer);
      p.cb(err);
    }
    for (const sub of this._subs.values()) {
      clearTimeout(sub._retryTimer);
      if (sub.state === 'subscribed') sub.state = 'subscribing';
    }
  }

  // ---- commands ----

  // _send sends one command and calls cb(err, result) synchronously when its
  // reply line is handled, so that a subscribe reply is processed before the
  // pushes that follow it in the same frame.
  _send(method, params, cb, { early = false, timeout = this.options.commandTimeout } = {}) {
    const ws = this._ws;
    if (!ws || ws.readyState !== 1 || (this.state !== 'connected' && !early)) {
      cb(new RedcastError(ErrorCode.DISCONNECTED, 'not connected'));
      return;
    }
    this._lastId = this._lastId >= 0xffffffff ? 1 : this._lastId + 1;
    const id = this._lastId;
    const cmd = { id, method };
    if (params !== undefined) cmd.params = params;
    const entry = { cb, timer: 0 };
    if (timeout > 0) {
      entry.timer = setTimeout(() => {
        if (this._pending.get(id) !== entry) return;
        this._pending.delete(id);
        cb(new RedcastError(ErrorCode.TIMEOUT, `${method}: no reply within ${timeout} ms`));
      }, timeout);
    }
    this._pending.set(id, entry);
    this._enqueue(JSON.stringify(cmd));
  }

  _request(method, params, opts) {
    return new Promise((resolve, reject) => {
      this._send(method, params, (err, res) => (err ? reject(err) : resolve(res)), opts);
    });
  }

  // _enqueue batches the commands issued in one task into one frame.
  _enqueue(line) {
    this._outbox.push(line);
    if (this._flushQueued) return;
    this._flushQueued = true;
    queueMicrotask(() => {
      this._flushQueued = false;
      const lines = this._outbox;
      this._outbox = [];
      const ws = this._ws;
      if (!ws || ws.readyState !== 1) return;
      let frame = '';
      for (const l of lines) {
        if (frame && frame.length + 1 + l.length > maxFrameChars) {
          ws.send(frame);
          frame = '';
        }
        frame = frame ? `${frame}\n${l}` : l;
      }
      if (frame) ws.send(frame);
    });
  }

  /**
   * publish sends data (any JSON value) to a channel and resolves with the
   * position {offset, epoch} the broker gave it. It rejects at once with
   * ErrorCode.DISCONNECTED when the client is not connected: messages are
   * never queued while offline. With opts.idempotencyKey (at most 128
   * bytes of printable ASCII, e.g. crypto.randomUUID()) the server
   * publishes the key once per channel within its window (5 minutes by
   * default) and answers a repeat with the first position: a publish that
   * rejected with DISCONNECTED can be sent again with the same key.
   */
  async publish(channel, data, opts = {}) {
    const params = { channel, data };
    if (opts.idempotencyKey) params.idempotency_key = opts.idempotencyKey;
    const res = await this._request('publish', params);
    return { offset: res.offset, epoch: res.epoch };
  }

  /**
   * rpc sends a call to the server's backend (a method name and any JSON
   * data) and resolves with the data of its answer (undefined when it gave
   * none). It rejects with the backend's error, with 117 when the backend
   * did not answer, and with 111 when the server has no rpc proxy.
   */
  async rpc(method, data) {
    const params = { method };
    if (data !== undefined) params.data = data;
    const res = await this._request('rpc', params);
    return res.data;
  }

  /**
   * history resolves with {publications, offset, epoch}: the latest `limit`
   * publications of a channel, or with `since` ({offset, epoch}) those after
   * that position. It needs no subscription.
   */
  async history(channel, { limit, since } = {}) {
    const params = { channel };
    if (limit) params.limit = limit;
    if (since) params.since = { offset: since.offset, epoch: since.epoch };
    const res = await this._request('history', params);
    return { publications: res.publications ?? [], offset: res.offset, epoch: res.epoch };
  }

  /** presence resolves with {clients}: the client infos subscribed to a channel. */
  async presence(channel) {
    const res = await this._request('presence', { channel });
    return { clients: res.clients ?? [] };
  }

  /** ping makes an application-level round trip and resolves with its duration in ms. */
  async ping() {
    const start = performance.now();
    await this._request('ping');
    return performance.now() - start;
  }

  // ---- subscriptions ----

  /**
   * subscribe registers a subscription to a channel and returns it. It is
   * (re)subscribed whenever the client is connected; see Subscription.
   * Options: history (publications to receive on the first subscribe and
   * when recovery fails), since ({offset, epoch} to recover from at once),
   * joinLeave (ask for join and leave pushes; true by default when onJoin
   * or onLeave is given, and sent only where the channel's namespace has
   * join/leave on), delta (ask for delta publications where the namespace
   * allows them: the client applies them, onPublication gets whole data),
   * and the callbacks onSubscribed, onPublication, onJoin,
   * onLeave, onUnsubscribed, onError. Throws a RedcastError (108) when the
   * channel already has a subscription.
   */
  subscribe(channel, options = {}) {
    if (this._subs.has(channel)) {
      throw new RedcastError(108, `already subscribed to ${channel}`);
    }
    const sub = new Subscription(this, channel, options);
    this._subs.set(channel, sub);
    this._subscribe(sub);
    return sub;
  }

  /** getSubscription returns the subscription of a channel, or undefined. */
  getSubscription(channel) {
    return this._subs.get(channel);
  }

  _subscribe(sub) {
    sub.state = 'subscribing';
    clearTimeout(sub._retryTimer);
    if (this.state !== 'connected') return;
    const params = { channel: sub.channel };
    const recovering = sub.position !== null;
    if (recovering) params.since = { offset: sub.position.offset, epoch: sub.position.epoch };
    if (sub._history > 0) params.history = sub._history;
    if (sub._joinLeave) params.join_leave = true;
    if (sub._delta) params.delta = 'fossil';
    const ws = this._ws;
    this._send('subscribe', params, (err, res) => {
      if (this._subs.get(sub.channel) !== sub || sub.state !== 'subscribing') return;
      if (!err) {
        sub._subscribed(res, recovering);
        return;
      }
      if (err.code === ErrorCode.DISCONNECTED || err.code === ErrorCode.CLIENT_CLOSED) {
        return; // resubscribed on the next connect
      }
      if (err.code === ErrorCode.TIMEOUT) {
        // The server may yet subscribe us; only a new connection is certain.
        if (ws === this._ws) this._lost(0, 'subscribe timed out', true);
        return;
      }
      sub._call('onError', err);
      if (transientCodes.has(err.code)) {
        const delay = Math.floor(Math.random() * this.options.maxReconnectDelay / 4);
        sub._retryTimer = setTimeout(() => {
          if (this._subs.get(sub.channel) === sub && sub.state === 'subscribing') this._subscribe(sub);
        }, delay);
        return;
      }
      this._subs.delete(sub.channel);
      sub.state = 'unsubscribed';
      sub._call('onUnsubscribed', { channel: sub.channel, code: err.code, reason: err.message });
    });
  }

  _unsubscribe(sub) {
    if (this._subs.get(sub.channel) !== sub) return;
    this._subs.delete(sub.channel);
    clearTimeout(sub._retryTimer);
    sub.state = 'unsubscribed';
    if (this.state === 'connected') this._send('unsubscribe', { channel: sub.channel }, () => {});
    sub._call('onUnsubscribed', { channel: sub.channel, code: 0, reason: 'unsubscribe called' });
  }

  // _resubscribe restarts one channel from its last position, after a gap.
  _resubscribe(sub) {
    if (this.state === 'connected') this._send('unsubscribe', { channel: sub.channel }, () => {});
    this._subscribe(sub);
  }

  // ---- incoming ----

  _onFrame(ws, data) {
    if (typeof data !== 'string') {
      this._emit('error', { error: new Error('redcast: unexpected binary frame') });
      return;
    }
    for (const line of data.split('\n')) {
      if (ws !== this._ws) return; // a line closed the connection
      const text = line.trim();
      if (!text) continue;
      let msg;
      try {
        msg = JSON.parse(text);
      } catch (err) {
        this._emit('error', { error: err });
        continue;
      }
      if (msg.push) this._onPush(msg, text);
      else this._onReply(msg);
    }
  }

  _onReply(msg) {
    const entry = this._pending.get(msg.id);
    if (!entry) {
      if (msg.error) this._emit('error', { error: new RedcastError(msg.error.code, msg.error.message) });
      return;
    }
    this._pending.delete(msg.id);
    clearTimeout(entry.timer);
    if (msg.error) entry.cb(new RedcastError(msg.error.code, msg.error.message));
    else entry.cb(null, msg.result ?? {});
  }

  _onPush(msg, text) {
    switch (msg.push) {
      case 'publication': {
        const sub = this._subs.get(msg.channel);
        if (sub?.state === 'subscribed' && msg.pub) sub._publication(msg.pub, text);
        else if (!sub && msg.pub && this._serverSubs.has(msg.channel)) {
          this._emit('serverPublication', { channel: msg.channel, ...msg.pub });
        }
        break;
      }
      case 'subscribe':
        // A server-side subscription the application's backend made (its
        // connect proxy's channels): the server makes it again on every
        // connect, so it is not resubscribed from here.
        if (msg.channel && !this._subs.has(msg.channel)) {
          this._serverSubs.add(msg.channel);
          this._emit('serverSubscribed', { channel: msg.channel, ...(msg.sub || {}) });
        }
        break;
      case 'join':
      case 'leave': {
        const sub = this._subs.get(msg.channel);
        if (sub && msg.client) sub._call(msg.push === 'join' ? 'onJoin' : 'onLeave', msg.client);
        break;
      }
      case 'unsubscribe': {
        // The server ended the subscription (the application unsubscribed
        // the user): it is over, and is not renewed on reconnect.
        const sub = this._subs.get(msg.channel);
        if (!sub) break;
        this._subs.delete(sub.channel);
        clearTimeout(sub._retryTimer);
        sub.state = 'unsubscribed';
        sub._call('onUnsubscribed', { channel: sub.channel, code: 0, reason: msg.reason || 'unsubscribed by the server', server: true });
        break;
      }
      case 'disconnect':
        // The close frame follows; remember why so that onclose can decide.
        this._disconnectPush = msg;
        break;
      default:
        // Unknown pushes are ignored, for forward compatibility.
    }
  }
}

/**
 * Subscription is a client's interest in one channel. It is created by
 * Client.subscribe and lives until unsubscribe(); across reconnects it
 * resubscribes by itself, recovering from `position`.
 *
 * State: 'subscribing' (waiting for the server, or for the connection),
 * 'subscribed', 'unsubscribed'.
 */
export class Subscription {
  constructor(client, channel, options) {
    this.client = client;
    this.channel = channel;
    /** 'subscribing' | 'subscribed' | 'unsubscribed' */
    this.state = 'unsubscribed';
    /** {offset, epoch} of the last publication handled, or null before the first subscribe. */
    this.position = options.since ? { offset: options.since.offset, epoch: options.since.epoch } : null;
    /** Whether the channel keeps history (from the last subscribe reply). */
    this.recoverable = false;
    this._history = options.history | 0;
    this._joinLeave = options.joinLeave ?? (typeof options.onJoin === 'function' || typeof options.onLeave === 'function');
    this._handlers = options;
    this._retryTimer = 0;
    this._delta = options.delta === true;
    // _prevData holds the UTF-8 bytes of the last live publication's data,
    // to which the next one's delta applies; null before the first.
    this._prevData = null;
  }

  /** unsubscribe stops the subscription; no callbacks follow onUnsubscribed. */
  unsubscribe() {
    this.client._unsubscribe(this);
  }

  /** publish publishes to this subscription's channel (see Client.publish). */
  publish(data, opts) {
    return this.client.publish(this.channel, data, opts);
  }

  /** history reads this channel's history (see Client.history). */
  history(opts) {
    return this.client.history(this.channel, opts);
  }

  /** presence lists who is subscribed to this channel (see Client.presence). */
  presence() {
    return this.client.presence(this.channel);
  }

  // _call calls the app's callback `name` with args and this subscription.
  _call(name, ...args) {
    const fn = this._handlers[name];
    if (typeof fn !== 'function') return;
    try {
      fn(...args, this);
    } catch (err) {
      console.error('redcast: %s for %s threw', name, this.channel, err);
    }
  }

  // _subscribed handles a subscribe reply: it tells the app whether the
  // stream continues (recovered) or restarts, then delivers the reply's
  // publications it has not delivered yet, oldest first.
  _subscribed(res, recovering) {
    const epoch = res.epoch ?? '';
    const pubs = res.publications ?? [];
    const prev = this.position;
    // recovered is omitted from the reply when false.
    const recovered = recovering && res.recovered === true && prev !== null && prev.epoch === epoch;
    this.state = 'subscribed';
    this.recoverable = res.recoverable === true;
    this._prevData = null; // the first live publication comes whole
    this.position = { offset: recovered ? prev.offset : 0, epoch };
    this._call('onSubscribed', {
      channel: this.channel,
      offset: res.offset,
      epoch,
      recoverable: this.recoverable,
      recovering,
      recovered,
    });
    for (const pub of pubs) {
      if (this.state !== 'subscribed') return; // unsubscribed by a callback
      if (pub.offset > this.position.offset) {
        this.position.offset = pub.offset;
        this._call('onPublication', pub);
      }
    }
    if (res.offset > this.position.offset) this.position.offset = res.offset;
  }

  // _publication handles a live publication push, whose line is text.
  _publication(pub, text) {
    const pos = this.position;
    if (pub.offset <= pos.offset) return; // a duplicate
    if (pub.offset > pos.offset + 1 && this.recoverable) {
      // A gap: restart from the last publication we have; the reply carries
      // what we missed.
      this._resubscribe();
      return;
    }
    if (this._delta) {
      try {
        pub = this._whole(pub, text);
      } catch (err) {
        // Lost track of the data: subscribe again from the last position,
        // which sends whole publications.
        this._call('onError', { error: err });
        this._resubscribe();
        return;
      }
    }
    pos.offset = pub.offset;
    this._call('onPublication', pub);
  }

  _resubscribe() {
    this.state = 'subscribing';
    this._prevData = null;
    this.client._resubscribe(this);
  }

  // _whole returns pub with whole data, applying its delta to the previous
  // publication's data, and keeps the bytes of its data for the next.
  _whole(pub, text) {
    if (!pub.delta) {
      this._prevData = utf8.encode(rawData(text));
      return pub;
    }
    if (this._prevData === null) throw new Error(`delta publication ${pub.offset} without one before it`);
    if (typeof pub.data !== 'string') throw new Error(`delta publication ${pub.offset} without a delta`);
    const bytes = applyDelta(this._prevData, utf8.encode(pub.data));
    const data = JSON.parse(utf8decoder.decode(bytes));
    this._prevData = bytes;
    const whole = { ...pub, data };
    delete whole.delta;
    return whole;
  }
}

function resolveURL(url) {
  if (/^wss?:\/\//i.test(url)) return url;
  const loc = globalThis.location;
  if (!loc) throw new TypeError(`redcast: cannot resolve ${url} without a page location`);
  const u = new URL(url, loc.href);
  u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  return u.href;
}

// ---- delta publications ----

const utf8 = new TextEncoder();
const utf8decoder = new TextDecoder('utf-8', { fatal: true });

// rawData returns the text of the data of the publication push in line, as
// the server sent it: the delta of the next publication applies to these
// bytes, which JSON.parse does not keep. The server writes the push's
// fields in a fixed order, so the first "data": after "pub":{ is the
// publication's (a channel name holds no quotes, offset and time are
// numbers).
function rawData(line) {
  const start = line.indexOf('"data":', line.indexOf('"pub":{')) + 7;
  let depth = 0;
  let inString = false;
  for (let i = start; i < line.length; i++) {
    const c = line.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) {
        i++; // backslash: skip the escaped character
      } else if (c === 0x22) {
        inString = false;
        if (depth === 0) return line.slice(start, i + 1);
      }
      continue;
    }
    switch (c) {
      case 0x22: inString = true; break; // "
      case 0x7b: case 0x5b: depth++; break; // { [
      case 0x7d: case 0x5d: // } ]
        if (depth === 0) return line.slice(start, i);
        if (--depth === 0) return line.slice(start, i + 1);
        break;
      case 0x2c: if (depth === 0) return line.slice(start, i); break; // ,
    }
  }
  throw new Error('publication without data');
}

// The digits of the integers of a Fossil delta, 0 to 63.
const deltaDigits = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz~';
const deltaValue = new Int8Array(128).fill(-1);
for (let i = 0; i < deltaDigits.length; i++) deltaValue[deltaDigits.charCodeAt(i)] = i;

// maxDeltaOutput bounds what a delta may produce (a publication's data is
// at most the server's max data size, 16 KiB by default).
const maxDeltaOutput = 64 << 20;

/**
 * applyDelta applies a Fossil delta (https://fossil-scm.org/home/doc/tip/www/delta_format.wiki)
 * to the bytes it was made from and returns the bytes it makes. It throws
 * on a malformed delta, or one made from other bytes (its checksum).
 * @param {Uint8Array} src
 * @param {Uint8Array} delta
 * @returns {Uint8Array}
 */
export function applyDelta(src, delta) {
  let pos = 0;
  const bad = (why) => new Error(`bad delta: ${why}`);
  const int = () => {
    let v = 0;
    const from = pos;
    while (pos < delta.length) {
      const d = delta[pos] < 128 ? deltaValue[delta[pos]] : -1;
      if (d < 0) break;
      v = v * 64 + d;
      if (v > 0xffffffff) throw bad('integer out of range');
      pos++;
    }
    if (pos === from) throw bad('integer expected');
    return v;
  };
  const size = int();
  if (delta[pos++] !== 0x0a) throw bad('size not followed by a newline');
  if (size > maxDeltaOutput) throw bad(`output of ${size} bytes`);
  const out = new Uint8Array(size);
  let o = 0;
  while (pos < delta.length) {
    const n = int();
    const op = delta[pos++];
    if (op === 0x40) { // @: copy n bytes of src from an offset
      const off = int();
      if (delta[pos++] !== 0x2c) throw bad('copy without a comma');
      if (off + n > src.length || o + n > size) throw bad('copy out of range');
      out.set(src.subarray(off, off + n), o);
      o += n;
    } else if (op === 0x3a) { // ':' insert n literal bytes
      if (o + n > size || pos + n > delta.length) throw bad('insert out of range');
      out.set(delta.subarray(pos, pos + n), o);
      o += n;
      pos += n;
    } else if (op === 0x3b) { // ';' end, with the output's checksum
      if (o !== size) throw bad('output size differs');
      if (n !== deltaChecksum(out)) throw bad('checksum differs');
      return out;
    } else {
      throw bad('unknown operator');
    }
  }
  throw bad('unterminated');
}

// deltaChecksum is Fossil's checksum of b: the 32-bit sum of its big-endian
// words, the last one padded with zeros.
function deltaChecksum(b) {
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  const whole = b.length - (b.length % 4);
  for (let i = 0; i < whole; i += 4) {
    s0 += b[i];
    s1 += b[i + 1];
    s2 += b[i + 2];
    s3 += b[i + 3];
  }
  let sum = (s3 + (s2 << 8) + (s1 << 16) + (s0 << 24)) >>> 0;
  const rest = b.length - whole;
  if (rest > 2) sum = (sum + (b[whole + 2] << 8)) >>> 0;
  if (rest > 1) sum = (sum + (b[whole + 1] << 16)) >>> 0;
  if (rest > 0) sum = (sum + (b[whole] << 24)) >>> 0;
  return sum;
}
