// app.js: the redcast chat page. Room ROOM is the channel chat:ROOM, the same
// channel plain WebSocket clients reach at /rooms/ROOM. Every piece of user
// text is put on the page with textContent, never parsed as HTML.

import { Client, ErrorCode } from './redcast.js';

const HISTORY = 50;
const NICK_KEY = 'redcast.nick';
const DEFAULT_ROOM = 'general';
const MAX_NAME_BYTES = 64;
// The server takes publications of up to 16 KiB of data: the message as
// {"text": …} in JSON.
const MAX_DATA_BYTES = 16 << 10;
// The composer says how much is left once less than this is.
const SHOW_LEFT_BELOW = 1000;
// The room makes the channel chat:ROOM; like plain mode (/rooms/ROOM) it has no
// ":" of its own.
const ROOM_RE = /^[A-Za-z0-9_.@/=,#~-]{1,250}$/;

const $ = (id) => document.getElementById(id);
const el = {
  joinForm: $('join-form'), nick: $('nick'), room: $('room'),
  roomName: $('room-name'), status: $('status'), retry: $('retry'),
  notice: $('notice'), noticeText: $('notice-text'), noticeClose: $('notice-close'),
  messages: $('messages'), empty: $('empty'),
  presence: $('presence'), onlineCount: $('online-count'),
  sendForm: $('send-form'), message: $('message'), left: $('left'), send: $('send'), sendError: $('send-error'),
};

let client = null; // the Client of the current nickname
let nick = '';
let everConnected = false;
const myIds = new Set(); // every client id this page has had: its own messages
let sub = null; // the Subscription of the current room
let members = new Map(); // client id -> client info, for the current room (see people)
let presenceRace = null; // joins/leaves seen while a presence call is out
const shown = new Set(); // epoch:offset of the messages on screen
let epoch = ''; // the epoch of the room's stream, from the last subscribe

// Tests reach the client through window.chat (see docs/client-js.md).
window.chat = {
  get client() { return client; },
  get subscription() { return sub; },
};

// ---- rooms and the URL hash ----

function roomFromHash() {
  let r = '';
  try {
    r = decodeURIComponent(location.hash.slice(1));
  } catch {
    // a malformed %-escape: fall back to the default room
  }
  return r || DEFAULT_ROOM;
}

function setHash(room) {
  const h = `#${encodeURIComponent(room)}`;
  if (location.hash !== h) location.hash = h;
}

// ---- connection ----

function startClient(name) {
  if (client) client.disconnect();
  everConnected = false;
  const c = new Client('/connection/websocket', { name });
  client = c;
  c.on('connecting', (ctx) => {
    if (c !== client) return;
    if (!everConnected) {
      setStatus('connecting', 'connecting…');
      el.retry.hidden = true;
      return;
    }
    // After a loss the client waits before each try, longer and longer:
    // say how long, and offer not to wait.
    const secs = Math.round((ctx.delay || 0) / 1000);
    setStatus('connecting', secs >= 1 ? `reconnecting… next try in ${secs} s` : 'reconnecting…');
    el.retry.hidden = false;
  });
  c.on('connected', (ctx) => {
    if (c !== client) return;
    everConnected = true;
    myIds.add(c.clientId);
    // A server whose backend authenticates clients (a cookie, through its
    // connect proxy) says who this page is signed in as.
    setStatus('connected', ctx.user ? `connected as ${ctx.user}` : 'connected');
    el.retry.hidden = true;
    hideSendError();
  });
  c.on('disconnected', (ctx) => {
    if (c !== client) return;
    setStatus('disconnected', `disconnected: ${ctx.reason}`);
    el.retry.hidden = false;
  });
  c.connect().catch(() => {}); // the 'disconnected' handler shows why
}

function setStatus(state, text) {
  el.status.dataset.state = state;
  el.status.textContent = text;
  document.body.dataset.state = state;
}

// ---- joining ----

function join(name, room) {
  const tooLong = nickProblem(name);
  if (tooLong) {
    showNotice(tooLong);
    return;
  }
  if (!ROOM_RE.test(room)) {
    showNotice(`"${room}" is not a valid room name: use letters, digits and _ - . @ / = , # ~`);
    return;
  }
  hideNotice();
  try {
    localStorage.setItem(NICK_KEY, name);
  } catch {
    // storage may be disabled; the nickname is then not remembered
  }
  if (!client || name !== nick) {
    nick = name;
    sub = null; // it belonged to the old client
    startClient(name);
  } else if (client.state === 'disconnected') {
    client.connect().catch(() => {}); // the server had told it to stop: try again
  }
  document.body.classList.add('joined');
  el.message.disabled = false;
  el.send.disabled = false;
  enterRoom(room);
  setHash(room);
}

function enterRoom(room) {
  if (sub && sub.channel === `chat:${room}`) return;
  if (sub) sub.unsubscribe();
  el.room.value = room;
  el.roomName.textContent = room;
  document.title = `#${room} · redcast`;
  clearMessages();
  hideNotice();
  members = new Map();
  presenceRace = null;
  renderPresence();
  const s = client.subscribe(`chat:${room}`, {
    history: HISTORY,
    joinLeave: true, // the member list follows joins and leaves
    onSubscribed(ctx) {
      if (s !== sub) return;
      epoch = ctx.epoch;
      if (!ctx.recovering) {
        clearMessages(); // a first visit: the room's recent history follows
      } else if (!ctx.recovered) {
        // Back after a gap that history no longer covers (the server
        // restarted without it, or more was said than it keeps): keep the
        // conversation on screen, mark where messages are missing, and
        // show the room's recent messages after the mark.
        markBreak();
        showNotice('Some messages sent while you were away could not be loaded. ' +
          'The line in the conversation marks where they are missing.');
      }
      refreshPresence(s);
    },
    onPublication(pub) {
      if (s === sub) renderMessage(pub);
    },
    onJoin(info) {
      if (s !== sub) return;
      members.set(info.client, info);
      presenceRace?.set(info.client, info);
      renderPresence();
    },
    onLeave(info) {
      if (s !== sub) return;
      members.delete(info.client);
      presenceRace?.set(info.client, null);
      renderPresence();
    },
    onError(err) {
      if (s === sub) showNotice(`Cannot join #${room}: ${err.message}`);
    },
  });
  sub = s;
}

// refreshPresence asks who is online. Joins and leaves that arrive while the
// call is out are newer than (or as new as) its answer, so they win over it.
function refreshPresence(s) {
  const race = new Map();
  presenceRace = race;
  s.presence().then((res) => {
    if (s !== sub || presenceRace !== race) return;
    presenceRace = null;
    const next = new Map();
    for (const info of res.clients) next.set(info.client, info);
    for (const [id, info] of race) {
      if (info) next.set(id, info);
      else next.delete(id);
    }
    members = next;
    renderPresence();
  }, (err) => {
    if (s !== sub || presenceRace !== race) return;
    presenceRace = null;
    // Disconnected: the next subscribe asks again. Otherwise keep what the
    // join and leave pushes told us.
    if (err.code !== ErrorCode.DISCONNECTED) console.warn('redcast: presence:', err.message);
  });
}

// ---- rendering ----

function senderName(from) {
  const name = from?.info?.name;
  if (typeof name === 'string' && name !== '') return name;
  if (from?.user) return from.user;
  if (from?.client) return `guest-${from.client.slice(0, 4)}`;
  return 'anonymous'; // a guest without a name, or the application's backend
}

function renderMessage(pub) {
  const key = `${epoch}:${pub.offset}`;
  if (shown.has(key)) return;
  shown.add(key);

  const li = document.createElement('li');
  li.className = 'msg';
  li.dataset.offset = String(pub.offset);
  if (pub.from && myIds.has(pub.from.client)) li.classList.add('own');

  const meta = document.createElement('div');
  meta.className = 'meta';
  const from = document.createElement('span');
  from.className = 'from';
  from.textContent = senderName(pub.from);
  meta.append(from);
  if (pub.time) {
    const d = new Date(pub.time);
    const time = document.createElement('time');
    time.className = 'time';
    time.dateTime = d.toISOString();
    time.title = d.toLocaleString();
    time.textContent = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    meta.append(time);
  }

  const text = document.createElement('div');
  text.className = 'text';
  const data = pub.data;
  if (data !== null && typeof data === 'object' && typeof data.text === 'string') {
    text.textContent = data.text;
  } else {
    text.textContent = JSON.stringify(data);
    li.classList.add('raw');
  }

  li.append(meta, text);
  const list = el.messages;
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 48;
  list.append(li);
  el.empty.hidden = true;
  if (atBottom || li.classList.contains('own')) li.scrollIntoView({ block: 'end' });
}

// markBreak ends the conversation on screen with a line saying that
// messages may be missing after it (nothing when the screen is empty).
function markBreak() {
  const last = el.messages.lastElementChild;
  if (!last || last.classList.contains('break')) return;
  const li = document.createElement('li');
  li.className = 'break';
  li.setAttribute('role', 'separator');
  li.textContent = 'Some messages may be missing here';
  el.messages.append(li);
}

function clearMessages() {
  shown.clear();
  el.messages.replaceChildren();
  el.empty.hidden = false;
  el.empty.textContent = sub ? 'No messages yet. Say hello!' : 'Pick a nickname and a room, then say hello.';
}

// people groups the room's connections by person: by user when the
// connection has one, else by display name (anonymous clients). This page's
// own earlier connections are left out: they are gone, even while the
// server still lists them (a node that crashed keeps them in presence for
// up to its presence TTL).
function people() {
  const byKey = new Map();
  for (const info of members.values()) {
    const id = info.client;
    const mine = client && id === client.clientId;
    if (myIds.has(id) && !mine) continue;
    const name = senderName(info);
    const key = info.user ? `user:${info.user}` : `name:${name}`;
    let p = byKey.get(key);
    if (!p) {
      p = { key, name, connections: 0, me: false };
      byKey.set(key, p);
    }
    p.connections++;
    p.me ||= mine;
  }
  return [...byKey.values()].sort((a, b) => a.name.localeCompare(b.name) || a.key.localeCompare(b.key));
}

function renderPresence() {
  const list = people();
  const lis = list.map((p) => {
    const li = document.createElement('li');
    li.className = 'member';
    li.dataset.person = p.key;
    const n = document.createElement('span');
    n.className = 'name';
    n.textContent = p.name;
    li.append(n);
    if (p.connections > 1) {
      const count = document.createElement('span');
      count.className = 'tabs';
      count.title = `${p.connections} connections`;
      count.textContent = `×${p.connections}`;
      li.append(count);
    }
    if (p.me) {
      li.classList.add('me');
      const you = document.createElement('span');
      you.className = 'you';
      you.textContent = '(you)';
      li.append(you);
    }
    return li;
  });
  el.presence.replaceChildren(...lis);
  el.onlineCount.textContent = String(list.length);
}

function showNotice(text) {
  el.noticeText.textContent = text;
  el.notice.hidden = false;
}

function hideNotice() {
  el.notice.hidden = true;
  el.noticeText.textContent = '';
}

function showSendError(text) {
  el.sendError.textContent = text;
}

function hideSendError() {
  el.sendError.textContent = '';
}

// ---- counting as people count ----

const graphemes = (s) => (typeof Intl.Segmenter === 'function'
  ? [...new Intl.Segmenter(undefined, { granularity: 'grapheme' }).segment(s)].map((g) => g.segment)
  : [...s]);
const utf8Length = (s) => new TextEncoder().encode(s).length;
const plural = (n, word) => `${n.toLocaleString()} ${word}${n === 1 ? '' : 's'}`;

// overBy returns how many characters (as people count them) must go from
// the end of s for size(s) to be at most max: 0 when it fits.
function overBy(s, size, max) {
  if (size(s) <= max) return 0;
  const gs = graphemes(s);
  let lo = 0; // characters kept that fit
  let hi = gs.length; // characters kept that do not
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (size(gs.slice(0, mid).join('')) <= max) lo = mid;
    else hi = mid;
  }
  return gs.length - lo;
}

