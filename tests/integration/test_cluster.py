"""Redis Cluster (SPEC §5 `[redis] cluster_nodes`, docs/operations.md):
tickerd finds the master of the stream key's slot with CLUSTER SLOTS,
asking the seed nodes in turn, follows a failover (the master crashes,
hangs, or hands over on CLUSTER FAILOVER) without restarting and without
dropping a client, and every entry the cluster holds reaches every client
once, in order.

Each test makes its own cluster of 3 masters with a replica each
(cluster-node-timeout 1 s) on free loopback ports, with redis-cli --cluster
create. Items are published through redis-py's cluster client while the
failover happens: a publish that fails is retried."""

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest
import redis

from cluster import (FakeRedis, FakeServer, RedisClusterNodes, RedisNode, cluster_maker, pids_of,
                     resp)
from conftest import (TICKERD, WS, Tickerd, free_port, http_get, run, stop_and_check, wait_until,
                      write_config)

pytestmark = pytest.mark.skipif(not shutil.which("redis-cli"), reason="no redis-cli")

KEY = "{ticker}:breaking"  # the hash tag puts KEY:epoch in KEY's slot
SLOT = 12547  # CLUSTER KEYSLOT {ticker}:breaking
UNRESOLVABLE = "node0.tickerd.invalid"  # RFC 6761: never resolves


@pytest.fixture
def make_cluster(tmp_path):
    """make_cluster(password=None) -> a started RedisClusterNodes (3 masters,
    a replica each)."""
    yield from cluster_maker(RedisClusterNodes, tmp_path)


@pytest.fixture
def make_node(tmp_path):
    """make_node(nodes, url, config=None, wait=True) -> a tickerd that finds
    its master through the cluster's nodes."""
    started = []

    def make(nodes, url="redis://ignored/0", config=None, name="node", wait=True):
        cfg = {"redis": {"cluster_nodes": nodes}, "stream": {"key": KEY}}
        for section, keys in (config or {}).items():
            cfg.setdefault(section, {}).update(keys)
        td = Tickerd(str(tmp_path / name), FakeRedis(url), cfg)
        started.append(td)
        return td.start(wait=wait)

    yield make
    for td in started:
        stop_and_check(td, tail=50)


class Publisher(threading.Thread):
    """Publishes "after N" through the cluster client every 50 ms until
    stopped; a publish that fails is retried (the same text) until the
    cluster takes it. acked: the IDs the cluster answered, in order. While
    the test holds `gate`, no publish is in flight."""

    def __init__(self, cl):
        super().__init__(daemon=True)
        self.rc = cl.client()
        self.acked = []
        self.failures = 0
        self.halt = threading.Event()
        self.gate = threading.Lock()

    def run(self):
        i = 0
        while not self.halt.is_set():
            try:
                with self.gate:
                    self.acked.append(self.rc.xadd(KEY, {"text": f"after {i}",
                                                         "region": "mena"}).decode())
                i += 1
            except (redis.RedisError, OSError):
                self.failures += 1
            self.halt.wait(0.05)

    def stop(self):
        self.halt.set()
        self.join(30)
        assert not self.is_alive()
        self.rc.close()


def xread_clients(node):
    """How many connections of node are in XREAD (tickerd's readers)."""
    try:
        return sum(c.get("cmd") == "xread" for c in node.client(socket_timeout=0.5).client_list())
    except redis.RedisError:
        return 0


def watch_failover(cl, old, workers, t_kill, out):
    """Notes when the cluster first names a new master for KEY's slot
    (promoted) and when `workers` XREADs are blocked on a node other than
    old (reading): the failover as tickerd's clients see it."""
    deadline = t_kill + 40
    while time.monotonic() < deadline and "reading" not in out:
        for n in cl.live():
            if n is old:
                continue
            if "promoted" not in out:
                try:
                    if cl.master_port(KEY, n) not in (None, old.port):
                        out["promoted"] = time.monotonic() - t_kill
                except redis.RedisError:
                    pass
            if xread_clients(n) >= workers:
                out["reading"] = time.monotonic() - t_kill
                out["new"] = n.port
        time.sleep(0.02)


def fail(pub, cl, old, fault):
    """The fault, with no publish in flight. Returns its time."""
    replica = next(n for n in cl.nodes if n is not old and n.role() == "slave" and
                   n.client().info("replication")["master_port"] == old.port)
    with pub.gate:
        # Replication is asynchronous: what the old master acknowledged is
        # on its replica once a write of ours after it is (a crash loses
        # what is not, and tickerd would rightly report a gap).
        fence = old.client()
        fence.set("{ticker}:fence", "1")
        assert fence.execute_command("WAIT", 1, 5000) == 1, "the replica is not in sync"
        t = time.monotonic()
        if fault == "crash":
            old.kill()
        elif fault == "freeze":
            old.freeze()
        else:
            replica.client().execute_command("CLUSTER", "FAILOVER")
        return t


