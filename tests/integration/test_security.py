"""Security (SPEC §6): allowed origins, JWT auth and its claims, TLS, the
connection limits, inbound frame size and rate, oversized requests, the
refusal log and its rate limit, reload under load, and the systemd unit's
hardening."""

import asyncio
import http.client
import os
import re
import signal
import socket
import ssl
import subprocess
import time

import jwt
import pytest
import websockets

from conftest import (HERE, TICKERD, WS, RawWS, http_get, raw_request, run, wait_until,
                      write_config, ws_handshake_request)

SECRET = "s3cret-for-tests-only-0123456789"
ORIGINS = "https://news.example, https://tv.example"


def token(claims=None, secret=SECRET, algorithm="HS256", exp_in=600):
    """A signed token with these claims and an `exp` exp_in seconds away
    (None: no exp)."""
    c = dict(claims or {})
    if exp_in is not None:
        c.setdefault("exp", int(time.time()) + exp_in)
    return jwt.encode(c, secret, algorithm=algorithm)


def ws_status(td, path="/v1/ws", headers=None):
    """(status, body text) of a WebSocket handshake sent with raw bytes."""
    extra = b"".join(f"{k}: {v}\r\n".encode() for k, v in (headers or {}).items())
    status, _, body = raw_request(td.port, ws_handshake_request(td.port, path, extra))
    return status, body.decode("utf-8", "replace")


def sse_status(td, path="/v1/events", headers=None):
    """Status of an SSE request; a stream that opens (200) is closed at once."""
    conn = http.client.HTTPConnection("127.0.0.1", td.port, timeout=5)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        conn.endheaders()
        resp = conn.getresponse()
        body = resp.read() if resp.status != 200 else b""
        return resp.status, body.decode("utf-8", "replace")
    finally:
        conn.close()


def refusal_lines(td):
    return [line for line in td.log().splitlines() if " refused " in line]


async def expect_item(ws, entry_id, timeout=5):
    """Skips nothing: the next frame is this item."""
    f = await ws.recv(timeout)
    assert f["type"] == "item" and f["id"] == entry_id, f


# --------------------------------------------------------------------------
# origins


def test_origin_not_allowed_is_403_for_ws_sse_and_items(make_tickerd):
    td = make_tickerd({"auth": {"allowed_origins": ORIGINS}})
    evil = {"Origin": "https://evil.example"}
    status, body = ws_status(td, headers=evil)
    assert status == 403 and "origin" in body
    assert sse_status(td, headers=evil)[0] == 403
    assert http_get(td.port, "/v1/items", headers=evil)[0] == 403
    # a prefix or a different scheme of an allowed origin is not allowed
    for origin in ("https://news.example.evil", "http://news.example", "https://news"):
        assert ws_status(td, headers={"Origin": origin})[0] == 403, origin
    # allowed origins, and non-browser clients (no Origin), are served
    assert ws_status(td, headers={"Origin": "https://tv.example"})[0] == 101
    assert ws_status(td)[0] == 101
    assert sse_status(td, headers={"Origin": "https://news.example"})[0] == 200
    status, headers, _ = http_get(td.port, "/v1/items", headers={"Origin": "https://news.example"})
    assert status == 200 and headers["access-control-allow-origin"] == "https://news.example"
    assert td.metric("tickerd_refused_total", reason="forbidden") >= 5
    assert td.health()[0] == 200


# --------------------------------------------------------------------------
# tokens


@pytest.mark.parametrize("how, tok, words", [
    ("none", None, "required"),
    ("empty", "", "required"),
    ("garbage", "not-a-token", "invalid"),
    ("wrong secret", token(secret="another-secret-entirely-0000"), "invalid"),
    ("expired", token(exp_in=-5), "expired"),
    ("HS384", token(algorithm="HS384"), ""),
    ("alg none", jwt.encode({"regions": ["mena"]}, None, algorithm="none"), ""),
    ("tampered", token({"regions": ["mena"]})[:-3] + "AAA", "invalid"),
])
def test_bad_token_is_401(make_tickerd, how, tok, words):
    td = make_tickerd({"auth": {"jwt_secret": SECRET}})
    query = "" if tok is None else f"?token={tok}"
    status, body = ws_status(td, "/v1/ws" + query)
    assert status == 401, (how, body)
    assert words in body
    assert sse_status(td, "/v1/events" + query)[0] == 401
    assert http_get(td.port, "/v1/items" + query)[0] == 401
    if tok:
        assert ws_status(td, headers={"Authorization": f"Bearer {tok}"})[0] == 401
    assert td.metric("tickerd_refused_total", reason="unauthorized") >= 3
    assert td.health()[0] == 200


