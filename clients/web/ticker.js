// ticker.js - browser client for tickerd (protocol 1). An ES module with no
// dependencies and no build step:
//
//   import { TickerClient, TickerWidget } from '/ticker.js';
//   const client = new TickerClient({ region: 'mena', lang: ['en', 'ar'] });
//   new TickerWidget(document.querySelector('#bar'), client, { view: 'crawl' });
//   client.start();
//
// ticker.global.js is the same code as a classic script (window.Ticker), made
// from this file by `make clients/web/ticker.global.js`: edit this file only.
//
// TickerClient keeps the current state of the ticker (items by ID, updates
// applied, retracted and expired items removed) across reconnects:
//  - transports WebSocket /v1/ws -> Server-Sent Events /v1/events -> long-poll
//    /v1/poll: it steps down when one keeps failing while the server answers
//    HTTP, or when one gives nothing within connectTimeoutMs (a proxy that
//    buffers); on a lower one it tries the better ones every stepUpAfterMs
//    and switches back when one works;
//  - reconnects after any drop with exponential backoff and full jitter;
//  - resumes with since=<last ID>&epoch=<epoch> on every (re)connect and every
//    switch, so nothing is missed and nothing is shown twice; a replay marked
//    gap:true replaces the state;
//  - tabs of one origin asking for the same server and filter share one
//    connection: the tab holding a Web Lock connects and hands every frame to
//    the others over a BroadcastChannel; when it goes, the next tab in the
//    lock's queue connects, resuming with since (share: false turns it off);
//  - with a getToken() callback, asks it for the token of every (re)connect and
//    renews the token before its exp: an `auth` frame on the open WebSocket, a
//    reconnect (resuming with since) on SSE, the next request on long-poll; a
//    close 1008 "token expired" is answered by a reconnect with a fresh token;
//  - with a `client` label (a screen's name), acks each retract to the server
//    once the item is off display (kill confirmation): after the 'state'
//    listeners ran (a TickerWidget removes its element there) and the page
//    painted, or later when a 'retract' listener took detail.hold(). Only the
//    tab holding a WebSocket acks: over SSE and long-poll nothing can.
// Events (CustomEvent, payload in .detail): item, update, retract, expire,
// reset, state, status, hello, replay, token, transport, share, error. See
// clients/web/README.md.

export const PROTOCOL = 1;
export const PRIORITIES = ['normal', 'breaking', 'urgent', 'flash'];
/** The transports, best first. */
export const TRANSPORTS = ['ws', 'sse', 'poll'];

const RTL_LANGS = new Set(['ar', 'he', 'fa', 'ur', 'ps', 'yi', 'ckb', 'dv', 'sd', 'ug']);

/** True when a BCP 47 language tag names a right-to-left script language. */
export function isRtlLang(lang) {
  return RTL_LANGS.has(String(lang || '').toLowerCase().split('-')[0]);
}

function cmpDigits(a, b) {
  a = a.replace(/^0+(?=\d)/, '');
  b = b.replace(/^0+(?=\d)/, '');
  if (a.length !== b.length) return a.length - b.length;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Orders two stream IDs ("<ms>-<seq>"): negative, 0 or positive. */
export function compareIds(a, b) {
  const [am, as = '0'] = String(a).split('-');
  const [bm, bs = '0'] = String(b).split('-');
  return cmpDigits(am, bm) || cmpDigits(as, bs);
}

function maxId(a, b) {
  if (!a) return b || null;
  if (!b) return a;
  return compareIds(a, b) >= 0 ? a : b;
}

const isId = (s) => typeof s === 'string' && /^\d+-\d+$/.test(s);
// Where a frame stands in the stream, for since=: an embargoed item's
// release carries the key it sorts at (its publish_at) besides its old id.
const positionOf = (m) => (isId(m.key) ? m.key : m.id);
const MAX_TIMEOUT = 2147483647;
const MIN_RENEW_MS = 1000; // renewals of one connection are at least this far apart
const POLL_FIRST_WAIT_S = 1; // the first poll of a connection answers soon: it is the "hello"
const POLL_SLACK_MS = 10000; // a poll unanswered this long after its wait_s has failed
const POLL_MIN_GAP_MS = 1000; // an empty answer sooner than asked for: wait this long before the next
const SHARED_RETRACTS = 1000; // retracted refs handed to a tab that joins

/** The `exp` claim (unix seconds) of a JWT, or null: the payload is only
 * decoded, never verified (that is the server's job). */
export function jwtExp(token) {
  try {
    const parts = String(token).split('.');
    if (parts.length !== 3) return null;
    let b64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
    while (b64.length % 4) b64 += '=';
    const bin = atob(b64);
    const text =
      typeof TextDecoder === 'function' ? new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0))) : bin;
    const exp = JSON.parse(text).exp;
    return typeof exp === 'number' && Number.isFinite(exp) ? exp : null;
  } catch {
    return null;
  }
}

const errMessage = (e) => String((e && e.message) || e || 'failed');

/** The endpoint URLs for a server given as a page, http(s) or ws(s) URL. */
export function endpoints(server) {
  const base = typeof location !== 'undefined' ? location.href : 'http://localhost/';
  const u = new URL(server || '/', base);
  let path = u.pathname.replace(/\/v1\/(ws|events|items|poll)\/?$/, '').replace(/\/[^/]*\.html?$/, '');
  path = path.replace(/\/+$/, '');
  const secure = u.protocol === 'https:' || u.protocol === 'wss:';
  const http = `${secure ? 'https' : 'http'}://${u.host}${path}`;
  return {
    ws: `${secure ? 'wss' : 'ws'}://${u.host}${path}/v1/ws`,
    sse: `${http}/v1/events`,
    poll: `${http}/v1/poll`,
    items: `${http}/v1/items`,
    http,
  };
}

const listParam = (v) => {
  if (v == null || v === '') return null;
  const arr = Array.isArray(v) ? v : String(v).split(',');
  const out = arr.map((s) => String(s).trim()).filter(Boolean);
  return out.length ? out.join(',') : null;
};

/** True when this browser can share one connection between tabs. */
export function canShare() {
  return (
    typeof BroadcastChannel === 'function' &&
    typeof navigator !== 'undefined' &&
    !!navigator.locks &&
    typeof navigator.locks.request === 'function'
  );
}

const DEFAULTS = {
  server: null, // page origin by default; any http(s)/ws(s) URL of the daemon
  region: null, // string, comma-separated string or array; null = all
  lang: null,
  priority: null, // minimum priority
  category: null,
  replay: null, // items replayed on first connect (server default 10)
  token: null, // a static token; with getToken, only the fallback when it fails
  getToken: null, // async ({reason, exp}) => token: called for every (re)connect and renewal
  renewBefore: 30, // renew this many seconds before exp (at most half the time left)
  tokenRetries: 3, // retries of a failed renewal before waiting for the server to close
  tokenRetryMs: 1000, // first retry after about this long, then doubling
  transport: 'auto', // 'auto' (ws, sse, poll), one of them, or a list such as 'sse,poll'
  share: true, // share one connection with the other tabs asking for the same
  backoffInitialMs: 2000, // first reconnect is random in [0, this)
  backoffMaxMs: 30000, // the window doubles up to this
  stableMs: 10000, // a connection that lived this long resets the backoff
  fallbackAfter: 3, // failed connects in a row, the server answering HTTP, before the next transport
  stepUpAfterMs: 300000, // on a lower transport this long: try the better ones
  connectTimeoutMs: 10000, // no hello by then: the transport delivers nothing, take the next
  pollWaitS: 25, // wait_s of each long-poll (the server's max is 60)
  client: null, // this screen's label ([A-Za-z0-9._-], 1..64): retracts are acked
};

