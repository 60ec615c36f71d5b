"""Long-poll, GET /v1/poll (SPEC §3): the same filters, since, epoch and gap
rules as /v1/ws, one answer per request: at once when a matching event after
since exists (or without since: the current state as replay events), else
as soon as one is published, else empty at wait_s (default 25, max 60, 0 =
answer now). The body is {"epoch","last_id","events":[frames as on
/v1/ws],"gap"}; last_id passed back as since loses and repeats nothing.

Waiting polls count as connections (transport "poll"), are bound by
max_connections and max_per_ip, are released when their client hangs up,
and are answered at once, empty, when tickerd drains."""

import concurrent.futures
import http.client
import json
import signal
import socket
import time

import jwt
import pytest

from conftest import SSE, WS, http_get, item_frame, run, wait_until

SECRET = "poll-test-secret"


def poll(td, query="", headers=None, timeout=70):
    """One GET /v1/poll. Returns (status, headers, body: JSON or text)."""
    status, hdrs, body = http_get(td.port, "/v1/poll" + (f"?{query}" if query else ""),
                                  headers=headers, timeout=timeout)
    if hdrs.get("content-type") == "application/json" and body:
        return status, hdrs, json.loads(body)
    return status, hdrs, body.decode()


def poll_later(pool, td, query="", headers=None):
    """A poll on a thread of its own: a future of poll()'s answer."""
    return pool.submit(poll, td, query, headers)


def poll_conns(td):
    return td.metric("tickerd_connections", transport="poll")


def wait_polls(td, n, timeout=5):
    wait_until(lambda: poll_conns(td) == n, timeout, what=f"{n} waiting polls")


def epoch_of(td):
    return td.health()[1]["epoch"]


@pytest.fixture
def pool():
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as ex:
        yield ex


# --------------------------------------------------------------------------
# the answer


def test_first_poll_is_the_current_state(tickerd, xadd):
    a = xadd(text="one", region="mena")
    b = xadd(text="two", region="asia")
    status, hdrs, body = poll(tickerd)
    assert status == 200
    assert hdrs["content-type"] == "application/json"
    assert hdrs["cache-control"] == "no-store"
    assert body == {"epoch": epoch_of(tickerd), "last_id": b, "gap": False,
                    "events": [item_frame(a, "one", region=["mena"], replay=True),
                               item_frame(b, "two", region=["asia"], replay=True)]}
    # filters as on /v1/ws
    status, _, body = poll(tickerd, "region=asia")
    assert [e["id"] for e in body["events"]] == [b] and body["last_id"] == b


def test_empty_stream_answers_at_once_empty(tickerd):
    status, _, body = poll(tickerd, "wait_s=30", timeout=5)
    assert status == 200
    assert body == {"epoch": epoch_of(tickerd), "last_id": "0-0", "events": [], "gap": False}


def test_replay_at_its_edges(tickerd, xadd):
    ids = [xadd(text=f"n{i}") for i in range(4)]
    assert poll(tickerd, "replay=0")[2]["events"] == []
    assert [e["id"] for e in poll(tickerd, "replay=3")[2]["events"]] == ids[1:]
    assert len(poll(tickerd, "replay=200")[2]["events"]) == 4
    status, _, text = poll(tickerd, "replay=201")
    assert status == 400 and "replay" in text


def test_since_answers_at_once_with_the_newer_events(tickerd, xadd):
    a = xadd(text="a")
    b = xadd(text="b")
    c = xadd(text="c", op="retract", ref=a)
    status, _, body = poll(tickerd, f"since={a}&wait_s=30", timeout=5)
    assert status == 200 and body["gap"] is False and body["last_id"] == c
    # the events themselves, as live frames on /v1/ws
    assert body["events"] == [item_frame(b, "b"), {"type": "retract", "id": c, "ref": a}]