def test_good_token_in_query_or_bearer_header(make_tickerd):
    td = make_tickerd({"auth": {"jwt_secret": SECRET}})
    tok = token()
    assert ws_status(td, f"/v1/ws?token={tok}")[0] == 101
    assert ws_status(td, headers={"Authorization": f"Bearer {tok}"})[0] == 101
    assert sse_status(td, headers={"Authorization": f"Bearer {tok}"})[0] == 200
    assert http_get(td.port, f"/v1/items?token={tok}")[0] == 200
    # no exp at all: valid until the secret changes
    assert ws_status(td, f"/v1/ws?token={token(exp_in=None)}")[0] == 101
    # the token is checked after the query: a bad parameter is still 400
    assert ws_status(td, f"/v1/ws?token={tok}&region=atlantis")[0] == 400


def test_claims_narrow_the_subscription(make_tickerd, xadd):
    td = make_tickerd({"auth": {"jwt_secret": SECRET}})
    tok = token({"regions": ["mena", "palestine"], "langs": "ar"})

    async def main():
        ws = await WS.connect(td, f"token={tok}&replay=0")
        hello, _, _ = await ws.start()
        assert hello["filter"]["region"] == ["mena", "palestine"]
        assert hello["filter"]["lang"] == ["ar"]
        narrower = await WS.connect(td, f"token={tok}&region=palestine&replay=0")
        hello, _, _ = await narrower.start()
        assert hello["filter"]["region"] == ["palestine"]
        xadd(text="eu", region="europe", lang="ar")
        xadd(text="en", region="mena", lang="en")
        a = xadd(text="mena ar", region="mena", lang="ar")
        g = xadd(text="global ar", lang="ar")  # global items match every region
        p = xadd(text="pal ar", region="palestine", lang="ar")
        for want in (a, g, p):
            await expect_item(ws, want)
        await ws.expect_silence()
        for want in (g, p):
            await expect_item(narrower, want)
        await narrower.expect_silence()
        await ws.close()
        await narrower.close()

    run(main())


@pytest.mark.parametrize("query", ["region=europe", "region=mena,europe", "lang=en",
                                   "lang=ar,es&region=mena"])
def test_asking_outside_the_claims_is_403(make_tickerd, query):
    td = make_tickerd({"auth": {"jwt_secret": SECRET}})
    tok = token({"regions": ["mena", "palestine"], "langs": ["ar"]})
    status, body = ws_status(td, f"/v1/ws?token={tok}&{query}")
    assert status == 403 and "token does not allow" in body
    assert sse_status(td, f"/v1/events?token={tok}&{query}")[0] == 403
    assert http_get(td.port, f"/v1/items?token={tok}&{query}")[0] == 403


