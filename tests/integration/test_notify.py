"""systemd readiness and watchdog (issue 12, SPEC §3/§4): READY=1 and
/healthz 200 only once every worker listens and has loaded the history
(503 "starting" before); WATCHDOG=1 only while every worker's loop turns."""
import json
import os
import signal
import socket
import subprocess
import time

import pytest

from conftest import TICKERD, RedisServer, http_get, wait_until, write_config, free_port


class NotifySocket:
    """A unix datagram socket standing in for systemd's notify socket."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.1)
        self.messages = []  # (monotonic time, text)

    def drain(self):
        while True:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                return
            self.messages.append((time.monotonic(), data.decode()))

    def seen(self, word):
        self.drain()
        return [t for t, m in self.messages if word in m.split("\n")]

    def close(self):
        self.sock.close()


def start(tmp_path, redis_url, workers, watchdog_usec=None):
    port = free_port()
    conf = tmp_path / "t.conf"
    write_config(conf, {"server": {"workers": workers, "static_dir": str(tmp_path)},
                        "redis": {"grace_s": 1, "timeout_s": 1}})
    ns = NotifySocket(str(tmp_path / "notify.sock"))
    env = dict(os.environ, NOTIFY_SOCKET=ns.path)
    if watchdog_usec:
        env["WATCHDOG_USEC"] = str(watchdog_usec)
    log = open(tmp_path / "tickerd.log", "ab")
    proc = subprocess.Popen([TICKERD, "-c", str(conf), "--listen", f"127.0.0.1:{port}",
                             "--redis", redis_url], env=env, stdout=log, stderr=log,
                            stdin=subprocess.DEVNULL)
    log.close()
    return proc, port, ns


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def health(port):
    status, _, body = http_get(port, "/healthz", timeout=2)
    return status, json.loads(body)


@pytest.mark.parametrize("workers", [1, 2])
def test_ready_only_once_every_worker_has_loaded(tmp_path, workers):
    redis = RedisServer(str(tmp_path / "redis"))
    url = f"redis://127.0.0.1:{redis.port}/0"  # not started yet: Redis is down
    proc, port, ns = start(tmp_path, url, workers)
    try:
        wait_until(lambda: health(port)[0] == 503, 10, what="/healthz answering")
        time.sleep(1.5)
        status, body = health(port)
        assert (status, body["status"], body["ready"]) == (503, "starting", False)
        assert ns.seen("READY=1") == []
        redis.start()
        wait_until(lambda: health(port)[0] == 200, 15, what="/healthz 200 once loaded")
        assert health(port)[1]["ready"] is True
        wait_until(lambda: ns.seen("READY=1"), 5, what="READY=1")
    finally:
        stop(proc)
        ns.close()
        redis.stop()


def test_watchdog_fed_only_while_every_worker_turns(tmp_path):
    redis = RedisServer(str(tmp_path / "redis"))
    redis.start()
    proc, port, ns = start(tmp_path, redis.url, 2, watchdog_usec=2_000_000)  # ping every 1 s
    try:
        wait_until(lambda: ns.seen("READY=1"), 15, what="READY=1")
        wait_until(lambda: len(ns.seen("WATCHDOG=1")) >= 2, 5, what="the watchdog fed")
        out = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True)
        worker = int(out.stdout.split()[0])
        os.kill(worker, signal.SIGSTOP)  # its loop stops turning
        time.sleep(4.5)  # past the 3 s a worker may lag
        before = len(ns.seen("WATCHDOG=1"))
        time.sleep(2.5)
        assert len(ns.seen("WATCHDOG=1")) == before, "watchdog fed with a stuck worker"
        os.kill(worker, signal.SIGCONT)
        wait_until(lambda: len(ns.seen("WATCHDOG=1")) > before, 5, what="the watchdog fed again")
    finally:
        stop(proc)
        ns.close()
        redis.stop()
