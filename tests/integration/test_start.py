"""Start-up failures (issue 12, docs/operations.md "Start-up failures"): a
worker that cannot start (its listen address taken, TLS files it cannot use)
is tried again with backoff, and when it never comes up the daemon stops the
other workers and exits 3 with the reason; one process exits 3 at once;
SIGTERM during the backoff exits 0 at once; READY=1 never comes meanwhile,
not even around a reload. A worker that crashes after it started is
restarted as before (test_metrics.py, test_faults.py)."""
import http.client
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import threading
import time

import pytest

from conftest import (TICKERD, WRAPPER, RedisServer, check_log, free_port, http_get, stop_process,
                      wait_until, write_config)
from prometheus_client.parser import text_string_to_metric_families
from test_notify import NotifySocket

EXIT_START = 3
ATTEMPTS = 7
PAUSES = [1, 2, 4, 8, 8, 8]  # s before attempts 2..7, each shortened by up to 25 %
SLOW = 6 if WRAPPER else 1
GIVE_UP_WITHIN = (sum(PAUSES) + 30) * SLOW  # generous: the pauses plus the attempts
START_WITHIN = 15 * SLOW

ATTEMPT_RE = re.compile(r"worker (\d+)( \(pid \d+\))? could not start \(attempt (\d+) of "
                        rf"{ATTEMPTS}\): trying again in ([\d.]+) s")
GIVE_UP_RE = re.compile(rf"worker (\d+) could not start after {ATTEMPTS} attempts: (.+); exiting")


class Daemon:
    """tickerd with a notify socket of its own and its log in a file."""

    def __init__(self, tmp_path, redis_url, workers, port=None, server=None):
        self.port = port or free_port()
        self.logfile = tmp_path / "tickerd.log"
        conf = tmp_path / "t.conf"
        write_config(conf, {"server": {"workers": workers, "static_dir": str(tmp_path),
                                       **(server or {})},
                            "redis": {"grace_s": 1, "timeout_s": 1}})
        self.ns = NotifySocket(str(tmp_path / "notify.sock"))
        # read all along, as systemd does: a full socket blocks sd_notify
        self.reading = True
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        env = dict(os.environ, NOTIFY_SOCKET=self.ns.path)
        with open(self.logfile, "ab") as log:
            self.proc = subprocess.Popen(
                WRAPPER + [TICKERD, "-c", str(conf), "--listen", f"127.0.0.1:{self.port}",
                           "--redis", redis_url],
                env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        self.started = time.monotonic()

    def _read(self):
        while self.reading:
            self.ns.drain()

    def log(self):
        return self.logfile.read_text(errors="replace")

    def wait_log(self, pattern, timeout):
        return wait_until(lambda: re.search(pattern, self.log()), timeout, interval=0.02,
                          what=f"{pattern!r} in the log")

    def wait_exit(self, timeout):
        """The exit status, and the seconds from the start to the exit."""
        rc = self.proc.wait(timeout)
        return rc, time.monotonic() - self.started

    def workers(self):
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True,
                             text=True)
        return sorted(int(p) for p in out.stdout.split())

    def close(self):
        rc = stop_process(self.proc)
        self.reading = False
        self.reader.join(5)
        self.ns.close()
        check_log("tickerd", rc, self.log())


@pytest.fixture
def daemon(tmp_path, redis_server):
    """daemon(workers, port=None, server={...}, redis_url=None) -> Daemon."""
    started = []

    def make(workers, port=None, server=None, redis_url=None):
        d = Daemon(tmp_path, redis_url or redis_server.url, workers, port, server)
        started.append(d)
        return d

    yield make
    for d in started:
        d.close()


def hold_port(port, reuseport=False):
    """A socket of the test's own listening on 127.0.0.1:port."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuseport:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(("127.0.0.1", port))
    s.listen(8)
    return s


def attempts(log):
    """{worker: [(attempt, pause s, forked)]} from the master's retry lines."""
    out = {}
    for w, pid, n, pause in ATTEMPT_RE.findall(log):
        out.setdefault(int(w), []).append((int(n), float(pause), bool(pid)))
    return out


