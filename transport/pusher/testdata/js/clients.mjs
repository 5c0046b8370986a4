// Runs pusher-js (and Pusher's server SDK for channel auth) against a
// redcast server, for the Go tests of transport/pusher: one scenario per
// run (argv[2]), facts printed as JSON lines on stdout, the Go test acting
// on them. Every scenario ends by itself, or fails after a deadline.
import PusherJS from 'pusher-js';
import PusherServer from 'pusher';
import Echo from 'laravel-echo';

const Pusher = PusherJS.default ?? PusherJS;
const Server = PusherServer.default ?? PusherServer;
const env = process.env;
const out = (o) => console.log(JSON.stringify(o));

setTimeout(() => { out({ error: 'scenario timed out' }); process.exit(1); }, 20000).unref();

// A master key for end-to-end encrypted channels (32 bytes, base64),
// which only the server SDK and, per channel, pusher-js know.
const encryptionMasterKeyBase64 = Buffer.alloc(32, 7).toString('base64');

// sdkFor returns Pusher's server SDK pointed at redcast.
function sdkFor(secret) {
  return new Server({
    appId: env.PUSHER_APP_ID, key: env.PUSHER_KEY, secret: secret ?? env.PUSHER_SECRET,
    host: env.PUSHER_HOST, port: env.PUSHER_PORT, useTLS: false, encryptionMasterKeyBase64,
  });
}

function connect(key, authSecret, user) {
  const sdk = sdkFor(authSecret);
  return new Pusher(key ?? env.PUSHER_KEY, {
    cluster: 'redcast',
    wsHost: env.PUSHER_HOST,
    wsPort: Number(env.PUSHER_PORT),
    forceTLS: false,
    enabledTransports: ['ws'],
    disableStats: true,
    channelAuthorization: {
      customHandler: ({ socketId, channelName }, callback) => callback(null, channelName.startsWith('presence-')
        ? sdk.authorizeChannel(socketId, channelName, { user_id: user, user_info: { name: user } })
        : sdk.authorizeChannel(socketId, channelName)),
    },
    userAuthentication: {
      customHandler: ({ socketId }, callback) => callback(null, sdk.authenticateUser(socketId, { id: user, user_info: { name: user } })),
    },
  });
}

function subscribed(channel) {
  return new Promise((resolve, reject) => {
    channel.bind('pusher:subscription_succeeded', resolve);
    channel.bind('pusher:subscription_error', reject);
  });
}

const scenarios = {
  // One client on a public channel: the Go test publishes an envelope
  // and a plain publication once it is subscribed (and has heard that a
  // cache channel has nothing yet).
  async public() {
    const p = connect();
    const ch = p.subscribe('news');
    const cache = p.subscribe('cache-empty');
    const missed = new Promise((resolve) => cache.bind('pusher:cache_miss', resolve));
    const got = [];
    const done = new Promise((resolve) => {
      const record = (event) => (data) => { got.push({ event, data }); if (got.length === 2) resolve(); };
      ch.bind('order-shipped', record('order-shipped'));
      ch.bind('redcast:publication', record('redcast:publication'));
    });
    await Promise.all([subscribed(ch), subscribed(cache), missed]);
    out({ step: 'subscribed', socket_id: p.connection.socket_id });
    await done;
    out({ step: 'done', got });
    p.disconnect();
  },

  // Two clients whisper on a private channel; a third signs with the
  // wrong secret; the first also sends a client event on a public channel.
  async private() {
    const a = connect(), b = connect(), bad = connect(undefined, 'not-the-secret');
    const errors = [];
    a.connection.bind('error', (e) => errors.push(e?.data ?? e?.error?.data ?? null));
    const aGot = [], bGot = [];
    const [ca, cb] = [a.subscribe('private-chat'), b.subscribe('private-chat')];
    const bHeard = new Promise((resolve) => cb.bind('client-typing', (d) => { bGot.push(d); resolve(); }));
    const aHeard = new Promise((resolve) => ca.bind('client-typing', (d) => { aGot.push(d); resolve(); }));
    const refused = new Promise((resolve) => bad.subscribe('private-chat').bind('pusher:subscription_error', resolve));
    const news = a.subscribe('news');
    await Promise.all([subscribed(ca), subscribed(cb), subscribed(news)]);
    out({ step: 'subscribed' });
    const badErr = await refused;
    out({ step: 'refused', status: badErr.status, type: badErr.type });
    news.trigger('client-nope', { x: 1 });
    ca.trigger('client-typing', { who: 'a' });
    await bHeard;
    cb.trigger('client-typing', { who: 'b' });
    await aHeard;
    out({ step: 'done', a_got: aGot, b_got: bGot, a_errors: errors });
    a.disconnect(); b.disconnect(); bad.disconnect();
  },

  // A key no app has: refused with 4001, and no reconnect.
  async unknownKey() {
    const p = connect('no-such-key');
    const states = [];
    let code = null;
    p.connection.bind('error', (e) => { code = e?.error?.data?.code ?? e?.data?.code ?? code; });
    await new Promise((resolve) => p.connection.bind('state_change', ({ current }) => {
      states.push(current);
      if (current === 'disconnected' || current === 'failed') resolve();
    }));
    out({ step: 'done', code, states });
    p.disconnect();
  },
};

