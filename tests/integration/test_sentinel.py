"""Redis Sentinel (SPEC §4, docs/deployment.md): tickerd nodes that find the
master through sentinels follow a failover without restarting and without
dropping a client, refuse to read from a replica, and use the URL's
password for the sentinels and the master.

Each test starts its own master, replica and sentinels (down-after 1 s, so
a failover takes a few seconds) on free loopback ports.

Sentinels are given by address or by name; a name is resolved again, off
the loop, every time tickerd connects to that sentinel (the tests that
move a name run tickerd in a mount namespace with /etc/hosts and
/etc/resolv.conf of their own)."""

import asyncio
import shutil
import socket
import subprocess
import time

import pytest
import redis

from cluster import (MASTER_NAME, FakeRedis, FakeServer, RedisNode, Sentinel, SentinelCluster,
                     cluster_maker, pids_of, resp)
from conftest import (STREAM, TICKERD, WS, NsTickerd, Tickerd, can_unshare_mounts, free_port,
                      http_get, run, stop_and_check, wait_until, write_config)

pytestmark = pytest.mark.skipif(not shutil.which("redis-sentinel"),
                                reason="no redis-sentinel (scripts/install-deps.sh --test)")


@pytest.fixture
def make_cluster(tmp_path):
    """make_cluster(password=None) -> a started SentinelCluster (master, one
    replica, three sentinels)."""
    yield from cluster_maker(SentinelCluster, tmp_path)


@pytest.fixture
def make_node(tmp_path):
    """make_node(sentinels, url, name, wait=True, config=None) -> a tickerd
    (one worker unless config says otherwise) that finds its master through
    the sentinels."""
    started = []

    def make(sentinels, url="redis://ignored/0", name="node", wait=True, config=None):
        cfg = {"redis": {"sentinels": sentinels, "master_name": MASTER_NAME}}
        for section, keys in (config or {}).items():
            cfg.setdefault(section, {}).update(keys)
        td = Tickerd(str(tmp_path / name), FakeRedis(url), cfg)
        started.append(td)
        return td.start(wait=wait)

    yield make
    for td in started:
        stop_and_check(td)


def publish(r, text, region="mena"):
    return r.xadd(STREAM, {"text": text, "region": region}).decode()


async def read_ids(ws, n, timeout):
    """The next n frames of ws, each an item; returns [(id, arrival time)]."""
    out = []
    for _ in range(n):
        f = await ws.recv(timeout)
        assert f["type"] == "item" and "replay" not in f, f
        out.append((f["id"], time.monotonic()))
    return out


# A name under the reserved .invalid TLD (RFC 6761): it never resolves.
UNRESOLVABLE = "sentinel0.tickerd.invalid"


# In the first variant the master crashes (SIGKILL: tickerd sees the
# connection drop at once). In the second it hangs (SIGSTOP: the blocked
# XREAD just waits; only +switch-master tells tickerd to move), and there is
# a password on everything (requirepass on the master, replica and
# sentinels, `sentinel auth-pass`) that tickerd gets only in the URL,
# percent-encoded, with a host that means nothing. In the third the master
# crashes and the sentinels are given by name (localhost), the first one a
# name that does not resolve.
@pytest.mark.parametrize("password,fault,names", [(None, "crash", False),
                                                  ("tick@pw", "freeze", False),
                                                  (None, "crash", True)],
                         ids=["open-crash", "password-freeze", "names-crash"])
