// harness.mjs - processes for the browser tests: a redis-server and a tickerd
// of our own on free ports in a temp dir, a static file server for the TV
// overlay, Chromium through playwright-core, and a small PNG reader.
// Only the PIDs started here are ever signalled, with bounded waits.
import { spawn, execFile } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import crypto from 'node:crypto';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';

const execFileP = promisify(execFile);
const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(HERE, '..', '..');
export const BUILD = path.resolve(process.env.TICKERD_BUILD || path.join(REPO, 'build'));
export const SHOTS = path.join(REPO, 'build', 'browser');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
export const STREAM = 'ticker:breaking';

const children = new Set();
process.on('exit', () => {
  for (const c of children) {
    try {
      process.kill(c.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
});

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function waitUntil(fn, timeoutMs, what) {
  const end = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await sleep(50);
  }
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function startChild(cmd, args, opts, logfile) {
  const fd = fs.openSync(logfile, 'a');
  const child = spawn(cmd, args, { ...opts, stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  child.exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      children.delete(child);
      resolve({ code, signal });
    });
    child.on('error', (e) => {
      children.delete(child);
      resolve({ code: null, signal: null, error: e });
    });
  });
  children.add(child);
  return child;
}

/** SIGTERM, then SIGKILL after `timeoutMs`; resolves to {code, signal, killed}. */
export async function stopChild(child, timeoutMs = 5000) {
  if (!child || !children.has(child)) return child ? await child.exited : null;
  try {
    process.kill(child.pid, 'SIGTERM');
  } catch {
    /* already gone */
  }
  const t = await Promise.race([child.exited, sleep(timeoutMs).then(() => null)]);
  if (t) return { ...t, killed: false };
  try {
    process.kill(child.pid, 'SIGKILL');
  } catch {
    /* gone */
  }
  const k = await Promise.race([child.exited, sleep(2000).then(() => ({ code: null, signal: 'SIGKILL' }))]);
  return { ...k, killed: true };
}

export class Redis {
  constructor(dir) {
    this.dir = dir;
  }

  async start() {
    this.port = this.port || (await freePort());
    this.proc = startChild(
      'redis-server',
      ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', this.dir],
      {},
      path.join(this.dir, 'redis.log'),
    );
    await waitUntil(async () => (await this.cli('PING')) === 'PONG', 5000, `redis on ${this.port}`);
    return this;
  }

  get url() {
    return `redis://127.0.0.1:${this.port}/0`;
  }

  async cli(...args) {
    const { stdout } = await execFileP('redis-cli', ['-p', String(this.port), ...args.map(String)], { timeout: 5000 });
    return stdout.trim();
  }

  /** XADD with the fields given; resolves to the new stream ID. */
  async xadd(fields) {
    const flat = [];
    for (const [k, v] of Object.entries(fields)) if (v != null) flat.push(k, String(v));
    const id = await this.cli('XADD', STREAM, '*', ...flat);
    if (!/^\d+-\d+$/.test(id)) throw new Error(`XADD answered ${JSON.stringify(id)}`);
    return id;
  }

  stop() {
    return stopChild(this.proc);
  }
}

export class Tickerd {
  /** `extra`: more of the config file, e.g. "[auth]\njwt_secret = …\n". */
  constructor(dir, redis, extra = '') {
    this.dir = dir;
    this.redis = redis;
    this.logfile = path.join(dir, 'tickerd.log');
    this.config = path.join(dir, 'tickerd.conf');
    fs.writeFileSync(
      this.config,
      `[server]\nstatic_dir = ${path.join(REPO, 'clients', 'web')}\nworkers = ${process.env.TICKERD_WORKERS || 1}\n${extra}`,
    );
  }

  async start() {
    this.port = this.port || (await freePort()); // same port on restart
    const bin = path.join(BUILD, 'tickerd');
    if (!fs.existsSync(bin)) throw new Error(`${bin} is missing: run make build/tickerd`);
    this.proc = startChild(
      bin,
      ['-c', this.config, '--listen', `127.0.0.1:${this.port}`, '--redis', this.redis.url],
      { cwd: this.dir },
      this.logfile,
    );
    const proc = this.proc;
    await waitUntil(
      async () => {
        if (!children.has(proc)) throw new Error(`tickerd exited: ${JSON.stringify(await proc.exited)}`);
        const r = await httpGet(`${this.http}/healthz`);
        return r.status === 200 && JSON.parse(r.body).ready === true;
      },
      10000,
      'tickerd /healthz',
    );
    return this;
  }

  get http() {
    return `http://127.0.0.1:${this.port}`;
  }

  get ws() {
    return `ws://127.0.0.1:${this.port}/v1/ws`;
  }

  stop() {
    return stopChild(this.proc, 5000);
  }

  /** /metrics as {"name{labels}": value}. */
  async metrics() {
    const r = await httpGet(`${this.http}/metrics`);
    const out = {};
    for (const line of r.body.split('\n')) {
      const m = /^([a-zA-Z_:][\w:]*(?:\{[^}]*\})?) (\S+)/.exec(line);
      if (m) out[m[1]] = Number(m[2]);
    }
    return out;
  }

  log() {
    try {
      return fs.readFileSync(this.logfile, 'utf8');
    } catch {
      return '';
    }
  }
}