async def read_items(ws, n, timeout):
    ids = []
    for _ in range(n):
        f = await ws.recv(timeout)
        assert f["type"] == "item" and "replay" not in f, f
        ids.append(f["id"])
    return ids


# crash: SIGKILL (tickerd's connection drops at once). freeze: SIGSTOP (the
# blocked XREAD just waits; only the periodic CLUSTER SLOTS, asked of the
# other nodes, tells tickerd to move), with a password on every node that
# tickerd gets only in the URL. handover: CLUSTER FAILOVER on the replica
# (planned: the old master becomes its replica and answers MOVED). reshard:
# the slot, the stream and its epoch move to another master (MIGRATE); the
# old one answers ASK, then MOVED.
@pytest.mark.parametrize("fault,password", [("crash", None), ("freeze", "tick@pw"),
                                            ("handover", None), ("reshard", "tick@pw")])
def test_failover_under_clients_loses_nothing(make_cluster, make_node, fault, password):
    cl = make_cluster(password=password)
    url = "redis://:tick%40pw@ignored/0" if password else "redis://ignored/0"
    # The first seeds do not resolve, or are dead: tickerd asks the next.
    seeds = f"{UNRESOLVABLE}:7000,127.0.0.1:{free_port()}," + cl.addrs
    workers = 2
    td = make_node(seeds, url, config={"server": {"workers": workers}})
    pids = pids_of(td)
    assert len(pids[1]) == workers
    old = cl.master_of(KEY)
    status, health = td.health()
    assert status == 200 and health["redis"] == "up", health
    epoch = health["epoch"]
    assert epoch == old.client().get(KEY + ":epoch").decode()
    log = td.log()
    assert f"cannot resolve {UNRESOLVABLE}" in log and f"slot {SLOT}" in log, log
    reconnects = td.metric("tickerd_redis_reconnects_total")
    rc = cl.client()

    async def main():
        clients = []
        for q in ("replay=0", "region=mena&replay=0", "lang=en&replay=0",
                  f"since=0-0&epoch={epoch}"):
            ws = await WS.connect(td, q)
            _, replayed, marker = await ws.start()
            assert replayed == [] and marker["gap"] is False, (q, replayed, marker)
            clients.append(ws)
        before = [rc.xadd(KEY, {"text": f"before {i}", "region": "mena"}).decode()
                  for i in range(3)]
        assert old.client().execute_command("WAIT", 1, 2000) == 1  # on the replica too
        for ws in clients:
            assert await read_items(ws, 3, 5) == before

        pub = Publisher(cl)
        pub.start()
        while len(pub.acked) < 5:  # publishing goes on during the failover
            await asyncio.sleep(0.02)
        if fault == "reshard":  # publishing goes on throughout
            dst = next(n for n in cl.nodes if n is not old and n.role() == "master")
            t_kill = time.monotonic()
            cl.move_slot(SLOT, old, dst)
        else:
            t_kill = fail(pub, cl, old, fault)
        seen = {}
        watcher = threading.Thread(target=watch_failover, args=(cl, old, workers, t_kill, seen),
                                   daemon=True)
        watcher.start()
        await asyncio.to_thread(watcher.join, 45)
        assert "reading" in seen, f"tickerd never read from a new master: {seen}"
        new = next(n for n in cl.nodes if n.port == seen["new"])
        n_at_switch = len(pub.acked)
        while len(pub.acked) < n_at_switch + 10:  # and after it
            await asyncio.sleep(0.05)
        await asyncio.to_thread(pub.stop)

        # What the cluster holds after the items before the kill: each
        # client gets it all, once, in order, and nothing else.
        held = [e[0].decode() for e in new.client().xrange(KEY, min="(" + before[-1])]
        lost = [i for i in pub.acked if i not in held]
        assert not lost, f"the cluster lost acknowledged entries (async replication): {lost}"
        t_first = None
        for ws in clients:
            got = await read_items(ws, len(held), 20)
            assert got == held
            await ws.expect_silence(0.5)
            assert ws.conn.open and ws.conn.close_code is None
            t_first = t_first or time.monotonic() - t_kill
        print(f"{fault}: {len(held)} entries during the failover ({pub.failures} publishes "
              f"failed and were retried); the cluster named the new master "
              f"{seen.get('promoted', 0):.2f}s after the fault; tickerd's {workers} workers read "
              f"from it {seen['reading']:.2f}s after the fault")
        for ws in clients:
            await ws.close()
        return new

    new = run(main(), timeout=120)
    assert td.proc.poll() is None and pids_of(td) == pids, "tickerd restarted"
    status, health = td.health()
    assert status == 200 and health["redis"] == "up" and health["epoch"] == epoch, health
    assert td.metric("tickerd_redis_reconnects_total") > reconnects
    assert td.metric("tickerd_gaps_total") == 0
    log = td.log()
    assert f"moved from 127.0.0.1:{old.port} to 127.0.0.1:{new.port}" in log, log
    assert "restarting" not in log