def test_waits_for_a_matching_event(tickerd, xadd, pool):
    last = xadd(text="before")
    f = poll_later(pool, tickerd, f"since={last}&region=asia&wait_s=30")
    wait_polls(tickerd, 1)
    other = xadd(text="not for it", region="mena")
    time.sleep(0.3)
    assert not f.done(), "an event it does not match answers nothing"
    mine = xadd(text="for it", region="asia")
    status, _, body = f.result(timeout=10)
    assert status == 200 and body["gap"] is False
    assert body["events"] == [item_frame(mine, "for it", region=["asia"])]
    assert body["last_id"] == mine  # the one it skipped is behind it too
    assert other < mine
    wait_polls(tickerd, 0)


def test_wait_s_at_its_edges(tickerd, xadd, pool):
    last = xadd(text="x")
    t0 = time.monotonic()
    status, _, body = poll(tickerd, f"since={last}&wait_s=0", timeout=5)
    assert status == 200 and body["events"] == [] and body["last_id"] == last
    assert time.monotonic() - t0 < 2, "wait_s=0 answers now"
    t0 = time.monotonic()
    status, _, body = poll(tickerd, f"since={last}&wait_s=1", timeout=5)
    took = time.monotonic() - t0
    assert status == 200 and body["events"] == [] and body["last_id"] == last
    assert 0.4 <= took <= 3, took
    # 60 waits (answered here by an event), 61 is refused
    f = poll_later(pool, tickerd, f"since={last}&wait_s=60")
    wait_polls(tickerd, 1)
    new = xadd(text="y")
    assert [e["id"] for e in f.result(timeout=10)[2]["events"]] == [new]
    for bad in ("61", "-1", "abc", "", "1.5", "99999999999"):
        status, _, text = poll(tickerd, f"since={last}&wait_s={bad}")
        assert status == 400 and "wait_s" in text, (bad, status, text)


def test_default_wait_is_25_s(tickerd, xadd, pool):
    last = xadd(text="x")
    t0 = time.monotonic()
    f = poll_later(pool, tickerd, f"since={last}")
    wait_polls(tickerd, 1)
    time.sleep(2)
    assert not f.done()
    status, _, body = f.result(timeout=35)
    took = time.monotonic() - t0
    assert status == 200 and body["events"] == [] and 24 <= took <= 27, took


def test_bad_parameters_are_refused(tickerd):
    for q in ("region=atlantis", "since=yesterday", "lang=xx", "priority=huge",
              "since=1-0&epoch=" + "e" * 65):
        status, hdrs, text = poll(tickerd, q)
        assert status == 400, (q, status)
        assert hdrs["cache-control"] == "no-store"


def test_the_seam_between_polls_loses_and_repeats_nothing(tickerd, xadd, rds, pool):
    """A client passing last_id back as since, with items published while it
    polls and between its polls: each arrives once, in order."""
    first = poll(tickerd, "replay=0")[2]
    since, got, sent = first["last_id"], [], []
    stop = time.monotonic() + 4

    def publisher():
        i = 0
        while time.monotonic() < stop:
            sent.append(rds.xadd("ticker:breaking", {"text": f"seam {i}",
                                                     "region": "asia" if i % 3 else "mena"}).decode())
            i += 1
            time.sleep(0.01 * (i % 4))

    pub = pool.submit(publisher)
    while not pub.done() or since < sent[-1]:
        status, _, body = poll(tickerd, f"since={since}&wait_s=2")
        assert status == 200 and body["gap"] is False
        got += [e["id"] for e in body["events"]]
        assert body["last_id"] >= since
        since = body["last_id"]
    pub.result()
    assert got == sorted(got) and len(got) == len(set(got))
    assert got == sent
    # with a filter: what matches, once
    status, _, body = poll(tickerd, f"since={first['last_id']}&region=mena&wait_s=0")
    assert [e["id"] for e in body["events"]] == sent[::3][-200:]


