// Scenarios of pusher-js and Laravel Echo in a browser against redcast,
// for the Go test TestBrowser* of transport/pusher: each is a function of
// window.scenarios that resolves to what the libraries saw, which the Go
// test compares. The page's query names redcast (ws=host:port) and the app
// key (key=...); the page's own server (backend.mjs) authorizes and
// triggers with Pusher's server SDK.
'use strict';

const params = new URLSearchParams(location.search);
const [wsHost, wsPort] = params.get('ws').split(':');
const key = params.get('key');

// options are what pusher-js and Echo need to use redcast instead of
// Pusher's cluster, for user.
const options = (user) => ({
  cluster: 'redcast', wsHost, wsPort: Number(wsPort), forceTLS: false,
  enabledTransports: ['ws'], disableStats: true,
  channelAuthorization: { endpoint: '/auth?user=' + encodeURIComponent(user ?? '') },
  userAuthentication: { endpoint: '/user-auth?user=' + encodeURIComponent(user ?? '') },
});

const connect = (user) => new Pusher(key, options(user));

const echo = (user) => new Echo.default({
  broadcaster: 'pusher', key, ...options(user),
  authEndpoint: '/auth?user=' + encodeURIComponent(user ?? ''),
});

// trigger sends an event through the backend (Pusher's server SDK).
async function trigger(channel, event, data) {
  const r = await fetch('/trigger', { method: 'POST', body: JSON.stringify({ channel, event, data }) });
  if (!r.ok) throw new Error(`trigger ${channel} ${event}: ${r.status} ${await r.text()}`);
}

const subscribed = (ch) => new Promise((resolve, reject) => {
  ch.bind('pusher:subscription_succeeded', resolve);
  ch.bind('pusher:subscription_error', reject);
});

const heard = (ch, event) => new Promise((resolve) => ch.bind(event, (data, meta) => resolve({ data, meta })));

const echoSubscribed = (ch) => new Promise((resolve, reject) => ch.subscribed(resolve).error(reject));

window.scenarios = {
  // pusher-js: a public channel, a cache channel with and without a last
  // event, an encrypted channel.
  async pusherjsChannels() {
    const p = connect();
    await trigger('cache-prices', 'price', { p: 1 });
    await trigger('cache-prices', 'price', { p: 2 });
    const news = p.subscribe('news'), prices = p.subscribe('cache-prices'), empty = p.subscribe('cache-empty');
    const vault = p.subscribe('private-encrypted-vault');
    const cached = heard(prices, 'price'), missed = heard(empty, 'pusher:cache_miss');
    await Promise.all([subscribed(news), subscribed(prices), subscribed(empty), subscribed(vault)]);
    const shipped = heard(news, 'order-shipped'), secret = heard(vault, 'secret');
    await trigger('news', 'order-shipped', { id: 42 });
    await trigger('private-encrypted-vault', 'secret', { code: 'open sesame' });
    const result = {
      news: (await shipped).data, cached: (await cached).data, missed: !!(await missed),
      secret: (await secret).data,
    };
    p.disconnect();
    return result;
  },

  // pusher-js: client events on a private channel (not back to the
  // sender), presence by user with member_added and member_removed, and a
  // client event on a presence channel carrying its sender's user_id.
  async pusherjsPrivatePresence() {
    const a = connect('ann'), b = connect('ben');
    const [pa, pb] = [a.subscribe('private-chat'), b.subscribe('private-chat')];
    await Promise.all([subscribed(pa), subscribed(pb)]);
    const aGot = [];
    pa.bind('client-typing', (d) => aGot.push(d));
    const bHeard = heard(pb, 'client-typing');
    pa.trigger('client-typing', { who: 'a' });
    const private_ = (await bHeard).data;
    const roomA = a.subscribe('presence-room');
    await subscribed(roomA);
    const added = heard(roomA, 'pusher:member_added');
    const roomB = b.subscribe('presence-room');
    const benSaw = await subscribed(roomB);
    const ids = [];
    benSaw.each((m) => ids.push(m.id));
    const addedInfo = (await added).data.info;
    const wave = heard(roomA, 'client-wave');
    roomB.trigger('client-wave', {});
    const waveMeta = (await wave).meta;
    const removed = heard(roomA, 'pusher:member_removed');
    b.unsubscribe('presence-room');
    const removedID = (await removed).data.id;
    const result = { private: private_, a_heard_itself: aGot.length > 0, ben_sees: ids.sort(), me: benSaw.me.id, added: addedInfo, wave_user: waveMeta?.user_id, removed: removedID };
    a.disconnect(); b.disconnect();
    return result;
  },

  // Laravel Echo: Echo.channel().listen(), Echo.private() whisper and
  // listenForWhisper, Echo.join() here/joining/leaving,
  // Echo.encryptedPrivate(), and a cache channel.
  async echo() {
    const a = echo('ann'), b = echo('ben');
    const orders = a.channel('orders');
    const shipped = new Promise((resolve) => orders.listen('.order-shipped', resolve));
    const [chatA, chatB] = [a.private('chat'), b.private('chat')];
    const whispered = new Promise((resolve) => chatA.listenForWhisper('typing', resolve));
    const vault = a.encryptedPrivate('vault');
    const secret = new Promise((resolve) => vault.listen('.secret', resolve));
    await Promise.all([echoSubscribed(orders), echoSubscribed(chatA), echoSubscribed(chatB), echoSubscribed(vault)]);
    await trigger('orders', 'order-shipped', { id: 42 });
    await trigger('private-encrypted-vault', 'secret', { code: 'open sesame' });
    chatB.whisper('typing', { name: 'ben' });
    await trigger('cache-board', 'posted', { n: 7 });
    const board = a.channel('cache-board');
    const posted = new Promise((resolve) => board.listen('.posted', resolve));

    let joined, left;
    const joining = new Promise((resolve) => { joined = resolve; });
    const leaving = new Promise((resolve) => { left = resolve; });
    const annHere = await new Promise((resolve) => a.join('room').here(resolve).joining(joined).leaving(left));
    const benHere = await new Promise((resolve) => b.join('room').here(resolve));
    const join = await joining;
    b.leave('room');
    const leave = await leaving;
    const names = (users) => users.map((u) => u.name).sort();
    const result = {
      order: await shipped, whisper: await whispered, secret: await secret, cached: await posted,
      ann_here: names(annHere), ben_here: names(benHere), joining: join.name, leaving: leave.name,
    };
    a.disconnect(); b.disconnect();
    return result;
  },
};
