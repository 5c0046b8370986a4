// Checks webhooks with Pusher's own server SDK, for the Go tests of
// transport/pusher: stdin is a JSON array of the requests a receiver got
// ({headers, body}); for each, one JSON line: whether pusher.webhook()
// finds it valid with the app's key and secret (and with a wrong secret),
// its time and its events.
import PusherServer from 'pusher';

const Server = PusherServer.default ?? PusherServer;
const env = process.env;
const sdk = new Server({ appId: env.PUSHER_APP_ID, key: env.PUSHER_KEY, secret: env.PUSHER_SECRET });
const wrong = new Server({ appId: env.PUSHER_APP_ID, key: env.PUSHER_KEY, secret: 'not-' + env.PUSHER_SECRET });

let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => { input += d; });
process.stdin.on('end', () => {
  for (const r of JSON.parse(input)) {
    const req = { headers: r.headers, rawBody: r.body };
    const hook = sdk.webhook(req);
    const valid = hook.isValid();
    console.log(JSON.stringify({
      valid,
      validWithWrongSecret: wrong.webhook(req).isValid(),
      time: valid ? hook.getTime().getTime() : 0,
      events: valid ? hook.getEvents() : [],
    }));
  }
});