def test_more_than_replay_max_comes_in_pages(make_tickerd, xadd):
    """More than [replay] max events after since: the oldest max, and
    last_id is the last of them, so the next poll gets the rest: no gap."""
    td = make_tickerd({"replay": {"max": 5, "default": 5}})
    a = xadd(text="start")
    ids = [xadd(text=f"n{i}") for i in range(11)]
    got, since = [], a
    for page in (ids[0:5], ids[5:10], ids[10:]):
        status, _, body = poll(td, f"since={since}&wait_s=0")
        assert body["gap"] is False and [e["id"] for e in body["events"]] == page
        assert body["last_id"] == page[-1]
        since = body["last_id"]
    status, _, body = poll(td, f"since={since}&wait_s=0")
    assert body["events"] == [] and body["last_id"] == ids[-1]


def test_since_older_than_the_history_is_a_gap(make_tickerd, xadd):
    td = make_tickerd({"stream": {"history_size": 3}})
    ids = [xadd(text=f"n{i}") for i in range(6)]
    status, _, body = poll(td, f"since={ids[0]}")
    assert body["gap"] is True and [e["id"] for e in body["events"]] == ids[-3:]
    status, _, body = poll(td, f"since={ids[3]}&wait_s=0")  # retained: no gap
    assert body["gap"] is False and [e["id"] for e in body["events"]] == ids[4:]


def test_another_epoch_ignores_since_and_answers_the_state_with_a_gap(tickerd, xadd):
    a = xadd(text="a")
    b = xadd(text="b")
    epoch = epoch_of(tickerd)
    status, _, body = poll(tickerd, f"since={a}&epoch={epoch}&wait_s=0")
    assert body["gap"] is False and [e["id"] for e in body["events"]] == [b]
    status, _, body = poll(tickerd, f"since={b}&epoch=0123456789abcdef&replay=5")
    assert body["epoch"] == epoch and body["gap"] is True
    assert body["events"] == [item_frame(a, "a", replay=True), item_frame(b, "b", replay=True)]


def test_a_new_epoch_answers_a_waiting_poll_with_a_gap(make_tickerd, redis_server, xadd, pool):
    td = make_tickerd()
    old = epoch_of(td)
    a = xadd(text="old world")
    f = poll_later(pool, td, f"since={a}&epoch={old}&wait_s=30")
    wait_polls(td, 1)
    redis_server.stop()  # no persistence: the stream and its epoch are gone
    redis_server.start()
    status, _, body = f.result(timeout=15)
    assert status == 200 and body["gap"] is True
    assert body["epoch"] != old and body["events"] == []


def test_since_ahead_of_this_node_never_goes_back(tickerd, xadd):
    xadd(text="x")
    ahead = "9999999999999-0"
    status, _, body = poll(tickerd, f"since={ahead}&wait_s=0")
    assert body == {"epoch": epoch_of(tickerd), "last_id": ahead, "events": [], "gap": False}


def test_updates_and_retracts_follow_the_original(tickerd, xadd, pool):
    a = xadd(text="orig", region="asia", lang="en")
    f = poll_later(pool, tickerd, f"since={a}&region=asia&wait_s=30")
    wait_polls(tickerd, 1)
    u = xadd(op="update", ref=a, region="mena", text="moved")  # no longer matches: still sent
    body = f.result(timeout=10)[2]
    assert [(e["type"], e["id"], e["ref"]) for e in body["events"]] == [("update", u, a)]


# --------------------------------------------------------------------------
# the connection


def test_head_answers_at_once_without_a_body(tickerd, xadd):
    last = xadd(text="x")
    conn = http.client.HTTPConnection("127.0.0.1", tickerd.port, timeout=5)
    conn.request("HEAD", f"/v1/poll?since={last}&wait_s=30")
    r = conn.getresponse()
    assert r.status == 200 and r.read() == b""
    assert r.getheader("content-type") == "application/json"
    assert r.getheader("cache-control") == "no-store"
    conn.request("HEAD", "/v1/poll?wait_s=61")
    r = conn.getresponse()
    assert r.status == 400 and r.read() == b""
    conn.close()