export function httpGet(url, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers, timeout: 2000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

/** Publishes with build/tickerctl when it exists, else with redis-cli XADD. */
export async function publish(redis, { text, lang = 'en', region = 'mena' }) {
  const ctl = path.join(BUILD, 'tickerctl');
  if (fs.existsSync(ctl) && !process.env.TICKER_NO_TICKERCTL) {
    const { stdout } = await execFileP(
      ctl,
      ['--redis', redis.url, 'publish', '--text', text, '--lang', lang, '--region', region],
      { timeout: 5000 },
    );
    const ids = stdout.match(/\d+-\d+/g);
    if (!ids) throw new Error(`tickerctl printed no ID: ${JSON.stringify(stdout)}`);
    return { id: ids[ids.length - 1], via: 'tickerctl' };
  }
  return { id: await redis.xadd({ lang, region, text }), via: 'redis-cli' };
}

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.md': 'text/plain; charset=utf-8',
};

/** Serves REPO/clients (so /overlay/ and /web/ side by side) on a free port. */
export async function staticServer() {
  const root = path.join(REPO, 'clients');
  const server = http.createServer((req, res) => {
    const u = new URL(req.url, 'http://x');
    const p = path.normalize(path.join(root, decodeURIComponent(u.pathname)));
    if (!p.startsWith(root + path.sep)) {
      res.writeHead(403).end();
      return;
    }
    fs.readFile(p, (err, data) => {
      if (err) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
        return;
      }
      res.writeHead(200, { 'content-type': TYPES[path.extname(p)] || 'application/octet-stream', 'cache-control': 'no-cache' });
      res.end(data);
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  server.url = `http://127.0.0.1:${server.address().port}`;
  return server;
}

export function tempDir() {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'tickerd-browser-'));
}

/** Decodes an 8-bit RGBA/RGB PNG (what Chromium screenshots are). */
export function decodePng(buf) {
  if (buf.readUInt32BE(0) !== 0x89504e47) throw new Error('not a PNG');
  let off = 8;
  let width, height, bitDepth, colorType, interlace;
  const idat = [];
  while (off < buf.length) {
    const len = buf.readUInt32BE(off);
    const type = buf.toString('latin1', off + 4, off + 8);
    const data = buf.subarray(off + 8, off + 8 + len);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      bitDepth = data[8];
      colorType = data[9];
      interlace = data[12];
    } else if (type === 'IDAT') idat.push(data);
    else if (type === 'IEND') break;
    off += 12 + len;
  }
  if (bitDepth !== 8 || (colorType !== 6 && colorType !== 2) || interlace) {
    throw new Error(`unsupported PNG: depth ${bitDepth} color ${colorType} interlace ${interlace}`);
  }
  const bpp = colorType === 6 ? 4 : 3;
  const raw = zlib.inflateSync(Buffer.concat(idat));
  const stride = width * bpp;
  const out = Buffer.alloc(width * height * 4);
  let prev = Buffer.alloc(stride);
  for (let y = 0; y < height; y++) {
    const ft = raw[y * (stride + 1)];
    const line = Buffer.from(raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1)));
    for (let x = 0; x < stride; x++) {
      const a = x >= bpp ? line[x - bpp] : 0;
      const b = prev[x];
      const c = x >= bpp ? prev[x - bpp] : 0;
      let v = line[x];
      if (ft === 1) v += a;
      else if (ft === 2) v += b;
      else if (ft === 3) v += (a + b) >> 1;
      else if (ft === 4) {
        const p = a + b - c;
        const pa = Math.abs(p - a);
        const pb = Math.abs(p - b);
        const pc = Math.abs(p - c);
        v += pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      line[x] = v & 0xff;
    }
    for (let x = 0; x < width; x++) {
      const o = (y * width + x) * 4;
      out[o] = line[x * bpp];
      out[o + 1] = line[x * bpp + 1];
      out[o + 2] = line[x * bpp + 2];
      out[o + 3] = bpp === 4 ? line[x * bpp + 3] : 255;
    }
    prev = line;
  }
  return { width, height, pixel: (x, y) => [...out.subarray((y * width + x) * 4, (y * width + x) * 4 + 4)] };
}

/** An HS256 JWT (what tickerd's [auth] jwt_secret verifies). */
export function signJwt(claims, secret) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const head = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  return `${head}.${crypto.createHmac('sha256', secret).update(head).digest('base64url')}`;
}