def test_failover_reaches_every_client_without_restart(make_cluster, make_node, password, fault,
                                                       names):
    cl = make_cluster(password=password)
    url = "redis://:tick%40pw@ignored/0" if password else "redis://ignored/0"
    # The first sentinel listed is dead, or its name does not resolve:
    # tickerd must ask (and subscribe to) the next ones.
    if names:
        sentinels = f"{UNRESOLVABLE}:26379," + ",".join(f"localhost:{s.port}"
                                                        for s in cl.sentinels)
    else:
        sentinels = f"127.0.0.1:{free_port()}," + cl.addrs
    # node1 runs two worker processes (each with its own Redis connection and
    # sentinel subscription) under a supervisor: none may be restarted.
    nodes = [make_node(sentinels, url, name="node0"),
             make_node(sentinels, url, name="node1", config={"server": {"workers": 2}})]
    pids = [pids_of(td) for td in nodes]
    assert len(pids[0][1]) == 0 and len(pids[1][1]) == 2, pids
    epochs = {td.health()[1]["epoch"] for td in nodes}
    assert len(epochs) == 1 and "" not in epochs
    epoch = epochs.pop()
    old, new = cl.master, cl.replicas[0]
    r_old, r_new = old.client(), new.client()
    # tickerd subscribed to +switch-master on a live sentinel before the kill.
    # (Sentinels have no PUBSUB command; their CLIENT LIST shows subscribers.)
    wait_until(lambda: sum(c["sub"] == "1" for s in cl.sentinels for c in s.client().client_list())
               == 3, 5, interval=0.05, what="tickerd's +switch-master subscriptions")
    reconnects = [td.metric("tickerd_redis_reconnects_total") for td in nodes]

    async def main():
        clients = []
        for td in nodes:
            for q in ("replay=0", "region=mena&replay=0", f"since=0-0&epoch={epoch}"):
                ws = await WS.connect(td, q)
                _, replayed, marker = await ws.start()
                assert replayed == [] and marker["gap"] is False, (q, replayed, marker)
                clients.append(ws)
        before = [publish(r_old, f"before {i}") for i in range(3)]
        assert r_old.execute_command("WAIT", 1, 2000) == 1  # on the replica too
        for ws in clients:
            assert [i for i, _ in await read_ids(ws, len(before), 5)] == before

        t_kill = time.monotonic()
        old.kill() if fault == "crash" else old.freeze()
        readers = [asyncio.ensure_future(read_ids(ws, 6, 30)) for ws in clients]
        # The publisher writes to the replica until it is promoted, then
        # goes on: some items reach the new master before tickerd does.
        after = []
        while not after:
            assert time.monotonic() - t_kill < 30, "the replica was never promoted"
            try:
                after.append(publish(r_new, "after 0"))
            except (redis.ReadOnlyError, redis.ConnectionError):
                # (On promotion the sentinel kills the replica's clients.)
                await asyncio.sleep(0.02)
        t_promoted = time.monotonic()
        for i in range(1, 6):
            await asyncio.sleep(0.2)
            after.append(publish(r_new, f"after {i}"))
        got = await asyncio.gather(*readers)
        for frames in got:
            assert [i for i, _ in frames] == after
        await asyncio.gather(*(ws.expect_silence(0.3) for ws in clients))
        for ws in clients:
            assert ws.conn.open and ws.conn.close_code is None
        first = min(t for frames in got for _, t in frames[:1])
        last = max(t for frames in got for _, t in frames[:1])
        print(f"failover: promoted {t_promoted - t_kill:.2f}s after the kill; first post-failover "
              f"item at clients {first - t_kill:.2f}s..{last - t_kill:.2f}s after the kill")
        for ws in clients:
            await ws.close()
        return last - t_kill

    seen = run(main(), timeout=50)
    assert seen < 15, f"clients waited {seen:.1f}s for the new master"
    assert cl.wait_new_master(old) is new
    for td, p, rc in zip(nodes, pids, reconnects):
        assert td.proc.poll() is None and pids_of(td) == p, "tickerd restarted"
        status, health = td.health()
        assert status == 200 and health["redis"] == "up" and health["epoch"] == epoch, health
        assert td.metric("tickerd_redis_reconnects_total") > rc
        log = td.log()
        assert f"moved from 127.0.0.1:{old.port} to 127.0.0.1:{new.port}" in log, log
        assert "restarting" not in log
        if names:
            assert f"cannot resolve {UNRESOLVABLE}" in log, log


