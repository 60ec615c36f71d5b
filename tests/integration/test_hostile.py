"""Hostile input at its limits (issue 12, SPEC §2 and §6): a query value
too long to read is a 400 on every endpoint, never a dropped parameter; a
mixed-case Upgrade header is a WebSocket upgrade; a large binary frame is
one bad message, and 1009 once over max_frame_bytes."""
import json
import os

import pytest

from conftest import RawWS, raw_request, ws_handshake_request

QUERY_ARG_MAX = 2048  # src/request.h TK_QUERY_ARG_MAX


def padded_query(arg_len):
    """region=mena, then an ignored parameter of exactly arg_len bytes
    (name=value), then lang=en: if the long one were skipped, so would
    lang be, and the filter would widen."""
    pad = "x=" + "a" * (arg_len - 2)
    assert len(pad) == arg_len
    return "region=mena&" + pad + "&lang=en"


@pytest.mark.parametrize("arg_len,ok", [(QUERY_ARG_MAX - 1, True), (QUERY_ARG_MAX, True),
                                        (QUERY_ARG_MAX + 1, False)])
def test_long_query_value_on_ws(tickerd, arg_len, ok):
    ws = RawWS(tickerd.port, "/v1/ws?" + padded_query(arg_len))
    try:
        if not ok:
            assert ws.status == 400
            return
        assert ws.status == 101
        hello = ws.read_json()
        assert hello["type"] == "hello"
        assert hello["filter"]["region"] == ["mena"]
        assert hello["filter"]["lang"] == ["en"]
    finally:
        ws.close()


@pytest.mark.parametrize("path", ["/v1/events", "/v1/items"])
@pytest.mark.parametrize("arg_len,ok", [(QUERY_ARG_MAX, True), (QUERY_ARG_MAX + 1, False)])
def test_long_query_value_on_http(tickerd, path, arg_len, ok):
    req = ("GET %s?%s HTTP/1.1\r\nHost: x\r\n\r\n" % (path, padded_query(arg_len))).encode()
    status, _, body = raw_request(tickerd.port, req)
    if ok:
        assert status == 200
    else:
        assert status == 400
        assert b"longer than" in body


@pytest.mark.parametrize("upgrade", [b"websocket", b"WebSocket", b"WEBSOCKET"])
def test_upgrade_header_any_case(tickerd, upgrade):
    req = ws_handshake_request(tickerd.port, "/v1/ws").replace(b"Upgrade: websocket",
                                                               b"Upgrade: " + upgrade)
    import socket
    with socket.create_connection(("127.0.0.1", tickerd.port), timeout=5) as s:
        s.sendall(req)
        head = s.recv(4096)
    assert head.startswith(b"HTTP/1.1 101"), head[:80]


def test_large_binary_frame_is_one_bad_message(tickerd):
    ws = RawWS(tickerd.port, "/v1/ws?replay=0")
    try:
        assert ws.read_json()["type"] == "hello"
        assert ws.read_json()["type"] == "replay"
        ws.send_frame(2, b"\x00" * 3000)  # about 12 lws receive chunks
        err = ws.read_json()
        assert err["type"] == "error" and err["code"] == "bad_request"
        ws.send_frame(1, json.dumps({"type": "ping"}).encode())
        assert ws.read_json()["type"] == "pong"  # still open, one error only
    finally:
        ws.close()


@pytest.mark.parametrize("size,code", [(4096, None), (4097, 1009)])
def test_binary_frame_over_max_frame_bytes(tickerd, size, code):
    ws = RawWS(tickerd.port, "/v1/ws?replay=0")
    try:
        ws.read_json()
        ws.read_json()
        ws.send_frame(2, b"\x01" * size)
        if code:
            assert ws.read_close() == code
        else:
            assert ws.read_json()["code"] == "bad_request"
    finally:
        ws.close()


def test_ten_binary_frames_close_1008(tickerd):
    ws = RawWS(tickerd.port, "/v1/ws?replay=0")
    try:
        ws.read_json()
        ws.read_json()
        for _ in range(10):
            ws.send_frame(2, b"\x02" * 1000)
        assert ws.read_close() == 1008
    finally:
        ws.close()


# --- HEAD and the CORS preflight (SPEC §3) ---

@pytest.mark.parametrize("path", ["/healthz", "/metrics", "/v1/items", "/v1/events", "/",
                                  "/ticker.js"])
