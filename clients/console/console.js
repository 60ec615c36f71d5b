// console.js - the editors' console served at /console/ (SPEC §3, §8): sign
// in with a token (pasted, or from /console/#token=…), publish, correct,
// retract, pin and embargo through POST /v1/items with an Idempotency-Key,
// every field checked first (validate.js, with GET /v1/lists); a live view
// of the stream per language (ticker.js); the audience (GET /v1/stats) and
// each retract's kill confirmation (GET /v1/items/<id>/screens). See
// clients/console/README.md.
import { TickerClient, renderItem, isRtlLang } from '../ticker.js';
import { checkItem, fieldOfReason, trimAscii, utf8Bytes } from './validate.js';

const $ = (id) => document.getElementById(id);
const api = (path) => new URL(`..${path}`, location.href).href;
const TOKEN_KEY = 'tickerd-console-token';
const LANG_NAMES = { en: 'English', ar: 'العربية', es: 'Español' };
const STATS_EVERY_MS = 5000;
const SCREENS_EVERY_MS = 1000;
const SCREENS_FOR_MS = 120000;

const state = {
  token: '',
  lists: null,
  client: null,
  editing: null, // the item being corrected, or null
  draft: null, // {body, key}: the Idempotency-Key of what the form last sent
  inFlight: null, // the request on its way, so that a double click sends once
  kills: new Map(), // ref -> {item, retractId, timer, until}
  scheduled: new Map(), // id -> {body, at}
  nodes: new Map(), // item id -> its <li> in the live view
};

// ---- the token ----

function authHeaders() {
  return state.token ? { Authorization: `Bearer ${state.token}` } : {};
}

/** The token's claims (decoded, never verified: that is the daemon's job). */
function claims(token) {
  try {
    const b64 = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const bin = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
    return JSON.parse(new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0))));
  } catch {
    return null;
  }
}

function showWho(text, st) {
  $('who').textContent = text;
  $('who').dataset.state = st;
  $('signout-btn').hidden = st === 'out';
}

/** Signs in with `token`: the daemon is asked whether it takes it. */
async function signIn(token) {
  token = trimAscii(token);
  if (!token) return showWho('Paste a token first', 'out');
  const c = claims(token);
  if (!c) return showWho('That is not a JWT (three base64url parts)', 'bad');
  const r = await fetch(api('/v1/items?limit=1'), { headers: { Authorization: `Bearer ${token}` } }).catch(() => null);
  if (!r) return showWho('The daemon does not answer', 'bad');
  if (r.status === 401 || r.status === 403) return showWho(`The daemon refused this token (${r.status}: ${(await r.text()).trim()})`, 'bad');
  state.token = token;
  sessionStorage.setItem(TOKEN_KEY, token);
  $('token').value = '';
  const exp = typeof c.exp === 'number' ? ` until ${new Date(c.exp * 1000).toISOString().slice(11, 16)} UTC` : '';
  const pub = c.publish === true ? 'may publish' : 'may NOT publish (no publish claim)';
  showWho(`Signed in${c.sub ? ` as ${c.sub}` : ''}: ${pub}${exp}`, c.publish === true ? 'in' : 'bad');
  if (state.client) state.client.setFilter({ token });
  return true;
}

function signOut() {
  state.token = '';
  sessionStorage.removeItem(TOKEN_KEY);
  showWho('Not signed in', 'out');
  if (state.client) state.client.setFilter({ token: null });
}