def test_only_a_replica_for_the_name_is_never_read(tmp_path, make_node):
    """A node started while the sentinels name a replica (ROLE slave) keeps
    asking, never reads the stream from the replica, and starts as soon as
    the server it is given becomes a master."""
    master = RedisNode(str(tmp_path / "master")).start()
    replica = RedisNode(str(tmp_path / "replica"), replicaof=master).start()
    # One sentinel that monitors the replica as the master: it names it for
    # MASTER_NAME (and, with down-after 60 s, never declares it down here).
    sentinel = Sentinel(str(tmp_path / "sentinel"), replica, quorum=1, down_after_ms=60000)
    try:
        replica.wait_synced()
        sentinel.start()
        assert sentinel.master_addr() == ("127.0.0.1", replica.port)
        r = master.client()
        ids = [publish(r, f"old {i}") for i in range(3)]
        assert r.execute_command("WAIT", 1, 2000) == 1
        calls_before = replica.command_calls()

        td = make_node(f"127.0.0.1:{sentinel.port}", wait=False)

        async def main():
            wait_until(lambda: td.log().count("is not a master") >= 3, 10, interval=0.05,
                       what="tickerd refusing the replica three times")
            status, _, body = http_get(td.port, "/healthz")
            assert b'"ready":false' in body and b'"redis":"down"' in body, body
            # A client that comes now waits, connected, for the start-up load.
            ws = await WS.connect(td, "replay=5")
            await ws.expect_silence(0.5)
            calls = replica.command_calls()
            for cmd in ("xread", "xrevrange", "xrange", "get", "set"):
                assert calls.get(cmd, 0) == calls_before.get(cmd, 0), (cmd, calls)
            assert calls.get("role", 0) >= 3, calls
            assert td.proc.poll() is None

            # The replica becomes a master (the old one is gone).
            master.kill()
            t0 = time.monotonic()
            replica.client().execute_command("REPLICAOF", "NO", "ONE")
            hello, replayed, marker = await ws.start(timeout=10)
            print(f"started {time.monotonic() - t0:.2f}s after the promotion")
            assert [f["id"] for f in replayed] == ids
            live = publish(replica.client(), "new")
            f = await ws.recv(5)
            assert f["type"] == "item" and f["id"] == live
            await ws.close()

        run(main(), timeout=40)
        assert td.health()[1]["ready"] is True
    finally:
        sentinel.stop()
        replica.stop()
        master.stop()


# --------------------------------------------------------------------------
# names, and what a sentinel answers


def _wait_up_answering(td, timeout=20, bound=0.5):
    """Polls /healthz from the first answer until tickerd is ready; every
    answer, ready or not, must come within `bound` seconds (the loop is
    never blocked). Returns how many answers came before ready."""
    wait_until(lambda: http_get(td.port, "/healthz", timeout=1)[0] in (200, 503), 10,
               what="/healthz answering")
    deadline = time.monotonic() + timeout
    answers = 0
    while time.monotonic() < deadline:
        t0 = time.monotonic()
        status, _, body = http_get(td.port, "/healthz", timeout=2)
        took = time.monotonic() - t0
        assert took < bound, f"/healthz took {took:.2f}s"
        if status == 200 and b'"ready":true' in body:
            return answers
        answers += 1
        time.sleep(0.05)
    raise AssertionError("tickerd never became ready:\n" + td.log()[-3000:])


async def _moved_to(ws, node, last_id, timeout=15):
    """A client's side of tickerd moving to another Redis (another epoch):
    gap, a hello with node's epoch and the replay; then an item published
    on node arrives."""
    f = await ws.recv(timeout)
    assert f == {"type": "gap", "last_id": last_id}, f
    hello, _, _ = await ws.start(10)
    assert hello["epoch"] == node.client().get(STREAM + ":epoch").decode()
    y = publish(node.client(), "on the new master")
    assert [i for i, _ in await read_ids(ws, 1, 5)] == [y]