def test_head_has_the_get_status_and_headers_and_no_body(tickerd, path):
    import os
    import socket
    for name in ("index.html", "ticker.js"):
        with open(os.path.join(tickerd.static_dir, name), "w") as f:
            f.write("x" * 100)
    req = ("HEAD %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode()
    with socket.create_connection(("127.0.0.1", tickerd.port), timeout=5) as s:
        s.sendall(req)
        s.settimeout(1.0)
        data = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except socket.timeout:
            pass
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head[:60]
    assert rest == b""  # no body, and nothing streamed (SSE)
    get_status, get_headers, _ = raw_request(
        tickerd.port, ("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode()) \
        if path != "/v1/events" else (200, {"content-type": "text/event-stream"}, b"")
    lines = head.decode().split("\r\n")[1:]
    headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines)}
    assert headers["content-type"] == get_headers["content-type"]


def test_preflight_from_an_allowed_origin(make_tickerd):
    td = make_tickerd({"auth": {"allowed_origins": "https://news.example"}})
    ok = (b"OPTIONS /v1/items HTTP/1.1\r\nHost: x\r\nOrigin: https://news.example\r\n"
          b"Access-Control-Request-Method: GET\r\n"
          b"Access-Control-Request-Headers: authorization\r\n\r\n")
    status, headers, body = raw_request(td.port, ok)
    assert status == 204 and body == b""
    assert headers["access-control-allow-origin"] == "https://news.example"
    allow = [h.strip().lower() for h in headers["access-control-allow-headers"].split(",")]
    assert {"authorization", "content-type", "idempotency-key"} <= set(allow)
    assert "GET" in headers["access-control-allow-methods"]
    status, headers, _ = raw_request(td.port, ok.replace(b"news.example", b"evil.example"))
    assert status == 403
    assert "access-control-allow-origin" not in headers


def test_preflight_with_any_origin_allowed_names_the_origin(tickerd):
    req = (b"OPTIONS /v1/events HTTP/1.1\r\nHost: x\r\nOrigin: https://a.example\r\n\r\n")
    status, headers, _ = raw_request(tickerd.port, req)
    assert status == 204
    assert headers["access-control-allow-origin"] == "https://a.example"  # never a bare *


# --- out of descriptors ---

def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_out_of_descriptors_pauses_accepting_without_spinning(make_tickerd):
    """accept() failing with EMFILE must not spin the loop: tickerd pauses
    accepting, logs it, and serves again once descriptors are free."""
    import resource
    import socket
    import time
    td = make_tickerd()
    limit = 48
    # tickerd raises its own soft limit at start: lower it afterwards
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.prlimit(td.proc.pid, resource.RLIMIT_NOFILE, (limit, hard))
    socks = []
    try:
        for _ in range(limit + 20):
            s = socket.create_connection(("127.0.0.1", td.port), timeout=2)
            socks.append(s)
        time.sleep(0.5)
        before = cpu_seconds(td.proc.pid)
        time.sleep(2.0)
        used = cpu_seconds(td.proc.pid) - before
        assert used < 0.5, f"tickerd used {used:.2f} s of CPU in 2 s while out of descriptors"
        assert "pausing accepts" in td.log()

    finally:
        for s in socks:
            s.close()
    time.sleep(0.5)
    ws = RawWS(td.port, "/v1/ws?replay=0")
    assert ws.status == 101
    assert ws.read_json()["type"] == "hello"
    ws.close()
    # counted, about once per 100 ms pause while out of descriptors
    assert 1 <= td.metric("tickerd_accept_pauses_total") <= 100



# --- an Origin too long to compare (SPEC §6) ---

ORIGIN_MAX = 255  # src/guard.c compares origins of up to 255 bytes


@pytest.mark.parametrize("length,listed,status", [
    (len("https://news.example"), True, 101),  # listed: admitted
    (ORIGIN_MAX, False, 403),       # at the limit, not listed: compared, refused
    (ORIGIN_MAX + 1, False, 403),   # over it: refused, not skipped (0.1 let it through)
    (2000, False, 403),
])
def test_long_origin_is_refused_not_skipped(make_tickerd, length, listed, status):
    origin = "https://" + "o" * (length - len("https://") - len(".example")) + ".example"
    if listed:
        origin = "https://news.example"
    assert len(origin) == length
    allowed = "https://news.example"
    td = make_tickerd({"auth": {"allowed_origins": allowed}})
    req = ws_handshake_request(td.port, "/v1/ws", b"Origin: " + origin.encode() + b"\r\n")
    import socket
    with socket.create_connection(("127.0.0.1", td.port), timeout=5) as s:
        s.sendall(req)
        head = s.recv(4096)
    assert head.startswith(b"HTTP/1.1 %d" % status), head[:60]


# --- CVE-2025-11677: a bad Upgrade after a keep-alive request ---

@pytest.mark.parametrize("upgrade", [b"foo", b"h2c", b"websocketx", b"x" * 40])
def test_bad_upgrade_on_a_kept_alive_connection(tickerd, upgrade):
    """lws 4.1.6 frees the request's headers and still calls the upgrade
    callback with a pointer into them; tickerd must not read it (the ASan
    run of this test reports a use-after-free otherwise)."""
    import socket
    with socket.create_connection(("127.0.0.1", tickerd.port), timeout=5) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        first = s.recv(65536)
        assert first.startswith(b"HTTP/1.1 200")
        s.sendall(b"GET /v1/ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: " + upgrade +
                  b"\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  b"Sec-WebSocket-Version: 13\r\n\r\n")
        try:
            reply = s.recv(65536)
        except ConnectionResetError:
            reply = b""
        assert not reply.startswith(b"HTTP/1.1 101")
    assert tickerd.proc.poll() is None
    assert tickerd.health()[0] == 200