// Pusher's server SDK triggers an event through the HTTP API, leaving out
// the socket the Go test names; a wrong secret is refused with 401.
scenarios.api = async function () {
  const sdk = sdkFor();
  const res = await sdk.trigger(['news', 'other'], 'hello', { a: 1 }, { socket_id: env.EXCLUDE_SOCKET });
  out({ step: 'triggered', status: res.status, body: await res.json() });
  const wrong = sdkFor('not-the-secret');
  const status = await wrong.trigger('news', 'nope', {}).then((r) => r.status, (err) => err.status);
  out({ step: 'done', wrong_secret: status });
};

// Pusher's server SDK triggers a batch of events; a batch over Pusher's
// limit of 10 is refused whole.
scenarios.batch = async function () {
  const sdk = sdkFor();
  const res = await sdk.triggerBatch([
    { channel: 'news', name: 'first', data: { n: 1 } },
    { channel: 'other', name: 'second', data: 'two', socket_id: env.EXCLUDE_SOCKET },
  ]);
  out({ step: 'triggered', status: res.status, body: await res.json() });
  const eleven = Array.from({ length: 11 }, (_, i) => ({ channel: 'news', name: 'over', data: { i } }));
  const status = await sdk.triggerBatch(eleven).then((r) => r.status, (err) => err.status);
  out({ step: 'done', over_limit: status });
};

// Pusher's server SDK queries channels and users with get, then triggers
// an event and a batch asking for info: one line per request, its status
// and body (errors' body as text).
scenarios.query = async function () {
  const sdk = sdkFor();
  const wrong = sdkFor('not-the-secret');
  const answer = (request) => request.then(
    async (r) => ({ status: r.status, body: await r.json() }),
    (err) => ({ status: err.status, body: err.body }));
  const get = (client, path, params) => answer(client.get({ path, params }));
  const queries = {
    all: [sdk, '/channels'],
    presence: [sdk, '/channels', { filter_by_prefix: 'presence-', info: 'user_count' }],
    room: [sdk, '/channels/presence-room', { info: 'user_count,subscription_count' }],
    news: [sdk, '/channels/news'],
    empty: [sdk, '/channels/empty'],
    users: [sdk, '/channels/presence-room/users'],
    news_users: [sdk, '/channels/news/users'],
    news_user_count: [sdk, '/channels/news', { info: 'user_count' }],
    news_subscription_count: [sdk, '/channels/news', { info: 'subscription_count' }],
    wrong_secret: [wrong, '/channels'],
  };
  for (const [name, [client, path, params]] of Object.entries(queries)) {
    out({ step: name, ...(await get(client, path, params)) });
  }
  out({ step: 'trigger_info', ...(await answer(sdk.trigger(['presence-room', 'news'], 'e', {}, { info: 'user_count,subscription_count' }))) });
  out({ step: 'batch_info', ...(await answer(sdk.triggerBatch([
    { channel: 'presence-room', name: 'e', data: {}, info: 'user_count' },
    { channel: 'news', name: 'e', data: {} },
  ]))) });
};

