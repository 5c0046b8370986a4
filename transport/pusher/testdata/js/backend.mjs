// The backend of the browser tests of transport/pusher: a test HTTP
// server, as an app's backend would be, made of Pusher's server SDK. It
// serves the page (browser/), the browser bundles of pusher-js (with
// encryption) and Laravel Echo from node_modules, channel and user auth
// (the SDK's authorizeChannel and authenticateUser, the user named by the
// query), and /trigger (the SDK's trigger, encrypting for
// private-encrypted- channels). It listens on PORT and prints one line,
// {"step":"listening"}, then serves until it is killed.
import http from 'node:http';
import fs from 'node:fs';
import PusherServer from 'pusher';

const Server = PusherServer.default ?? PusherServer;
const env = process.env;
const sdk = new Server({
  appId: env.PUSHER_APP_ID, key: env.PUSHER_KEY, secret: env.PUSHER_SECRET,
  host: env.PUSHER_HOST, port: env.PUSHER_PORT, useTLS: false,
  encryptionMasterKeyBase64: Buffer.alloc(32, 9).toString('base64'),
});

const files = {
  '/': ['browser/page.html', 'text/html'],
  '/page.js': ['browser/page.js', 'text/javascript'],
  '/pusher.js': ['node_modules/pusher-js/dist/web/pusher-with-encryption.js', 'text/javascript'],
  '/echo.js': ['node_modules/laravel-echo/dist/echo.iife.js', 'text/javascript'],
};

const body = (req) => new Promise((resolve, reject) => {
  let b = '';
  req.setEncoding('utf8');
  req.on('data', (d) => { b += d; if (b.length > 1 << 16) reject(new Error('body too large')); });
  req.on('end', () => resolve(b));
  req.on('error', reject);
});

const reply = (res, status, type, data) => {
  res.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store' });
  res.end(data);
};

async function handle(req, res) {
  const url = new URL(req.url, 'http://localhost');
  const file = files[url.pathname];
  if (req.method === 'GET' && file) {
    return reply(res, 200, file[1], fs.readFileSync(file[0]));
  }
  const user = url.searchParams.get('user');
  if (req.method === 'POST' && url.pathname === '/auth') {
    const form = new URLSearchParams(await body(req));
    const socketId = form.get('socket_id'), channel = form.get('channel_name');
    const auth = channel.startsWith('presence-')
      ? sdk.authorizeChannel(socketId, channel, { user_id: user, user_info: { name: user } })
      : sdk.authorizeChannel(socketId, channel);
    return reply(res, 200, 'application/json', JSON.stringify(auth));
  }
  if (req.method === 'POST' && url.pathname === '/user-auth') {
    const form = new URLSearchParams(await body(req));
    const auth = sdk.authenticateUser(form.get('socket_id'), { id: user, user_info: { name: user } });
    return reply(res, 200, 'application/json', JSON.stringify(auth));
  }
  if (req.method === 'POST' && url.pathname === '/trigger') {
    const { channel, event, data } = JSON.parse(await body(req));
    const r = await sdk.trigger(channel, event, data);
    return reply(res, r.status, 'application/json', await r.text());
  }
  reply(res, 404, 'text/plain', 'not found');
}

http.createServer((req, res) => handle(req, res).catch((err) => reply(res, 500, 'text/plain', String(err))))
  .listen(Number(env.PORT), '127.0.0.1', () => console.log(JSON.stringify({ step: 'listening' })));