def check_pauses(tries):
    """Attempts 1..6 in order, each pause within its nominal value less 25 %
    (the log rounds to 0.1 s)."""
    assert [n for n, _, _ in tries] == list(range(1, ATTEMPTS)), tries
    for (n, pause, _), nominal in zip(tries, PAUSES):
        assert 0.75 * nominal - 0.051 <= pause <= nominal + 0.051, (n, pause, nominal)


def healthy(port):
    status, _, body = http_get(port, "/healthz", timeout=2)
    return status == 200 and json.loads(body)["ready"] is True


def restarts(port):
    _, _, body = http_get(port, "/metrics")
    for fam in text_string_to_metric_families(body.decode()):
        for s in fam.samples:
            if s.name == "tickerd_worker_restarts_total":
                return s.value
    raise AssertionError("no tickerd_worker_restarts_total")


def make_cert(directory, name):
    cert, key = str(directory / f"{name}.crt"), str(directory / f"{name}.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj",
                    "/CN=localhost", "-days", "1", "-keyout", key, "-out", cert],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def https_healthy(port, cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = False
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=2, context=ctx)
    try:
        conn.request("GET", "/healthz")
        resp = conn.getresponse()
        return resp.status == 200 and json.loads(resp.read())["ready"] is True
    finally:
        conn.close()


# --------------------------------------------------------------------------
# the listen address taken


@pytest.mark.parametrize("reuseport", [False, True], ids=["plain", "reuseport"])
def test_one_process_exits_at_once_when_the_port_is_taken(daemon, reuseport):
    """workers = 1: no retries. A holder with SO_REUSEPORT (another tickerd)
    is refused as well: the port would be shared silently otherwise."""
    port = free_port()
    holder = hold_port(port, reuseport)
    try:
        d = daemon(1, port=port)
        rc, _ = d.wait_exit(START_WITHIN)
        log = d.log()
        assert rc == EXIT_START, log
        reason = f"listen 127.0.0.1:{port}: Address already in use"
        assert log.count(reason) == 2, log  # where it failed, and the exit line
        assert f"could not start: {reason}; exiting" in log
        assert "listening on" not in log and "attempt" not in log
        assert d.ns.seen("READY=1") == []
    finally:
        holder.close()


def test_workers_retried_with_backoff_then_the_daemon_gives_up(daemon):
    port = free_port()
    holder = hold_port(port)
    try:
        d = daemon(2, port=port)
        rc, took = d.wait_exit(GIVE_UP_WITHIN)
        log = d.log()
        assert rc == EXIT_START, log
        (w, reason), = GIVE_UP_RE.findall(log)
        assert reason == f"listen 127.0.0.1:{port}: Address already in use"
        tries = attempts(log)
        check_pauses(tries[int(w)])
        assert not any(forked for t in tries.values() for _, _, forked in t)  # the probe
        assert took >= 0.75 * sum(PAUSES) - 0.5, f"gave up after {took:.1f} s"
        assert "listening on" not in log and "restarting" not in log
        assert d.ns.seen("READY=1") == []
    finally:
        holder.close()


def test_port_freed_before_the_last_attempt_comes_up(daemon):
    """The edge of the budget: the port comes free during the pause before
    the 7th and last attempt, which then starts the daemon."""
    port = free_port()
    holder = hold_port(port)
    try:
        d = daemon(2, port=port)
        d.wait_log(rf"could not start \(attempt {ATTEMPTS - 1} of {ATTEMPTS}\)",
                   GIVE_UP_WITHIN)
    finally:
        holder.close()
    wait_until(lambda: healthy(port), START_WITHIN, what="/healthz 200")
    wait_until(lambda: d.ns.seen("READY=1"), 5, what="READY=1")
    log = d.log()
    assert d.proc.poll() is None
    assert not GIVE_UP_RE.search(log)
    assert log.count("listening on") == 2, log
    assert restarts(port) == 0  # no worker had died: the probe held them back


