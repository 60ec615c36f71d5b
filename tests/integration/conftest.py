"""Fixtures and helpers of tickerd's integration tests.

Every test gets its own redis-server and tickerd, each on a free loopback
port and in the test's own temporary directory. Both are stopped with
SIGTERM (by PID, only the processes started here) when the test ends, with a
time bound and SIGKILL as the last resort. Every wait has a timeout.

Run with /usr/bin/python3 -m pytest; the daemon is $TICKERD_BUILD/tickerd
(default ../../build relative to this directory).
"""

import asyncio
import base64
import http.client
import json
import os
import signal
import socket
import struct
import subprocess
import time

import pytest
import redis
import websockets
from prometheus_client.parser import text_string_to_metric_families

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.path.abspath(os.environ.get("TICKERD_BUILD", os.path.join(HERE, "..", "..", "build")))
TICKERD = os.path.join(BUILD, "tickerd")
# `make valgrind-test` runs tickerd under valgrind: a memory error or a
# definite leak makes it exit with VALGRIND_ERROR, which fails the test.
WRAPPER = os.environ.get("TICKERD_WRAPPER", "").split()
VALGRIND_ERROR = 99
STREAM = "ticker:breaking"

START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0


# --------------------------------------------------------------------------
# processes


def free_port():
    """A loopback port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout, interval=0.02, what="condition"):
    """Polls pred() until it returns a true value; returns it or fails."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while time.monotonic() < deadline:
        try:
            v = pred()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            last_exc = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last_exc!r})")


def stop_process(proc, timeout=STOP_TIMEOUT):
    """SIGTERM to this one process, then SIGKILL if it outlives timeout.
    Returns its exit status."""
    if proc.poll() is None:
        try:
            os.kill(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)
    return proc.returncode


class RedisServer:
    """A redis-server of our own, persisting nothing unless appendonly."""

    def __init__(self, workdir, appendonly=False):
        self.dir = workdir
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.appendonly = appendonly
        self.proc = None
        self.logfile = os.path.join(self.dir, "redis.log")

    def start(self):
        assert self.proc is None or self.proc.poll() is not None
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "yes" if self.appendonly else "no",
                "--dir", self.dir, "--logfile", self.logfile]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_until(lambda: self.client().ping(), START_TIMEOUT, what=f"redis on {self.port}")
        return self

    def stop(self):
        if self.proc is not None:
            stop_process(self.proc)

    def client(self):
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5,
                           socket_connect_timeout=2)

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"


def write_config(path, sections):
    with open(path, "w") as f:
        for section, keys in sections.items():
            f.write(f"[{section}]\n")
            for k, v in keys.items():
                f.write(f"{k} = {v}\n")
            f.write("\n")


RUNNING = []  # started Tickerds, for xadd to wait on