def test_keep_alive_polls_one_after_another(tickerd, xadd, pool):
    last = xadd(text="x")
    conn = http.client.HTTPConnection("127.0.0.1", tickerd.port, timeout=10)
    for i in range(3):
        conn.request("GET", f"/v1/poll?since={last}&wait_s={30 if i else 0}")
        if i:
            wait_polls(tickerd, 1)
            new = xadd(text=f"k{i}")
        r = conn.getresponse()
        body = json.loads(r.read())
        assert r.status == 200
        if i:
            assert [e["id"] for e in body["events"]] == [new]
        last = body["last_id"]
    conn.close()
    wait_polls(tickerd, 0)


def test_counted_as_poll_connections(tickerd, xadd, pool):
    last = xadd(text="x")
    futures = [poll_later(pool, tickerd, f"since={last}&wait_s=30&lang=ar") for _ in range(3)]
    wait_polls(tickerd, 3)
    _, _, stats = http_get(tickerd.port, "/v1/stats")
    stats = json.loads(stats)
    assert stats["by_transport"]["poll"] == 3 and stats["connections"] == 3
    assert stats["by_lang"]["ar"] == 3
    xadd(text="for all", lang="ar")
    assert all(len(f.result(timeout=10)[2]["events"]) == 1 for f in futures)
    wait_polls(tickerd, 0)


def test_a_client_that_hangs_up_while_waiting_is_released(tickerd, xadd):
    last = xadd(text="x")
    socks = []
    for stray in (b"", b"stray bytes"):
        s = socket.create_connection(("127.0.0.1", tickerd.port))
        s.sendall(f"GET /v1/poll?since={last}&wait_s=60 HTTP/1.1\r\nHost: x\r\n\r\n".encode() + stray)
        socks.append(s)
    wait_polls(tickerd, 2)
    socks[1].sendall(b"more stray input")  # read away: still waiting
    time.sleep(0.3)
    assert poll_conns(tickerd) == 2
    for s in socks:
        s.close()
    wait_polls(tickerd, 0, timeout=3)
    # and it spins no loop: the worker idles
    ticks = lambda: int(open(f"/proc/{tickerd.proc.pid}/stat").read().split()[13])  # noqa: E731
    before = ticks()
    time.sleep(1)
    assert ticks() - before < 30  # a spinning loop burns ~100 ticks a second
    assert poll(tickerd, "wait_s=0")[0] == 200


def test_max_connections_counts_waiting_polls(make_tickerd, xadd, pool):
    td = make_tickerd({"limits": {"max_connections": 2}})
    last = xadd(text="x")
    futures = [poll_later(pool, td, f"since={last}&wait_s=30") for _ in range(2)]
    wait_polls(td, 2)
    status, _, text = poll(td, f"since={last}&wait_s=0")  # one over
    assert status == 503 and "full" in text

    async def ws_refused():
        with pytest.raises(Exception):
            await WS.connect(td, "replay=0")
    run(ws_refused())
    xadd(text="frees them")
    assert all(f.result(timeout=10)[0] == 200 for f in futures)
    wait_polls(td, 0)
    assert poll(td, f"since={last}&wait_s=0")[0] == 200  # at the limit again: fine


def test_max_per_ip(make_tickerd, xadd, pool):
    td = make_tickerd({"limits": {"max_per_ip": 1}})
    last = xadd(text="x")
    f = poll_later(pool, td, f"since={last}&wait_s=30")
    wait_polls(td, 1)
    status, _, text = poll(td, f"since={last}&wait_s=0")
    assert status == 429
    sse = SSE(td.port, "/v1/events?replay=0")
    assert sse.status == 429
    xadd(text="y")
    assert f.result(timeout=10)[0] == 200
    wait_polls(td, 0)
    assert poll(td, f"since={last}&wait_s=0")[0] == 200


# --------------------------------------------------------------------------
# security


def token(exp_in=600, **claims):
    return jwt.encode(dict(claims, exp=int(time.time()) + exp_in), SECRET, algorithm="HS256")