def test_a_sentinel_name_that_does_not_resolve_is_skipped(tmp_path, make_node):
    """The first sentinel's name does not resolve, the second is given as
    localhost: the master is found through it, /healthz answers throughout,
    and on every reconnect the name is resolved again (the debug line
    "NAME is ADDRESS", one per connect to the sentinel)."""
    master = RedisNode(str(tmp_path / "master")).start()
    sentinel = Sentinel(str(tmp_path / "sentinel"), master, quorum=1, down_after_ms=60000)
    try:
        sentinel.start()
        td = make_node(f"{UNRESOLVABLE}:26379,localhost:{sentinel.port}", wait=False,
                       config={"redis": {"timeout_s": 1}, "log": {"level": "debug"}})
        _wait_up_answering(td)
        log = td.log()
        assert f"sentinel {UNRESOLVABLE}:26379: cannot resolve {UNRESOLVABLE}" in log, log
        assert f"connected to 127.0.0.1:{master.port}" in log, log

        async def main():
            ws = await WS.connect(td, "replay=0")
            await ws.start()
            x = publish(master.client(), "through the second sentinel")
            assert [i for i, _ in await read_ids(ws, 1, 5)] == [x]
            await ws.close()

        run(main(), timeout=20)

        resolved = f"sentinel localhost:{sentinel.port}: localhost is 127.0.0.1"
        # the question, and the subscription (made there once the first failed)
        wait_until(lambda: td.log().count(resolved) >= 2, 10, what="two resolutions")
        before = td.log().count(resolved), td.log().count("redis: reconnecting in")
        master.kill()
        wait_until(lambda: td.log().count("redis: reconnecting in") >= before[1] + 3, 15,
                   what="three reconnection attempts")
        master.start()
        td.wait_ready(timeout=15)
        wait_until(lambda: td.health()[1]["redis"] == "up", 10, what="redis up again")
        log = td.log()
        resolutions = log.count(resolved) - before[0]
        reconnects = log.count("redis: reconnecting in") - before[1]
        print(f"{reconnects} reconnects, {resolutions} resolutions of localhost")
        # The sentinel stayed up (its subscription too): every resolution is
        # a question's, and every reconnect asked.
        assert resolutions >= reconnects >= 3, log
    finally:
        sentinel.stop()
        master.stop()


class FakeSentinel(FakeServer):
    """A server on a free loopback port that passes for a sentinel talking
    nonsense: `answer` (a value for resp()) to every SENTINEL command; to
    SUBSCRIBE the confirmation, and then whatever announce() sends."""

    def __init__(self, answer):
        self.answer = answer
        self.asked = 0
        self.subscribers = []
        super().__init__()

    def handle(self, c, cmd):
        name = cmd[0].upper()
        if name == b"SENTINEL":
            self.asked += 1
            c.sendall(resp(self.answer))
        elif name == b"SUBSCRIBE":
            c.sendall(resp([b"subscribe", cmd[1], 1]))
            self.subscribers.append(c)
        else:
            c.sendall(b"-ERR unknown command\r\n")

    def announce(self, payload):
        """A +switch-master message to every subscriber."""
        for c in self.subscribers:
            c.sendall(resp([b"message", b"+switch-master", payload.encode()]))


def test_a_sentinel_answering_garbage_is_skipped(tmp_path, make_node):
    """Sentinels that answer get-master-addr-by-name with something that is
    not [host, port 1..65535] are skipped like ones that do not answer; a
    +switch-master that is not one (a bad port) is ignored, a good one is
    followed."""
    master = RedisNode(str(tmp_path / "master")).start()
    other = RedisNode(str(tmp_path / "other")).start()
    sentinel = Sentinel(str(tmp_path / "sentinel"), master, quorum=1, down_after_ms=60000)
    p = master.port
    answers = [["127.0.0.1", "65536"], ["127.0.0.1", "0"], ["127.0.0.1", f"{p}x"],
               ["127.0.0.1", f" {p}"], ["127.0.0.1", p], ["", str(p)],
               ["127.0.0.1 x", str(p)], ["127.0.0.1", str(p), "extra"], "127.0.0.1"]
    fakes = [FakeSentinel(a) for a in answers]
    try:
        sentinel.start()
        # The fakes first: the subscription is made on the first of them.
        td = make_node(",".join(f"127.0.0.1:{f.port}" for f in fakes) +
                       f",localhost:{sentinel.port}")
        assert all(f.asked == 1 for f in fakes), [f.asked for f in fakes]
        log = td.log()
        assert "unusable answer for master 'mymaster': skipped" in log, log
        assert f"connected to 127.0.0.1:{p}" in log, log
        wait_until(lambda: fakes[0].subscribers, 5, what="the subscription on the first fake")
        reconnects = td.metric("tickerd_redis_reconnects_total")

        async def main():
            ws = await WS.connect(td, "replay=0")
            await ws.start()
            for bad in (f"{MASTER_NAME} 127.0.0.1 {p} 127.0.0.1 65536",
                        f"{MASTER_NAME} 127.0.0.1 {p} 127.0.0.1 0",
                        f"{MASTER_NAME} 127.0.0.1 {p} 127.0.0.1 {other.port}x",
                        f"{MASTER_NAME} 127.0.0.1 {p} 127.0.0.1",
                        f"{MASTER_NAME}  127.0.0.1 {p} 127.0.0.1 {other.port}",
                        f"othermaster 127.0.0.1 {p} 127.0.0.1 {other.port}"):
                fakes[0].announce(bad)
            await ws.expect_silence(0.5)
            x = publish(master.client(), "still on the master")
            assert [i for i, _ in await read_ids(ws, 1, 5)] == [x]
            assert td.metric("tickerd_redis_reconnects_total") == reconnects
            # (logged within the budget for the daemon's trouble: not every one)
            assert "unusable +switch-master" in td.log(), td.log()
            # A good one is followed: another Redis, another epoch (a gap).
            fakes[0].announce(f"{MASTER_NAME} 127.0.0.1 {p} 127.0.0.1 {other.port}")
            await _moved_to(ws, other, x)
            await ws.close()

        run(main(), timeout=40)
        assert f"moved from 127.0.0.1:{p} to 127.0.0.1:{other.port}" in td.log()
    finally:
        for f in fakes:
            f.stop()
        sentinel.stop()
        other.stop()
        master.stop()


