"""What each client sees, against a reference model (SPEC §2), with
hypothesis (python3-hypothesis) drawing the steps.

One redis-server and one tickerd per test function; the examples follow one
another on the same stream. The model remembers the whole stream, and each
example starts by retracting what is still live, so that a replay starts
from nothing. Steps: publish, update (text and a random subset of lang,
region, priority, category), retract, retract/update of an ID tickerd never
saw, connect (WebSocket or SSE, a random filter, replay=N or since=<an ID of
this example>), stop reading, resume, disconnect, reconnect with since=<the
last ID the client got> (SSE: Last-Event-ID), and embargoed publishes
(released by the timer, cancelled while held, or released at once by an
update; a release is an event at its key). Long-poll clients (GET
/v1/poll) are a series of polls, each from the last answer's last_id; the
first answer stands for hello, its events and the marker; one that stops
reading sends no poll until it resumes, and then gets what it missed in
pages of replay_max. Clients have a 4 KB receive
buffer, so that one that stops reading makes tickerd hold its frames; in
each example client 0 takes everything and reads nothing until a resume
step or the end.

The model: a client gets hello; then for replay=N the current state (updates
merged, retracted items left out) of the newest N items whose current
version matches, oldest first, or for since every event after since that is
routed to it, in order; the marker {count, gap:false}; then every later
event routed to it. An item goes to the clients its fields match; an update
or retract goes to those matching any version of the item up to it; a
retract of an unknown ID goes to everyone; an update of one is rejected.
Before a client connects the test waits until tickerd has ingested the last
entry, so replay and live are both determined.

The examples are the same on every run (derandomized);
TICKERD_MODEL_RANDOM=1 draws new ones. TICKERD_SHRINK=1 lets hypothesis
shrink a failure (unbounded in time); without it the failing example is
reported as drawn.
"""

import collections
import hashlib
import json
import os
import select
import socket
import struct
import time

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from conftest import STREAM, ws_handshake_request

REGIONS, LANGS, CATS = ["mena", "europe", "asia"], ["en", "ar", "es"], ["politics", "sports"]
PRIOS = ["normal", "breaking", "urgent", "flash"]
RANK = {p: n for n, p in enumerate(PRIOS)}
ALL = None  # routing of a retract of an unknown ID: every client
HISTORY, REPLAY_MAX = 1000, 200  # [stream] history_size, [replay] max: the defaults


def id_key(entry_id):
    return tuple(int(x) for x in entry_id.split("-"))


def release_key(at, entry_id):
    """The key of entry_id's release at `at` (tk_history_release_key)."""
    ms, seq = id_key(entry_id)
    return f"{at - 1}-{1 << 63 | (ms & ((1 << 40) - 1)) << 23 | (seq & ((1 << 23) - 1))}"


# --------------------------------------------------------------------------
# the reference model


def matches(flt, item):
    return ((not flt.get("region") or not item["region"] or
             bool(set(flt["region"]) & set(item["region"]))) and
            (not flt.get("lang") or item["lang"] in flt["lang"]) and
            (not flt.get("priority") or RANK[item["priority"]] >= RANK[flt["priority"]]) and
            (not flt.get("category") or item["category"] in flt["category"]))


def frame(type, entry_id, ref=None, item=None, replay=False, key=None):
    """The part of a frame the test compares; a text as its start, length
    and digest (shorter messages). key: an embargoed item's release."""
    item, text = item or {}, (item or {}).get("text")
    if text is not None:
        text = (text[:10], len(text), hashlib.sha1(text.encode()).hexdigest()[:8])
    return (type, entry_id, ref, item.get("lang"),
            tuple(sorted(item["region"])) if "region" in item else None,
            item.get("priority"), item.get("category"), text, key, replay or None)


