// demo.js - the demo page served at / : a breaking bar and a list of the
// latest headlines, with region/language/priority selectors. The filter is
// kept in the page URL (?region=mena&lang=ar&priority=urgent&view=list);
// ?server=, ?transport=ws|sse|poll (or a list), ?replay=, ?backoff=<ms>,
// ?backoff_max=<ms>, ?timeout=<ms> (connect timeout), ?step_up=<ms>,
// ?fallback=<n>, ?poll_wait=<s>, ?share=0 and ?speed=<px/s> are for testing.
// The page shows which transport is live and whether this tab connects for
// others or takes the frames of another tab.
import { TickerClient, TickerWidget, badgeText } from './ticker.js';

const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);
const num = (v, d) => (v != null && v !== '' && Number.isFinite(Number(v)) ? Number(v) : d);

const filter = {
  region: params.get('region') || null,
  lang: params.get('lang') || null,
  priority: params.get('priority') || null,
  category: params.get('category') || null,
};

const client = new TickerClient({
  ...filter,
  server: params.get('server') || null,
  transport: params.get('transport') || 'auto',
  replay: params.has('replay') ? num(params.get('replay'), null) : null,
  backoffInitialMs: num(params.get('backoff'), 2000),
  backoffMaxMs: num(params.get('backoff_max'), 30000),
  connectTimeoutMs: num(params.get('timeout'), 10000),
  stepUpAfterMs: num(params.get('step_up'), 300000),
  fallbackAfter: num(params.get('fallback'), 3),
  pollWaitS: num(params.get('poll_wait'), 25),
  share: params.get('share') !== '0',
});

const barLabel = () => badgeText('bar', filter.lang && !filter.lang.includes(',') ? filter.lang : 'en');
const bar = new TickerWidget($('bar'), client, {
  view: params.get('view') === 'list' ? 'list' : 'crawl',
  label: barLabel(),
  speed: num(params.get('speed'), 80),
  maxItems: 20,
});
const list = new TickerWidget($('list'), client, { view: 'list', maxItems: 50, showStatus: false });

for (const k of ['region', 'lang', 'priority']) {
  const sel = $(k);
  sel.value = filter[k] || '';
  sel.addEventListener('change', () => {
    filter[k] = sel.value || null;
    syncUrl();
    bar.setLabel(barLabel());
    client.setFilter({ [k]: filter[k] });
  });
}
$('view').value = bar.view;
$('view').addEventListener('change', () => {
  bar.view = $('view').value;
  syncUrl();
});

function syncUrl() {
  const q = new URLSearchParams(location.search);
  for (const k of ['region', 'lang', 'priority']) {
    if (filter[k]) q.set(k, filter[k]);
    else q.delete(k);
  }
  if (bar.view === 'list') q.set('view', 'list');
  else q.delete('view');
  const s = q.toString();
  history.replaceState(null, '', s ? `?${s}` : location.pathname);
}

// A small event log for debugging (and the browser tests).
const log = {
  items: {}, updates: 0, retracts: 0, expires: 0, resets: 0, replays: [], hellos: 0, urls: [], drops: [], statuses: [],
  transports: [], roles: [],
};
const t0 = Date.now();
client.addEventListener('status', (e) => {
  const d = e.detail;
  log.statuses.push([Date.now() - t0, d.status, d.transport, d.code, d.reason]);
  if (d.status === 'reconnecting') log.drops.push({ transport: d.transport, code: d.code, reason: d.reason, delayMs: d.delayMs });
});
client.addEventListener('item', (e) => {
  log.items[e.detail.item.id] = (log.items[e.detail.item.id] || 0) + 1;
});
client.addEventListener('update', () => log.updates++);
client.addEventListener('retract', () => log.retracts++);
client.addEventListener('expire', () => log.expires++);
client.addEventListener('reset', () => log.resets++);
client.addEventListener('replay', (e) => log.replays.push(e.detail));
client.addEventListener('hello', (e) => {
  log.hellos++;
  log.urls.push(client.lastUrl);
  $('epoch').textContent = e.detail.epoch || '–';
});
client.addEventListener('transport', (e) => log.transports.push([Date.now() - t0, e.detail.from, e.detail.to, e.detail.reason]));
client.addEventListener('share', (e) => {
  log.roles.push([Date.now() - t0, e.detail.role, e.detail.peers]);
  showConnection();
});
client.addEventListener('status', showConnection);

const TRANSPORT_NAMES = { ws: 'WebSocket', sse: 'Server-Sent Events', poll: 'long-poll' };

/** Which transport is live, and whose connection it is. */
function showConnection() {
  const t = client.transport;
  const live = client.status === 'connected';
  $('transport').textContent = t ? `${TRANSPORT_NAMES[t] || t}${live ? '' : ` (${client.status})`}` : '–';
  $('conn').dataset.transport = t || '';
  $('conn').dataset.live = String(live);
  $('conn').dataset.role = client.role;
  $('share').textContent =
    client.role === 'leader'
      ? client.peers > 1
        ? `this tab's connection, shared with ${client.peers - 1} other tab${client.peers > 2 ? 's' : ''}`
        : "this tab's connection"
      : client.role === 'follower'
        ? 'the connection of another tab'
        : "this tab's own connection";
}
client.addEventListener('state', () => {
  $('last-id').textContent = client.lastId || '–';
  $('epoch').textContent = client.epoch || '–';
});
window.ticker = { client, bar, list, log };

client.start();
