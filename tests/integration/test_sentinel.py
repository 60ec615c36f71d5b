"""Redis Sentinel (SPEC §4, docs/deployment.md): tickerd nodes that find the
master through sentinels follow a failover without restarting and without
dropping a client, refuse to read from a replica, and use the URL's
password for the sentinels and the master.

Each test starts its own master, replica and sentinels (down-after 1 s, so
a failover takes a few seconds) on free loopback ports."""

import asyncio
import shutil
import time

import pytest
import redis

from cluster import MASTER_NAME, FakeRedis, RedisNode, Sentinel, SentinelCluster, pids_of
from conftest import STREAM, WS, Tickerd, free_port, http_get, run, wait_until

pytestmark = pytest.mark.skipif(not shutil.which("redis-sentinel"),
                                reason="no redis-sentinel (scripts/install-deps.sh --test)")


@pytest.fixture
def make_cluster(tmp_path):
    """make_cluster(password=None) -> a started SentinelCluster (master, one
    replica, three sentinels)."""
    made = []

    def make(**kw):
        c = SentinelCluster(str(tmp_path / f"cluster{len(made)}"), **kw)
        made.append(c)
        return c.start()

    yield make
    for c in made:
        print(c.logs())
        c.stop()


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
        rc = td.stop()
        log = td.log()
        print(f"--- {td.dir} (exit {rc}) log tail ---\n" + "\n".join(log.splitlines()[-40:]))
        assert "AddressSanitizer" not in log and "runtime error" not in log, log


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


# In the first variant the master crashes (SIGKILL: tickerd sees the
# connection drop at once). In the second it hangs (SIGSTOP: the blocked
# XREAD just waits; only +switch-master tells tickerd to move), and there is
# a password on everything (requirepass on the master, replica and
# sentinels, `sentinel auth-pass`) that tickerd gets only in the URL,
# percent-encoded, with a host that means nothing.
@pytest.mark.parametrize("password,fault", [(None, "crash"), ("tick@pw", "freeze")],
                         ids=["open-crash", "password-freeze"])
def test_failover_reaches_every_client_without_restart(make_cluster, make_node, password, fault):
    cl = make_cluster(password=password)
    url = "redis://:tick%40pw@ignored/0" if password else "redis://ignored/0"
    # The first sentinel listed is dead: tickerd must ask (and subscribe to)
    # the next ones.
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