class Model:
    def __init__(self):
        self.events = []  # (id, frame, versions the event is routed by, or ALL)
        self.items = {}   # original id -> {"versions": [...], "retracted": bool}
        self.clients = []
        self.last_id = None

    def _add(self, entry_id, f, versions):
        self.events.append((entry_id, f, versions))
        self.last_id = entry_id
        for c in self.clients:
            if routed(c.filter, versions):
                c.expected.append(f)

    def publish(self, entry_id, item):
        self.items[entry_id] = {"versions": [item], "retracted": False}
        self._add(entry_id, frame("item", entry_id, item=item), [item])

    def release(self, key, entry_id, item):
        """An embargoed item goes live: an event at key, its position."""
        self.items[entry_id] = {"versions": [item], "retracted": False}
        self._add(key, frame("item", entry_id, item=item, key=key), [item])

    def update(self, entry_id, ref, fields):
        it = self.items[ref]
        it["versions"].append(dict(it["versions"][-1], **fields))
        self._add(entry_id, frame("update", entry_id, ref, it["versions"][-1]),
                  list(it["versions"]))

    def retract(self, entry_id, ref):
        it = self.items.get(ref)
        if it:
            it["retracted"] = True
        self._add(entry_id, frame("retract", entry_id, ref), list(it["versions"]) if it else ALL)

    def live(self):
        return [i for i, it in self.items.items() if not it["retracted"]]

    def connect(self, c, replay=None, since=None):
        """c.expected: the frames c must get, from hello on."""
        if since is not None:
            pre = [f[:-1] + (True,) for i, f, v in self.events[-HISTORY:]
                   if id_key(i) > id_key(since) and routed(c.filter, v)]
        else:
            # in the order they went live (a released item is the newest)
            cur = [(i, it["versions"][-1]) for i, it in self.items.items()
                   if not it["retracted"] and matches(c.filter, it["versions"][-1])]
            pre = [frame("item", i, item=v, replay=True) for i, v in cur[-replay:]] \
                if replay else []
        gap, rest = False, []
        if since is not None:  # cut to the newest replay_max; since before the history
            horizon = len(self.events) > HISTORY and id_key(
                self.events[-HISTORY - 1][0]) > id_key(since)
            gap = len(pre) > REPLAY_MAX or horizon
            pre = pre[-REPLAY_MAX:]
            if c.kind == "poll":  # live frames, the oldest replay_max first, then the rest
                pre = [f[:-1] + (None,) for i, f, v in self.events[-HISTORY:]
                       if id_key(i) > id_key(since) and routed(c.filter, v)]
                gap, pre, rest = horizon, pre[:REPLAY_MAX], pre[REPLAY_MAX:]
        c.expected = [("hello",)] + pre + [("replay", len(pre), gap)] + rest
        self.clients.append(c)


def routed(flt, versions):
    return versions is ALL or any(matches(flt, v) for v in versions)


# --------------------------------------------------------------------------
# clients on plain sockets, read only when the test says so


def frame_of(obj):
    t = obj.get("type")
    if t == "hello":
        return ("hello",)
    if t == "replay":
        return ("replay", obj.get("count"), obj.get("gap"))
    return frame(t, obj.get("id"), obj.get("ref"), obj, obj.get("replay"), obj.get("key"))