class FakeClusterNode(FakeServer):
    """Passes for a cluster node whose view is wrong: answers CLUSTER SLOTS
    with one range of every slot, served by 127.0.0.1:`port` (settable)."""

    def __init__(self, port):
        self.master_port = port
        super().__init__()

    def handle(self, c, cmd):
        if [a.upper() for a in cmd[:2]] == [b"CLUSTER", b"SLOTS"]:
            c.sendall(resp([[0, 16383, ["127.0.0.1", self.master_port, "fake"]]]))
        else:
            c.sendall(b"-ERR unknown command\r\n")


def test_a_master_that_answers_moved_is_never_read(tmp_path, make_cluster, make_node):
    """The seeds: a Redis without cluster support and a server that never
    answers (each skipped, the second after [redis] timeout_s), then a node
    that names a master of other slots. That master answers MOVED: tickerd
    asks again, never reads from it, waits connected clients; once the node
    names the right master, it starts there. A tickerd whose URL names that
    master, without cluster_nodes, says to set them."""
    cl = make_cluster()
    standalone = RedisNode(str(tmp_path / "standalone")).start()
    silent = socket.create_server(("127.0.0.1", 0))  # accepts (backlog), never answers
    right = cl.master_of(KEY)
    wrong = next(n for n in cl.nodes if n is not right and n.role() == "master")
    fake = FakeClusterNode(wrong.port)
    try:
        seeds = f"127.0.0.1:{standalone.port},127.0.0.1:{silent.getsockname()[1]}," \
                f"127.0.0.1:{fake.port}"
        td = make_node(seeds, wait=False, config={"redis": {"timeout_s": 1}})
        moved = f"127.0.0.1:{wrong.port}: MOVED {SLOT} 127.0.0.1:{right.port}: asking the cluster"
        wait_until(lambda: td.log().count(moved) >= 3, 15, interval=0.05,
                   what="three MOVED answers")
        log = td.log()
        assert (f"cluster node 127.0.0.1:{standalone.port}: CLUSTER SLOTS: ERR This instance has "
                "cluster support disabled") in log, log
        assert f"cluster node 127.0.0.1:{silent.getsockname()[1]}: no answer in 1000 ms" in log, log
        status, _, body = http_get(td.port, "/healthz")
        assert status == 503 and b'"redis":"down"' in body, body
        calls = wrong.command_calls()
        assert calls.get("xread", 0) == 0 and calls.get("xrevrange", 0) == 0, calls
        assert wrong.client().dbsize() == 0  # no epoch written there

        async def main():
            ws = await WS.connect(td, "replay=5")
            await ws.expect_silence(0.5)  # waits for the start-up load
            before = cl.client().xadd(KEY, {"text": "before"}).decode()
            fake.master_port = right.port
            _, replayed, marker = await ws.start(timeout=15)
            assert [f["id"] for f in replayed] == [before] and marker["gap"] is False
            live = cl.client().xadd(KEY, {"text": "live"}).decode()
            assert (await ws.recv(5))["id"] == live
            await ws.close()

        run(main(), timeout=40)
        assert td.health()[0] == 200

        plain = Tickerd(str(tmp_path / "plain"), FakeRedis(f"redis://127.0.0.1:{wrong.port}/0"),
                        {"stream": {"key": KEY}})
        try:
            plain.start(wait=False)
            wait_until(lambda: "MOVED 12547" in plain.log() and
                       "(a Redis Cluster node: set [redis] cluster_nodes)" in plain.log(), 10,
                       what="the hint")
        finally:
            plain.stop()
        assert wrong.command_calls().get("xread", 0) == 0
    finally:
        fake.stop()
        silent.close()
        standalone.stop()


