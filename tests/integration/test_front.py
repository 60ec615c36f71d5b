"""The door every connection passes before libwebsockets (listener.c): the
limits on a first request's head, answered 414/431 at their edges; a head
that never completes (408); and who the client is behind a trusted proxy
(PROXY protocol v1/v2, X-Forwarded-For, [server] trusted_proxies), seen
through max_per_ip and the refusal log lines."""
import socket
import struct
import time

import pytest

from conftest import wait_until, ws_handshake_request

LINE_MAX, HEAD_MAX, FIELDS_MAX, PARAMS_MAX = 4096, 8192, 50, 32


def exchange(port, data, source="127.0.0.1", timeout=5, read_all=True):
    """Sends data from the given source address; returns everything read
    until the server closes (or the head only, read_all=False)."""
    s = socket.socket()
    s.settimeout(timeout)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    try:
        s.sendall(data)
        buf = b""
        while read_all or b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        return buf if read_all else (s, buf)
    finally:
        if read_all:
            s.close()


def read_to_close(s):
    """Everything s receives until the server closes."""
    reply = b""
    while chunk := s.recv(65536):
        reply += chunk
    return reply


def status_of(reply):
    return int(reply.split()[1]) if reply.startswith(b"HTTP/1.1 ") else None


def request_line_of(length):
    """A GET /healthz request line of exactly `length` bytes (no CRLF)."""
    start, tail = b"GET /healthz?pad=", b" HTTP/1.1"
    return start + b"a" * (length - len(start) - len(tail)) + tail


@pytest.mark.parametrize("length, status", [(LINE_MAX - 1, 200), (LINE_MAX, 200),
                                            (LINE_MAX + 1, 414)])