// Pusher's server SDK terminates the connections of the user the Go test
// names.
scenarios.terminate = async function () {
  const sdk = sdkFor();
  const res = await sdk.terminateUserConnections(env.TERMINATE_USER);
  out({ step: 'done', status: res.status, body: await res.json() });
};

// Pusher's server SDK lists the users of the presence channel the Go test
// names; the body is printed as the server wrote it.
scenarios.users = async function () {
  const res = await sdkFor().get({ path: `/channels/${env.CHANNEL}/users` });
  out({ step: 'done', status: res.status, body: await res.text() });
};

// pusher-js signs in as ann, with the auth of the server SDK's
// authenticateUser, and as bob with a wrong secret; the SDK then
// terminates ann's connections.
scenarios.signin = async function () {
  const sdk = sdkFor();
  const closed = (p) => new Promise((resolve) => {
    let code = null, message = null;
    p.connection.bind('error', (e) => {
      const d = e?.error?.data ?? e?.data;
      code = d?.code ?? code;
      message = d?.message ?? message;
    });
    p.connection.bind('state_change', ({ current }) => {
      if (current === 'disconnected' || current === 'failed') resolve({ code, message, state: current });
    });
  });
  const ann = connect(undefined, undefined, 'ann'), bob = connect(undefined, 'not-the-secret', 'bob');
  const annClosed = closed(ann), bobClosed = closed(bob);
  ann.signin();
  bob.signin();
  await ann.user.signinDonePromise;
  out({ step: 'signed_in', user: ann.user.user_data });
  out({ step: 'refused', ...(await bobClosed) });
  const res = await sdk.terminateUserConnections('ann');
  const { code, state } = await annClosed;
  out({ step: 'done', status: res.status, closed: { code, state } });
};

// Laravel Echo on pusher-js: a public channel the Go test publishes to,
// and whispers on a private channel.
scenarios.echo = async function () {
  const echo = () => new Echo({ broadcaster: 'pusher', key: env.PUSHER_KEY, client: connect() });
  const a = echo(), b = echo();
  const subscribedTo = (ch) => new Promise((resolve, reject) => ch.subscribed(resolve).error(reject));
  const orders = a.channel('orders');
  const shipped = new Promise((resolve) => orders.listen('.order-shipped', resolve));
  const [chatA, chatB] = [a.private('chat'), b.private('chat')];
  const whispered = new Promise((resolve) => chatA.listenForWhisper('typing', resolve));
  await Promise.all([subscribedTo(orders), subscribedTo(chatA), subscribedTo(chatB)]);
  out({ step: 'subscribed' });
  const order = await shipped;
  chatB.whisper('typing', { name: 'b' });
  out({ step: 'done', order, whisper: await whispered });
  a.disconnect(); b.disconnect();
};

// Laravel Echo's presence: here, joining and leaving, by user.
scenarios.presence = async function () {
  const echo = (user) => new Echo({ broadcaster: 'pusher', key: env.PUSHER_KEY, client: connect(undefined, undefined, user) });
  const a = echo('ann'), b = echo('ben');
  const names = (users) => users.map((u) => u.name).sort();
  let joined, left;
  const joining = new Promise((resolve) => { joined = resolve; });
  const leaving = new Promise((resolve) => { left = resolve; });
  const annHere = await new Promise((resolve) => a.join('room').here(resolve).joining(joined).leaving(left));
  const benHere = await new Promise((resolve) => b.join('room').here(resolve));
  const join = await joining;
  b.leave('room');
  const leave = await leaving;
  out({ step: 'done', ann_here: names(annHere), ben_here: names(benHere), joining: join.name, leaving: leave.name });
  a.disconnect(); b.disconnect();
};