@pytest.mark.parametrize("value,ok,why", [
    ("localhost:1", True, ""),
    ("localhost:65535", True, ""),
    (" 10.0.0.1:26379 , [::1]:26379,s3.example:26379 ", True, ""),
    ("localhost:0", False, "'localhost:0': the port is not 1..65535"),
    ("localhost:65536", False, "'localhost:65536': the port is not 1..65535"),
    ("localhost", False, "'localhost' is not host:port"),
    ("localhost:26379,,10.0.0.2:26379", False, "the list has an empty element"),
    ("localhost:26379,", False, "the list has an empty element"),
    ("localhost:26379 10.0.0.2:26379", False, "'localhost:26379 10.0.0.2:26379' is not host:port"),
    ("::1:26379", False, "'::1:26379' is not host:port or [IPv6]:port"),
])
def test_check_config_refuses_a_bad_sentinel_list(tmp_path, value, ok, why):
    conf = str(tmp_path / "t.conf")
    write_config(conf, {"redis": {"sentinels": value}})
    p = subprocess.run([TICKERD, "--check-config", "-c", conf], capture_output=True, text=True,
                       timeout=10)
    if ok:
        assert p.returncode == 0, p.stderr
    else:
        assert p.returncode == 2 and f"[redis] sentinels: {why}" in p.stderr, p.stderr


# --------------------------------------------------------------------------
# names that move or hang (tickerd in a mount namespace of its own)

needs_ns = pytest.mark.skipif(not can_unshare_mounts(), reason="cannot unshare a mount namespace")
NAME = "sentinel.tickerd.test"


def _write(path, text):
    with open(path, "w") as f:  # in place: the bind mount sees the same file
        f.write(text)


def _ns_node(tmp_path, sentinels, binds, config=None):
    cfg = {"redis": {"sentinels": sentinels, "master_name": MASTER_NAME, "timeout_s": 1},
           "log": {"level": "debug"}}
    for section, keys in (config or {}).items():
        cfg.setdefault(section, {}).update(keys)
    return NsTickerd(str(tmp_path / "ns-node"), FakeRedis("redis://ignored/0"), cfg, binds)


def _stop_node(td):
    stop_and_check(td)


@needs_ns
def test_a_sentinel_that_moved_is_followed(tmp_path):
    """NAME points at sentinel A, which names master 1. The name moves to
    sentinel B (same port, another loopback address), which names master 2,
    and master 1 crashes: A still answers, still naming master 1, so only a
    fresh resolution of NAME on the reconnect finds master 2."""
    port = free_port()
    m1 = RedisNode(str(tmp_path / "m1")).start()
    m2 = RedisNode(str(tmp_path / "m2")).start()
    a = Sentinel(str(tmp_path / "a"), m1, quorum=1, down_after_ms=60000, port=port)
    b = Sentinel(str(tmp_path / "b"), m2, quorum=1, down_after_ms=60000, host="127.0.0.2",
                 port=port)
    hosts = str(tmp_path / "hosts")
    _write(hosts, f"127.0.0.1 localhost\n127.0.0.1 {NAME}\n")
    td = _ns_node(tmp_path, f"{NAME}:{port}", {"/etc/hosts": hosts})
    try:
        try:
            b.start()
        except Exception as e:  # noqa: BLE001
            pytest.skip(f"no sentinel on 127.0.0.2: {e}")
        a.start()
        td.start()
        assert f"connected to 127.0.0.1:{m1.port}" in td.log()
        assert f"sentinel {NAME}:{port}: {NAME} is 127.0.0.1" in td.log()

        async def main():
            ws = await WS.connect(td, "replay=0")
            await ws.start()
            x = publish(m1.client(), "from master 1")
            assert [i for i, _ in await read_ids(ws, 1, 5)] == [x]
            _write(hosts, f"127.0.0.1 localhost\n127.0.0.2 {NAME}\n")  # the name moves
            m1.kill()
            await _moved_to(ws, m2, x)
            await ws.close()

        run(main(), timeout=40)
        log = td.log()
        assert f"sentinel {NAME}:{port}: {NAME} is 127.0.0.2" in log, log
        assert f"connected to 127.0.0.1:{m2.port}" in log, log
        assert a.master_addr() == ("127.0.0.1", m1.port)  # A would still have said master 1
    finally:
        _stop_node(td)
        a.stop()
        b.stop()
        m1.stop()
        m2.stop()


