"""SIGHUP (issue 12, SPEC §4): keys that take a restart are kept and each
gets a log line; a worker restarted after a reload binds the same address
as the others and runs with the reloaded configuration."""
import os
import signal
import subprocess
import time

from conftest import RawWS, wait_until, write_config
from test_security import hup_and_wait


def worker_pids(td):
    out = subprocess.run(["pgrep", "-P", str(td.proc.pid)], capture_output=True, text=True)
    return sorted(int(p) for p in out.stdout.split())


def test_fixed_keys_are_kept_and_named(make_tickerd):
    td = make_tickerd({"server": {"workers": 2}})
    cfg = {k: dict(v) for k, v in td.config.items()}
    cfg["server"]["workers"] = 3
    cfg["server"]["listen"] = "127.0.0.1:1"
    cfg.setdefault("stream", {})["history_size"] = 50
    cfg["stream"]["key"] = "other:key"
    cfg.setdefault("redis", {})["sentinels"] = "127.0.0.1:26379"
    write_config(td.config_path, cfg)
    hup_and_wait(td, "configuration reloaded", 3)
    log = td.log()
    for key in ("workers", "[stream] history_size", "[stream] key", "[redis] sentinels"):
        assert f"reload: {key} = " in log, key
    assert len(worker_pids(td)) == 2
    ws = RawWS(td.port, "/v1/ws?replay=0")
    assert ws.status == 101
    ws.close()


def test_worker_restarted_after_reload_keeps_address_and_new_config(make_tickerd, xadd):
    td = make_tickerd({"server": {"workers": 2}, "replay": {"default": 10}})
    for i in range(5):
        xadd(text=f"item {i}")
    cfg = {k: dict(v) for k, v in td.config.items()}
    cfg["replay"]["default"] = 2
    write_config(td.config_path, cfg)
    hup_and_wait(td, "configuration reloaded", 3)
    before = worker_pids(td)
    os.kill(before[0], signal.SIGKILL)
    wait_until(lambda: len(worker_pids(td)) == 2 and worker_pids(td) != before, 10,
               what="the worker restarted")
    time.sleep(1.0)  # the new worker loads the history
    # Every connection, whichever worker takes it, replays 2 items.
    for _ in range(12):
        ws = RawWS(td.port, "/v1/ws")
        assert ws.status == 101
        frames = [ws.read_json() for _ in range(4)]
        assert [f["type"] for f in frames] == ["hello", "item", "item", "replay"]
        assert frames[3]["count"] == 2
        ws.close()


def test_log_format_json_and_level(make_tickerd, xadd):
    """[log] format = json: one JSON object a line; level = warn hides info."""
    import json as _json
    td = make_tickerd({"log": {"format": "json", "level": "warn"}})
    xadd(text="")  # rejected: a warn line
    wait_until(lambda: "rejected" in td.log(), 5, what="the rejection line")
    lines = [l for l in td.log().splitlines() if l.strip()]
    objs = [_json.loads(l) for l in lines if l.startswith("{")]
    assert objs and len(objs) == len([l for l in lines if not l.startswith("==")])
    assert all(set(o) == {"ts", "pid", "level", "msg"} for o in objs)
    assert all(o["level"] in ("warn", "error") for o in objs), objs
    assert any("rejected" in o["msg"] for o in objs)


def test_refusals_do_not_use_up_the_trouble_budget(make_tickerd, xadd):
    """A flood of refused clients must not hide the daemon's own trouble:
    while refusals pour in (far over the 5-lines-a-second budget), a slow
    consumer is still logged, because refusals have a budget of their own."""
    import threading
    from conftest import RawWS, ws_handshake_request, raw_request
    td = make_tickerd({"auth": {"allowed_origins": "https://news.example"},
                       "limits": {"slow_timeout_s": 1}})
    evil = ws_handshake_request(td.port, "/v1/ws", b"Origin: https://evil.example\r\n")
    done = threading.Event()

    def flood():
        while not done.is_set():
            raw_request(td.port, evil)

    t = threading.Thread(target=flood)
    t.start()
    try:
        stuck = RawWS(td.port, "/v1/ws?replay=0", rcvbuf=4096)
        for i in range(300):
            xadd(text="x" * 900 + str(i))
        wait_until(lambda: "closing (1013)" in td.log(), 10, what="the slow consumer's line")
        assert td.log().count("refused") > 10  # the flood was on
        stuck.close()
    finally:
        done.set()
        t.join()