// nickProblem says what is wrong with a nickname the server would refuse
// (it takes at most 64 bytes), in characters, or returns ''.
function nickProblem(name) {
  const over = overBy(name, utf8Length, MAX_NAME_BYTES);
  if (!over) return '';
  return `This nickname is too long: remove ${plural(over, 'character')} ` +
    `(it can have ${plural(graphemes(name).length - over, 'character')} like these).`;
}

// messageBytes is what the server counts of a message: its data in JSON.
const messageBytes = (text) => utf8Length(JSON.stringify({ text }));

// updateLeft shows how much more fits in the message, once it is little,
// and how much is too much.
function updateLeft() {
  const text = el.message.value;
  const over = overBy(text, messageBytes, MAX_DATA_BYTES);
  if (over) {
    el.left.textContent = `${plural(over, 'character')} too many`;
    el.left.dataset.over = 'true';
    return;
  }
  delete el.left.dataset.over;
  // Characters like those typed so far (one byte each for plain text).
  const leftBytes = MAX_DATA_BYTES - messageBytes(text);
  const n = graphemes(text).length;
  const perChar = n ? Math.max(1, (messageBytes(text) - messageBytes('')) / n) : 1;
  const left = Math.floor(leftBytes / perChar);
  el.left.textContent = left < SHOW_LEFT_BELOW ? `${plural(left, 'character')} left` : '';
}

