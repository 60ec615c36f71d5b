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