class Tickerd:
    """One tickerd process with a config file of its own."""

    def __init__(self, workdir, redis_server, config=None):
        self.dir = workdir
        os.makedirs(self.dir, exist_ok=True)
        self.redis = redis_server
        self.port = free_port()
        self.static_dir = os.path.join(self.dir, "static")
        os.makedirs(self.static_dir, exist_ok=True)
        sections = {"server": {"static_dir": self.static_dir, "workers": 1}}
        for section, keys in (config or {}).items():
            sections.setdefault(section, {}).update(keys)
        self.config = sections
        self.config_path = os.path.join(self.dir, "tickerd.conf")
        write_config(self.config_path, sections)
        self.logfile = os.path.join(self.dir, "tickerd.log")
        self.proc = None

    def start(self, wait=True):
        log = open(self.logfile, "ab")
        self.proc = subprocess.Popen(
            WRAPPER + [TICKERD, "-c", self.config_path, "--listen",
                       f"127.0.0.1:{self.port}", "--redis", self.redis.url],
            cwd=self.dir, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        if wait:
            self.wait_ready()
        RUNNING.append(self)
        return self

    def wait_ready(self, timeout=START_TIMEOUT * (6 if WRAPPER else 1)):
        def ready():
            assert self.proc.poll() is None, f"tickerd exited with {self.proc.returncode}"
            status, _, body = http_get(self.port, "/healthz", timeout=1)
            return status == 200 and json.loads(body).get("ready") is True
        wait_until(ready, timeout, what="tickerd /healthz")

    def stop(self, timeout=STOP_TIMEOUT):
        if self in RUNNING:
            RUNNING.remove(self)
        rc = stop_process(self.proc, timeout * (4 if WRAPPER else 1)) if self.proc else None
        assert rc != VALGRIND_ERROR or not WRAPPER, "valgrind found errors:\n" + self.log()[-4000:]
        return rc

    def wait_ingested(self, entry_id, timeout=1.0):
        """Waits until the history holds entry_id (/healthz last_id).
        Returns False when it does not within timeout (a rejected entry, a
        daemon that cannot be asked): callers that need it assert."""
        want = tuple(int(x) for x in entry_id.split("-"))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.proc.poll() is not None or self.config["server"].get("tls_cert"):
                    return False
                last = self.health()[1]["last_id"]
            except Exception:  # noqa: BLE001 - not answering: do not wait
                return False
            if tuple(int(x) for x in last.split("-")) >= want:
                return True
            time.sleep(0.005)
        return False

    def log(self):
        try:
            with open(self.logfile, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def ws_url(self, query=""):
        return f"ws://127.0.0.1:{self.port}/v1/ws" + (f"?{query}" if query else "")

    def metrics(self):
        """Every sample of /metrics: {(name, ((label, value), ...)): value}."""
        status, _, body = http_get(self.port, "/metrics")
        assert status == 200
        out = {}
        for fam in text_string_to_metric_families(body.decode()):
            for s in fam.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return out

    def metric(self, name, **labels):
        return self.metrics().get((name, tuple(sorted(labels.items()))))

    def health(self):
        status, _, body = http_get(self.port, "/healthz")
        return status, json.loads(body)


# --------------------------------------------------------------------------
# HTTP


def http_get(port, path, headers=None, timeout=5):
    """One GET sent with the path exactly as given. Returns (status,
    {lowercase header: value}, body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        conn.endheaders()
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
    finally:
        conn.close()


def raw_request(port, request: bytes, timeout=5):
    """Sends raw request bytes and reads the whole response (head + a body of
    Content-Length bytes). Returns (status, headers, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        head, _, body = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        want = int(headers.get("content-length", "0"))
        while len(body) < want:
            chunk = s.recv(65536)
            if not chunk:
                break
            body += chunk
        return status, headers, body


def ws_handshake_request(port, path, extra=b""):
    key = base64.b64encode(os.urandom(16))
    return (b"GET " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1:" + str(port).encode() +
            b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
            b"\r\nSec-WebSocket-Version: 13\r\n" + extra + b"\r\n")


# --------------------------------------------------------------------------
# WebSocket clients


def run(coro, timeout=60):
    """Runs a test coroutine with an overall time bound."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


class WS:
    """A WebSocket client (websockets 10, asyncio) that reads JSON frames
    with timeouts."""

    def __init__(self, conn):
        self.conn = conn

    @classmethod
    async def connect(cls, td, query="", **kw):
        kw.setdefault("open_timeout", 5)
        kw.setdefault("close_timeout", 2)
        kw.setdefault("ping_interval", None)
        kw.setdefault("max_size", 1 << 22)
        kw.setdefault("max_queue", None)
        return cls(await websockets.connect(td.ws_url(query), **kw))

    async def recv(self, timeout=5):
        msg = await asyncio.wait_for(self.conn.recv(), timeout)
        assert isinstance(msg, str), "server frames are text"
        return json.loads(msg)

    async def send(self, obj):
        await self.conn.send(obj if isinstance(obj, str) else json.dumps(obj))

    async def start(self, timeout=5):
        """Reads the connect sequence: hello, replayed events, the replay
        marker. Returns (hello, [replayed], marker)."""
        hello = await self.recv(timeout)
        assert hello["type"] == "hello", hello
        replayed = []
        while True:
            f = await self.recv(timeout)
            if f["type"] == "replay":
                return hello, replayed, f
            assert f.get("replay") is True, f"replayed event without replay:true: {f}"
            replayed.append(f)

    async def recv_n(self, n, timeout=5):
        return [await self.recv(timeout) for _ in range(n)]

    async def expect_silence(self, timeout=0.3):
        """Asserts that no frame arrives within timeout."""
        try:
            f = await asyncio.wait_for(self.conn.recv(), timeout)
        except asyncio.TimeoutError:
            return
        raise AssertionError(f"unexpected frame: {f}")

    async def wait_closed(self, timeout=5):
        """Reads (and drops) frames until the server closes; returns the
        close code it sent."""
        async def drain():
            try:
                while True:
                    await self.conn.recv()
            except websockets.ConnectionClosed:
                pass
        await asyncio.wait_for(drain(), timeout)
        return self.conn.close_code

    async def close(self):
        try:
            await asyncio.wait_for(self.conn.close(), 3)
        except Exception:  # noqa: BLE001 - best effort at teardown
            pass


class RawWS:
    """A WebSocket client on a plain socket: does the handshake and then
    reads only when told to (the slow-consumer test)."""

    def __init__(self, port, path, rcvbuf=None, timeout=5):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        self.sock.sendall(ws_handshake_request(port, path))
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = self.sock.recv(4096)
            assert chunk, "closed during the handshake"
            buf += chunk
        head, _, self.buf = buf.partition(b"\r\n\r\n")
        self.status = int(head.split()[1])

    def _fill(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise EOFError
            self.buf += chunk

    def read_frame(self):
        """(opcode, payload) of the next server frame."""
        self._fill(2)
        b0, b1 = self.buf[0], self.buf[1]
        n, off = b1 & 0x7F, 2
        if n == 126:
            self._fill(4)
            n, off = struct.unpack("!H", self.buf[2:4])[0], 4
        elif n == 127:
            self._fill(10)
            n, off = struct.unpack("!Q", self.buf[2:10])[0], 10
        self._fill(off + n)
        payload = self.buf[off:off + n]
        self.buf = self.buf[off + n:]
        return b0 & 0x0F, payload

    def send_frame(self, opcode, payload, fin=True):
        """Sends one masked client frame."""
        mask = os.urandom(4)
        n = len(payload)
        head = bytes([(0x80 if fin else 0) | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", n)
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def read_json(self):
        op, payload = self.read_frame()
        assert op == 1, (op, payload)
        return json.loads(payload)

    def read_close(self):
        """Skips data frames up to the close frame; returns its code."""
        while True:
            op, payload = self.read_frame()
            if op == 8:
                return struct.unpack("!H", payload[:2])[0]

    def close(self):
        self.sock.close()


# --------------------------------------------------------------------------
# fixtures


@pytest.fixture
def redis_server(tmp_path):
    srv = RedisServer(str(tmp_path / "redis")).start()
    yield srv
    srv.stop()


@pytest.fixture
def rds(redis_server):
    return redis_server.client()


def check_log(name, rc, log, tail=40):
    """Prints the tail of a stopped tickerd's log and fails on a sanitizer
    report in it."""
    print(f"--- {name} (exit {rc}) log tail ---\n" + "\n".join(log.splitlines()[-tail:]))
    assert "AddressSanitizer" not in log and "runtime error" not in log, log


def stop_and_check(td, tail=40):
    """Stops td, then check_log; returns its exit code and log."""
    rc = td.stop()
    log = td.log()
    check_log(td.dir, rc, log, tail)
    return rc, log


@pytest.fixture
def make_tickerd(tmp_path, redis_server):
    """make_tickerd(config={section: {key: value}}, start=True) -> Tickerd."""
    started = []

    def make(config=None, start=True, redis_srv=None, name="tickerd"):
        td = Tickerd(str(tmp_path / name), redis_srv or redis_server, config)
        started.append(td)
        return td.start() if start else td

    yield make
    for td in started:
        stop_and_check(td)


@pytest.fixture
def tickerd(make_tickerd):
    return make_tickerd()


@pytest.fixture
def xadd(rds, redis_server):
    """xadd(**fields) -> the new entry's ID (str). Values may be bytes.
    Returns once every running tickerd on this Redis has the entry in its
    history (or after 1 s: a rejected entry never gets there), so that a
    client connecting next finds it in its replay."""

    def add(**fields):
        entry_id = rds.xadd(STREAM, fields).decode()
        for td in list(RUNNING):
            if td.redis is redis_server:
                td.wait_ingested(entry_id)
        return entry_id

    return add


# --------------------------------------------------------------------------
# expected frames


def id_ms(entry_id):
    return int(entry_id.split("-")[0])


def item_frame(entry_id, text, lang="en", region=(), priority="breaking", category=None,
               url=None, source=None, ttl=21600, type="item", replay=False, ref=None, ts_id=None):
    """The exact frame tickerd sends for an item (SPEC §2). ts and expires
    come from ts_id (the original's ID; default entry_id)."""
    ts = id_ms(ts_id or entry_id)
    f = {"type": type, "id": entry_id}
    if ref:
        f["ref"] = ref
    f.update({"ts": ts, "lang": lang, "region": list(region), "priority": priority})
    if category:
        f["category"] = category
    f["text"] = text
    if url:
        f["url"] = url
    if source:
        f["source"] = source
    f["expires"] = ts + ttl * 1000
    if replay:
        f["replay"] = True
    return f


# --------------------------------------------------------------------------
# Server-Sent Events


class SSE:
    """An SSE client on a plain socket. read_block() returns one event
    block as {"id", "event", "data" (decoded JSON), "comment", "retry"}
    (only the fields the block had)."""

    def __init__(self, port, path="/v1/events", headers=None, timeout=5, rcvbuf=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:  # before connecting, as RawWS: the window stays small
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                          f"Accept: text/event-stream\r\n{extra}\r\n".encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            assert chunk, "closed before the response head"
            self.buf += chunk
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            self.headers[k.strip().lower()] = v.strip()

    def read_block(self, timeout=5):
        self.sock.settimeout(timeout)
        while b"\n\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("SSE stream closed")
            self.buf += chunk
        block, _, self.buf = self.buf.partition(b"\n\n")
        out = {}
        for line in block.decode("utf-8").split("\n"):
            if line.startswith(":"):
                out["comment"] = line[1:]
                continue
            k, _, v = line.partition(":")
            v = v[1:] if v.startswith(" ") else v
            out[k] = json.loads(v) if k == "data" else v
        return out

    def read_event(self, timeout=5):
        """The next block that is an event (skips comments and retry)."""
        while True:
            b = self.read_block(timeout)
            if "data" in b:
                return b

    def read_until_eof(self, timeout=5):
        self.sock.settimeout(timeout)
        data = self.buf
        while True:
            chunk = self.sock.recv(65536)
            if not chunk:
                return data
            data += chunk

    def close(self):
        self.sock.close()


# --------------------------------------------------------------------------
# Redis faults (test_faults.py): servers that misbehave, and a proxy that
# can be paused, black-holed and cut in front of a real redis-server


import threading  # noqa: E402 - kept with the helpers that use it


class ExtraRedisServer(RedisServer):
    """A RedisServer with extra command-line arguments, and optionally a
    unix socket (then url is unix://...)."""

    def __init__(self, workdir, extra=(), unixsocket=None, appendonly=False, host="127.0.0.1",
                 port=None):
        super().__init__(workdir, appendonly=appendonly)
        self.extra = list(extra)
        self.unixsocket = unixsocket
        self.host = host
        if port:
            self.port = port

    def start(self):
        assert self.proc is None or self.proc.poll() is not None
        args = ["redis-server", "--port", str(self.port), "--bind", self.host,
                "--save", "", "--appendonly", "yes" if self.appendonly else "no",
                "--dir", self.dir, "--logfile", self.logfile] + self.extra
        if self.unixsocket:
            args += ["--unixsocket", self.unixsocket, "--unixsocketperm", "700"]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_until(lambda: self.client().ping(), START_TIMEOUT, what=f"redis on {self.port}")
        return self

    def client(self):
        if self.unixsocket:
            return redis.Redis(unix_socket_path=self.unixsocket, socket_timeout=5,
                               socket_connect_timeout=2)
        return redis.Redis(host=self.host, port=self.port, socket_timeout=5,
                           socket_connect_timeout=2)

    @property
    def url(self):
        if self.unixsocket:
            return f"unix://{self.unixsocket}"
        return f"redis://{self.host}:{self.port}/0"


class Endpoint:
    """Something tickerd's --redis can point at that is not a RedisServer
    (a proxy, a silent server): only url."""

    def __init__(self, url):
        self.url = url


class SilentServer:
    """Accepts TCP connections on a free loopback port, reads what is sent
    and never answers. accepted counts the connections."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.conns = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def _run(self):
        while not self.stopped.is_set():
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            self.conns.append(c)  # held open, never read: the peer waits

    def stop(self):
        self.stopped.set()
        self.thread.join(5)
        for c in self.conns:
            c.close()
        self.sock.close()


class TcpProxy:
    """A TCP proxy on a free loopback port in front of target_port, with
    faults to inject (threads; every wait is bounded):

    - pause(): stop forwarding; connections stay open and new ones are
      accepted, what is sent waits in the proxy and the kernel (a Redis that
      stops answering). resume() forwards it all.
    - blackhole(): what is sent on open connections is dropped, and new
      connections are never accepted (the listen queue is full: a connect
      hangs in SYN-SENT, as towards a black-holed address). restore() ends
      it (and a pause).
    - cut(): closes every open connection (a reset for the peer).

    accepted counts the connections accepted; stop() ends everything."""

    def __init__(self, target_port, target_host="127.0.0.1"):
        self.target = (target_host, target_port)
        self.port = free_port()
        self.cond = threading.Condition()
        self.paused = False
        self.holed = False
        self.accepted = 0
        self.pairs = []
        self.stopped = False
        self.listener = None
        self.plug = []  # black-hole: a listen(0) socket and the connection filling its queue
        self._listen()

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def _bind(self, backlog):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(backlog)
        return s

    def _listen(self):
        self.listener = self._bind(64)
        self.listener.settimeout(0.1)
        t = threading.Thread(target=self._accept, args=(self.listener,), daemon=True)
        t.start()

    def _accept(self, listener):
        while True:
            with self.cond:
                if self.stopped or listener is not self.listener:
                    break
            try:
                client, _ = listener.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            try:
                upstream = socket.create_connection(self.target, timeout=2)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            client.settimeout(None)
            with self.cond:
                self.accepted += 1
                self.pairs.append((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()
        listener.close()

    def _pump(self, src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                with self.cond:
                    while self.paused and not self.holed and not self.stopped:
                        self.cond.wait(0.1)
                    if self.stopped:
                        break
                    if self.holed:
                        continue  # dropped
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def pause(self):
        with self.cond:
            self.paused = True

    def resume(self):
        with self.cond:
            self.paused = False
            self.cond.notify_all()

    def blackhole(self):
        with self.cond:
            self.holed = True
            old, self.listener = self.listener, None
        old.close()
        time.sleep(0.15)  # the accept thread lets go of the port
        plug = self._bind(0)
        filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        filler.connect(("127.0.0.1", self.port))  # the one queued connection listen(0) allows
        self.plug = [plug, filler]

    def restore(self):
        for s in self.plug:
            s.close()
        self.plug = []
        with self.cond:
            self.holed = False
            self.paused = False
            self.cond.notify_all()
        if self.listener is None:
            self._listen()

    def cut(self):
        with self.cond:
            pairs, self.pairs = self.pairs, []
        for pair in pairs:
            for s in pair:  # shutdown wakes the pump blocked in recv; then a reset
                try:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def stop(self):
        with self.cond:
            self.stopped = True
            self.cond.notify_all()
        self.cut()
        for s in self.plug:
            s.close()
        if self.listener is not None:
            try:
                self.listener.close()
            except OSError:
                pass


@pytest.fixture
def make_proxy():
    """make_proxy(target_port) -> a started TcpProxy, stopped at the end."""
    made = []

    def make(target_port):
        p = TcpProxy(target_port)
        made.append(p)
        return p

    yield make
    for p in made:
        p.stop()


def can_unshare_mounts():
    """Whether tickerd can run in a mount namespace of its own (root, or
    unprivileged user namespaces)."""
    cmd = ["unshare", "-m"] if os.geteuid() == 0 else ["unshare", "-r", "-m"]
    try:
        return subprocess.run(cmd + ["true"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=5).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


class NsTickerd(Tickerd):
    """A Tickerd in a mount namespace of its own where some files are bind
    mounts of the test's (binds: {"/etc/hosts": path}), so that a test can
    change what a host name resolves to. Same PID as tickerd (unshare and sh
    exec it)."""

    def __init__(self, workdir, redis_server, config=None, binds=None):
        super().__init__(workdir, redis_server, config)
        self.binds = binds or {}

    def start(self, wait=True):
        ns = ["unshare", "-m", "--propagation", "private"]
        if os.geteuid() != 0:
            ns.insert(1, "-r")
        script = "set -e; " + "".join(f'mount --bind "{src}" "{dst}"; '
                                      for dst, src in self.binds.items()) + 'exec "$@"'
        log = open(self.logfile, "ab")
        self.proc = subprocess.Popen(
            ns + ["sh", "-c", script, "sh"] + WRAPPER +
            [TICKERD, "-c", self.config_path, "--listen", f"127.0.0.1:{self.port}", "--redis",
             self.redis.url],
            cwd=self.dir, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        if wait:
            self.wait_ready()
        RUNNING.append(self)
        return self