def test_port_stolen_while_a_ready_daemon_restarts_its_workers(daemon):
    """Up once, then both workers die and someone takes the port before
    they are restarted: the restarts are start failures, retried with the
    same backoff, and the daemon comes back once the port is free."""
    port = free_port()
    d = daemon(2, port=port)
    wait_until(lambda: healthy(port), START_WITHIN, what="/healthz 200")
    wait_until(lambda: d.ns.seen("READY=1"), 5, what="READY=1")
    workers = d.workers()
    assert len(workers) == 2
    os.kill(d.proc.pid, signal.SIGSTOP)  # restarts wait until the thief has the port
    try:
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        thief = wait_until(lambda: hold_port(port), 5, what="the port free")
    finally:
        os.kill(d.proc.pid, signal.SIGCONT)
    try:
        d.wait_log(rf"worker \d could not start \(attempt 1 of {ATTEMPTS}\)", 10)
        assert not healthy_or_none(port)
    finally:
        thief.close()
    wait_until(lambda: healthy(port), START_WITHIN, what="/healthz 200 again")
    log = d.log()
    assert log.count("killed by signal 9: restarting") == 2, log
    assert f"listen 127.0.0.1:{port}: Address already in use" in log
    assert not GIVE_UP_RE.search(log)
    assert restarts(port) == 2  # each slot's worker died and was restarted once


def healthy_or_none(port):
    """What the thief answers: nothing like tickerd's /healthz."""
    try:
        return healthy(port)
    except Exception:  # noqa: BLE001 - the thief never answers HTTP
        return None


# --------------------------------------------------------------------------
# TLS files a worker cannot use (the master's probe passes)


def test_one_process_with_a_missing_key_exits_at_once(tmp_path, daemon):
    cert, _ = make_cert(tmp_path, "good")
    key = str(tmp_path / "missing.key")
    d = daemon(1, server={"tls_cert": cert, "tls_key": key})
    rc, _ = d.wait_exit(START_WITHIN)
    log = d.log()
    assert rc == EXIT_START, log  # it used to crash (SIGSEGV) here
    assert re.search(rf"could not start: lws: ssl problem getting key '{re.escape(key)}'.*"
                     r"; exiting", log), log
    assert "listening on" not in log
    assert d.ns.seen("READY=1") == []


def garbage_tls(directory):
    """tls_cert and tls_key files that are not PEM."""
    cert, key = directory / "server.crt", directory / "server.key"
    cert.write_text("not a certificate\n")
    key.write_text("not a key\n")
    return cert, key


def test_garbage_certificate_retried_then_the_daemon_gives_up(tmp_path, daemon):
    cert, key = garbage_tls(tmp_path)
    d = daemon(2, server={"tls_cert": cert, "tls_key": key})
    rc, _ = d.wait_exit(GIVE_UP_WITHIN)
    log = d.log()
    assert rc == EXIT_START, log
    (w, reason), = GIVE_UP_RE.findall(log)
    assert reason.startswith(f"lws: problem getting cert '{cert}'"), reason
    tries = attempts(log)
    check_pauses(tries[int(w)])
    assert all(forked for t in tries.values() for _, _, forked in t)  # each in a worker
    forks = sum(len(t) for t in tries.values()) + 1  # the last attempt is not a retry line
    assert log.count(f"problem getting cert '{cert}'") >= forks + 1  # + the exit line
    assert "killed by signal" not in log and "restarting" not in log  # no crash
    assert d.ns.seen("READY=1") == []


def test_certificate_fixed_during_the_backoff_comes_up(tmp_path, daemon):
    cert, key = garbage_tls(tmp_path)
    d = daemon(2, server={"tls_cert": cert, "tls_key": key})
    d.wait_log(rf"could not start \(attempt 1 of {ATTEMPTS}\)", START_WITHIN)
    good_cert, good_key = make_cert(tmp_path, "good")
    os.replace(good_key, key)
    os.replace(good_cert, cert)
    wait_until(lambda: https_healthy(d.port, str(cert)), START_WITHIN,
               what="/healthz 200 over TLS")
    wait_until(lambda: d.ns.seen("READY=1"), 5, what="READY=1")
    log = d.log()
    assert not GIVE_UP_RE.search(log)
    assert log.count("listening on") == 2, log