def test_request_line_at_its_limit(tickerd, length, status):
    line = request_line_of(length)
    assert len(line) == length
    reply = exchange(tickerd.port, line + b"\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status_of(reply) == status, reply[:80]


@pytest.mark.parametrize("params, status", [(PARAMS_MAX - 1, 200), (PARAMS_MAX, 200),
                                            (PARAMS_MAX + 1, 414)])
def test_query_parameters_at_their_limit(tickerd, params, status):
    query = b"&".join(b"region=mena" for _ in range(params))
    reply = exchange(tickerd.port, b"GET /v1/items?" + query +
                     b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status_of(reply) == status, reply[:80]


def head_of(total):
    """A GET /healthz head of exactly `total` bytes, padded in one header."""
    start, end = b"GET /healthz HTTP/1.1\r\nConnection: close\r\nX-Pad: ", b"\r\n\r\n"
    return start + b"p" * (total - len(start) - len(end)) + end


@pytest.mark.parametrize("total, status", [(HEAD_MAX - 1, 200), (HEAD_MAX, 200),
                                           (HEAD_MAX + 1, 431)])
def test_head_at_its_limit(tickerd, total, status):
    head = head_of(total)
    assert len(head) == total
    assert status_of(exchange(tickerd.port, head)) == status


@pytest.mark.parametrize("fields, status", [(FIELDS_MAX - 1, 200), (FIELDS_MAX, 200),
                                            (FIELDS_MAX + 1, 431)])
def test_header_lines_at_their_limit(tickerd, fields, status):
    lines = [b"Connection: close"] + [b"X-H%d: v" % i for i in range(fields - 1)]
    head = b"GET /healthz HTTP/1.1\r\n" + b"\r\n".join(lines) + b"\r\n\r\n"
    assert status_of(exchange(tickerd.port, head)) == status


def test_websocket_handshake_at_the_head_limit(tickerd):
    """The limit is the same for an upgrade; under it, the upgrade works."""
    base = ws_handshake_request(tickerd.port, "/v1/ws")
    for total, want in ((HEAD_MAX, 101), (HEAD_MAX + 1, 431)):
        pad = total - len(base) - len(b"X-Pad: \r\n")
        req = base[:-2] + b"X-Pad: " + b"p" * pad + b"\r\n\r\n"
        assert len(req) == total
        s, head = exchange(tickerd.port, req, read_all=False)
        s.close()
        assert status_of(head) == want, head[:80]


def test_a_head_in_pieces_is_served(tickerd):
    """The door waits for a head sent a few bytes at a time."""
    req = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", tickerd.port), timeout=5) as s:
        for i in range(0, len(req), 7):
            s.sendall(req[i:i + 7])
            time.sleep(0.01)
        reply = read_to_close(s)
    assert status_of(reply) == 200


def test_a_client_that_speaks_late_is_served(tickerd):
    """The listener defers the accept until a connection's first bytes
    (TCP_DEFER_ACCEPT, 1 s): one that says nothing for longer is accepted
    anyway, and served when it speaks; the edges are just under and just
    over the deferral."""
    for delay in (0.8, 1.3, 3.5):
        with socket.create_connection(("127.0.0.1", tickerd.port), timeout=10) as s:
            time.sleep(delay)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            reply = read_to_close(s)
        assert status_of(reply) == 200, (delay, reply[:80])


def test_a_silent_connection_is_answered_408(tickerd):
    """A connection that sends nothing at all still reaches the door (after
    the deferral) and gets its 408 once the head timeout runs out."""
    with socket.create_connection(("127.0.0.1", tickerd.port), timeout=25) as s:
        start = time.monotonic()
        reply = read_to_close(s)
        elapsed = time.monotonic() - start
    assert status_of(reply) == 408, reply[:80]
    assert 9 <= elapsed <= 20, elapsed
    assert tickerd.health()[0] == 200


def test_a_head_that_never_ends_is_answered_408(tickerd):
    with socket.create_connection(("127.0.0.1", tickerd.port), timeout=20) as s:
        start = time.monotonic()
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        reply = read_to_close(s)
        elapsed = time.monotonic() - start
    assert status_of(reply) == 408, reply[:80]
    assert 9 <= elapsed <= 16, elapsed
    assert tickerd.health()[0] == 200


def test_a_body_sent_with_the_head_reaches_lws(tickerd):
    """What the door read past the head is handed on, not lost: a second
    request pipelined behind the first is answered too."""
    one = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    two = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    reply = exchange(tickerd.port, one + two)
    assert reply.count(b"HTTP/1.1 200") == 2, reply[:200]


# --- who the client is ---------------------------------------------------

def proxy_v1(src, sport=40000):
    fam = b"TCP6" if ":" in src else b"TCP4"
    dst = b"::1" if ":" in src else b"127.0.0.1"
    return b"PROXY %s %s %s %d 8080\r\n" % (fam, src.encode(), dst, sport)


def proxy_v2(src, cmd=1, tlv=b""):
    sig = b"\r\n\r\n\x00\r\nQUIT\n"
    if ":" in src:
        addrs = socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, "::1")
        body = addrs + struct.pack("!HH", 40000, 8080) + tlv
        fam = 0x21
    else:
        addrs = socket.inet_aton(src) + socket.inet_aton("127.0.0.1")
        body = addrs + struct.pack("!HH", 40000, 8080) + tlv
        fam = 0x11
    return sig + bytes([0x20 | cmd, fam]) + struct.pack("!H", len(body)) + body


@pytest.fixture
def behind_lb(make_tickerd):
    """127.0.0.1 is the load balancer; 127.0.0.2 is someone else. One
    connection per client address."""
    return make_tickerd({"server": {"trusted_proxies": "127.0.0.1"},
                         "limits": {"max_per_ip": 1}})


def upgrade(td, prefix=b"", source="127.0.0.1", extra=b""):
    s, head = exchange(td.port, prefix + ws_handshake_request(td.port, "/v1/ws", extra),
                       source=source, read_all=False)
    return s, status_of(head)


@pytest.mark.parametrize("header", [proxy_v1, proxy_v2], ids=["v1", "v2"])
def test_proxy_header_names_the_client(behind_lb, header):
    td = behind_lb
    a, status = upgrade(td, header("203.0.113.7"))
    assert status == 101
    # another client through the same balancer has its own count
    b, status = upgrade(td, header("203.0.113.8"))
    assert status == 101
    # the same client again is over max_per_ip, and the log names it
    c, status = upgrade(td, header("203.0.113.7"))
    assert status == 429
    for s in (a, b, c):
        s.close()
    wait_until(lambda: "refused 203.0.113.7: HTTP 429" in td.log(), 5, what="the client named")


def test_proxy_header_ipv6_and_tlvs(behind_lb):
    td = behind_lb
    a, status = upgrade(td, proxy_v2("2001:db8::7", tlv=b"\x04\x00\x03abc"))
    assert status == 101
    b, status = upgrade(td, proxy_v1("2001:db8::7"))
    assert status == 429
    a.close()
    b.close()
    wait_until(lambda: "refused 2001:db8::7: HTTP 429" in td.log(), 5, what="the IPv6 client")


def test_proxy_local_command_keeps_the_peer(behind_lb):
    """A LOCAL header (the balancer's own health check) names no one: the
    connection counts as the balancer's."""
    td = behind_lb
    reply = exchange(td.port, proxy_v2("203.0.113.7", cmd=0) +
                     b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert status_of(reply) == 200


def test_proxy_header_from_an_untrusted_peer_is_refused(behind_lb):
    td = behind_lb
    for header in (proxy_v1("203.0.113.7"), proxy_v2("203.0.113.7")):
        reply = exchange(td.port, header + b"GET /healthz HTTP/1.1\r\n\r\n", source="127.0.0.2")
        assert status_of(reply) == 400, reply[:80]
    wait_until(lambda: "refused 127.0.0.2: HTTP 400: a PROXY header from an address not in "
               "trusted_proxies" in td.log(), 5, what="the refusal")


def test_no_proxy_header_is_refused_by_default(tickerd):
    """With trusted_proxies empty (the default) no one may send one."""
    reply = exchange(tickerd.port, proxy_v1("203.0.113.7") + b"GET /healthz HTTP/1.1\r\n\r\n")
    assert status_of(reply) == 400


@pytest.mark.parametrize("bad", [
    b"PROXY TCP4 203.0.113.7 127.0.0.1 40000\r\n",
    b"PROXY TCP4 203.0.113.777 127.0.0.1 40000 8080\r\n",
    b"PROXY TCP4 203.0.113.7 127.0.0.1 40000 8080\n",
    b"PROXY UNKNOWN " + b"x" * 200 + b"\r\n",
    b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x02\x00" + b"\x00" * 512,
], ids=["short", "bad address", "no CR", "too long v1", "too long v2"])
def test_malformed_proxy_header_is_refused(behind_lb, bad):
    reply = exchange(behind_lb.port, bad + b"GET /healthz HTTP/1.1\r\n\r\n")
    assert status_of(reply) == 400, reply[:80]
    assert behind_lb.health()[0] == 200


def test_trusted_peer_without_a_proxy_header_is_itself(behind_lb):
    reply = exchange(behind_lb.port, b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert status_of(reply) == 200


def test_forwarded_for_from_a_trusted_peer(behind_lb):
    td = behind_lb
    xff = lambda ip: b"X-Forwarded-For: 198.51.100.1, " + ip + b"\r\n"
    a, status = upgrade(td, extra=xff(b"203.0.113.7"))
    assert status == 101
    b, status = upgrade(td, extra=xff(b"203.0.113.8"))
    assert status == 101
    c, status = upgrade(td, extra=xff(b"203.0.113.7"))
    assert status == 429
    for s in (a, b, c):
        s.close()
    wait_until(lambda: "refused 203.0.113.7: HTTP 429" in td.log(), 5, what="the client named")


def test_forwarded_for_from_an_untrusted_peer_is_ignored(behind_lb):
    td = behind_lb
    a, status = upgrade(td, source="127.0.0.2", extra=b"X-Forwarded-For: 203.0.113.7\r\n")
    assert status == 101
    b, status = upgrade(td, source="127.0.0.2", extra=b"X-Forwarded-For: 203.0.113.8\r\n")
    assert status == 429  # both are 127.0.0.2, whatever they claim
    a.close()
    b.close()
    wait_until(lambda: "refused 127.0.0.2: HTTP 429" in td.log(), 5, what="the real peer")


def test_forwarded_for_garbage_is_not_believed(behind_lb):
    """An unparsable entry ends the walk: the client is the hop before it,
    here the balancer itself, never the forged text."""
    td = behind_lb
    a, status = upgrade(td, extra=b"X-Forwarded-For: 203.0.113.7, <script>\r\n")
    assert status == 101
    b, status = upgrade(td)
    assert status == 429  # both counted as 127.0.0.1
    a.close()
    b.close()


def test_proxy_header_then_forwarded_for(make_tickerd):
    """PROXY names a hop that is itself trusted: its X-Forwarded-For names
    the client."""
    td = make_tickerd({"server": {"trusted_proxies": "127.0.0.1, 10.0.0.0/8"},
                       "limits": {"max_per_ip": 1}})
    a, status = upgrade(td, proxy_v1("10.1.1.1"), extra=b"X-Forwarded-For: 203.0.113.7\r\n")
    assert status == 101
    b, status = upgrade(td, proxy_v1("10.1.1.1"), extra=b"X-Forwarded-For: 203.0.113.7\r\n")
    assert status == 429
    a.close()
    b.close()
    wait_until(lambda: "refused 203.0.113.7: HTTP 429" in td.log(), 5, what="the client")


def test_trusted_proxies_reload(behind_lb):
    td = behind_lb
    reply = exchange(td.port, proxy_v1("203.0.113.7") + b"GET /healthz HTTP/1.1\r\n"
                     b"Connection: close\r\n\r\n", source="127.0.0.2")
    assert status_of(reply) == 400
    with open(td.config_path) as f:
        cfg = f.read().replace("trusted_proxies = 127.0.0.1", "trusted_proxies = 127.0.0.1, 127.0.0.2")
    with open(td.config_path, "w") as f:
        f.write(cfg)
    td.proc.send_signal(1)
    wait_until(lambda: "configuration reloaded" in td.log(), 5, what="the reload")
    reply = exchange(td.port, proxy_v1("203.0.113.7") + b"GET /healthz HTTP/1.1\r\n"
                     b"Connection: close\r\n\r\n", source="127.0.0.2")
    assert status_of(reply) == 200


def test_proxy_header_before_tls(make_tickerd, tmp_path):
    """Over TLS the door takes only the PROXY header off (the rest is the
    handshake, lws's to read): the client it names counts, and a
    connection without one from the same balancer still works."""
    import ssl
    import subprocess
    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj",
                    "/CN=localhost", "-days", "1", "-keyout", key, "-out", cert],
                   check=True, capture_output=True, timeout=60)
    td = make_tickerd({"server": {"tls_cert": cert, "tls_key": key,
                                  "trusted_proxies": "127.0.0.1"},
                       "limits": {"max_per_ip": 1}}, start=False)
    td.start(wait=False)
    ctx = ssl.create_default_context(cafile=cert)
    ctx.check_hostname = False

    def tls_upgrade(prefix, source="127.0.0.1"):
        raw = socket.socket()
        raw.settimeout(5)
        raw.bind((source, 0))
        raw.connect(("127.0.0.1", td.port))
        raw.sendall(prefix)
        s = ctx.wrap_socket(raw)
        s.sendall(ws_handshake_request(td.port, "/v1/ws"))
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(4096)
            if not chunk:
                break
            head += chunk
        return s, status_of(head)

    def up():
        try:
            s, status = tls_upgrade(b"")
            s.close()
            return status == 101
        except OSError:
            return False

    wait_until(up, 10, what="tickerd over TLS")
    a, status = tls_upgrade(proxy_v1("203.0.113.7"))
    assert status == 101
    b, status = tls_upgrade(proxy_v2("203.0.113.8"))
    assert status == 101
    c, status = tls_upgrade(proxy_v2("203.0.113.7"))
    assert status == 429
    for s in (a, b, c):
        s.close()
    wait_until(lambda: "refused 203.0.113.7: HTTP 429" in td.log(), 5, what="the client named")
    # from an untrusted peer, a PROXY header ends the connection
    with pytest.raises((ssl.SSLError, OSError)):
        tls_upgrade(proxy_v1("203.0.113.9"), source="127.0.0.2")
