// harness.test.mjs - the test tools themselves, where a fault in them would
// hang or pass the browser tests (no Chromium, no tickerd: a plain upstream).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import * as H from './harness.mjs';

/** An upstream that answers every request with 'ok'. */
async function upstream(t) {
  const srv = http.createServer((req, res) => res.end('ok'));
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  t.after(() => {
    srv.closeAllConnections();
    srv.close();
  });
  return `http://127.0.0.1:${srv.address().port}`;
}

function connect(url) {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const s = net.connect(Number(u.port), u.hostname, () => resolve(s));
    s.on('error', reject);
  });
}

// A browser opens sockets before it has a request for them (preconnect).
// node's server.close() waits for such a socket until requestTimeout
// (300 s): the proxy must end it, or the test that closes it hangs.
test('StreamProxy.close() ends sockets that never sent a request, and ones between requests', async (t) => {
  const proxy = await new H.StreamProxy(await upstream(t)).start();
  const silent = await connect(proxy.url);
  const used = await connect(proxy.url);
  used.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  await new Promise((r) => used.once('data', r));
  const ended = [silent, used].map((s) => new Promise((r) => s.on('close', r)));
  const closed = await Promise.race([proxy.close().then(() => true), H.sleep(3000).then(() => false)]);
  assert.equal(closed, true, 'close() returned within 3 s');
  assert.equal(await Promise.race([Promise.all(ended).then(() => true), H.sleep(1000).then(() => false)]), true, 'both sockets ended');
});