/**
 * An HTTP proxy in front of tickerd that can break streaming the way
 * corporate proxies do. Pages load through it (its origin is theirs), so
 * every transport goes through it too.
 *   ws:     'pass' (tunnel upgrades), 'refuse' (answer 403 to an upgrade), or
 *           'mute' (pass the 101 but nothing after it: a socket that connects
 *           and never delivers)
 *   buffer: false streams responses through; true holds each response whole
 *           until the server ends it (an SSE stream: never)
 * cut() ends what is open now, as a proxy restart would; counts says what
 * came through.
 */
export class StreamProxy {
  constructor(upstream) {
    this.upstream = new URL(upstream);
    this.ws = 'pass';
    this.buffer = false;
    this.open = new Set();
    this.counts = { upgrades: 0, refused: 0, refusedUrls: [], requests: {} };
  }

  async start() {
    this.server = http.createServer((req, res) => this._request(req, res));
    // Every accepted socket, also one that has sent nothing yet (a browser's
    // preconnect), or close() would wait for it until requestTimeout.
    this.server.on('connection', (sock) => this._track(sock));
    this.server.on('upgrade', (req, socket, head) => this._upgrade(req, socket, head));
    await new Promise((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${this.server.address().port}`;
    return this;
  }

  _track(sock) {
    this.open.add(sock);
    sock.on('close', () => this.open.delete(sock));
  }

  _request(req, res) {
    const p = new URL(req.url, 'http://x').pathname;
    this.counts.requests[p] = (this.counts.requests[p] || 0) + 1;
    const buffered = this.buffer;
    const up = http.request(
      { host: this.upstream.hostname, port: this.upstream.port, method: req.method, path: req.url, headers: req.headers },
      (ur) => {
        if (!buffered) {
          res.writeHead(ur.statusCode, ur.headers);
          ur.pipe(res);
          return;
        }
        const chunks = [];
        ur.on('data', (c) => chunks.push(c));
        ur.on('end', () => {
          const body = Buffer.concat(chunks);
          const headers = { ...ur.headers, 'content-length': String(body.length) };
          delete headers['transfer-encoding'];
          res.writeHead(ur.statusCode, headers);
          res.end(body);
        });
      },
    );
    up.on('error', () => res.destroy());
    res.on('close', () => up.destroy());
    req.pipe(up);
  }

  _upgrade(req, socket, head) {
    this.counts.upgrades++;
    if (this.ws === 'refuse') {
      this.counts.refused++;
      this.counts.refusedUrls.push(req.url);
      socket.end('HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 26\r\nConnection: close\r\n\r\nWebSocket blocked by proxy');
      return;
    }
    const mute = this.ws === 'mute';
    const up = net.connect(Number(this.upstream.port), this.upstream.hostname, () => {
      let lines = `${req.method} ${req.url} HTTP/1.1\r\n`;
      for (let i = 0; i < req.rawHeaders.length; i += 2) lines += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
      up.write(`${lines}\r\n`);
      if (head && head.length) up.write(head);
      socket.pipe(up);
      if (!mute) {
        up.pipe(socket);
        return;
      }
      let seen = Buffer.alloc(0);
      let done = false;
      up.on('data', (c) => {
        if (done) return; // frames: swallowed
        seen = Buffer.concat([seen, c]);
        const end = seen.indexOf('\r\n\r\n');
        if (end < 0) return;
        done = true;
        socket.write(seen.subarray(0, end + 4));
      });
    });
    this._track(socket);
    this._track(up);
    const kill = () => {
      socket.destroy();
      up.destroy();
    };
    up.on('error', kill);
    socket.on('error', kill);
    up.on('close', kill);
    socket.on('close', kill);
  }

  cut() {
    for (const s of [...this.open]) s.destroy();
  }

  close() {
    const closed = new Promise((r) => this.server.close(r));
    this.cut();
    return closed;
  }
}

/** Sum of tickerd_connections over its transports, from metrics(). */
export function connectionsNow(metrics) {
  let n = 0;
  for (const [k, v] of Object.entries(metrics)) if (k.startsWith('tickerd_connections{')) n += v;
  return n;
}

/** What a browser test file runs against, filled into w as it starts (so
 * that stopWorld(w) stops what did): a temp dir, a redis-server and a
 * tickerd of its own, the static server and Chromium. */
export async function startWorld(w) {
  w.dir = tempDir();
  w.redis = await new Redis(w.dir).start();
  w.tickerd = await new Tickerd(w.dir, w.redis).start();
  w.statics = await staticServer();
  w.browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 30000 });
  return w;
}

/** Stops what startWorld started (whatever of it did start). */
export async function stopWorld(w) {
  if (w.browser) await Promise.race([w.browser.close(), sleep(5000)]);
  if (w.statics) w.statics.close();
  if (w.tickerd) await w.tickerd.stop();
  if (w.redis) await w.redis.stop();
  if (w.dir && !process.env.KEEP_TMP) fs.rmSync(w.dir, { recursive: true, force: true });
}