def _hanging_resolver(tmp_path):
    """A DNS server on 127.0.0.2:53 that never answers, and an /etc/hosts
    (localhost only) and /etc/resolv.conf (that server, 3 s timeout) for
    tickerd's mount namespace. Returns (its socket, binds)."""
    dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        dns.bind(("127.0.0.2", 53))
    except OSError as e:
        dns.close()
        pytest.skip(f"cannot listen on 127.0.0.2:53: {e}")
    hosts, resolv = str(tmp_path / "hosts"), str(tmp_path / "resolv.conf")
    _write(hosts, "127.0.0.1 localhost\n")
    _write(resolv, "nameserver 127.0.0.2\noptions timeout:3 attempts:1\n")
    return dns, {"/etc/hosts": hosts, "/etc/resolv.conf": resolv}


@needs_ns
def test_a_sentinel_name_that_hangs_does_not_block_the_loop(tmp_path):
    """The first sentinel's name hangs in the resolver (a DNS server that
    never answers): after timeout_s tickerd asks the next one, and /healthz
    answers at once all the while. The question and the subscription wait
    for one lookup of the name, so the other name still resolves (libuv
    runs two lookups at once)."""
    dns, binds = _hanging_resolver(tmp_path)
    master = RedisNode(str(tmp_path / "master")).start()
    sentinel = Sentinel(str(tmp_path / "sentinel"), master, quorum=1, down_after_ms=60000)
    td = _ns_node(tmp_path, f"{NAME}:26379,localhost:{sentinel.port}", binds)
    try:
        sentinel.start()
        t0 = time.monotonic()
        td.start(wait=False)
        answers = _wait_up_answering(td)
        took = time.monotonic() - t0
        print(f"ready {took:.2f}s after the start, {answers} /healthz answers before")
        assert answers >= 3, answers  # it was up and answering while NAME hung
        log = td.log()
        assert f"sentinel {NAME}:26379: resolving {NAME} took over 1000 ms: skipped" in log, log
        assert "resolving localhost took over" not in log, log
        assert td.health()[1]["redis"] == "up"
    finally:
        _stop_node(td)
        sentinel.stop()
        master.stop()
        dns.close()


@needs_ns
def test_stop_while_sentinel_names_hang(tmp_path):
    """SIGTERM while the question's and the subscription's lookup hangs in
    the resolver: tickerd gives it up, closes the loop after it ends and
    stops cleanly (exit 0; under ASan, no report)."""
    dns, binds = _hanging_resolver(tmp_path)
    td = _ns_node(tmp_path, f"{NAME}:26379", binds, config={"redis": {"timeout_s": 30}})
    try:
        td.start(wait=False)
        wait_until(lambda: http_get(td.port, "/healthz", timeout=1)[0] == 503, 10,
                   what="/healthz answering 503")
        wait_until(lambda: dns.recv(512), 5, what="a DNS query for the name")
    finally:
        rc = td.stop()
        log = td.log()
        print(log[-3000:])
        dns.close()
    assert rc == 0, log
    assert "AddressSanitizer" not in log and "runtime error" not in log, log
    assert "waiting up to 10000 ms for 1 name lookups still in the resolver" in log, log
    assert "stopped" in log, log