def test_later_subscribe_outside_the_claims_is_refused_and_filter_kept(make_tickerd, xadd):
    td = make_tickerd({"auth": {"jwt_secret": SECRET}})
    tok = token({"regions": ["mena"]})

    async def main():
        ws = await WS.connect(td, f"token={tok}&replay=0")
        await ws.start()
        for bad in ({"type": "subscribe", "region": "europe"},
                    {"type": "subscribe", "region": ["mena", "asia"]},
                    # a new token must be valid to widen anything
                    {"type": "subscribe", "region": "europe", "token": "forged"},
                    {"type": "subscribe", "region": "europe",
                     "token": token({"regions": ["europe"]}, exp_in=-1)}):
            await ws.send(bad)
            err = await ws.recv()
            assert err["type"] == "error" and err["code"] in ("forbidden", "unauthorized"), err
            assert err["message"]
        await ws.expect_silence(0.2)
        xadd(text="eu", region="europe")
        m = xadd(text="mena", region="mena")
        await expect_item(ws, m)
        await ws.expect_silence()
        # within the claims: accepted; "all regions" narrows to the claims
        await ws.send({"type": "subscribe", "lang": "en"})
        hello = await ws.recv()
        assert hello["type"] == "hello" and hello["filter"]["region"] == ["mena"]
        # a valid new token in the subscribe grants what it says
        await ws.send({"type": "subscribe", "region": "europe",
                       "token": token({"regions": ["europe"]})})
        hello = await ws.recv()
        assert hello["type"] == "hello" and hello["filter"]["region"] == ["europe"]
        e = xadd(text="eu 2", region="europe")
        await expect_item(ws, e)
        await ws.close()

    run(main())


def test_token_expiring_later_does_not_admit_after_exp(make_tickerd):
    td = make_tickerd({"auth": {"jwt_secret": SECRET}})
    tok = token(exp_in=2)
    assert ws_status(td, f"/v1/ws?token={tok}")[0] == 101
    time.sleep(3.1)
    status, body = ws_status(td, f"/v1/ws?token={tok}")
    assert status == 401 and "expired" in body


# --------------------------------------------------------------------------
# connection limits