export class TickerClient extends EventTarget {
  constructor(options = {}) {
    super();
    this.options = { ...DEFAULTS, ...options };
    this._items = new Map(); // id -> item (current state)
    this._retracted = new Set(); // refs retracted, so late copies never come back
    this.epoch = null; // epoch of the last complete hello+replay
    this.lastId = null; // newest stream ID received (resume point)
    this.status = 'idle'; // idle|connecting|connected|reconnecting|closed|failed
    this.transport = null; // 'ws' | 'sse' | 'poll' of the current/last connection
    this.role = 'solo'; // 'solo' (own connection), 'leader' (connects for other tabs too), 'follower'
    this.peers = 1; // tabs sharing this tab's connection, itself included (leader only)
    this.lastUrl = null;
    this.connections = 0;
    this._gen = 0;
    this._attempt = 0;
    this._level = 0; // index of the transport in use in _ladder()
    this._fails = 0; // connects failed in a row at this level while the server answered
    this._share = null;
    this._probes = new Set(); // connections trying a better transport
    this._skew = 0; // estimate of server clock - local clock (ms)
    this._skewConn = null;
    this._sock = null;
    this._timers = {};
    this._token = null; // the token of the current (or last) connection
    this.tokenExp = null; // its exp (unix s) as the server holds it, or null
    this.renewals = 0; // tokens renewed without a reconnect (auth answered, next poll) or by an SSE swap
    this._renewTry = 0; // failed renewals in a row
    this._renewing = false;
    this._authPending = null; // {token} of an auth frame sent and not answered yet
    this._renewal = false; // this connection replaces an SSE stream whose token runs out
    this._onVisible = () => {
      if (typeof document !== 'undefined' && document.visibilityState === 'visible') this._expireDue();
    };
    this._onOnline = () => {
      if (this.status === 'reconnecting' && this.role !== 'follower') {
        clearTimeout(this._timers.retry);
        this._timers.retry = setTimeout(() => this._open(), Math.random() * 1000);
      }
    };
    this._onPageHide = () => this._post({ t: 'leave' });
    this._kills = new Map(); // ref -> holds left, retracts to ack once off display
  }

  /** Current items: pinned ones first, then newest first: by ts (an
   * embargoed item's is its publish_at, later than its ID), then by ID. */
  get items() {
    return [...this._items.values()].sort(
      (a, b) => !!b.pinned - !!a.pinned || b.ts - a.ts || compareIds(b.id, a.id));
  }

  get(id) {
    return this._items.get(id);
  }

  /** Server time estimate in ms, used for `expires`. */
  now() {
    return Date.now() + this._skew;
  }

  start() {
    if (this.status !== 'idle' && this.status !== 'closed' && this.status !== 'failed') return this;
    if (typeof window !== 'undefined') {
      window.addEventListener('online', this._onOnline);
      window.addEventListener('pagehide', this._onPageHide);
    }
    // Hidden pages get throttled timers; check expiry as soon as they show again.
    if (typeof document !== 'undefined') document.addEventListener('visibilitychange', this._onVisible);
    this._attempt = 0;
    this._begin();
    return this;
  }

  close() {
    this._gen++;
    this._teardown();
    this._leaveShare();
    this._stopProbes();
    clearTimeout(this._timers.retry);
    clearTimeout(this._timers.expire);
    clearTimeout(this._timers.stepUp);
    if (typeof window !== 'undefined') {
      window.removeEventListener('online', this._onOnline);
      window.removeEventListener('pagehide', this._onPageHide);
    }
    if (typeof document !== 'undefined') document.removeEventListener('visibilitychange', this._onVisible);
    this._setStatus('closed', {});
  }

  /** Changes the filter: the state is emptied and rebuilt from a fresh replay. */
  setFilter(filter = {}) {
    for (const k of ['region', 'lang', 'priority', 'category', 'replay', 'token']) {
      if (k in filter) this.options[k] = filter[k];
    }
    const removed = this.items;
    this._items.clear();
    this.lastId = null;
    this._emit('reset', { reason: 'filter', removed });
    this._emitState();
    this._scheduleExpiry();
    if (this.status !== 'idle' && this.status !== 'closed') {
      this._gen++;
      this._teardown();
      this._leaveShare();
      this._stopProbes();
      clearTimeout(this._timers.retry);
      this._attempt = 0;
      this._begin();
    }
  }

  /** A connection of our own, or a place in the queue of the tabs sharing one. */
  _begin() {
    if (this.options.share !== false && canShare()) this._joinShare();
    else this._open();
  }

  // ---- connection ----

  _query() {
    const o = this.options;
    const q = new URLSearchParams();
    for (const k of ['region', 'lang', 'category']) {
      const v = listParam(o[k]);
      if (v) q.set(k, v);
    }
    if (o.priority) q.set('priority', String(o.priority));
    if (this.lastId && this.epoch) {
      q.set('since', this.lastId);
      q.set('epoch', this.epoch);
    } else if (o.replay != null && o.replay !== '') {
      q.set('replay', String(o.replay));
    }
    const token = this._token || o.token;
    if (token) q.set('token', token);
    if (o.client) q.set('client', String(o.client));
    return q;
  }

  /** The transports this client may use, best first: the `transport` option
   * less what this browser lacks. */
  _ladder() {
    const have = {
      ws: typeof WebSocket !== 'undefined',
      sse: typeof EventSource !== 'undefined',
      poll: typeof fetch === 'function',
    };
    const t = this.options.transport;
    const want = !t || t === 'auto' ? TRANSPORTS : (listParam(t) || '').split(',');
    const out = want.filter((k, i) => TRANSPORTS.includes(k) && have[k] && want.indexOf(k) === i);
    return out.length ? out : [want[0] || 'ws'];
  }

  _kind() {
    const l = this._ladder();
    return l[Math.min(this._level, l.length - 1)];
  }

  /** opts.token: a token already fetched (the SSE renewal); opts.quiet: no
   * `connecting` status (the SSE renewal, a switch of transport or a takeover
   * of the tabs' connection, made while `connected`); opts.renewal: this
   * connection renews the token. */
  _open(opts = {}) {
    clearTimeout(this._timers.retry);
    const gen = ++this._gen;
    const kind = this._kind();
    this._hello = null;
    this._staged = null;
    this._openedAt = 0;
    this._renewal = !!opts.renewal;
    this.transport = kind;
    if (!opts.quiet && this.status !== 'reconnecting' && this.status !== 'connecting') this._setStatus('connecting', {});
    if (opts.token || typeof this.options.getToken !== 'function') {
      this._token = opts.token || this.options.token || null;
      this._connect(gen, kind);
      return;
    }
    this._fetchToken('connect').then(
      (token) => {
        if (gen !== this._gen) return;
        this._token = token;
        this._connect(gen, kind);
      },
      (e) => {
        if (gen !== this._gen) return;
        this._emit('error', { code: 'token_unavailable', message: errMessage(e), source: 'getToken' });
        // Fall back to the last token, or the static one, unless it is known to have expired.
        const fallback = [this._token, this.options.token].find((t) => {
          const exp = t && jwtExp(t);
          return t && (exp == null || exp * 1000 > this.now() + 1000);
        });
        if (fallback) {
          this._token = fallback;
          this._connect(gen, kind);
          return;
        }
        this._gen++;
        this._scheduleRetry({ code: 0, reason: `no token: ${errMessage(e)}` });
      },
    );
  }