def test_certificate_broken_after_start_gives_up_and_stops_the_rest(tmp_path, daemon):
    """Up once; the certificate is replaced by garbage, then a worker dies:
    its restart cannot start, and after the retries the master stops the
    worker still serving and exits 3."""
    good_cert, good_key = make_cert(tmp_path, "good")
    d = daemon(2, server={"tls_cert": good_cert, "tls_key": good_key})
    wait_until(lambda: https_healthy(d.port, good_cert), START_WITHIN, what="up over TLS")
    wait_until(lambda: d.ns.seen("READY=1"), 5, what="READY=1")
    victim, survivor = d.workers()
    with open(good_cert, "w") as f:
        f.write("garbage\n")
    os.kill(victim, signal.SIGKILL)
    rc, _ = d.wait_exit(GIVE_UP_WITHIN)
    log = d.log()
    assert rc == EXIT_START, log
    assert f"(pid {victim}) killed by signal 9: restarting" in log
    (w, reason), = GIVE_UP_RE.findall(log)
    assert reason.startswith(f"lws: problem getting cert '{good_cert}'"), reason
    check_pauses(attempts(log)[int(w)])
    assert re.search(rf"\[{survivor}\] info: Terminated: closing \d+ clients and stopping", log)
    assert not os.path.exists(f"/proc/{survivor}")
    assert d.ns.seen("STOPPING=1")


# --------------------------------------------------------------------------
# signals during the backoff


def test_sigterm_during_a_pause_exits_0_at_once(daemon):
    """SIGTERM during the pause after the 4th attempt (6 to 8 s) ends the
    daemon well before that pause would; a SIGHUP before it tells systemd
    nothing: READY was never sent."""
    port = free_port()
    holder = hold_port(port)
    try:
        d = daemon(2, port=port)
        d.wait_log(rf"could not start \(attempt 1 of {ATTEMPTS}\)", START_WITHIN)
        d.proc.send_signal(signal.SIGHUP)
        d.wait_log("configuration reloaded", 5)
        d.wait_log(rf"could not start \(attempt 4 of {ATTEMPTS}\)", GIVE_UP_WITHIN)
        t0 = time.monotonic()
        d.proc.send_signal(signal.SIGTERM)
        rc = d.proc.wait(5 * SLOW)
        took = time.monotonic() - t0
        log = d.log()
        assert rc == 0, log
        assert took < 5 * SLOW
        assert f"attempt 5 of {ATTEMPTS}" not in log and not GIVE_UP_RE.search(log)
        assert d.ns.seen("READY=1") == [] and d.ns.seen("RELOADING=1") == []
    finally:
        holder.close()


@pytest.mark.parametrize("workers", [1, 2])
def test_reload_before_ready_tells_systemd_nothing(tmp_path, daemon, workers):
    """Redis down at start: no worker is ready. A SIGHUP then must not send
    READY=1 (systemd would take the start for done) nor RELOADING=1."""
    redis = RedisServer(str(tmp_path / "later"))
    d = daemon(workers, redis_url=redis.url)  # not started yet: down
    try:
        wait_until(lambda: http_get(d.port, "/healthz", timeout=2)[0] == 503, START_WITHIN,
                   what="/healthz answering")
        d.proc.send_signal(signal.SIGHUP)
        d.wait_log("configuration reloaded", 5)
        time.sleep(0.5)
        assert d.ns.seen("READY=1") == [] and d.ns.seen("RELOADING=1") == []
        redis.start()
        wait_until(lambda: d.ns.seen("READY=1"), START_WITHIN, what="READY=1 once loaded")
    finally:
        redis.stop()