class Client:
    def __init__(self, port, kind, flt, query, headers=None):
        self.kind, self.filter, self.query = kind, flt, query
        self.got, self.expected, self.buf, self.status = [], [], b"", None
        self.reading, self.open, self.eof, self.close_code = True, True, False, None
        self.stopped_at = None
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.settimeout(5)
        self.sock.connect(("127.0.0.1", port))
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        if kind == "ws":
            self.sock.sendall(ws_handshake_request(port, f"/v1/ws?{query}", extra.encode()))
        else:
            self.sock.sendall(f"GET /v1/events?{query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                              f"Accept: text/event-stream\r\n{extra}\r\n".encode())

    def pump(self, timeout=0.0):
        """Reads what has arrived (waiting up to timeout for the first
        bytes) and parses the complete frames."""
        while self.open and not self.eof and select.select([self.sock], [], [], timeout)[0]:
            timeout = 0
            self.take()

    def take(self):
        """One read of what has arrived into buf, then the frames parsed."""
        try:
            data = self.sock.recv(1 << 16)
        except ConnectionError:
            data = b""
        if not data:
            self.eof = True
        self.buf += data
        self._parse()

    def _parse(self):
        if self.status is None:
            head, sep, rest = self.buf.partition(b"\r\n\r\n")
            if not sep:
                return
            self.status, self.buf = int(head.split()[1]), rest
        while True:
            if self.kind == "ws":
                n, off = (self.buf[1] & 0x7F, 2) if len(self.buf) >= 2 else (0, 99)
                if len(self.buf) < {126: 4, 127: 10}.get(n, off):
                    return
                if n == 126:
                    n, off = struct.unpack("!H", self.buf[2:4])[0], 4
                elif n == 127:
                    n, off = struct.unpack("!Q", self.buf[2:10])[0], 10
                if len(self.buf) < off + n:
                    return
                op, payload = self.buf[0] & 0x0F, self.buf[off:off + n]
                self.buf = self.buf[off + n:]
                if op == 8:
                    self.close_code = struct.unpack("!H", payload[:2])[0]
                if op != 1:
                    continue
            else:
                block, sep, rest = self.buf.partition(b"\n\n")
                if not sep:
                    return
                self.buf = rest
                lines = [x for x in block.split(b"\n") if x.startswith(b"data: ")]
                if not lines:
                    continue
                payload = lines[0][6:]
            self.got.append(frame_of(json.loads(payload)))

    def read_until(self, n, timeout=5):
        deadline = time.monotonic() + timeout
        while len(self.got) < n and not self.eof and time.monotonic() < deadline:
            self.pump(min(0.1, max(0, deadline - time.monotonic())))
        return self.got

    def state(self):
        return (f"got {len(self.got)} frames of {len(self.expected)}, "
                f"{'stopped reading, ' if not self.reading else ''}"
                f"{'ended, ' if self.eof else ''}close code {self.close_code}")

    def last_event_id(self):
        ids = [f[8] or f[1] for f in self.got if f[0] in ("item", "update", "retract")]
        return ids[-1] if ids else None

    def close(self):
        if self.open:
            self.open = False
            self.sock.close()


POLL_WAIT_S = 2  # the wait_s of every poll after the first (which answers now)


class PollClient:
    """A long-poll "connection": one GET /v1/poll after another on one
    kept-alive socket, each from the last answer's last_id. Its frames are
    a WebSocket client's: the first answer stands for hello, its events and
    the replay marker; a later answer with gap:true adds ("gap",), which
    the model never expects."""

    kind = "poll"

    def __init__(self, port, flt, query):
        self.port, self.filter, self.query = port, flt, query
        self.got, self.expected, self.buf = [], [], b""
        self.reading, self.open, self.eof, self.close_code = True, True, False, None
        self.stopped_at, self.since, self.polls = None, None, 0
        # No small receive buffer: an answer is written whole, and through
        # 4 KB TCP on loopback moves some 50 KB/s.
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self._send(query + "&wait_s=0")

    def _send(self, query):
        if select.select([self.sock], [], [], 0)[0] and not self.sock.recv(1):
            # tickerd closed the kept-alive connection while it idled (a
            # client that stopped polling): a browser opens another one
            self.sock.close()
            self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        self.sock.sendall(f"GET /v1/poll?{query} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
                          "\r\n".encode())
        self.waiting = True
        self.polls += 1

    def pump(self, timeout=0.0, more=None):
        """Reads the answer that has arrived, and sends the next poll while
        it reads (more: whatever reading says)."""
        more = self.reading if more is None else more
        while self.open and not self.eof:
            if not self.waiting:
                if not more:
                    return
                self._send(query_of(self.filter, since=self.since, wait_s=POLL_WAIT_S))
            if not select.select([self.sock], [], [], timeout)[0]:
                return
            timeout = 0
            self.take()

    def _parse(self):
        head, sep, rest = self.buf.partition(b"\r\n\r\n")
        if not sep:
            return
        lines = head.decode().split("\r\n")
        length = next(int(x.split(":")[1]) for x in lines if x.lower().startswith("content-length"))
        if len(rest) < length:
            return
        self.buf, status = rest[length:], int(lines[0].split()[1])
        self.waiting = False
        if status != 200:
            self.got.append(("http", status, rest[:length]))
            self.eof = True
            return
        body = json.loads(rest[:length])
        frames = [frame_of(e) for e in body["events"]]
        if self.since is None:
            self.got += [("hello",)] + frames + [("replay", len(frames), body["gap"])]
        else:
            self.got += ([("gap",)] if body["gap"] else []) + frames
        self.since = body["last_id"]

    def read_until(self, n, timeout=5):
        deadline = time.monotonic() + timeout
        while len(self.got) < n and not self.eof and time.monotonic() < deadline:
            self.pump(min(0.1, max(0, deadline - time.monotonic())), more=True)
        return self.got

    def state(self):
        return Client.state(self) + f", {self.polls} polls, the last from {self.since}"

    take = Client.take
    last_event_id = Client.last_event_id
    close = Client.close


# --------------------------------------------------------------------------
# steps

filters = st.fixed_dictionaries({}, optional={
    "region": st.lists(st.sampled_from(REGIONS), min_size=1, max_size=2, unique=True),
    "lang": st.lists(st.sampled_from(LANGS), min_size=1, max_size=2, unique=True),
    "priority": st.sampled_from(PRIOS),
    "category": st.lists(st.sampled_from(CATS), min_size=1, max_size=2, unique=True)})
pick = st.integers(0, 99)  # which item or client, modulo how many there are
TEXT = st.integers(0, 3900)  # bytes of text after "step N"
PUBLISH = st.tuples(st.just("publish"), st.sampled_from(LANGS),
              st.lists(st.sampled_from(REGIONS), max_size=2, unique=True),
                    st.sampled_from(PRIOS), st.sampled_from([None] + CATS), TEXT)
CONNECT = st.tuples(st.just("connect"), st.sampled_from(["ws", "sse", "poll"]), filters,
                    st.one_of(st.tuples(st.just("replay"), st.integers(0, 30)),
                              st.tuples(st.just("since"), pick)))
BURST = st.tuples(st.just("burst"), st.sampled_from(LANGS),
                  st.lists(st.sampled_from(REGIONS), max_size=2, unique=True),
                  st.sampled_from(PRIOS), st.sampled_from([None] + CATS),
                  st.integers(1000, 3900), st.integers(5, 40))
# An embargoed publish: released by the timer 30 ms on (nothing is written
# until 50 ms after, so its place among the entries is certain), cancelled
# by a retract while held, or released at once by an update that moves
# publish_at to the past.
EMBARGO = st.tuples(st.just("embargo"), st.sampled_from(LANGS),
                    st.lists(st.sampled_from(REGIONS), max_size=2, unique=True),
                    st.sampled_from(PRIOS), st.sampled_from([None] + CATS), TEXT,
                    st.sampled_from(["release", "cancel", "now"]))
STEPS = [  # weights: publish, burst, connect and the client steps two each
    PUBLISH, PUBLISH, CONNECT, CONNECT, BURST, BURST, EMBARGO,
    st.tuples(st.just("update"), pick, st.fixed_dictionaries({}, optional={
        "lang": st.sampled_from(LANGS),
        "region": st.lists(st.sampled_from(REGIONS), min_size=1, max_size=2, unique=True),
        "priority": st.sampled_from(PRIOS), "category": st.sampled_from(CATS)}),
        TEXT),
    st.tuples(st.just("retract"), pick),
    st.tuples(st.sampled_from(["stop", "stop", "resume", "disconnect", "reconnect"]), pick),
    st.tuples(st.sampled_from(["stop", "stop", "resume", "disconnect", "reconnect"]), pick),
]
UNKNOWN = [st.tuples(st.sampled_from(["retract_unknown", "update_unknown"]))]


def query_of(flt, **more):
    q = {k: ",".join(v) if isinstance(v, list) else v for k, v in flt.items()}
    q.update(more)
    return "&".join(f"{k}={v}" for k, v in q.items())


def xadd_fields(item):
    f = {"text": item["text"], "lang": item["lang"], "priority": item["priority"]}
    if item["region"]:
        f["region"] = ",".join(item["region"])
    if item["category"]:
        f["category"] = item["category"]
    return f


class Run:
    """One example's steps on the shared daemon and model."""

    unknown = 0  # refs never seen: 1-0, 2-0, ... (retract), 1-1, 2-1, ... (update)

    def __init__(self, td, r, model):
        self.td, self.r, self.m = td, r, model
        self.clients, self.n = [], 0

    def xadd(self, **fields):
        return self.r.xadd(STREAM, fields).decode()

    def text(self, size):
        self.n += 1
        return f"step {self.n}" + (" " + "x" * size if size else "")

    def sync(self):
        if self.m.last_id and not self.td.wait_ingested(self.m.last_id, timeout=5):
            rejected = {dict(k[1]).get("reason"): v for k, v in self.td.metrics().items()
                        if k[0] == "tickerd_items_rejected_total" and v}
            raise AssertionError(f"tickerd has not taken the entry {self.m.events[-1][1][:3]} "
                                 f"within 5 s; rejected so far: {rejected}")

    def connect(self, kind, flt, replay=None, since=None, resume=False):
        self.sync()
        more, headers = {}, None
        if since is not None and kind == "sse" and resume:  # as a browser does
            headers = {"Last-Event-ID": since}
        elif since is not None:
            more["since"] = since
        else:
            more["replay"] = replay
        if kind == "poll":
            c = PollClient(self.td.port, flt, query_of(flt, **more))
        else:
            c = Client(self.td.port, kind, flt, query_of(flt, **more), headers)
        c.connected_at = self.m.last_id or "0-0"
        self.m.connect(c, replay, since)
        c.read_until(len(c.expected))  # up to the marker: the client is live now
        self.clients.append(c)
        return c

    def embargo(self, item, mode):
        m, ms = self.m, lambda: int(time.time() * 1000)
        at = ms() + (30 if mode == "release" else 86400000)
        held = self.xadd(publish_at=str(at), **xadd_fields(item))
        if mode == "release":
            while ms() <= at + 50:
                time.sleep(0.01)
            m.release(release_key(at, held), held, item)
        elif mode == "cancel":
            m.last_id = self.xadd(op="retract", ref=held)  # reaches no one
        else:
            item = dict(item, text=item["text"] + " now")
            upd = self.xadd(op="update", ref=held, text=item["text"], publish_at=str(ms() - 1000))
            m.release(upd, held, item)

    def step(self, s, known):
        m, live, op = self.m, self.m.live(), s[0]
        if op in ("publish", "burst"):  # a burst: that many items at once
            items = [{"lang": s[1], "region": s[2], "priority": s[3], "category": s[4],
                      "text": self.text(s[5])} for _ in range(s[6] if op == "burst" else 1)]
            p = self.r.pipeline(transaction=False)
            for item in items:
                p.xadd(STREAM, xadd_fields(item))
            for entry_id, item in zip(p.execute(), items):
                m.publish(entry_id.decode(), item)
        elif op == "embargo":
            self.embargo(dict(zip(("lang", "region", "priority", "category"), s[1:5]),
                              text=self.text(s[5])), s[6])
        elif op == "update" and live:
            ref, fields = live[s[1] % len(live)], dict(s[2], text=self.text(s[3]))
            f = dict(fields, region=",".join(fields["region"])) if "region" in fields else fields
            m.update(self.xadd(op="update", ref=ref, **f), ref, fields)
        elif op == "retract" and live:
            ref = live[s[1] % len(live)]
            m.retract(self.xadd(op="retract", ref=ref), ref)
        elif op == "retract_unknown":
            Run.unknown += 1
            ref = f"{Run.unknown}-0"
            m.retract(self.xadd(op="retract", ref=ref), ref)
        elif op == "update_unknown":
            Run.unknown += 1
            self.xadd(op="update", ref=f"{Run.unknown}-1", text=self.text(10))  # rejected
        elif op == "connect":
            mode, arg = s[3]
            if mode == "since" and known:
                self.connect(s[1], s[2], since=known[arg % len(known)])
            else:
                self.connect(s[1], s[2], replay=arg if mode == "replay" else 10)
        elif self.clients:
            c = self.clients[s[1] % len(self.clients)]
            if op == "stop" and c.reading:
                c.reading, c.stopped_at = False, len(c.expected)
            elif op == "resume":
                c.reading = True
            elif c.open:  # disconnect, reconnect
                c.pump()
                c.close()
                m.clients.remove(c)
                if op == "reconnect":
                    since = c.last_event_id() or c.connected_at
                    self.connect(c.kind, c.filter, since=since, resume=True)
        if m.last_id and m.last_id not in known:
            known.append(m.last_id)
        for c in self.clients:
            if c.reading:
                c.pump()


def check(run, stats):
    fence = {"lang": "en", "region": [], "priority": "flash", "category": None,
             "text": "fence"}  # after it, tickerd has handled every entry before it
    run.m.publish(run.xadd(**xadd_fields(fence)), fence)
    run.sync()
    for c in run.clients:
        if c.open:
            c.read_until(len(c.expected))
    time.sleep(0.2)
    for n, c in enumerate(run.clients):
        if c.open:
            c.pump()
            assert c.got == c.expected, f"client {n} ({c.kind}, {c.query}): {c.state()}"
        else:  # what it had got when it went: a prefix of what it was owed
            assert c.got == c.expected[:len(c.got)], \
                f"client {n} ({c.kind}, {c.query}): {c.state()}"
        assert c.close_code is None and not c.eof, f"client {n} closed ({c.close_code})"
        stats["clients"] += 1
        stats["poll"] += c.kind == "poll"
        stats["frames"] += len(c.got)
        stats["since" if "since" in c.query or c.kind == "sse" and "replay" not in c.query
              else "replay"] += 1
        owed = sum(f[7][1] if f[7] else 0 for f in c.expected[c.stopped_at:]) if not c.reading else 0
        stats["stopped with 32+ KB owed"] += owed >= 32768
        stats["updates, retracts"] += sum(f[0] in ("update", "retract") for f in c.got)
        stats["releases"] += sum(len(f) > 8 and f[8] is not None for f in c.got)


# Texts up to 4 KB, so that a few frames fill the buffers of a client that
# stopped reading and tickerd has to hold the rest.
MAX_TEXT = {"stream": {"max_text_bytes": 4000}}


@pytest.mark.parametrize("unknown_refs", [False, True], ids=["known_refs", "with_unknown_refs"])
def test_clients_see_what_the_model_says(make_tickerd, redis_server, unknown_refs):
    """40 examples of 10 to 40 steps on one daemon at the default limits
    ([stream] max_text_bytes = 4000, see MAX_TEXT). known_refs: no step names an ID tickerd never saw;
    with_unknown_refs: retracts and updates of unknown IDs too."""
    td = make_tickerd(MAX_TEXT)
    r = redis_server.client()
    model = Model()
    stats = collections.Counter()
    step = st.one_of(*(STEPS + (UNKNOWN if unknown_refs else [])))
    phases = [Phase.explicit, Phase.generate] + ([Phase.shrink] if os.environ.get(
        "TICKERD_SHRINK") else [])

    @settings(max_examples=40, deadline=None, database=None, phases=phases,
              derandomize=not os.environ.get("TICKERD_MODEL_RANDOM"),
              suppress_health_check=list(HealthCheck), report_multiple_bugs=False)
    @given(st.lists(step, min_size=10, max_size=40), st.sampled_from(["ws", "sse", "poll"]))
    def example(steps, watcher):
        run = Run(td, r, model)
        model.clients = []
        for ref in model.live():  # start from an empty current state
            model.retract(run.xadd(op="retract", ref=ref), ref)
        known = [model.last_id] if model.last_id else []
        try:
            # client 0 takes everything and reads nothing until a resume step or the end
            c = run.connect(watcher, {}, replay=0)
            c.reading, c.stopped_at = False, len(c.expected)
            for s in steps:
                run.step(s, known)
            check(run, stats)
        finally:
            for c in run.clients:
                c.close()

    example()
    print(dict(stats))
    # not vacuous: many frames compared, every kind of client seen
    assert stats["frames"] >= 300 and stats["since"] >= 5 and stats["replay"] >= 5, stats
    assert stats["poll"] >= 5, stats
    assert stats["stopped with 32+ KB owed"] >= 2 and stats["updates, retracts"] >= 20, stats
    assert stats["releases"] >= 5, stats