// A cache channel the Go test published to before: pusher-js gets its
// last event right after subscribing, and no cache miss.
scenarios.cacheHit = async function () {
  const p = connect();
  const ch = p.subscribe('cache-prices');
  const got = [];
  ch.bind('pusher:cache_miss', () => got.push('miss'));
  const heard = new Promise((resolve) => ch.bind('price', (d) => { got.push(d); resolve(); }));
  await subscribed(ch);
  await heard;
  // A later event, live, marks the end: nothing else came before it.
  const marker = new Promise((resolve) => ch.bind('marker', resolve));
  out({ step: 'subscribed' });
  await marker;
  out({ step: 'done', got });
  p.disconnect();
};

// 15 client events at once on a private channel: those over Pusher's
// rate get error 4301, the others reach the other subscriber, and the
// sender stays connected.
scenarios.rateLimit = async function () {
  const a = connect(), b = connect();
  const codes = [];
  a.connection.bind('error', (e) => codes.push(e?.data?.code ?? e?.error?.data?.code ?? null));
  const [ca, cb] = [a.subscribe('private-chat'), b.subscribe('private-chat')];
  let heard = 0;
  let enough;
  const allHeard = new Promise((resolve) => { enough = resolve; });
  let want = Infinity;
  cb.bind('client-n', () => { heard++; if (heard >= want) enough(); });
  await Promise.all([subscribed(ca), subscribed(cb)]);
  for (let i = 0; i < 15; i++) ca.trigger('client-n', { i });
  // The server answers in order: once this subscribe succeeded, every
  // refusal of the 15 has come.
  await subscribed(a.subscribe('after'));
  want = 15 - codes.length;
  if (heard >= want) enough();
  await allHeard;
  out({ step: 'done', codes, heard, state: a.connection.state });
  a.disconnect(); b.disconnect();
};

// Three users join a presence channel that holds two (the Go test's
// limit): the third gets pusher:subscription_error LimitReached.
scenarios.memberLimit = async function () {
  const ann = connect(undefined, undefined, 'ann'), ben = connect(undefined, undefined, 'ben'), cat = connect(undefined, undefined, 'cat');
  await subscribed(ann.subscribe('presence-room'));
  await subscribed(ben.subscribe('presence-room'));
  const refused = await subscribed(cat.subscribe('presence-room')).then(() => null, (err) => err);
  const members = [];
  ben.channel('presence-room').members.each((m) => members.push(m.id));
  out({ step: 'done', refused, members: members.sort() });
  ann.disconnect(); ben.disconnect(); cat.disconnect();
};

// pusher-js signed in as ann, on a public and a private channel: the Go
// test closes its connection with 4200, after which pusher-js reconnects
// at once, resubscribes both channels, and hears what is published next.
scenarios.reconnect = async function () {
  const p = connect(undefined, undefined, 'ann');
  const codes = [];
  p.connection.bind('error', (e) => codes.push(e?.data?.code ?? e?.error?.data?.code ?? null));
  p.signin();
  await p.user.signinDonePromise;
  const news = p.subscribe('news'), priv = p.subscribe('private-chat');
  await Promise.all([subscribed(news), subscribed(priv)]);
  const first = p.connection.socket_id;
  const resubscribed = new Promise((resolve) => {
    let n = 0;
    const count = () => { if (++n === 2) resolve(); };
    news.bind('pusher:subscription_succeeded', count);
    priv.bind('pusher:subscription_succeeded', count);
  });
  const states = [];
  p.connection.bind('state_change', ({ current }) => states.push(current));
  out({ step: 'subscribed', socket_id: first });
  await resubscribed;
  out({ step: 'resubscribed', socket_id: p.connection.socket_id });
  const heard = await Promise.all([
    new Promise((resolve) => news.bind('after', resolve)),
    new Promise((resolve) => priv.bind('after', resolve)),
  ]);
  out({ step: 'done', codes, states, heard, changed: first !== p.connection.socket_id });
  p.disconnect();
};