def test_post_follows_the_master_with_its_idempotency_keys(make_cluster, make_node):
    """POST /v1/items goes through the worker's writer to the master tickerd
    reads from; <key>:idem:<Idempotency-Key> shares the stream's slot (the
    hash tag), so the script that checks it and XADDs runs on one master.
    After a handover the writer follows the new master and the key still
    answers the first ID."""
    from test_publish import SECRET, post
    cl = make_cluster()
    td = make_node(cl.addrs, config={"auth": {"jwt_secret": SECRET}})
    status, _, body = post(td.port, {"text": "one"}, headers={"Idempotency-Key": "cms-1"})
    assert status == 201, body
    first = body["id"]
    assert post(td.port, {"text": "one"}, headers={"Idempotency-Key": "cms-1"})[2]["id"] == first
    r = cl.client()
    assert r.get(KEY + ":idem:cms-1").decode() == first
    assert [e[0].decode() for e in r.xrange(KEY)] == [first]

    old = cl.master_of(KEY)
    fence = old.client()
    assert fence.execute_command("WAIT", 1, 5000) == 1
    replica = next(n for n in cl.nodes if n.role() == "slave" and
                   n.client().info("replication")["master_port"] == old.port)
    replica.client().execute_command("CLUSTER", "FAILOVER")
    wait_until(lambda: xread_clients(replica) >= 1, 20, what="tickerd reading from the new master")
    wait_until(lambda: post(td.port, {"text": "two"}, headers={"Idempotency-Key": "cms-2"})[0]
               == 201, 10, interval=0.1, what="a publish through the new master")
    assert post(td.port, {"text": "one"}, headers={"Idempotency-Key": "cms-1"})[2]["id"] == first
    ids = [e[0].decode() for e in replica.client().xrange(KEY)]
    assert len(ids) == 2 and ids[0] == first, ids
    assert td.metric("tickerd_gaps_total") == 0


# --------------------------------------------------------------------------
# configuration


def test_reload_keeps_the_cluster_and_refuses_an_untagged_key(make_cluster, make_node):
    """SIGHUP, as for sentinels: cluster_nodes takes a restart (kept, one log
    line); a file whose key has no hash tag is refused whole; tickerd reads
    on from the same master throughout."""
    cl = make_cluster()
    td = make_node(cl.addrs, config={"server": {"workers": 2}})
    cfg = {k: dict(v) for k, v in td.config.items()}

    def hup(marker, count):
        before = td.log().count(marker)
        os.kill(td.proc.pid, signal.SIGHUP)
        wait_until(lambda: td.log().count(marker) >= before + count, 10, what=marker)

    cfg["redis"]["cluster_nodes"] = f"127.0.0.1:{cl.nodes[0].port}"
    cfg["redis"]["timeout_s"] = 2
    write_config(td.config_path, cfg)
    hup("configuration reloaded", 3)
    assert f"reload: [redis] cluster_nodes = '127.0.0.1:{cl.nodes[0].port}' takes a restart" \
        in td.log()
    cfg["stream"]["key"] = "ticker:breaking"
    write_config(td.config_path, cfg)
    hup("reload refused", 1)
    assert "has no {hash tag}" in td.log()

    async def main():
        ws = await WS.connect(td, "replay=0")
        await ws.start()
        x = cl.client().xadd(KEY, {"text": "after the reloads"}).decode()
        assert (await ws.recv(5))["id"] == x
        await ws.close()

    run(main(), timeout=20)


@pytest.mark.parametrize("redis_keys,key,why", [
    ({"cluster_nodes": "127.0.0.1:7000"}, "ticker:breaking",
     "[stream] key 'ticker:breaking' has no {hash tag}"),
    ({"cluster_nodes": "127.0.0.1:7000"}, "ticker{}:breaking",
     "[stream] key 'ticker{}:breaking' has no {hash tag}"),
    ({"cluster_nodes": "127.0.0.1:7000", "url": "redis://ignored/1"}, KEY,
     "[redis] url names database 1: a Redis Cluster has only database 0"),
    ({"cluster_nodes": "127.0.0.1:7000", "sentinels": "127.0.0.1:26379"}, KEY,
     "[redis] sentinels and cluster_nodes exclude each other: set one"),
    ({"cluster_nodes": "127.0.0.1:0"}, KEY,
     "[redis] cluster_nodes: '127.0.0.1:0': the port is not 1..65535"),
    ({"cluster_nodes": "127.0.0.1:7000,"}, KEY,
     "[redis] cluster_nodes: the list has an empty element"),
    ({"cluster_nodes": "127.0.0.1:7000", "url": "redis://:pw@ignored/0"}, KEY, None),
    ({"cluster_nodes": "127.0.0.1:65535,[::1]:1"}, "{t}", None),
    ({"url": "redis://ignored/1"}, "ticker:breaking", None),
])
def test_check_config_and_start_refuse_what_a_cluster_cannot_use(tmp_path, redis_keys, key, why):
    conf = str(tmp_path / "t.conf")
    write_config(conf, {"redis": redis_keys, "stream": {"key": key}})
    p = subprocess.run([TICKERD, "--check-config", "-c", conf], capture_output=True, text=True,
                       timeout=10)
    if why is None:
        assert p.returncode == 0, p.stderr
        return
    assert p.returncode == 2 and why in p.stderr, p.stderr
    # Started, it says the same and exits before it listens.
    p = subprocess.run([TICKERD, "-c", conf, "--listen", f"127.0.0.1:{free_port()}"],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode != 0 and why in p.stderr, p.stderr
