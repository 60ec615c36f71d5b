// demo.js - the demo page served at / : a breaking bar and a list of the
// latest headlines, with region/language/priority selectors. The filter is
// kept in the page URL (?region=mena&lang=ar&priority=urgent&view=list);
// ?server=, ?transport=ws|sse, ?replay=, ?backoff=<ms> and ?speed=<px/s> are
// for testing.
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
const log = { items: {}, updates: 0, retracts: 0, expires: 0, resets: 0, replays: [], hellos: 0, urls: [], drops: [], statuses: [] };
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
  $('transport').textContent = client.transport;
  $('epoch').textContent = e.detail.epoch || '–';
});
client.addEventListener('state', () => {
  $('last-id').textContent = client.lastId || '–';
  $('epoch').textContent = client.epoch || '–';
});
window.ticker = { client, bar, list, log };

client.start();