// End-to-end encryption: the server SDK, with the master key, authorizes
// pusher-js on a private-encrypted- channel (giving it the channel's
// shared secret) and triggers an event it encrypts; pusher-js decrypts it.
scenarios.encrypted = async function () {
  const p = connect();
  const ch = p.subscribe('private-encrypted-vault');
  const heard = new Promise((resolve) => ch.bind('secret', resolve));
  await subscribed(ch);
  const res = await sdkFor().trigger('private-encrypted-vault', 'secret', { code: 'open sesame' });
  out({ step: 'triggered', status: res.status });
  out({ step: 'done', got: await heard });
  p.disconnect();
};

// A presence-cache- channel: its last event reaches each user joining,
// however many members came before (member events are not cached
// events); a presence-cache- channel without an event misses.
scenarios.presenceCache = async function () {
  const res = await sdkFor().trigger('presence-cache-room', 'note', { n: 1 });
  const join = async (user, channel) => {
    const p = connect(undefined, undefined, user);
    const ch = p.subscribe(channel);
    const first = new Promise((resolve) => {
      ch.bind('note', (d) => resolve({ note: d }));
      ch.bind('pusher:cache_miss', () => resolve('miss'));
    });
    await subscribed(ch);
    return [p, await first];
  };
  const [ann, annGot] = await join('ann', 'presence-cache-room');
  const [ben, benGot] = await join('ben', 'presence-cache-room');
  const [cat, catGot] = await join('cat', 'presence-cache-room');
  const [dan, danGot] = await join('dan', 'presence-cache-empty');
  out({ step: 'done', status: res.status, ann: annGot, ben: benGot, cat: catGot, dan: danGot });
  for (const p of [ann, ben, cat, dan]) p.disconnect();
};

// Events to users: pusher-js signed in as ann and as ben; the server SDK's
// sendToUser reaches ann's connection only.
scenarios.sendToUser = async function () {
  const ann = connect(undefined, undefined, 'ann'), ben = connect(undefined, undefined, 'ben');
  const benGot = [];
  ben.user.bind('hello', (d) => benGot.push(d));
  const annGot = new Promise((resolve) => ann.user.bind('hello', resolve));
  ann.signin(); ben.signin();
  await Promise.all([ann.user.signinDonePromise, ben.user.signinDonePromise]);
  // pusher-js subscribes to its user's channel once signed in.
  await Promise.all([ann, ben].map((p) => new Promise((resolve) => {
    const ch = p.user.serverToUserChannel;
    if (ch.subscribed) resolve(); else ch.bind('pusher:subscription_succeeded', resolve);
  })));
  const res = await sdkFor().sendToUser('ann', 'hello', { to: 'ann' });
  const got = await annGot;
  // A marker to ben says that nothing for ann came to ben before it.
  const marker = new Promise((resolve) => ben.user.bind('marker', resolve));
  await sdkFor().sendToUser('ben', 'marker', {});
  await marker;
  out({ step: 'done', status: res.status, ann: got, ben: benGot });
  ann.disconnect(); ben.disconnect();
};

const run = scenarios[process.argv[2]];
if (!run) {
  out({ error: `no scenario ${process.argv[2]}` });
  process.exit(2);
}
run().then(() => process.exit(0), (err) => { out({ error: String(err?.message ?? JSON.stringify(err)) }); process.exit(1); });