// ---- wiring ----

// The nickname box refuses what the server would, saying why as you type.
el.nick.addEventListener('input', () => {
  el.nick.setCustomValidity(nickProblem(el.nick.value.trim()));
});

el.message.addEventListener('input', () => {
  updateLeft();
  hideSendError();
});

el.retry.addEventListener('click', () => {
  if (!client) return;
  if (client.state === 'disconnected') client.connect().catch(() => {});
  else client.reconnect();
});

el.joinForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const name = el.nick.value.trim();
  if (!name) {
    el.nick.focus();
    return;
  }
  join(name, el.room.value.trim() || DEFAULT_ROOM);
  el.message.focus();
});

el.sendForm.addEventListener('submit', async (e) => {
  e.preventDefault();
  const text = el.message.value.trim();
  if (!sub) return;
  if (!text) {
    if (el.message.value) showSendError('Only spaces: type some text to send.');
    return;
  }
  const over = overBy(text, messageBytes, MAX_DATA_BYTES);
  if (over) {
    showSendError(`Too long to send: remove ${plural(over, 'character')}.`);
    return;
  }
  el.send.disabled = true;
  try {
    await sub.publish({ text });
    el.message.value = '';
    updateLeft();
    hideSendError();
  } catch (err) {
    showSendError(err.code === ErrorCode.DISCONNECTED
      ? 'Not connected: the message was not sent.'
      : `Not sent: ${err.message}`);
  } finally {
    el.send.disabled = false;
    el.message.focus();
  }
});

el.noticeClose.addEventListener('click', hideNotice);

window.addEventListener('hashchange', () => {
  const room = roomFromHash();
  el.room.value = room;
  if (client && nick && ROOM_RE.test(room)) enterRoom(room);
});

// Start: the room comes from the URL; a remembered nickname joins at once.
el.room.value = roomFromHash();
el.roomName.textContent = el.room.value;
let saved = '';
try {
  saved = localStorage.getItem(NICK_KEY) || '';
} catch {
  // storage disabled
}
if (saved) {
  el.nick.value = saved;
  join(saved, el.room.value);
} else {
  el.nick.focus();
}
