/* overlay.js - tickerd lower-third crawl for OBS and CasparCG.
 *
 * A classic script (not a module) so that the CasparCG entry points play(),
 * stop(), next() and update(data) are globals from the start; calls made
 * before the ticker client has loaded are queued and replayed in order.
 * The client is ticker.global.js (ticker.js as a classic script, so that it
 * loads from file:// too, where Chromium refuses modules), taken from the
 * first of: ?client=URL, ../web/ticker.global.js, ./ticker.global.js,
 * <server>/ticker.global.js. The first is there in the repository's layout
 * (clients/overlay next to clients/web), so nothing fails on the way and the
 * console stays clean. See README.md for the parameters.
 */
(function () {
  'use strict';

  var P = new URLSearchParams(location.search);
  var stage = document.getElementById('stage');
  var crawlEl = document.getElementById('crawl');

  function num(v, d) {
    return v != null && v !== '' && isFinite(Number(v)) ? Number(v) : d;
  }
  function bool(v, d) {
    if (v == null || v === '') return d;
    return !/^(0|false|no|off)$/i.test(String(v));
  }

  var LABELS = { en: 'BREAKING', ar: 'عاجل', es: 'ÚLTIMA HORA' };
  var cfg = {
    server: P.get('server') || '',
    region: P.get('region') || null,
    lang: P.get('lang') || null,
    priority: P.get('priority') || null,
    category: P.get('category') || null,
    replay: P.has('replay') ? num(P.get('replay'), null) : null,
    token: P.get('token') || null,
    transport: P.get('transport') || 'auto',
    speed: num(P.get('speed'), 150), // px per second on the 1920 px stage
    theme: P.get('theme') || 'breaking',
    label: P.get('label'),
    direction: P.get('direction') || 'auto',
    max: num(P.get('max'), 30),
    autoplay: bool(P.get('autoplay'), true),
    staleS: num(P.get('stale_s'), 30),
    backoff: num(P.get('backoff'), 2000),
    client: P.get('client') || '',
    screen: P.get('screen') || '', // this screen's label for kill confirmation (the server's `client`)
    share: bool(P.get('share'), true), // one connection for the overlays of one browser with the same filter
    scale: P.get('scale') || 'fit', // fit | none
  };

  var state = {
    playing: false,
    stale: false,
    client: null,
    widget: null,
    mod: null,
    queue: [],
    staleTimer: null,
    error: null,
  };

  function defaultLabel() {
    var l = cfg.lang && String(cfg.lang).indexOf(',') < 0 ? String(cfg.lang) : 'en';
    return LABELS[l] || LABELS.en;
  }

  function render() {
    var count = state.widget ? state.widget.el.dataset.count | 0 : 0;
    var visible = state.playing && !state.stale && count > 0;
    stage.dataset.state = state.playing ? 'playing' : 'stopped';
    stage.dataset.stale = state.stale ? 'true' : 'false';
    stage.dataset.visible = visible ? 'true' : 'false';
    stage.dataset.theme = cfg.theme;
    document.getElementById('lower-third').setAttribute('aria-hidden', visible ? 'false' : 'true');
    if (state.widget) {
      if (visible) state.widget.resume();
      else state.widget.pause();
    }
  }

  function fit() {
    if (cfg.scale === 'none') {
      stage.style.transform = '';
      return;
    }
    var s = Math.min(window.innerWidth / 1920, window.innerHeight / 1080) || 1;
    var dx = (window.innerWidth - 1920 * s) / 2;
    var dy = (window.innerHeight - 1080 * s) / 2;
    stage.style.transform = 'translate(' + dx + 'px,' + dy + 'px) scale(' + s + ')';
  }
  window.addEventListener('resize', fit);
  fit();

  // ---- CasparCG template data: XML <templateData> or JSON, or a query string ----

  function parseData(data) {
    if (data == null) return {};
    if (typeof data === 'object') return data;
    var s = String(data).trim();
    if (!s) return {};
    if (s.charAt(0) === '{') return JSON.parse(s);
    if (s.charAt(0) === '<') {
      var doc = new DOMParser().parseFromString(s, 'text/xml');
      if (doc.getElementsByTagName('parsererror').length) throw new Error('bad XML template data');
      var out = {};
      var comps = doc.getElementsByTagName('componentData');
      for (var i = 0; i < comps.length; i++) {
        var id = comps[i].getAttribute('id');
        var d = comps[i].getElementsByTagName('data')[0];
        if (id) out[id] = d ? d.getAttribute('value') : comps[i].textContent;
      }
      return out;
    }
    var o = {};
    new URLSearchParams(s).forEach(function (v, k) {
      o[k] = v;
    });
    return o;
  }

  function applyData(data) {
    var d = parseData(data);
    var filter = {};
    var refilter = false;
    ['region', 'lang', 'priority', 'category'].forEach(function (k) {
      if (k in d) {
        cfg[k] = d[k] == null || d[k] === '' ? null : d[k];
        filter[k] = cfg[k];
        refilter = true;
      }
    });
    if ('theme' in d) cfg.theme = String(d.theme || 'breaking');
    if ('speed' in d) {
      cfg.speed = num(d.speed, cfg.speed);
      if (state.widget) {
        state.widget.options.speed = cfg.speed;
        state.widget._layout(false);
      }
    }
    if ('stale_s' in d) cfg.staleS = num(d.stale_s, cfg.staleS);
    if ('label' in d || 'lang' in d) {
      if ('label' in d) cfg.label = d.label;
      if (state.widget) state.widget.setLabel(cfg.label == null || cfg.label === '' ? defaultLabel() : cfg.label);
    }
    if ('server' in d && d.server && d.server !== cfg.server) {
      cfg.server = d.server;
      if (state.client) {
        state.client.options.server = cfg.server;
        refilter = true;
      }
    }
    if (refilter && state.client) state.client.setFilter(filter);
    if (state.client && state.client.status === 'idle' && canConnect()) state.client.start();
    render();
  }

  // ---- the entry points ----

  var api = {
    play: function () {
      state.playing = true;
      render();
    },
    stop: function () {
      state.playing = false;
      render();
    },
    next: function () {
      if (state.widget) state.widget.next();
    },
    update: function (data) {
      applyData(data);
    },
  };

  function entry(name) {
    return function (arg) {
      try {
        if (name === 'play' || name === 'stop' || state.mod) api[name](arg);
        else state.queue.push([name, arg]);
      } catch (e) {
        console.error('overlay ' + name + '():', e);
      }
    };
  }
  window.play = entry('play');
  window.stop = entry('stop');
  window.next = entry('next');
  window.update = entry('update');

  // ---- loading the client ----

  function httpBase(server) {
    try {
      var u = new URL(server, location.href);
      var proto = u.protocol === 'wss:' || u.protocol === 'https:' ? 'https:' : 'http:';
      var path = u.pathname.replace(/\/v1\/(ws|events|items)\/?$/, '').replace(/\/+$/, '');
      return proto + '//' + u.host + path;
    } catch (e) {
      return null;
    }
  }

  function candidates() {
    var list = [];
    function add(u) {
      try {
        u = new URL(u, location.href).href;
      } catch (e) {
        return;
      }
      if (list.indexOf(u) < 0) list.push(u);
    }
    if (cfg.client) add(cfg.client);
    add('../web/ticker.global.js');
    add('ticker.global.js');
    if (cfg.server) {
      var b = httpBase(cfg.server);
      if (b) add(b + '/ticker.global.js');
    } else if (/^https?:$/.test(location.protocol)) {
      add('/ticker.global.js');
    }
    return list;
  }

  /** Adds a classic <script> for each candidate in turn until one defines
   * window.Ticker (a script needs no CORS, from file:// or any origin). */
  function load(list, i) {
    if (window.Ticker && typeof window.Ticker.TickerClient === 'function') return Promise.resolve(window.Ticker);
    if (i >= list.length) return Promise.reject(new Error('ticker.global.js not found at ' + list.join(', ')));
    return new Promise(function (resolve) {
      var el = document.createElement('script');
      el.src = list[i];
      el.onload = el.onerror = function () {
        resolve();
      };
      document.head.appendChild(el);
    }).then(function () {
      if (window.Ticker && typeof window.Ticker.TickerClient === 'function') {
        stage.dataset.client = list[i];
        return window.Ticker;
      }
      return load(list, i + 1);
    });
  }

  function onStatus(e) {
    var st = e.detail.status;
    stage.dataset.conn = st;
    if (st === 'connected') return; // not fresh until its replay has been applied
    if (cfg.staleS > 0 && !state.staleTimer && !state.stale) {
      // Disconnected: we cannot know about retractions, so take the crawl
      // off air if it lasts.
      state.staleTimer = setTimeout(function () {
        state.staleTimer = null;
        if (state.client && state.client.status !== 'connected') {
          state.stale = true;
          render();
        }
      }, cfg.staleS * 1000);
    }
  }

  function onReplay() {
    clearTimeout(state.staleTimer);
    state.staleTimer = null;
    state.stale = false;
    render();
  }

  function start(m) {
    state.mod = m;
    var client = new m.TickerClient({
      server: cfg.server || null,
      region: cfg.region,
      lang: cfg.lang,
      priority: cfg.priority,
      category: cfg.category,
      replay: cfg.replay,
      token: cfg.token,
      transport: cfg.transport,
      share: cfg.share,
      backoffInitialMs: cfg.backoff,
      client: cfg.screen || null, // the crawl's element goes in the 'state' listener; the ack after
    });
    state.client = client;
    state.widget = new m.TickerWidget(crawlEl, client, {
      view: 'crawl',
      speed: cfg.speed,
      label: cfg.label == null || cfg.label === '' ? defaultLabel() : cfg.label,
      maxItems: cfg.max,
      direction: cfg.direction,
      showStatus: false,
      links: false,
      time: false,
    });
    client.addEventListener('status', onStatus);
    client.addEventListener('replay', onReplay);
    client.addEventListener('state', function () {
      render();
    });
    window.tickerOverlay = { client: client, widget: state.widget, config: cfg };
    var q = state.queue;
    state.queue = [];
    q.forEach(function (c) {
      try {
        api[c[0]](c[1]);
      } catch (e) {
        console.error('overlay ' + c[0] + '():', e);
      }
    });
    // From a file:// template the server must come from update() first.
    if (canConnect()) client.start();
    else stage.dataset.conn = 'waiting-for-server';
    render();
  }

  function canConnect() {
    return !!cfg.server || /^https?:$/.test(location.protocol);
  }

  if (cfg.autoplay) state.playing = true;
  render();
  load(candidates(), 0).then(start, function (e) {
    state.error = String(e && e.message);
    stage.dataset.error = state.error;
    console.error('tickerd overlay:', state.error);
  });
})();