def test_max_connections_is_503(make_tickerd):
    td = make_tickerd({"limits": {"max_connections": 3}})

    async def main():
        held = [await WS.connect(td) for _ in range(2)]
        for ws in held:
            await ws.start()
        sse = socket.create_connection(("127.0.0.1", td.port), timeout=5)
        sse.sendall(b"GET /v1/events HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sse.recv(12) == b"HTTP/1.1 200"
        wait_until(lambda: td.health()[1]["connections"] == 3, 5, what="3 connections")
        status, body = ws_status(td)
        assert status == 503 and body.strip()
        assert sse_status(td)[0] == 503
        with pytest.raises(websockets.InvalidStatusCode) as e:
            await WS.connect(td)
        assert e.value.status_code == 503
        # others are still served: health, metrics, and the clients held
        assert td.health()[0] == 200
        await held[0].send({"type": "ping"})
        assert await held[0].recv() == {"type": "pong"}
        # a slot frees up: the next one gets in
        await held[1].close()
        wait_until(lambda: td.health()[1]["connections"] == 2, 5, what="2 connections")
        again = await WS.connect(td)
        await again.start()
        await again.close()
        await held[0].close()
        sse.close()

    run(main())
    assert td.metric("tickerd_refused_total", reason="over_capacity") >= 3


def test_max_per_ip_is_429_and_other_addresses_still_served(make_tickerd):
    td = make_tickerd({"limits": {"max_per_ip": 2}})

    def handshake(source):
        s = socket.socket()
        s.settimeout(5)
        s.bind((source, 0))
        s.connect(("127.0.0.1", td.port))
        s.sendall(ws_handshake_request(td.port, "/v1/ws"))
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(4096)
            if not chunk:
                break
            head += chunk
        return s, int(head.split()[1])

    socks = []
    try:
        for _ in range(2):
            s, status = handshake("127.0.0.1")
            assert status == 101
            socks.append(s)
        wait_until(lambda: td.health()[1]["connections"] == 2, 5, what="2 connections")
        s, status = handshake("127.0.0.1")
        assert status == 429
        s.close()
        assert sse_status(td)[0] == 429
        # another source address has its own count
        s, status = handshake("127.0.0.2")
        assert status == 101
        socks.append(s)
        # a connection that leaves frees its slot
        socks.pop(0).close()
        wait_until(lambda: handshake_ok(handshake), 5, what="a slot for 127.0.0.1")
    finally:
        for s in socks:
            s.close()
    assert td.metric("tickerd_refused_total", reason="too_many_per_ip") >= 2


def handshake_ok(handshake):
    s, status = handshake("127.0.0.1")
    s.close()
    return status == 101


# --------------------------------------------------------------------------
# inbound frames and requests


def test_frame_over_configured_max_is_closed_1009(make_tickerd):
    td = make_tickerd({"limits": {"max_frame_bytes": 512}})
    c = RawWS(td.port, "/v1/ws")
    assert c.read_json()["type"] == "hello"
    assert c.read_json()["type"] == "replay"
    c.send_frame(1, b'{"type":"ping","pad":"' + b"x" * 400 + b'"}')
    assert c.read_json() == {"type": "pong"}
    try:
        c.send_frame(1, b'{"type":"ping","pad":"' + b"x" * 600 + b'"}')
    except OSError:
        pass
    assert c.read_close() == 1009
    c.close()
    assert td.health()[0] == 200


def test_over_20_messages_per_second_errors_then_1008(tickerd):
    async def main():
        ws = await WS.connect(tickerd)
        await ws.start()
        # start early in a second so that the burst stays within it
        while time.time() % 1 > 0.3:
            await asyncio.sleep(0.02)
        for _ in range(31):
            await ws.send({"type": "ping"})
        frames = []
        try:
            while True:
                frames.append(await ws.recv())
        except websockets.ConnectionClosed:
            pass
        assert frames[:20] == [{"type": "pong"}] * 20
        rest = frames[20:]
        assert len(rest) == 10 and all(f["type"] == "error" and f["code"] == "rate_limited"
                                       for f in rest), rest
        assert ws.conn.close_code == 1008

    run(main())
    assert tickerd.health()[0] == 200


@pytest.mark.parametrize("what, status, request_bytes", [
    ("long header", 431, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 10000 +
     b"\r\n\r\n"),
    ("long request line", 414,
     b"GET /v1/items?region=" + b"m" * 10000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("many headers", 431, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" +
     b"".join(b"X-H%d: v\r\n" % i for i in range(2000)) + b"\r\n"),
    ("long ws handshake", 431, b"GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
     b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
     b"Sec-WebSocket-Version: 13\r\nCookie: " + b"c" * 20000 + b"\r\n\r\n"),
])
def test_oversized_request_is_answered_not_dropped(tickerd, what, status, request_bytes):
    """SPEC §6: a request too large for tickerd's buffers is answered 414 or
    431, then closed: the answer arrives even though the client sent more
    than tickerd read (no reset before it)."""
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", tickerd.port), timeout=5) as s:
            s.sendall(request_bytes)
            reply = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 %d " % status), reply[:100]
        assert b"Connection: close" in reply
    assert tickerd.proc.poll() is None
    assert tickerd.health()[0] == 200
    wait_until(lambda: tickerd.log().count("refused 127.0.0.1: HTTP %d" % status) == 3, 5,
               what="a refusal line per oversized request")
    status, _, _ = http_get(tickerd.port, "/v1/items?region=mena")
    assert status == 200


# --------------------------------------------------------------------------
# TLS


@pytest.fixture
def tls_cert(tmp_path):
    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj",
                    "/CN=localhost", "-days", "1", "-keyout", key, "-out", cert],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def test_tls_wss_and_https(make_tickerd, tls_cert, xadd):
    cert, key = tls_cert
    td = make_tickerd({"server": {"tls_cert": cert, "tls_key": key}}, start=False)
    td.start(wait=False)
    ctx = ssl.create_default_context(cafile=cert)
    ctx.check_hostname = False

    def https_health():
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", td.port), timeout=2))
        try:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
            return data
        finally:
            s.close()

    wait_until(lambda: b'"ready":true' in https_health(), 10, what="tickerd over TLS")
    assert https_health().startswith(b"HTTP/1.1 200")

    async def main():
        conn = await websockets.connect(f"wss://127.0.0.1:{td.port}/v1/ws?replay=0", ssl=ctx,
                                        open_timeout=5, ping_interval=None)
        ws = WS(conn)
        hello, _, _ = await ws.start()
        assert hello["type"] == "hello"
        i = xadd(text="over tls")
        await expect_item(ws, i)
        await ws.close()
        # the certificate is the one the test made
        bad = ssl.create_default_context()  # system CAs only: must not verify
        bad.check_hostname = False
        with pytest.raises(ssl.SSLError):
            await websockets.connect(f"wss://127.0.0.1:{td.port}/v1/ws", ssl=bad, open_timeout=5)

    run(main())
    # plain HTTP on the TLS port is not served
    with socket.create_connection(("127.0.0.1", td.port), timeout=5) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            reply = s.recv(1024)
        except ConnectionResetError:
            reply = b""
        assert not reply.startswith(b"HTTP/1.1 200")


def test_tls_key_without_cert_is_refused(tmp_path, tls_cert):
    cert, key = tls_cert
    conf = str(tmp_path / "t.conf")
    write_config(conf, {"server": {"tls_key": key}})
    p = subprocess.run([TICKERD, "--check-config", "-c", conf], capture_output=True, text=True,
                       timeout=10)
    assert p.returncode == 2 and "tls" in p.stderr


# --------------------------------------------------------------------------
# refusal log


def test_refusal_log_names_address_and_reason(make_tickerd):
    td = make_tickerd({"auth": {"jwt_secret": SECRET, "allowed_origins": ORIGINS},
                       "limits": {"max_connections": 1}})
    assert ws_status(td, headers={"Origin": "https://evil.example"})[0] == 403
    assert ws_status(td, f"/v1/ws?token={token(exp_in=-10)}")[0] == 401
    assert ws_status(td, f"/v1/ws?token={token({'regions': ['mena']})}&region=asia")[0] == 403
    assert sse_status(td, "/v1/events")[0] == 401
    held = RawWS(td.port, f"/v1/ws?token={token()}")
    assert held.status == 101
    wait_until(lambda: td.health()[1]["connections"] == 1, 5, what="1 connection")
    assert ws_status(td, f"/v1/ws?token={token()}")[0] == 503
    held.close()
    lines = refusal_lines(td)
    want = [("403", "origin"), ("401", "expired"), ("403", "token does not allow"),
            ("401", "required"), ("503", "full")]
    assert len(lines) >= len(want), lines
    for line, (status, reason) in zip(lines, want):
        assert "127.0.0.1" in line and status in line and reason in line, line


def test_refusal_log_is_rate_limited_under_a_flood(make_tickerd):
    td = make_tickerd({"auth": {"allowed_origins": ORIGINS}})
    evil = ws_handshake_request(0, "/v1/ws", b"Origin: https://evil.example\r\n")
    start = time.monotonic()
    for _ in range(200):
        assert raw_request(td.port, evil)[0] == 403
    elapsed = time.monotonic() - start
    lines = refusal_lines(td)
    # a burst of 10, then 5 a second: far fewer lines than refusals
    assert 1 <= len(lines) <= 10 + 5 * (elapsed + 1), (len(lines), elapsed)
    assert all("127.0.0.1" in line and "403" in line for line in lines)
    assert td.metric("tickerd_refused_total", reason="forbidden") >= 200
    # the lines left out are counted when logging resumes
    time.sleep(1.5)
    raw_request(td.port, evil)
    wait_until(lambda: re.search(r"\d+ similar log lines suppressed", td.log()), 5,
               what="the suppressed count")
    suppressed = sum(int(n) for n in re.findall(r"(\d+) similar log lines suppressed", td.log()))
    assert suppressed + len(refusal_lines(td)) == 201
    # and a flood of oversized headers does not fill the log either
    before = len(td.log().splitlines())
    big = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n"
    start = time.monotonic()
    for _ in range(200):
        with socket.create_connection(("127.0.0.1", td.port), timeout=5) as s:
            try:
                s.sendall(big)
                s.recv(1024)
            except (ConnectionResetError, BrokenPipeError):
                pass
    elapsed = time.monotonic() - start
    added = td.log().splitlines()[before:]
    assert 1 <= len(added) <= 12 + 5 * (elapsed + 1), len(added)
    assert any("refused 127.0.0.1: HTTP 431" in line for line in added), added
    assert td.health()[0] == 200


# --------------------------------------------------------------------------
# reload


def reloads(td):
    return td.log().count("configuration reloaded")


def hup_and_wait(td, marker, count):
    """SIGHUP; waits for `count` more log lines containing marker (the
    master and each worker log one)."""
    before = td.log().count(marker)
    os.kill(td.proc.pid, signal.SIGHUP)
    wait_until(lambda: td.log().count(marker) >= before + count, 10, what=f"'{marker}' x{count}")


def test_reload_under_100_clients_keeps_them_and_applies_new_limits(make_tickerd, xadd):
    workers = 2
    td = make_tickerd({"server": {"workers": workers}, "limits": {"max_connections": 1000}})
    n = 100

    async def main():
        clients = await asyncio.gather(*(WS.connect(td, "replay=0") for _ in range(n)))
        await asyncio.gather(*(c.start() for c in clients))
        wait_until(lambda: td.health()[1]["connections"] == n, 10, what=f"{n} connections")

        async def all_get_one(text):
            entry = xadd(text=text)
            got = await asyncio.gather(*(c.recv() for c in clients))
            assert [f["id"] for f in got] == [entry] * n

        await all_get_one("before")
        # a stricter configuration: full at 100, one origin
        td.config["limits"]["max_connections"] = n
        td.config["auth"] = {"allowed_origins": "https://news.example"}
        write_config(td.config_path, td.config)
        hup_and_wait(td, "configuration reloaded", workers + 1)
        await all_get_one("after reload")
        assert ws_status(td, headers={"Origin": "https://evil.example"})[0] == 403
        assert ws_status(td, headers={"Origin": "https://news.example"})[0] == 503
        assert ws_status(td)[0] == 503
        # an invalid file is refused and the old configuration stays
        with open(td.config_path, "a") as f:
            f.write("\n[limits]\nmax_connections = lots\n")
        hup_and_wait(td, "reload refused", 1)
        assert td.proc.poll() is None
        await all_get_one("after refused reload")
        assert ws_status(td, headers={"Origin": "https://evil.example"})[0] == 403
        assert ws_status(td)[0] == 503
        # a valid one again: room for more
        td.config["limits"]["max_connections"] = n + 10
        td.config["auth"] = {"allowed_origins": ""}
        write_config(td.config_path, td.config)
        hup_and_wait(td, "configuration reloaded", workers + 1)
        extra = await WS.connect(td, "replay=0")
        await extra.start()
        await all_get_one("after second reload")
        assert all(c.conn.open for c in clients)
        await extra.close()
        await asyncio.gather(*(c.close() for c in clients))

    run(main(), timeout=90)
    log = td.log()
    assert "reload refused" in log and "lots" in log
    assert "restarting" not in log  # no worker died


# --------------------------------------------------------------------------
# systemd


def unit_copy(tmp_path):
    """The shipped unit with its paths pointing at the built binary, a
    config file and a working directory of this test."""
    conf = tmp_path / "tickerd.conf"
    write_config(str(conf), {"server": {"workers": 1}})
    with open(os.path.join(HERE, "..", "..", "systemd", "tickerd.service")) as f:
        text = f.read()
    assert "/usr/local/bin/tickerd" in text
    text = (text.replace("/usr/local/bin/tickerd", TICKERD)
            .replace("/usr/local/etc/tickerd/tickerd.conf", str(conf))
            .replace("WorkingDirectory=/usr/local/share/tickerd", f"WorkingDirectory={tmp_path}"))
    unit = tmp_path / "tickerd.service"
    unit.write_text(text)
    return str(unit)


def test_systemd_analyze_verify(tmp_path):
    unit = unit_copy(tmp_path)
    p = subprocess.run(["systemd-analyze", "verify", unit], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "tickerd.service" not in p.stderr, p.stderr


def test_systemd_analyze_security_exposure_at_most_2(tmp_path):
    unit = unit_copy(tmp_path)
    p = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager", unit],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    m = re.search(r"Overall exposure level for tickerd\.service: (\d+\.\d+)", p.stdout)
    assert m, p.stdout
    assert float(m.group(1)) <= 2.0, p.stdout