/** The token of /console/#token=…, taken off the address at once. */
function tokenFromFragment() {
  const h = new URLSearchParams(location.hash.replace(/^#/, ''));
  const t = h.get('token');
  if (t) history.replaceState(null, '', location.pathname + location.search);
  return t;
}

// ---- the form ----

function option(value, text) {
  const o = document.createElement('option');
  o.value = value;
  o.textContent = text;
  return o;
}

/** Builds the selects and the region boxes from /v1/lists. */
function buildForm(lists) {
  $('f-lang').replaceChildren(...lists.languages.map((l) => Object.assign(option(l, LANG_NAMES[l] || l), { lang: l })));
  $('f-lang').value = lists.default_lang || lists.languages[0];
  $('f-priority').replaceChildren(...lists.priorities.map((p) => option(p, p)));
  $('f-priority').value = lists.priorities.includes('breaking') ? 'breaking' : lists.priorities[0];
  $('f-category').replaceChildren(option('', '(none)'), ...lists.categories.map((c) => option(c, c)));
  $('f-region').replaceChildren(
    ...lists.regions.map((r) => {
      const l = document.createElement('label');
      const box = Object.assign(document.createElement('input'), { type: 'checkbox', name: 'region', value: r });
      l.append(box, ` ${r}`);
      return l;
    }),
  );
  $('f-ttl').placeholder = String(lists.limits.default_ttl_s || '');
  textChanged();
}

const regionsChecked = () => [...$('f-region').querySelectorAll('input:checked')].map((b) => b.value);

/** The form as a request body (the §1 keys; blank ones left out). */
function formBody() {
  const b = { text: $('f-text').value, lang: $('f-lang').value, priority: $('f-priority').value };
  const regions = regionsChecked();
  if (regions.length || state.editing) b.region = regions;
  for (const k of ['category', 'url', 'source', 'ttl']) {
    const v = trimAscii($(`f-${k}`).value);
    if (v || (state.editing && k === 'category')) b[k] = v;
  }
  if (b.ttl) b.ttl = /^\d+$/.test(b.ttl) ? Number(b.ttl) : b.ttl;
  const at = $('f-publish-at').value;
  if (at && !state.editing) {
    const d = new Date(at); // datetime-local: the editor's local time
    b.publish_at = Number.isFinite(d.getTime()) ? d.toISOString() : at;
  }
  if ($('f-pin').checked || (state.editing && state.editing.pinned)) b.pin = $('f-pin').checked;
  if (state.editing) {
    b.op = 'update';
    b.ref = state.editing.id;
  }
  return b;
}

function clearErrors() {
  for (const e of document.querySelectorAll('.err')) {
    e.textContent = '';
    delete e.dataset.reason;
  }
  for (const el of document.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
}

/** Shows each error beside its field; the first field gets the focus. */
function showErrors(errors) {
  clearErrors();
  let first = null;
  for (const e of errors) {
    const slot = $(`err-${e.field}`) || $('form-status');
    slot.textContent = slot.textContent ? `${slot.textContent}; ${e.message}` : e.message;
    slot.dataset.reason = e.reason;
    const input = $(`f-${e.field.replace('_', '-')}`);
    if (input) {
      input.setAttribute('aria-invalid', 'true');
      first = first || input;
    }
  }
  if (first) first.focus();
}

function setStatus(text, st) {
  $('form-status').textContent = text;
  $('form-status').dataset.state = st || '';
}

function textChanged() {
  if (!state.lists) return;
  const n = utf8Bytes(trimAscii($('f-text').value));
  const max = state.lists.limits.max_text_bytes;
  $('text-count').textContent = `${n} / ${max} bytes`;
  $('text-count').dataset.over = String(n > max);
}

function langChanged() {
  const l = $('f-lang').value;
  $('f-text').lang = l;
  $('f-text').dir = isRtlLang(l) ? 'rtl' : 'auto'; // the caret starts on the right for Arabic
  $('f-source').lang = l;
}

function embargoChanged() {
  const v = $('f-publish-at').value;
  const d = v ? new Date(v) : null;
  $('publish-at-utc').textContent = d && Number.isFinite(d.getTime()) ? `goes live ${d.toISOString().replace('.000', '')}` : '';
}

function resetForm() {
  $('item-form').reset();
  state.editing = null;
  state.draft = null;
  $('item-form').dataset.mode = 'publish';
  $('mode').hidden = true;
  $('compose-title').textContent = 'Publish';
  $('submit').textContent = 'Publish';
  $('f-publish-at').disabled = false;
  buildForm(state.lists);
  langChanged();
  embargoChanged();
}

/** Fills the form with `item` to correct it. */
function editItem(item) {
  resetForm();
  state.editing = item;
  $('item-form').dataset.mode = 'update';
  $('mode').hidden = false;
  $('ref').textContent = item.id;
  $('compose-title').textContent = 'Correct';
  $('submit').textContent = 'Send correction';
  $('f-publish-at').disabled = true;
  $('f-text').value = item.text;
  $('f-lang').value = item.lang;
  $('f-priority').value = item.priority;
  $('f-category').value = item.category || '';
  for (const b of $('f-region').querySelectorAll('input')) b.checked = item.region.includes(b.value);
  $('f-url').value = item.url || '';
  $('f-source').value = item.source || '';
  $('f-pin').checked = !!item.pinned;
  langChanged();
  textChanged();
  $('f-text').focus();
}

// ---- sending ----

function randomKey() {
  const b = crypto.getRandomValues(new Uint8Array(16)); // randomUUID needs a secure context
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
}

/** What the daemon answered, as {field, reason, message} for the form. */
function refusal(status, json, text) {
  const reason = json && (json.reason || json.error || json.code);
  const message = (json && (json.message || json.detail)) || trimAscii(text) || `HTTP ${status}`;
  if (status === 400) return { field: fieldOfReason(reason) || 'form', reason: reason || 'bad_request', message };
  const why = {
    401: 'the daemon refused the token (expired?): sign in again',
    403: 'this token may not publish (it needs "publish": true; with auth off, nothing may)',
    404: 'this daemon does not take POST /v1/items',
    405: 'this daemon does not take POST /v1/items',
    503: 'Redis is down: nothing was published; send again (the same key cannot publish twice)',
  };
  return { field: 'form', reason: `http_${status}`, message: `${why[status] || 'refused'} (${status}: ${message})` };
}

/** POST /v1/items; the same body sent again carries the same key. */
async function post(body) {
  const text = JSON.stringify(body);
  if (!state.draft || state.draft.body !== text) state.draft = { body: text, key: randomKey() };
  const headers = { 'Content-Type': 'application/json', 'Idempotency-Key': state.draft.key, ...authHeaders() };
  let r;
  try {
    r = await fetch(api('/v1/items'), { method: 'POST', headers, body: text });
  } catch (e) {
    // It may have reached the daemon: sending again carries the same key.
    const message = `no answer from the daemon (${e.message}): send again, it cannot publish twice`;
    return { ok: false, error: { field: 'form', reason: 'network', message } };
  }
  const raw = await r.text();
  let json = null;
  try {
    json = JSON.parse(raw);
  } catch {
    /* a text answer */
  }
  if (r.status === 201 || r.status === 200) return { ok: true, id: json && json.id };
  return { ok: false, error: refusal(r.status, json, raw) };
}

/** Checks `body` and sends it once, however often it is asked to. */
function send(body) {
  const op = body.op || 'publish';
  const errors = checkItem(state.lists, body, { op });
  if (!state.token) errors.push({ field: 'form', reason: 'signed_out', message: 'sign in first (a token with publish: true)' });
  if (errors.length) return Promise.resolve({ ok: false, errors });
  const key = JSON.stringify(body);
  if (state.inFlight && state.inFlight.key === key) return state.inFlight.promise;
  const promise = post(body).then((r) => {
    if (state.inFlight && state.inFlight.promise === promise) state.inFlight = null;
    return r.ok ? r : { ok: false, errors: [r.error] };
  });
  state.inFlight = { key, promise };
  return promise;
}

async function submitForm(ev) {
  if (ev) ev.preventDefault();
  const body = formBody();
  const wasEditing = state.editing;
  clearErrors();
  setStatus('Sending…', 'busy');
  $('submit').disabled = true;
  const r = await send(body);
  $('submit').disabled = false;
  if (!r.ok) {
    showErrors(r.errors.filter((e) => e.field !== 'form'));
    const general = r.errors.filter((e) => e.field === 'form');
    setStatus(general.length ? general.map((e) => e.message).join('; ') : 'Not sent: see the fields marked', 'error');
    if (general.length) $('form-status').dataset.reason = general[0].reason;
    return;
  }
  setStatus(`${wasEditing ? 'Corrected' : body.publish_at ? 'Embargoed' : 'Published'}: ${r.id || ''}`, 'ok');
  if (body.publish_at && r.id) addScheduled(r.id, body);
  resetForm();
  $('f-text').focus();
}

// ---- the live view ----

function buildColumns(langs) {
  $('columns').replaceChildren(
    ...langs.map((l) => {
      const col = document.createElement('section');
      col.className = 'col';
      col.dataset.lang = l;
      col.lang = l;
      col.dir = isRtlLang(l) ? 'rtl' : 'ltr';
      const h = document.createElement('h3');
      h.textContent = LANG_NAMES[l] || l;
      const c = document.createElement('span');
      c.className = 'n';
      h.append(' ', c);
      const box = document.createElement('div');
      box.className = 'tk';
      box.dataset.view = 'list';
      const ol = document.createElement('ol');
      ol.className = 'tk-list';
      box.append(ol);
      col.append(h, box);
      return col;
    }),
  );
}

function button(text, cls, fn) {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = cls;
  b.textContent = text;
  b.addEventListener('click', fn);
  return b;
}

/** The retract button asks once more before it sends. */
function retractButton(item) {
  const b = button('Retract', 'retract', () => {
    if (b.dataset.armed !== 'true') {
      b.dataset.armed = 'true';
      b.textContent = 'Confirm retract';
      return;
    }
    b.disabled = true;
    retract(item).finally(() => (b.disabled = false));
  });
  const disarm = () => {
    b.dataset.armed = 'false';
    b.textContent = 'Retract';
  };
  b.addEventListener('blur', disarm);
  b.addEventListener('keydown', (e) => e.key === 'Escape' && disarm());
  return b;
}

function entryNode(item) {
  const li = document.createElement('li');
  li.className = 'entry';
  li.dataset.id = item.id;
  li.dataset.version = item.updateId || item.id;
  const view = renderItem(item, 'div', { links: false });
  const meta = document.createElement('div');
  meta.className = 'meta';
  meta.dir = 'ltr';
  const code = document.createElement('code');
  code.textContent = item.id;
  meta.append(code);
  if (item.pinned) meta.append(Object.assign(document.createElement('b'), { className: 'pin', textContent: 'pinned' }));
  const acts = document.createElement('div');
  acts.className = 'item-actions';
  acts.dir = 'ltr';
  acts.append(
    button('Correct', 'edit', () => editItem(item)),
    button(item.pinned ? 'Unpin' : 'Pin', 'pin-toggle', () => togglePin(item)),
    retractButton(item),
  );
  li.append(view, meta, acts);
  return li;
}

/** Keyed: a node is rebuilt only when its item changed, so focus stays. */
function renderLive(items) {
  const keep = new Set(items.map((it) => it.id));
  for (const [id, node] of state.nodes) {
    if (!keep.has(id)) {
      node.remove();
      state.nodes.delete(id);
    }
  }
  const last = new Map();
  for (const it of items) {
    let node = state.nodes.get(it.id);
    if (!node || node.dataset.version !== (it.updateId || it.id) || node.dataset.pinned !== String(!!it.pinned)) {
      const fresh = entryNode(it);
      fresh.dataset.pinned = String(!!it.pinned);
      if (node) node.replaceWith(fresh);
      node = fresh;
      state.nodes.set(it.id, node);
    }
    const col = $('columns').querySelector(`.col[data-lang="${CSS.escape(it.lang)}"] ol`) || $('columns').querySelector('.col ol');
    if (!col) continue;
    const prev = last.get(col);
    const want = prev ? prev.nextSibling : col.firstChild;
    if (want !== node) col.insertBefore(node, want);
    last.set(col, node);
  }
  for (const col of $('columns').querySelectorAll('.col')) col.querySelector('.n').textContent = `(${col.querySelectorAll('li.entry').length})`;
  $('live-count').textContent = `${items.length} live`;
}

function startLive(lists) {
  buildColumns(lists.languages);
  const client = new TickerClient({
    server: api('/'),
    replay: lists.limits.replay_max,
    token: state.token || null,
    share: false, // the console's own view: never a follower of a reader's tab
    backoffInitialMs: 500,
    backoffMaxMs: 5000,
  });
  client.addEventListener('state', (e) => renderLive(e.detail.items));
  client.addEventListener('status', (e) => {
    $('conn').dataset.state = e.detail.status;
    $('conn').textContent = `Live view: ${e.detail.status}${e.detail.transport ? ` (${e.detail.transport})` : ''}`;
  });
  client.addEventListener('item', (e) => state.scheduled.delete(e.detail.item.id) && renderScheduled());
  client.addEventListener('error', (e) => {
    if (e.detail.code === 'token_expired') showWho('The token expired: paste a new one to go on', 'bad');
  });
  state.client = client;
  window.tickerConsole = state;
  client.start();
}

// ---- pin, retract, kill confirmation ----

async function togglePin(item) {
  const r = await send({ op: 'update', ref: item.id, pin: !item.pinned });
  setStatus(r.ok ? `${item.pinned ? 'Unpinned' : 'Pinned'}: ${item.id}` : r.errors.map((e) => e.message).join('; '), r.ok ? 'ok' : 'error');
}

async function retract(item) {
  const r = await send({ op: 'retract', ref: item.id });
  if (!r.ok) {
    setStatus(r.errors.map((e) => e.message).join('; '), 'error');
    return;
  }
  setStatus(`Retracted: ${item.id}`, 'ok');
  watchKill(item, r.id);
}

/** The side form: a retract of an ID that the live view may not show
 * (an embargoed item of another editor, one published elsewhere). */
async function retractById(ev) {
  ev.preventDefault();
  const ref = trimAscii($('r-ref').value);
  const err = $('err-r-ref');
  const r = await send({ op: 'retract', ref });
  err.textContent = r.ok ? '' : r.errors.map((e) => e.message).join('; ');
  err.dataset.reason = r.ok ? '' : r.errors[0].reason;
  $('r-ref').toggleAttribute('aria-invalid', !r.ok);
  if (!r.ok) return;
  $('r-ref').value = '';
  const item = (state.client && state.client.get(ref)) || { id: ref, text: ref, lang: '' };
  watchKill(item, r.id);
}

function watchKill(item, retractId) {
  const k = { item, retractId, until: Date.now() + SCREENS_FOR_MS, data: null, note: 'asking the screens…' };
  state.kills.set(item.id, k);
  renderKills();
  // the first ask after a poll's interval: a node records the retract when it reads it
  k.timer = setTimeout(() => pollScreens(item.id), SCREENS_EVERY_MS);
}

async function pollScreens(ref) {
  const k = state.kills.get(ref);
  if (!k) return;
  let r = null;
  try {
    r = await fetch(api(`/v1/items/${encodeURIComponent(ref)}/screens`), { headers: authHeaders() });
  } catch {
    k.note = 'the daemon does not answer';
  }
  if (r) {
    const raw = await r.text();
    let json = null;
    try {
      json = JSON.parse(raw);
    } catch {
      /* not the endpoint */
    }
    if (r.ok && json) {
      k.data = json;
      k.note = json.sent && json.acked >= json.sent ? 'gone from every labelled screen' : 'waiting for acks';
    } else if (r.status === 405 || (r.status === 404 && !/^no retract of /.test(raw))) {
      // asked on the real ID, not probed with a malformed one (a 400 is an error in the browser's console)
      k.note = 'this daemon does not confirm kills (no GET /v1/items/<id>/screens)';
      renderKills();
      return;
    } else k.note = `not known yet (${r.status}: ${(json && (json.message || json.error)) || trimAscii(raw)})`;
  }
  renderKills();
  const done = k.data && k.data.sent && k.data.acked >= k.data.sent;
  if (!done && Date.now() < k.until) k.timer = setTimeout(() => pollScreens(ref), SCREENS_EVERY_MS);
}

function killNode(ref, k) {
  const li = document.createElement('li');
  li.dataset.ref = ref;
  const d = k.data;
  li.dataset.sent = d ? String(d.sent) : '';
  li.dataset.acked = d ? String(d.acked) : '';
  li.dataset.done = String(!!(d && d.sent && d.acked >= d.sent));
  const head = document.createElement('div');
  head.className = 'tk-text';
  head.dir = 'auto';
  head.lang = k.item.lang;
  head.textContent = k.item.text;
  const sum = document.createElement('div');
  sum.className = 'sum';
  sum.textContent = `${d ? `acked ${d.acked} of ${d.sent}` : ''} ${k.note}`.trim();
  const ul = document.createElement('ul');
  for (const s of (d && d.screens) || []) {
    const si = document.createElement('li');
    si.dataset.client = s.client;
    si.dataset.acked = String(s.acked_ms != null);
    si.textContent = `${s.client}${s.node ? ` @ ${s.node}` : ''}: ${s.acked_ms != null ? `off air after ${s.acked_ms} ms` : 'not acked'}`;
    ul.append(si);
  }
  li.append(head, sum, ul);
  return li;
}

function renderKills() {
  $('kills').replaceChildren(...[...state.kills].reverse().map(([ref, k]) => killNode(ref, k)));
}

// ---- embargoed items ----

function addScheduled(id, body) {
  state.scheduled.set(id, { body, at: Date.parse(body.publish_at) });
  renderScheduled();
}

function renderScheduled() {
  $('scheduled').replaceChildren(
    ...[...state.scheduled].map(([id, s]) => {
      const li = document.createElement('li');
      li.dataset.id = id;
      const t = Object.assign(document.createElement('span'), { className: 'tk-text', dir: 'auto', lang: s.body.lang, textContent: s.body.text });
      const when = Object.assign(document.createElement('time'), { dateTime: new Date(s.at).toISOString(), textContent: ` ${new Date(s.at).toISOString().slice(0, 19)}Z ` });
      const item = { id, text: s.body.text, lang: s.body.lang };
      li.append(t, when, retractButton(item));
      return li;
    }),
  );
  return true;
}

// ---- audience ----

function table(title, counts) {
  const t = document.createElement('table');
  t.append(Object.assign(document.createElement('caption'), { textContent: title }));
  for (const [k, v] of Object.entries(counts || {}).sort((a, b) => b[1] - a[1])) {
    const tr = t.insertRow();
    tr.dataset.key = k;
    tr.insertCell().textContent = k === '*' ? '(all)' : LANG_NAMES[k] || k;
    tr.insertCell().textContent = String(v);
  }
  return t;
}

async function pollStats() {
  try {
    const r = await fetch(api('/v1/stats'), { headers: authHeaders() });
    if (r.ok) {
      const s = await r.json();
      $('aud-total').textContent = `${s.connections} connected`;
      $('audience').dataset.connections = String(s.connections);
      $('audience').replaceChildren(table('by language', s.by_lang), table('by region', s.by_region), table('by transport', s.by_transport));
    }
  } catch {
    /* shown as before until the next turn */
  }
  setTimeout(pollStats, STATS_EVERY_MS);
}

// ---- start ----

function wire() {
  $('signin').addEventListener('submit', (e) => {
    e.preventDefault();
    signIn($('token').value);
  });
  $('signout-btn').addEventListener('click', signOut);
  $('item-form').addEventListener('submit', submitForm);
  // The second click of a double click is not a second submit: on a quick
  // answer it would land on the emptied form and replace "Published" with
  // "text is missing".
  $('submit').addEventListener('click', (e) => e.detail > 1 && e.preventDefault());
  $('f-text').addEventListener('input', textChanged);
  $('f-text').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) submitForm(e);
  });
  $('f-lang').addEventListener('change', langChanged);
  $('f-publish-at').addEventListener('input', embargoChanged);
  $('cancel-edit').addEventListener('click', resetForm);
  $('retract-form').addEventListener('submit', retractById);
  window.addEventListener('hashchange', () => {
    const t = tokenFromFragment();
    if (t) signIn(t);
  });
  $('item-form').addEventListener('keydown', (e) => e.key === 'Escape' && state.editing && resetForm());
}

async function main() {
  wire();
  const r = await fetch(api('/v1/lists'));
  state.lists = await r.json();
  buildForm(state.lists);
  langChanged();
  const t = tokenFromFragment() || sessionStorage.getItem(TOKEN_KEY);
  if (t) await signIn(t);
  startLive(state.lists);
  pollStats();
  document.body.dataset.ready = 'true';
}

main().catch((e) => setStatus(`The console could not start: ${e.message}`, 'error'));
