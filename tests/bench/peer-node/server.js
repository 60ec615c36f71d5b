// The Node.js peer of tickerd's benchmark: what a team would write instead
// of tickerd with the usual npm packages. One process per worker (node's
// cluster module shares the port), each reading the whole stream with XREAD
// BLOCK on its own Redis connection and broadcasting one JSON string to the
// ws clients whose region/lang filter matches. It speaks the subset of
// tickerd's protocol the benchmark uses: GET /v1/ws?region=&lang=&replay=N
// &since=ID, frames hello, item (with "replay":true when replayed), replay.
//
// Environment: PORT, HOST (127.0.0.1), REDIS_URL, STREAM, WORKERS (1),
// BUFFER (1000 events kept for replay and since).
"use strict";
const cluster = require("node:cluster");
const http = require("node:http");
const Redis = require("ioredis");
const { WebSocketServer } = require("ws");

const PORT = Number(process.env.PORT || 8081);
const HOST = process.env.HOST || "127.0.0.1";
const REDIS_URL = process.env.REDIS_URL || "redis://127.0.0.1:6379/0";
const STREAM = process.env.STREAM || "ticker:breaking";
const WORKERS = Number(process.env.WORKERS || 1);
const BUFFER = Number(process.env.BUFFER || 1000);
const REPLAY_MAX = 200;

if (WORKERS > 1 && cluster.isPrimary) {
  for (let i = 0; i < WORKERS; i++) cluster.fork();
  const stop = () => {
    for (const w of Object.values(cluster.workers)) w.kill("SIGTERM");
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  cluster.on("exit", () => {
    if (Object.keys(cluster.workers).length === 0) process.exit(0);
  });
} else {
  worker();
}

function cmpId(a, b) {
  const [am, as] = a.split("-").map(BigInt);
  const [bm, bs] = b.split("-").map(BigInt);
  if (am !== bm) return am < bm ? -1 : 1;
  return as === bs ? 0 : as < bs ? -1 : 1;
}

function toItem(id, fields) {
  const f = {};
  for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]] = fields[i + 1];
  if (!f.text) return null;
  const ts = Number(id.split("-")[0]);
  const item = {
    type: "item",
    id,
    ts,
    lang: f.lang || "en",
    region: f.region ? f.region.split(",") : [],
    priority: f.priority || "breaking",
  };
  if (f.category) item.category = f.category;
  item.text = f.text;
  if (f.url) item.url = f.url;
  if (f.source) item.source = f.source;
  item.expires = ts + 1000 * Number(f.ttl || 21600);
  return item;
}

function matches(filter, item) {
  if (filter.lang && !filter.lang.includes(item.lang)) return false;
  if (filter.region && item.region.length && !item.region.some((r) => filter.region.includes(r)))
    return false;
  return true;
}

function worker() {
  const history = []; // {id, item, json}
  const clients = new Set();
  let lastId = "0-0";
  let ready = false;

  const server = http.createServer((req, res) => {
    res.writeHead(req.url === "/healthz" ? (ready ? 200 : 503) : 404, {
      "content-type": "application/json",
    });
    res.end(JSON.stringify({ status: ready ? "ok" : "starting", clients: clients.size }));
  });
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });

  server.on("upgrade", (req, socket, head) => {
    const url = new URL(req.url, "http://x");
    if (url.pathname !== "/v1/ws") {
      socket.end("HTTP/1.1 404 Not Found\r\n\r\n");
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => onConnect(ws, url.searchParams));
  });

  function onConnect(ws, q) {
    const filter = {};
    if (q.get("region")) filter.region = q.get("region").split(",");
    if (q.get("lang")) filter.lang = q.get("lang").split(",");
    ws.filter = filter;
    ws.send(
      JSON.stringify({ type: "hello", protocol: 1, server: "peer-node", filter, last_id: lastId })
    );
    const since = q.get("since");
    let out = [];
    let gap = false;
    if (since) {
      if (history.length && cmpId(since, history[0].id) < 0) gap = true;
      for (const h of history) if (cmpId(h.id, since) > 0 && matches(filter, h.item)) out.push(h);
      if (out.length > REPLAY_MAX) {
        out = out.slice(-REPLAY_MAX);
        gap = true;
      }
    } else {
      const want = Math.min(Number(q.get("replay") ?? 10), REPLAY_MAX);
      for (let i = history.length - 1; i >= 0 && out.length < want; i--)
        if (matches(filter, history[i].item)) out.unshift(history[i]);
    }
    for (const h of out) ws.send(JSON.stringify({ ...h.item, replay: true }));
    ws.send(JSON.stringify({ type: "replay", count: out.length, gap }));
    clients.add(ws);
    ws.on("close", () => clients.delete(ws));
    ws.on("error", () => clients.delete(ws));
    ws.on("message", (data) => {
      try {
        if (JSON.parse(data).type === "ping") ws.send('{"type":"pong"}');
      } catch {
        /* ignored */
      }
    });
  }

  function ingest(id, fields) {
    lastId = id;
    const item = toItem(id, fields);
    if (!item) return;
    const json = JSON.stringify(item);
    history.push({ id, item, json });
    if (history.length > BUFFER) history.shift();
    for (const ws of clients) if (ws.readyState === 1 && matches(ws.filter, item)) ws.send(json);
  }

  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
  async function run() {
    const last = await redis.xrevrange(STREAM, "+", "-", "COUNT", BUFFER);
    for (const [id, fields] of last.reverse()) {
      const item = toItem(id, fields);
      if (item) history.push({ id, item, json: JSON.stringify(item) });
      lastId = id;
    }
    ready = true;
    for (;;) {
      const r = await redis.xread("COUNT", 1000, "BLOCK", 5000, "STREAMS", STREAM, lastId);
      if (!r) continue;
      for (const [, entries] of r) for (const [id, fields] of entries) ingest(id, fields);
    }
  }
  run().catch((e) => {
    console.error("peer-node:", e);
    process.exit(1);
  });

  server.listen(PORT, HOST);
  const stop = () => {
    for (const ws of clients) ws.close(1001);
    server.close();
    redis.disconnect();
    setTimeout(() => process.exit(0), 500).unref();
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}