  /** getToken(), bounded by connectTimeoutMs; resolves to a non-empty string. */
  _fetchToken(reason) {
    const fn = this.options.getToken;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('getToken timed out')), this.options.connectTimeoutMs);
      Promise.resolve()
        .then(() => fn({ reason, exp: this.tokenExp }))
        .then(
          (token) => {
            clearTimeout(timer);
            if (typeof token === 'string' && token) resolve(token);
            else reject(new Error('getToken gave no token'));
          },
          (e) => {
            clearTimeout(timer);
            reject(e);
          },
        );
    });
  }

  _connect(gen, kind) {
    const q = this._query();
    this._resuming = q.has('since');
    if (kind === 'poll') q.set('wait_s', String(POLL_FIRST_WAIT_S));
    const qs = q.toString();
    const url = endpoints(this.options.server)[kind] + (qs ? `?${qs}` : '');
    this.lastUrl = url;
    // Nothing by then, not even a close: something in between holds the
    // stream back (or swallows it), so this transport goes at once.
    this._timers.connect = setTimeout(
      () => this._drop(gen, { code: 0, reason: 'connect timeout', silent: true }),
      this.options.connectTimeoutMs,
    );
    try {
      if (kind === 'sse') this._openSse(gen, url);
      else if (kind === 'poll') this._openPoll(gen, url);
      else this._openWs(gen, url);
    } catch (e) {
      setTimeout(() => this._drop(gen, { code: 0, reason: String(e && e.message) }), 0);
    }
  }

  _openWs(gen, url) {
    const ws = new WebSocket(url);
    this._sock = ws;
    ws.onmessage = (ev) => {
      if (gen === this._gen) this._onFrame(gen, ev.data);
    };
    ws.onclose = (ev) => this._drop(gen, { code: ev.code, reason: ev.reason });
    ws.onerror = () => {}; // a close event follows
  }

  _openSse(gen, url) {
    const es = new EventSource(url);
    this._sock = es;
    const onData = (ev) => {
      if (gen === this._gen) this._onFrame(gen, ev.data);
    };
    for (const t of ['hello', 'item', 'update', 'retract', 'replay', 'gap', 'message']) {
      es.addEventListener(t, onData);
    }
    es.onerror = (ev) => {
      if (ev && typeof ev.data === 'string') return onData(ev); // an `event: error` frame
      // EventSource would retry by itself without our epoch; do it ourselves.
      this._drop(gen, { code: 0, reason: 'event stream error' });
    };
  }

  // ---- long-poll ----

  /** A long-poll "connection": one GET /v1/poll after another, each resuming
   * from the last; the first answer stands for hello + replay. */
  _openPoll(gen, url) {
    const link = {
      ac: null,
      restart: false,
      close() {
        if (this.ac) this.ac.abort();
      },
    };
    this._sock = link;
    this._poll(gen, link, url, POLL_FIRST_WAIT_S);
  }

  async _poll(gen, link, url, waitS) {
    const ac = new AbortController();
    link.ac = ac;
    link.restart = false;
    const timer = setTimeout(() => ac.abort(), waitS * 1000 + POLL_SLACK_MS);
    const t0 = Date.now();
    let r, body;
    try {
      r = await fetch(url, { cache: 'no-store', signal: ac.signal });
      body = r.ok ? await r.json() : (await r.text()).trim();
    } catch (e) {
      clearTimeout(timer);
      if (gen !== this._gen) return;
      if (link.restart) return this._pollNext(gen, link); // a renewed token: ask again with it
      this._drop(gen, { code: 0, reason: ac.signal.aborted ? 'poll timeout' : errMessage(e) });
      return;
    }
    clearTimeout(timer);
    if (gen !== this._gen) return;
    if (!r.ok) return this._drop(gen, { code: r.status, reason: body || `HTTP ${r.status}` });
    if (!body || typeof body !== 'object' || !Array.isArray(body.events)) {
      return this._drop(gen, { code: 0, reason: 'not a poll answer' });
    }
    this._onPoll(gen, body);
    if (gen !== this._gen) return;
    if (!body.events.length && waitS > POLL_FIRST_WAIT_S && Date.now() - t0 < POLL_MIN_GAP_MS) {
      this._timers.poll = setTimeout(() => this._pollNext(gen, link), POLL_MIN_GAP_MS); // no spinning
    } else {
      this._pollNext(gen, link);
    }
  }

  _pollNext(gen, link) {
    if (gen !== this._gen) return;
    const waitS = Math.max(1, Math.min(60, Math.round(Number(this.options.pollWaitS) || 25)));
    const q = this._query();
    q.set('wait_s', String(waitS));
    this._poll(gen, link, `${endpoints(this.options.server).poll}?${q}`, waitS);
  }

  /** One poll answer as the frames a WebSocket would have carried. */
  _onPoll(gen, body) {
    const epochChanged = this.epoch != null && body.epoch != null && body.epoch !== this.epoch;
    if (!this._hello || body.gap || epochChanged) {
      if (this._hello) this._resuming = true; // a gap on a live poll: the replay replaces the state
      this._onMessage(gen, { type: 'hello', protocol: PROTOCOL, epoch: body.epoch, last_id: body.last_id });
      for (const m of body.events) this._onMessage(gen, m);
      this._onMessage(gen, { type: 'replay', count: body.events.length, gap: !!body.gap });
      return;
    }
    for (const m of body.events) this._onMessage(gen, m);
    // Entries up to last_id that did not match are behind us too.
    if (isId(body.last_id)) this._onMessage(gen, { type: 'seen', last_id: body.last_id });
  }

  // ---- teardown, failures, fallback ----

  _teardown() {
    clearTimeout(this._timers.connect);
    clearInterval(this._timers.ping);
    clearTimeout(this._timers.renew);
    clearTimeout(this._timers.poll);
    this._authPending = null;
    this._renewing = false;
    const s = this._sock;
    this._sock = null;
    if (!s) return;
    try {
      if ('onmessage' in s) s.onmessage = null;
      s.onclose = null;
      s.onerror = null;
      s.close();
    } catch {
      /* already closed */
    }
  }

  _drop(gen, info) {
    if (gen !== this._gen) return;
    this._gen++;
    const hadHello = !!this._hello;
    const lived = hadHello ? Date.now() - this._openedAt : 0;
    // The server ends a connection at its token's exp: a WebSocket with 1008
    // "token expired", an SSE stream without a word (so: near exp), a poll
    // with 401.
    const nearExp = this.tokenExp != null && this.tokenExp * 1000 <= this.now() + 2000;
    const expired =
      hadHello &&
      ((info.code === 1008 && /token expired/i.test(info.reason || '')) ||
        (this.transport === 'sse' && nearExp) ||
        (this.transport === 'poll' && (info.code === 401 || nearExp)));
    this._teardown();
    this._staged = null; // an unfinished replay is discarded; state stays as it was
    if (hadHello) {
      this._fails = 0;
      if (lived >= this.options.stableMs) this._attempt = 0;
    } else {
      this._failed(this._gen, info);
    }
    let capMs = Infinity;
    if (expired) {
      const renewable = typeof this.options.getToken === 'function';
      this._emit('token', { status: 'expired', exp: this.tokenExp, transport: this.transport });
      if (!renewable) {
        this._emit('error', { code: 'token_expired', message: 'token expired: give a new one with setFilter({token})', source: 'server' });
      } else {
        capMs = 1000; // a fresh token is one getToken() away: come back soon (the backoff still grows)
      }
    }
    this._scheduleRetry({ code: info.code, reason: info.reason }, capMs);
  }

  /** A connect that failed before its hello. Silence (the connect timeout)
   * means the transport is held back on the way: the next one at once.
   * Otherwise /v1/items tells whether the server answers HTTP: if it does, the
   * transport failed and counts towards fallbackAfter; if not, the server is
   * down and switching would not help. */
  _failed(gen, info) {
    if (info.silent) {
      this._stepDown('no answer');
      return;
    }
    const level = this._level;
    this._probe(gen).then((up) => {
      if (!up || this._level !== level || this.role === 'follower') return;
      if (++this._fails >= Math.max(1, Number(this.options.fallbackAfter) || 1)) this._stepDown(info.reason || `closed ${info.code}`);
    });
  }

  /** The next transport down (from the last, the first again: a server that
   * answers HTTP but none of its transports is tried round). */
  _stepDown(reason) {
    const ladder = this._ladder();
    if (ladder.length < 2) return;
    this._setLevel((Math.min(this._level, ladder.length - 1) + 1) % ladder.length, reason);
  }

  _setLevel(level, reason) {
    const from = this._kind();
    this._level = level;
    this._fails = 0;
    this._emit('transport', { from, to: this._kind(), reason });
    this._scheduleStepUp();
  }

  /** The next _open() after a random delay in [0, window): full jitter, the
   * window doubling with each attempt in a row up to backoffMaxMs. */
  _scheduleRetry(info, capMs = Infinity) {
    const o = this.options;
    const windowMs = Math.min(o.backoffMaxMs, o.backoffInitialMs * 2 ** this._attempt, capMs);
    this._attempt = Math.min(this._attempt + 1, 20);
    const delay = Math.round(Math.random() * windowMs); // full jitter
    this._setStatus('reconnecting', { code: info.code, reason: info.reason, delayMs: delay, attempt: this._attempt });
    clearTimeout(this._timers.retry);
    this._timers.retry = setTimeout(() => this._open(), delay);
  }

  // ---- stepping back up ----

  _scheduleStepUp() {
    clearTimeout(this._timers.stepUp);
    if (this._level === 0 || !(this.options.stepUpAfterMs > 0)) return;
    this._timers.stepUp = setTimeout(() => this._stepUp(), Math.min(MAX_TIMEOUT, this.options.stepUpAfterMs));
  }

  /** Tries each better transport with a connection of its own (the current
   * one keeps delivering); switches to the first that brings a hello and its
   * replay marker, resuming with since. */
  async _stepUp() {
    const ladder = this._ladder();
    const level = this._level;
    for (let k = 0; k < Math.min(level, ladder.length); k++) {
      const ok = await this._tryTransport(ladder[k]);
      if (this._level !== level || this.role === 'follower' || ['idle', 'closed', 'failed'].includes(this.status)) return;
      if (!ok) continue;
      this._setLevel(k, 'step up');
      if (this.status === 'connected') {
        this._gen++;
        this._teardown();
        this._open({ quiet: true });
      } else {
        this._open(); // was waiting to reconnect anyway
      }
      return;
    }
    this._scheduleStepUp();
  }

  /** Resolves to true when `kind` gets through: a hello and a replay marker
   * (replay=0), or a poll answer, within connectTimeoutMs. */
  _tryTransport(kind) {
    return new Promise((resolve) => {
      const q = this._query();
      q.delete('since');
      q.delete('epoch');
      q.delete('replay');
      if (kind !== 'poll') q.set('replay', '0');
      else q.set('wait_s', String(POLL_FIRST_WAIT_S));
      const url = `${endpoints(this.options.server)[kind]}?${q}`;
      let sock = null;
      const probe = {};
      const finish = (ok) => {
        if (!this._probes.delete(probe)) return;
        clearTimeout(probe.timer);
        try {
          if (sock) sock.close();
        } catch {
          /* closed */
        }
        resolve(ok);
      };
      probe.stop = () => finish(false);
      probe.timer = setTimeout(() => finish(false), this.options.connectTimeoutMs);
      this._probes.add(probe);
      const onText = (text) => {
        try {
          if (JSON.parse(text).type === 'replay') finish(true);
        } catch {
          /* not JSON */
        }
      };
      try {
        if (kind === 'ws') {
          sock = new WebSocket(url);
          sock.onmessage = (e) => onText(e.data);
          sock.onclose = () => finish(false);
        } else if (kind === 'sse') {
          sock = new EventSource(url);
          sock.addEventListener('replay', (e) => onText(e.data));
          sock.onerror = () => finish(false);
        } else {
          const ac = new AbortController();
          sock = { close: () => ac.abort() };
          fetch(url, { cache: 'no-store', signal: ac.signal })
            .then((r) => (r.ok ? r.json() : null))
            .then((b) => finish(!!(b && Array.isArray(b.events))), () => finish(false));
        }
      } catch {
        finish(false);
      }
    });
  }

  _stopProbes() {
    for (const p of [...this._probes]) p.stop();
  }

  // ---- token renewal ----

  /** Renews the token now (e.g. after the user's rights changed); resolves to
   * true once the new token is in force. Needs getToken. */
  renewToken() {
    if (typeof this.options.getToken !== 'function' || !this._hello || this.role === 'follower') return Promise.resolve(false);
    const gen = this._gen;
    return new Promise((resolve) => {
      const done = (e) => {
        if (e.type === 'status' && e.detail.status === 'connected') return;
        this.removeEventListener('token', done);
        this.removeEventListener('status', done);
        resolve(e.type === 'token' && e.detail.status === 'renewed');
      };
      this.addEventListener('token', done);
      this.addEventListener('status', done); // dropped meanwhile
      this._renew(gen);
    });
  }

  _scheduleRenew(gen) {
    clearTimeout(this._timers.renew);
    const exp = this.tokenExp;
    if (exp == null || typeof this.options.getToken !== 'function') return;
    const left = exp * 1000 - this.now();
    const lead = Math.min(Math.max(0, Number(this.options.renewBefore) || 0) * 1000, left / 2);
    const delay = Math.min(MAX_TIMEOUT, Math.max(MIN_RENEW_MS, left - lead));
    this._timers.renew = setTimeout(() => this._renew(gen), delay);
  }

  async _renew(gen) {
    if (gen !== this._gen || this._renewing || this._authPending) return;
    clearTimeout(this._timers.renew);
    this._renewing = true;
    let token;
    try {
      token = await this._fetchToken('renew');
    } catch (e) {
      if (gen !== this._gen) return;
      this._renewing = false;
      this._renewFailed(gen, { code: 'token_unavailable', message: errMessage(e), source: 'getToken' });
      return;
    }
    if (gen !== this._gen) return;
    this._renewing = false;
    const exp = jwtExp(token);
    if (this.tokenExp != null && exp != null && exp <= this.tokenExp) {
      // Nothing gained (a cached token?): ask again a little later.
      this._renewFailed(gen, { code: 'token_stale', message: 'getToken gave a token that expires no later', source: 'getToken' }, false);
      return;
    }
    if (this.transport === 'ws') {
      const ws = this._sock;
      if (!ws || ws.readyState !== 1) return; // closing: the reconnect asks getToken again
      this._authPending = { token };
      try {
        ws.send(JSON.stringify({ type: 'auth', token }));
      } catch {
        return;
      }
      this._timers.renew = setTimeout(() => {
        if (gen !== this._gen || !this._authPending) return;
        this._authPending = null;
        this._renewFailed(gen, { code: 'timeout', message: 'no answer to auth', source: 'auth' });
      }, this.options.connectTimeoutMs);
    } else if (this.transport === 'poll') {
      // Every poll carries the token: the next one carries this. The one
      // waiting now is asked again at once, so no request outlives the old exp.
      this._token = token;
      this.tokenExp = exp;
      this._renewTry = 0;
      this.renewals++;
      this._emit('token', { status: 'renewed', via: 'request', exp, transport: 'poll' });
      this._scheduleRenew(gen);
      const link = this._sock;
      if (link && link.ac) {
        link.restart = true;
        link.ac.abort();
      }
    } else {
      // EventSource cannot send: a new stream with the fresh token, resuming with since.
      this._gen++;
      this._teardown();
      this._open({ token, quiet: true, renewal: true });
    }
  }

  _onAuth(gen, m) {
    const pending = this._authPending;
    if (!pending) return;
    this._authPending = null;
    clearTimeout(this._timers.renew);
    this._token = pending.token;
    this.tokenExp = typeof m.exp === 'number' ? m.exp : m.exp === null ? null : jwtExp(pending.token);
    this._renewTry = 0;
    this.renewals++;
    this._emit('token', { status: 'renewed', via: 'auth', exp: this.tokenExp, transport: this.transport });
    this._scheduleRenew(gen);
  }

  /** A renewal failed: retry with backoff while the token holds, a few times. */
  _renewFailed(gen, info, loud = true) {
    this._renewTry++;
    const attempt = this._renewTry;
    if (loud) this._emit('error', { code: info.code, message: info.message, source: info.source, attempt });
    const left = this.tokenExp != null ? this.tokenExp * 1000 - this.now() : Infinity;
    const detail = { exp: this.tokenExp, transport: this.transport, attempt, code: info.code, message: info.message };
    if (attempt > this.options.tokenRetries || left <= 500) {
      // Give up on this connection: the server closes it at exp, and the
      // reconnect asks getToken() again (with the reconnect backoff).
      this._emit('token', { status: 'failed', ...detail });
      return;
    }
    let delay = Math.min(this.options.tokenRetryMs * 2 ** (attempt - 1), left / 2);
    delay = Math.round(Math.max(250, delay) * (0.5 + Math.random() / 2));
    this._emit('token', { status: 'retrying', delayMs: delay, ...detail });
    clearTimeout(this._timers.renew);
    this._timers.renew = setTimeout(() => this._renew(gen), delay);
  }

  /** After a failed connect, asks /v1/items (same filter) why: a 400 means
   * the filter itself is refused, and retrying would never help. Resolves to
   * true when the server would serve this client over HTTP (2xx): then the
   * transport is what failed. A refusal (401, 403, 429, 503) or no answer
   * says the server would refuse (or cannot hear) it over any transport. */
  _probe(gen) {
    if (typeof fetch !== 'function') return Promise.resolve(true);
    const q = this._query();
    for (const k of ['since', 'epoch', 'replay']) q.delete(k);
    q.set('limit', '1');
    return fetch(`${endpoints(this.options.server).items}?${q}`, { cache: 'no-store' })
      .then(async (r) => {
        if (gen !== this._gen || this.status !== 'reconnecting') return r.ok;
        if (r.status === 400) {
          const message = (await r.text()).trim();
          clearTimeout(this._timers.retry);
          this._gen++;
          this._emit('error', { code: 'bad_request', status: 400, message });
          this._setStatus('failed', { reason: message });
        } else if (r.status === 401 || r.status === 403) {
          this._emit('error', { code: 'unauthorized', status: r.status, message: (await r.text()).trim() });
        }
        return r.ok;
      })
      .catch(() => false); // server down: keep retrying
  }

  _setStatus(status, extra) {
    this.status = status;
    const detail = { status, transport: this.transport, ...extra };
    if (this._share && this._share.leader) this._post({ t: 'status', detail, level: this._level });
    this._emit('status', detail);
  }

  _startHeartbeat(gen, seconds) {
    clearInterval(this._timers.ping);
    if (this.transport !== 'ws' || !(seconds > 0)) return;
    const hb = seconds * 1000;
    this._timers.ping = setInterval(() => {
      if (gen !== this._gen) return;
      const idle = Date.now() - this._lastFrameAt;
      if (idle > 2 * hb + 5000) this._drop(gen, { code: 0, reason: 'heartbeat timeout' });
      else if (idle >= hb && this._sock && this._sock.readyState === 1) {
        this._sock.send('{"type":"ping"}');
      }
    }, Math.max(1000, hb / 2));
  }

  // ---- one connection for the tabs of a browser ----

  /** The lock and channel name: the server and the filter, lists sorted. */
  _shareName() {
    const o = this.options;
    const list = (v) => (listParam(v) || '').split(',').filter(Boolean).sort().join(',');
    const key = [endpoints(o.server).http, list(o.region), list(o.lang), list(o.category), o.priority || '',
      o.replay == null ? '' : String(o.replay), listParam(o.transport) || 'auto', o.client || ''];
    return `tickerd ${JSON.stringify(key)}`;
  }

  /** Queues for the lock of this server and filter: the tab that holds it
   * connects for all (leader); the others take its frames from the channel
   * (followers) until the lock comes to them. The browser releases a lock
   * when its tab closes. */
  _joinShare() {
    const name = this._shareName();
    const s = {
      name,
      id: `${Date.now().toString(36)}.${Math.random().toString(36).slice(2)}`,
      chan: new BroadcastChannel(name),
      leader: false,
      synced: false, // holds the leader's state (or its own)
      joins: new Set(), // tabs waiting for a snapshot
      peers: new Set(), // the other tabs (leader's view)
      ac: new AbortController(),
      release: null,
    };
    this._share = s;
    this.role = 'follower';
    this.peers = 1;
    s.chan.onmessage = (e) => {
      if (this._share === s && e.data && typeof e.data === 'object') this._onShare(s, e.data);
    };
    navigator.locks
      .request(name, { signal: s.ac.signal }, () =>
        new Promise((release) => {
          if (this._share !== s) return release();
          s.release = release;
          this._lead(s);
        }),
      )
      .catch(() => {}); // AbortError: we left before our turn came
    if (this.status !== 'connecting') this._setStatus('connecting', {});
    this._post({ t: 'join' });
  }

  _leaveShare() {
    const s = this._share;
    if (!s) return;
    this._post({ t: 'leave' });
    this._share = null;
    s.ac.abort();
    if (s.release) s.release();
    s.chan.close();
    this.role = 'solo';
    this.peers = 1;
  }

  _post(msg) {
    const s = this._share;
    if (!s) return;
    try {
      s.chan.postMessage({ ...msg, from: s.id });
    } catch {
      /* closed, or a detail that cannot be cloned */
    }
  }

  /** This tab got the lock: it connects, resuming from the state it holds. */
  _lead(s) {
    s.leader = true;
    this.role = 'leader';
    this.peers = s.peers.size + 1;
    this._emit('share', { role: 'leader', peers: this.peers });
    this._post({ t: 'lead' });
    this._attempt = 0;
    this._scheduleStepUp();
    this._open({ quiet: s.synced && this.status === 'connected' });
  }

  _onShare(s, d) {
    if (s.leader) {
      if (d.t === 'join' || (d.t === 'here' && !d.synced)) {
        s.peers.add(d.from);
        this._answerJoin(s, d.from);
      } else if (d.t === 'here') {
        s.peers.add(d.from);
      } else if (d.t === 'leave') {
        s.peers.delete(d.from);
      } else {
        return; // frames of a leader that has just gone: our own resume covers them
      }
      if (this.peers !== s.peers.size + 1) {
        this.peers = s.peers.size + 1;
        this._emit('share', { role: 'leader', peers: this.peers });
      }
      return;
    }
    switch (d.t) {
      case 'lead':
        this._post({ t: 'here', synced: s.synced });
        this._emit('share', { role: 'follower' });
        break;
      case 'sync':
        if (d.to === s.id && !s.synced) this._adopt(s, d);
        break;
      case 'frame':
        if (!s.synced) break; // the snapshot on its way holds it
        this.lastUrl = d.url;
        this.transport = d.transport;
        if (d.m.type === 'hello') this._resuming = d.resuming;
        this._frame(d.m);
        break;
      case 'status':
        this._followLevel(d.level);
        this.transport = d.detail.transport;
        this.status = d.detail.status;
        this._emit('status', d.detail);
        break;
      default:
        break;
    }
  }

  /** A snapshot for a tab that joins, once the state is whole (not in the
   * middle of a replay): every frame posted after it is news to that tab. */
  _answerJoin(s, to) {
    if (this.epoch == null || this._staged) {
      s.joins.add(to);
      this._post({ t: 'status', detail: { status: this.status, transport: this.transport }, level: this._level });
      return;
    }
    s.joins.delete(to);
    this._post({
      t: 'sync',
      to,
      epoch: this.epoch,
      lastId: this.lastId,
      items: [...this._items.values()],
      retracted: [...this._retracted].slice(-SHARED_RETRACTS),
      hello: this._lastHello || null,
      status: this.status,
      transport: this.transport,
      level: this._level,
      url: this.lastUrl,
      skew: this._skew,
    });
  }

  _adopt(s, d) {
    s.synced = true;
    for (const r of d.retracted || []) this._retracted.add(r);
    const now = Date.now() + (d.skew || 0);
    const next = new Map();
    for (const it of d.items || []) if (!(it.expires && it.expires <= now) && !this._retracted.has(it.id)) next.set(it.id, it);
    this._skew = d.skew || 0;
    this.epoch = d.epoch;
    this.lastId = d.lastId;
    this.lastUrl = d.url;
    this.transport = d.transport;
    this._followLevel(d.level);
    if (d.hello) this._emit('hello', d.hello);
    this._replaceState(next, 'sync', false);
    this._emit('replay', { count: next.size, gap: false, reset: true, shared: true });
    this._emitState();
    this._scheduleExpiry();
    this._emit('share', { role: 'follower' });
    this.status = d.status;
    this._emit('status', { status: d.status, transport: d.transport });
  }

  /** A follower starts where its leader is on the ladder, should it lead. */
  _followLevel(level) {
    if (Number.isInteger(level) && level >= 0 && level < this._ladder().length) this._level = level;
  }

  // ---- protocol ----

  _onFrame(gen, text) {
    let m;
    try {
      m = JSON.parse(text);
    } catch {
      return;
    }
    if (m && typeof m === 'object') this._onMessage(gen, m);
  }

  /** A frame of this tab's own connection. */
  _onMessage(gen, m) {
    this._lastFrameAt = Date.now();
    switch (m.type) {
      case 'hello':
        clearTimeout(this._timers.connect);
        this._hello = m;
        this._openedAt = Date.now();
        this.connections++;
        this._fails = 0;
        this._startHeartbeat(gen, Number(m.heartbeat_s));
        this.tokenExp = this._token ? jwtExp(this._token) : null;
        if (typeof this.options.getToken === 'function') this._renewTry = 0;
        this._scheduleRenew(gen);
        this._setStatus('connected', { epoch: m.epoch });
        this._frame(m);
        if (this._renewal) {
          this._renewal = false;
          this.renewals++;
          this._emit('token', { status: 'renewed', via: 'reconnect', exp: this.tokenExp, transport: this.transport });
        }
        break;
      case 'auth':
        this._onAuth(gen, m);
        return;
      case 'error':
        if (this._authPending) {
          // Frames are answered in order: this one answers our auth (the old token holds).
          this._authPending = null;
          clearTimeout(this._timers.renew);
          this._renewFailed(gen, { code: m.code, message: m.message, source: 'auth' });
        } else {
          this._emit('error', { code: m.code, message: m.message });
        }
        return;
      case 'item':
      case 'update':
      case 'retract':
      case 'replay':
      case 'seen':
        this._frame(m);
        break;
      default:
        return; // pong, gap (a fresh hello follows) and anything newer
    }
    const s = this._share;
    if (!s || !s.leader) return;
    this._post({ t: 'frame', m, resuming: this._resuming, url: this.lastUrl, transport: this.transport });
    if (m.type === 'replay') {
      // The state is whole again: the tabs waiting for it get it now, after
      // the marker, so that every frame they see after it is news.
      s.synced = true;
      for (const to of [...s.joins]) this._answerJoin(s, to);
    }
  }

  /** A frame, from this tab's connection or the leader's: the state. */
  _frame(m) {
    switch (m.type) {
      case 'hello':
        this._hello = m;
        this._lastHello = m;
        this._staged = [];
        this._skewConn = null;
        this._emit('hello', m);
        break;
      case 'item':
      case 'update':
      case 'retract':
        if (this._staged) this._staged.push(m);
        else this._live(m);
        break;
      case 'replay':
        if (this._staged) this._endReplay(m); // else a marker without its hello: nothing to end
        break;
      case 'seen':
        if (!this._staged && this.epoch) this.lastId = maxId(this.lastId, m.last_id);
        break;
      default:
        break;
    }
  }

  _live(m) {
    if (m.type === 'item' && Number.isFinite(m.ts) && !m.replay) {
      const sample = m.ts - Date.now(); // a lower bound of the clock offset
      this._skewConn = this._skewConn == null ? sample : Math.max(this._skewConn, sample);
      this._skew = this._skewConn;
    }
    if (isId(positionOf(m))) this.lastId = maxId(this.lastId, positionOf(m));
    if (this._apply(this._items, m, true, false)) {
      this._emitState();
      this._scheduleExpiry();
    }
  }

  _endReplay(marker) {
    const hello = this._hello || {};
    const staged = this._staged || [];
    this._staged = null;
    const epochChanged = this.epoch != null && hello.epoch != null && hello.epoch !== this.epoch;
    const reset = !!marker.gap || !this._resuming || epochChanged;
    let last = isId(hello.last_id) && hello.last_id !== '0-0' ? hello.last_id : null;
    for (const m of staged) if (isId(positionOf(m))) last = maxId(last, positionOf(m));
    if (reset) {
      if (epochChanged) this._retracted.clear(); // old IDs mean nothing now
      const next = new Map();
      for (const m of staged) this._apply(next, m, false, true);
      this._replaceState(next, epochChanged ? 'epoch' : marker.gap ? 'gap' : 'replay', !!marker.gap);
      this.lastId = last;
    } else {
      for (const m of staged) this._apply(this._items, m, true, true);
      this.lastId = maxId(this.lastId, last);
    }
    if (hello.epoch != null) this.epoch = hello.epoch;
    this._emit('replay', { count: marker.count, gap: !!marker.gap, reset });
    this._emitState();
    this._scheduleExpiry();
  }

  /** The state becomes `next`: `reset` for what went, `item`/`update` for
   * what is new or changed. */
  _replaceState(next, reason, loud) {
    const removed = [];
    for (const [id, it] of this._items) if (!next.has(id)) removed.push(it);
    const old = this._items;
    this._items = next;
    if (removed.length || loud) this._emit('reset', { reason, removed });
    for (const [id, it] of next) {
      const prev = old.get(id);
      if (!prev) this._emit('item', { item: it, replay: true });
      else if (JSON.stringify(prev) !== JSON.stringify(it)) this._emit('update', { item: it, previous: prev, replay: true });
    }
  }

  /** Applies one event to `map`; emits events when `emit`. True if changed. */
  _apply(map, m, emit, replay) {
    const now = this.now();
    if (m.type === 'item') {
      if (!isId(m.id) || this._retracted.has(m.id) || map.has(m.id)) return false;
      const it = normalize(m, m.id);
      if (it.expires && it.expires <= now) return false;
      map.set(it.id, it);
      if (emit) this._emit('item', { item: it, replay: !!replay });
      return true;
    }
    if (m.type === 'update') {
      const ref = m.ref;
      if (!isId(ref) || this._retracted.has(ref)) return false;
      const prev = map.get(ref);
      if (prev && prev.updateId && isId(m.id) && compareIds(m.id, prev.updateId) <= 0) return false;
      const it = normalize(m, ref);
      it.updateId = isId(m.id) ? m.id : null;
      if (it.expires && it.expires <= now) {
        if (!prev) return false;
        map.delete(ref);
        if (emit) this._emit('expire', { id: ref, item: prev });
        return true;
      }
      map.set(ref, it);
      if (emit) {
        if (prev) this._emit('update', { id: m.id, item: it, previous: prev, replay: !!replay });
        else this._emit('item', { item: it, replay: !!replay });
      }
      return true;
    }
    if (m.type === 'retract') {
      const ref = m.ref;
      if (!isId(ref)) return false;
      this._retracted.add(ref);
      if (this._retracted.size > 10000) {
        const first = this._retracted.values().next().value;
        this._retracted.delete(first);
      }
      const prev = map.get(ref);
      if (this.options.client && !this._kills.has(ref)) this._kills.set(ref, 0);
      if (!prev) return false;
      map.delete(ref);
      if (emit) this._emit('retract', { id: ref, retractId: m.id, item: prev, replay: !!replay, hold: () => this._hold(ref) });
      return true;
    }
    return false;
  }

  _scheduleExpiry() {
    clearTimeout(this._timers.expire);
    let next = Infinity;
    for (const it of this._items.values()) if (it.expires && it.expires < next) next = it.expires;
    if (next === Infinity) return;
    const delay = Math.min(MAX_TIMEOUT, Math.max(0, next - this.now()) + 5);
    this._timers.expire = setTimeout(() => this._expireDue(), delay);
  }

  _expireDue() {
    const now = this.now();
    let changed = false;
    for (const [id, it] of [...this._items]) {
      if (it.expires && it.expires <= now) {
        this._items.delete(id);
        changed = true;
        this._emit('expire', { id, item: it });
      }
    }
    if (changed) this._emitState();
    this._scheduleExpiry();
  }

  _emitState() {
    this._emit('state', { items: this.items });
    this._ackOffDisplay();
  }

  // ---- kill confirmation ----

  /** A 'retract' listener that takes the item off display later holds its
   * ack: it calls the function returned once the item is gone. */
  _hold(ref) {
    if (!this._kills.has(ref)) return () => {};
    this._kills.set(ref, this._kills.get(ref) + 1);
    let done = false;
    return () => {
      if (done || !this._kills.has(ref)) return;
      done = true;
      this._kills.set(ref, this._kills.get(ref) - 1);
      this._ackOffDisplay();
    };
  }

  /** The retracts no listener holds are off display once the page has
   * painted (a hidden page paints nothing: now). */
  _ackOffDisplay() {
    const due = [...this._kills].filter(([, holds]) => holds <= 0).map(([ref]) => ref);
    if (!due.length) return;
    for (const ref of due) this._kills.delete(ref);
    const send = () => {
      const ws = this._sock;
      if (this.transport !== 'ws' || !ws || ws.readyState !== 1) return;
      for (const ref of due) ws.send(JSON.stringify({ type: 'ack', ref }));
    };
    const hidden = typeof document !== 'undefined' && document.visibilityState === 'hidden';
    if (typeof requestAnimationFrame === 'function' && !hidden) requestAnimationFrame(() => setTimeout(send, 0));
    else send();
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

function normalize(m, id) {
  const it = {
    id,
    ts: Number.isFinite(m.ts) ? m.ts : Number(String(id).split('-')[0]),
    lang: m.lang || '',
    region: Array.isArray(m.region) ? m.region : m.region ? String(m.region).split(',') : [],
    priority: PRIORITIES.includes(m.priority) ? m.priority : 'breaking',
    text: String(m.text == null ? '' : m.text),
    expires: Number.isFinite(m.expires) ? m.expires : 0,
  };
  if (m.category) it.category = m.category;
  if (m.url && /^https?:\/\//i.test(m.url)) it.url = m.url;
  if (m.source) it.source = String(m.source);
  if (m.pinned === true) it.pinned = true; // an update without it unpins
  return it;
}

// ---------------------------------------------------------------------------
// TickerWidget: renders a TickerClient as a horizontal crawl or a list.

const LABELS = {
  en: { flash: 'FLASH', urgent: 'URGENT', breaking: 'BREAKING', bar: 'BREAKING' },
  ar: { flash: 'عاجل جداً', urgent: 'عاجل', breaking: 'عاجل', bar: 'عاجل' },
  es: { flash: 'ÚLTIMA HORA', urgent: 'URGENTE', breaking: 'ÚLTIMA HORA', bar: 'ÚLTIMA HORA' },
};
const STATUS_TEXT = {
  idle: '',
  connecting: 'Connecting…',
  connected: 'Live',
  reconnecting: 'Reconnecting…',
  closed: 'Offline',
  failed: 'Unavailable',
};

export function badgeText(priority, lang) {
  const l = LABELS[String(lang || '').split('-')[0]] || LABELS.en;
  return l[priority] || '';
}

/** The element for one item (li in a list, span in a crawl). */
export function renderItem(item, tag = 'li', opts = {}) {
  const el = document.createElement(tag);
  fillItem(el, item, opts);
  return el;
}

function fillItem(el, item, opts = {}) {
  el.className = 'tk-item';
  el.dataset.id = item.id;
  el.dataset.priority = item.priority;
  el.dataset.version = item.updateId || item.id;
  if (item.category) el.dataset.category = item.category;
  else delete el.dataset.category;
  if (item.pinned) el.dataset.pinned = 'true';
  else delete el.dataset.pinned;
  if (item.lang) el.lang = item.lang;
  el.dir = 'auto'; // children below carry their own dir, so the headline decides
  el.replaceChildren();
  if (item.priority === 'urgent' || item.priority === 'flash') {
    const b = document.createElement('span');
    b.className = 'tk-badge';
    b.dir = 'auto';
    b.textContent = badgeText(item.priority, item.lang);
    el.append(b);
  }
  let t;
  if (item.url && opts.links !== false) {
    t = document.createElement('a');
    t.href = item.url;
    t.target = '_blank';
    t.rel = 'noopener noreferrer';
  } else {
    t = document.createElement('span');
  }
  t.className = 'tk-text';
  t.textContent = item.text;
  el.append(t);
  if (item.source && opts.source !== false) {
    const s = document.createElement('span');
    s.className = 'tk-source';
    s.dir = 'auto';
    s.textContent = item.source;
    el.append(s);
  }
  if (opts.time !== false && item.ts) {
    const tm = document.createElement('time');
    tm.className = 'tk-time';
    tm.dir = 'ltr';
    const d = new Date(item.ts);
    tm.dateTime = d.toISOString();
    try {
      tm.textContent = d.toLocaleTimeString(item.lang || undefined, { hour: '2-digit', minute: '2-digit' });
    } catch {
      tm.textContent = d.toISOString().slice(11, 16);
    }
    el.append(tm);
  }
}

export class TickerWidget {
  /**
   * el: container; client: a TickerClient; options:
   *   view 'crawl' | 'list', speed (px/s), label (text before the crawl, '' for none),
   *   maxItems, direction 'auto' | 'ltr' | 'rtl', showStatus, links, source, time.
   */
  constructor(el, client, options = {}) {
    this.el = el;
    this.client = client;
    this.options = { view: 'crawl', speed: 80, label: null, maxItems: 50, direction: 'auto', showStatus: true, ...options };
    this._els = new Map();
    this._anim = null;
    this._items = [];
    this._restartNext = false;
    this._mq = typeof matchMedia === 'function' ? matchMedia('(prefers-reduced-motion: reduce)') : null;
    this._build();
    this._onState = (e) => this._render(e.detail.items);
    this._onStatus = (e) => this._setStatus(e.detail);
    this._onItem = (e) => {
      if (!e.detail.replay) this._restartNext = true; // new headline: start the crawl over
    };
    this._onMotion = () => this._layout(false);
    this._onResize = () => this._layout(false);
    client.addEventListener('state', this._onState);
    client.addEventListener('status', this._onStatus);
    client.addEventListener('item', this._onItem);
    if (this._mq) this._mq.addEventListener('change', this._onMotion);
    if (typeof ResizeObserver === 'function') {
      this._ro = new ResizeObserver(this._onResize);
      this._ro.observe(this.viewport);
    }
    this._setStatus({ status: client.status, transport: client.transport });
    this._render(client.items);
  }

  get view() {
    return this.options.view;
  }

  set view(v) {
    this.options.view = v === 'list' ? 'list' : 'crawl';
    this._build();
    this._render(this.client.items);
  }

  get reducedMotion() {
    return !!(this._mq && this._mq.matches) || this.options.motion === false;
  }

  destroy() {
    this.client.removeEventListener('state', this._onState);
    this.client.removeEventListener('status', this._onStatus);
    this.client.removeEventListener('item', this._onItem);
    if (this._mq) this._mq.removeEventListener('change', this._onMotion);
    if (this._ro) this._ro.disconnect();
    if (this._anim) this._anim.cancel();
    this.el.replaceChildren();
  }

  _build() {
    const o = this.options;
    const el = this.el;
    if (this._anim) this._anim.cancel();
    this._anim = null;
    el.classList.add('tk');
    el.dataset.view = o.view;
    el.replaceChildren();
    this._els.clear();
    if (o.label) {
      this.labelEl = document.createElement('div');
      this.labelEl.className = 'tk-label';
      this.labelEl.dir = 'auto';
      this.labelEl.textContent = o.label;
      el.append(this.labelEl);
    }
    this.viewport = document.createElement('div');
    this.viewport.className = 'tk-viewport';
    this.track = document.createElement(o.view === 'list' ? 'ol' : 'div');
    this.track.className = o.view === 'list' ? 'tk-list' : 'tk-track';
    this.viewport.append(this.track);
    el.append(this.viewport);
    this.statusEl = document.createElement('div');
    this.statusEl.className = 'tk-status';
    this.statusEl.setAttribute('role', 'status');
    this.statusEl.setAttribute('aria-live', 'polite');
    if (!o.showStatus) this.statusEl.hidden = true;
    el.append(this.statusEl);
    if (this._ro) this._ro.observe(this.viewport);
    this._setStatus({ status: this.client.status, transport: this.client.transport });
  }

  setLabel(text) {
    this.options.label = text;
    if (this.labelEl) this.labelEl.textContent = text || '';
    else if (text) {
      this._build();
      this._render(this.client.items);
    }
  }

  _setStatus(d) {
    const s = d.status || 'idle';
    this.el.dataset.state = s;
    if (d.transport) this.el.dataset.transport = d.transport;
    this.statusEl.dataset.state = s;
    if (d.transport) this.statusEl.dataset.transport = d.transport;
    this.statusEl.textContent = STATUS_TEXT[s] ?? s;
    if (d.reason && s === 'failed') this.statusEl.title = d.reason;
    else this.statusEl.removeAttribute('title');
  }

  _render(items) {
    const o = this.options;
    const list = items.slice(0, o.maxItems);
    this._items = list;
    const tag = o.view === 'list' ? 'li' : 'span';
    const keep = new Set(list.map((it) => it.id));
    for (const [id, node] of this._els) {
      if (!keep.has(id)) {
        node.remove();
        this._els.delete(id);
      }
    }
    let prevNode = null;
    for (const it of list) {
      let node = this._els.get(it.id);
      if (!node) {
        node = renderItem(it, tag, o);
        this._els.set(it.id, node);
      } else if (node.dataset.version !== (it.updateId || it.id) || node.textContent.indexOf(it.text) < 0) {
        fillItem(node, it, o);
      }
      const want = prevNode ? prevNode.nextSibling : this.track.firstChild;
      if (want !== node) this.track.insertBefore(node, want);
      prevNode = node;
    }
    this.el.dataset.count = String(list.length);
    this.el.dataset.empty = list.length ? 'false' : 'true';
    const restart = this._restartNext;
    this._restartNext = false;
    this._layout(restart);
  }

  _direction() {
    const d = this.options.direction;
    if (d === 'ltr' || d === 'rtl') return d;
    return this._items.length && this._items.every((it) => isRtlLang(it.lang)) ? 'rtl' : 'ltr';
  }

  /** (Re)starts the crawl animation, keeping the current position unless `restart`. */
  _layout(restart) {
    if (this.options.view !== 'crawl') return;
    const dir = this._direction();
    // An all-Arabic crawl runs right to left: label on the right, text moving right.
    this.el.dir = dir;
    this.viewport.dir = dir;
    this.track.dir = dir;
    this.el.dataset.direction = dir;
    const reduced = this.reducedMotion;
    this.el.dataset.motion = reduced ? 'reduced' : 'crawl';
    const W = this.viewport.clientWidth;
    const T = this.track.scrollWidth;
    let x = null;
    if (this._anim) {
      if (!restart && this._anim.playState === 'running' && this._dir === dir) {
        const tr = getComputedStyle(this.track).transform;
        if (tr && tr !== 'none') x = new DOMMatrixReadOnly(tr).m41;
      }
      this._anim.cancel();
      this._anim = null;
    }
    if (reduced || !this._items.length || !W || !T || typeof this.track.animate !== 'function') {
      this.track.style.transform = '';
      return;
    }
    this._dir = dir;
    const dist = W + T;
    const duration = (dist / Math.max(1, Number(this.options.speed) || 80)) * 1000;
    const from = dir === 'rtl' ? -T : W;
    const to = dir === 'rtl' ? W : -T;
    let p = 0;
    if (x != null) p = (x - from) / (to - from);
    if (!(p >= 0 && p < 1)) p = 0;
    this._anim = this.track.animate(
      [{ transform: `translateX(${from}px)` }, { transform: `translateX(${to}px)` }],
      { duration, iterations: Infinity, easing: 'linear' },
    );
    this._anim.currentTime = p * duration;
    if (this._paused) this._anim.pause();
    this._geom = { from, to, duration, W, T, dir };
  }

  pause() {
    this._paused = true;
    if (this._anim) this._anim.pause();
  }

  resume() {
    this._paused = false;
    if (this._anim) this._anim.play();
  }

  /** Jumps the crawl so that the next headline starts at the leading edge. */
  next() {
    if (!this._anim || !this._geom) return false;
    const { from, to, duration, W, dir } = this._geom;
    const x = from + (to - from) * ((this._anim.currentTime % duration) / duration);
    const nodes = [...this.track.children];
    let target = null;
    for (const n of nodes) {
      const start = dir === 'rtl' ? x + n.offsetLeft + n.offsetWidth : x + n.offsetLeft;
      const edge = dir === 'rtl' ? W : 0;
      if (dir === 'rtl' ? start < edge - 1 : start > edge + 1) {
        target = dir === 'rtl' ? W - n.offsetLeft - n.offsetWidth : -n.offsetLeft;
        break;
      }
    }
    if (target == null) target = from; // past the last one: start over
    const p = (target - from) / (to - from);
    this._anim.currentTime = Math.max(0, Math.min(0.999, p)) * duration;
    return true;
  }
}