def test_auth_tokens_as_on_the_other_transports(make_tickerd, xadd):
    td = make_tickerd({"auth": {"jwt_secret": SECRET}})
    a = xadd(text="asia", region="asia")
    xadd(text="mena", region="mena")
    assert poll(td)[0] == 401
    assert poll(td, "token=garbage")[0] == 401
    assert poll(td, f"token={token(exp_in=-10)}")[0] == 401
    status, _, body = poll(td, f"token={token(regions=['asia'])}")
    assert status == 200 and [e["id"] for e in body["events"]] == [a]  # narrowed
    status, _, body = poll(td, "", headers={"Authorization": f"Bearer {token(regions=['asia'])}"})
    assert status == 200 and [e["id"] for e in body["events"]] == [a]
    assert poll(td, f"region=mena&token={token(regions=['asia'])}")[0] == 403


def test_a_token_that_expires_while_waiting_ends_401(make_tickerd, xadd):
    td = make_tickerd({"auth": {"jwt_secret": SECRET}})
    last = xadd(text="x")
    t0 = time.monotonic()
    status, _, text = poll(td, f"since={last}&wait_s=30&token={token(exp_in=2)}", timeout=10)
    assert status == 401 and "token expired" in text
    assert time.monotonic() - t0 < 5
    wait_polls(td, 0)


def test_origins_and_cors(make_tickerd, xadd, pool):
    td = make_tickerd({"auth": {"allowed_origins": "https://news.example"}})
    last = xadd(text="x")
    status, hdrs, _ = poll(td, "wait_s=0", headers={"Origin": "https://evil.example"})
    assert status == 403
    status, hdrs, _ = poll(td, "wait_s=0", headers={"Origin": "https://x" + "x" * 300})
    assert status == 403
    # the CORS lines come with an answer that waited
    f = poll_later(pool, td, f"since={last}&wait_s=30", headers={"Origin": "https://news.example"})
    wait_polls(td, 1)
    xadd(text="y")
    status, hdrs, body = f.result(timeout=10)
    assert status == 200 and hdrs["access-control-allow-origin"] == "https://news.example"
    assert hdrs["vary"] == "Origin" and hdrs["cache-control"] == "no-store"
    status, hdrs, _ = poll(td, "wait_s=0")  # no Origin: not a browser
    assert status == 200 and "access-control-allow-origin" not in hdrs


# --------------------------------------------------------------------------
# drain


def test_drain_answers_waiting_polls_at_once_empty(make_tickerd, xadd, pool):
    td = make_tickerd({"server": {"drain_s": 30}})
    last = xadd(text="x")
    futures = [poll_later(pool, td, f"since={last}&wait_s=60") for _ in range(3)]
    wait_polls(td, 3)

    async def main():
        ws = await WS.connect(td, "replay=0")  # keeps the drain going
        await ws.start()
        t0 = time.monotonic()
        td.proc.send_signal(signal.SIGTERM)
        answers = [f.result(timeout=5) for f in futures]
        assert time.monotonic() - t0 < 3
        for status, hdrs, body in answers:
            assert status == 200
            assert body == {"epoch": epoch_of_answer(answers), "last_id": last, "events": [],
                            "gap": False}
        status, _, _ = poll(td, f"since={last}&wait_s=0")
        assert status == 503  # new polls are refused while it drains
        td.proc.send_signal(signal.SIGTERM)  # the second one ends the drain
        await ws.conn.wait_closed()

    run(main(), timeout=30)
    td.proc.wait(timeout=10)
    assert td.proc.returncode == 0


def epoch_of_answer(answers):
    return answers[0][2]["epoch"]


def test_shutdown_without_drain_answers_polls(make_tickerd, xadd, pool):
    td = make_tickerd()
    last = xadd(text="x")
    f = poll_later(pool, td, f"since={last}&wait_s=60")
    wait_polls(td, 1)
    td.proc.send_signal(signal.SIGTERM)
    status, _, body = f.result(timeout=5)
    assert status == 200 and body["events"] == [] and body["last_id"] == last
    td.proc.wait(timeout=10)
    assert td.proc.returncode == 0
