// redcast admin page: polls POST /api/info with the API key the operator
// enters (kept in sessionStorage only) and shows nodes, totals and the
// busiest channels. Everything is rendered with textContent.

const $ = (id) => document.getElementById(id);
const storageKey = 'redcast-admin-key';
const pollMs = 2000;
let timer = 0;

function setStatus(state, text) {
  const el = $('status');
  el.dataset.state = state;
  el.textContent = text;
}

function cell(row, text, numeric = false) {
  const td = document.createElement('td');
  td.textContent = String(text);
  if (numeric) td.className = 'n';
  row.append(td);
}

const fmt = (n) => (Number.isInteger(n) ? n : Math.round(n * 10) / 10).toLocaleString('en-US');

function uptime(startedMs) {
  let s = Math.max(0, Math.floor((Date.now() - startedMs) / 1000));
  const d = Math.floor(s / 86400); s %= 86400;
  const h = Math.floor(s / 3600); s %= 3600;
  const m = Math.floor(s / 60); s %= 60;
  return d ? `${d}d ${h}h` : h ? `${h}h ${m}m` : m ? `${m}m ${s}s` : `${s}s`;
}

function render(nodes) {
  const sum = (f) => nodes.reduce((acc, n) => acc + (n[f] || 0), 0);
  $('total-nodes').textContent = fmt(nodes.length);
  $('total-connections').textContent = fmt(sum('connections'));
  $('total-subscriptions').textContent = fmt(sum('subscriptions'));
  $('total-pubs').textContent = fmt(sum('publications_per_second'));
  $('total-pushes').textContent = fmt(sum('pushes_per_second'));

  const body = $('nodes').tBodies[0];
  body.replaceChildren(...nodes.map((n) => {
    const tr = document.createElement('tr');
    tr.dataset.id = n.id;
    cell(tr, n.name);
    cell(tr, n.id.slice(0, 8));
    cell(tr, n.version);
    cell(tr, uptime(n.started));
    cell(tr, fmt(n.connections), true);
    cell(tr, fmt(n.subscriptions), true);
    cell(tr, fmt(n.channels), true);
    cell(tr, fmt(n.publications_per_second), true);
    cell(tr, fmt(n.pushes_per_second), true);
    return tr;
  }));

  const channels = new Map();
  for (const n of nodes) {
    for (const c of n.top_channels || []) channels.set(c.channel, (channels.get(c.channel) || 0) + c.subscribers);
  }
  const top = [...channels].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).slice(0, 20);
  $('channels').tBodies[0].replaceChildren(...top.map(([name, count]) => {
    const tr = document.createElement('tr');
    tr.dataset.channel = name;
    cell(tr, name);
    cell(tr, fmt(count), true);
    return tr;
  }));
}

async function poll() {
  clearTimeout(timer);
  const key = sessionStorage.getItem(storageKey);
  if (!key) return;
  try {
    const resp = await fetch('/api/info', {
      method: 'POST',
      headers: { Authorization: `apikey ${key}`, 'Content-Type': 'application/json' },
      body: '{}',
    });
    if (resp.status === 401 || resp.status === 404) {
      sessionStorage.removeItem(storageKey);
      $('panels').hidden = true;
      setStatus('error', resp.status === 401 ? 'wrong API key' : 'the server API is off (start redcast with --api-key)');
      return;
    }
    const body = await resp.json();
    if (!resp.ok) throw new Error(body.error?.message || `HTTP ${resp.status}`);
    render(body.result.nodes || []);
    $('panels').hidden = false;
    setStatus('ok', `updated ${new Date().toLocaleTimeString()}`);
  } catch (err) {
    setStatus('error', `cannot reach the server: ${err.message}`);
  }
  timer = setTimeout(poll, pollMs);
}

$('key-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  sessionStorage.setItem(storageKey, $('key').value);
  $('key').value = '';
  setStatus('idle', 'loading…');
  poll();
});

$('forget').addEventListener('click', () => {
  sessionStorage.removeItem(storageKey);
  clearTimeout(timer);
  $('panels').hidden = true;
  setStatus('idle', 'enter the API key');
});

poll();
