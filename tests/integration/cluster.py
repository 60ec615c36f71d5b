"""Helpers of the cluster tests (test_sentinel.py, test_nodes.py,
test_cluster.py): Redis masters and replicas, Redis Sentinels, a Redis
Cluster, and nginx in front of tickerd nodes.

Like conftest.py, everything runs on free loopback ports in the test's own
temporary directory and is stopped by PID (SIGTERM, then SIGKILL after a
time bound); every wait has a timeout.
"""

import os
import re
import signal
import socket
import subprocess
import threading

import redis

from conftest import HERE, START_TIMEOUT, free_port, stop_process, wait_until

MASTER_NAME = "mymaster"
NGINX = os.environ.get("NGINX", "/usr/sbin/nginx")
NGINX_CONF = os.path.join(HERE, "..", "..", "config", "nginx-tickerd.conf")


def write_lines(path, lines):
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


class RedisNode:
    """A redis-server from a config file of its own: a master, or a replica
    of `replicaof` (a RedisNode). password: requirepass and masterauth.
    extra: more config lines."""

    def __init__(self, workdir, replicaof=None, password=None, extra=()):
        self.dir = workdir
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.password = password
        self.replicaof = replicaof
        self.extra = list(extra)
        self.proc = None
        self.logfile = os.path.join(self.dir, "redis.log")
        self.conf = os.path.join(self.dir, "redis.conf")

    def start(self):
        lines = [f"port {self.port}", "bind 127.0.0.1", 'save ""', "appendonly no",
                 f"dir {self.dir}", f"logfile {self.logfile}", "daemonize no"]
        if self.password:
            lines += [f"requirepass {self.password}", f"masterauth {self.password}"]
        if self.replicaof:
            lines.append(f"replicaof 127.0.0.1 {self.replicaof.port}")
        write_lines(self.conf, lines + self.extra)
        self.proc = subprocess.Popen(["redis-server", self.conf], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: self.client().ping(), START_TIMEOUT, what=f"redis on {self.port}")
        return self

    def wait_synced(self, timeout=START_TIMEOUT):
        """For a replica: waits until its link to the master is up."""
        wait_until(lambda: self.client().info("replication").get("master_link_status") == "up",
                   timeout, interval=0.05, what=f"replica {self.port} in sync")

    def role(self):
        return self.client().execute_command("ROLE")[0].decode()

    def kill(self):
        """SIGKILL: the master crashes (no shutdown, no goodbye)."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def freeze(self):
        """SIGSTOP: the master hangs (its connections stay open, silent)."""
        os.kill(self.proc.pid, signal.SIGSTOP)

    def stop(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                os.kill(self.proc.pid, signal.SIGCONT)  # in case it was frozen
            stop_process(self.proc)

    def client(self, **kw):
        kw.setdefault("socket_timeout", 5)
        kw.setdefault("socket_connect_timeout", 2)
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password, **kw)

    def command_calls(self):
        """{command: calls} from INFO commandstats."""
        stats = self.client().info("commandstats")
        return {k[len("cmdstat_"):]: v["calls"] for k, v in stats.items()}


class Sentinel:
    """A redis-sentinel monitoring `master` (a RedisNode) as MASTER_NAME,
    listening on host (a loopback address) and port (default: a free one)."""

    def __init__(self, workdir, master, quorum=2, down_after_ms=1000, failover_timeout_ms=3000,
                 password=None, host="127.0.0.1", port=None):
        self.dir = workdir
        os.makedirs(self.dir, exist_ok=True)
        self.host = host
        self.port = port or free_port()
        self.master = master
        self.quorum = quorum
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.password = password
        self.proc = None
        self.logfile = os.path.join(self.dir, "sentinel.log")
        self.conf = os.path.join(self.dir, "sentinel.conf")  # sentinel rewrites it

    def start(self):
        n = MASTER_NAME
        lines = [f"port {self.port}", f"bind {self.host}", "daemonize no", f"dir {self.dir}",
                 f"logfile {self.logfile}",
                 f"sentinel monitor {n} 127.0.0.1 {self.master.port} {self.quorum}",
                 f"sentinel down-after-milliseconds {n} {self.down_after_ms}",
                 f"sentinel failover-timeout {n} {self.failover_timeout_ms}",
                 f"sentinel parallel-syncs {n} 1"]
        if self.password:
            lines += [f"requirepass {self.password}", f"sentinel auth-pass {n} {self.password}",
                      f"sentinel sentinel-pass {self.password}"]
        write_lines(self.conf, lines)
        self.proc = subprocess.Popen(["redis-sentinel", self.conf], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: self.client().ping(), START_TIMEOUT, what=f"sentinel on {self.port}")
        return self

    def client(self):
        return redis.Redis(host=self.host, port=self.port, password=self.password,
                           socket_timeout=5, socket_connect_timeout=2)

    def master_info(self):
        """SENTINEL MASTER as {field: str}."""
        raw = self.client().execute_command("SENTINEL", "MASTER", MASTER_NAME)
        if isinstance(raw, dict):
            return {str(k): str(v) for k, v in raw.items()}
        vals = [v.decode() if isinstance(v, bytes) else str(v) for v in raw]
        return dict(zip(vals[::2], vals[1::2]))

    def master_addr(self):
        """(ip, port) the sentinel names for MASTER_NAME."""
        ip, port = self.client().execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME",
                                                 MASTER_NAME)
        return ip.decode(), int(port)

    def stop(self):
        if self.proc is not None:
            stop_process(self.proc)

    def log(self):
        try:
            with open(self.logfile) as f:
                return f.read()
        except FileNotFoundError:
            return ""


class SentinelCluster:
    """A master, `replicas` replicas and `n` sentinels, all up and knowing
    each other (so a failover can start as soon as the master dies)."""

    def __init__(self, workdir, replicas=1, sentinels=3, password=None, **sentinel_kw):
        self.dir = workdir
        self.password = password
        self.master = RedisNode(os.path.join(workdir, "master"), password=password)
        self.replicas = [RedisNode(os.path.join(workdir, f"replica{i}"), replicaof=self.master,
                                   password=password) for i in range(replicas)]
        self.sentinels = [Sentinel(os.path.join(workdir, f"sentinel{i}"), self.master,
                                   password=password, **sentinel_kw) for i in range(sentinels)]
        self.nodes = [self.master] + self.replicas

    def start(self, timeout=20):
        self.master.start()
        for r in self.replicas:
            r.start()
        for r in self.replicas:
            r.wait_synced()
        for s in self.sentinels:
            s.start()

        def known():
            for s in self.sentinels:
                m = s.master_info()
                if (int(m["num-slaves"]) != len(self.replicas)
                        or int(m["num-other-sentinels"]) != len(self.sentinels) - 1):
                    return False
            return True
        wait_until(known, timeout, interval=0.1,
                   what="sentinels knowing the replicas and each other")
        return self

    @property
    def addrs(self):
        return ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)

    def wait_new_master(self, old, timeout=20):
        """Waits until every sentinel names a master other than `old`;
        returns that RedisNode."""
        def switched():
            ports = {s.master_addr()[1] for s in self.sentinels}
            return len(ports) == 1 and old.port not in ports and ports.pop()
        port = wait_until(switched, timeout, interval=0.05, what="the sentinels' failover")
        return next(n for n in self.nodes if n.port == port)

    def stop(self):
        for p in self.sentinels + self.nodes:
            p.stop()

    def logs(self):
        return "\n".join(f"--- sentinel {s.port}\n" + "\n".join(s.log().splitlines()[-30:])
                         for s in self.sentinels)


def cluster_maker(cls, tmp_path):
    """For a fixture: yields make(**kw) -> a started cls(workdir, **kw)
    (SentinelCluster, RedisClusterNodes); after the test, prints the logs
    of each and stops it."""
    made = []

    def make(**kw):
        c = cls(str(tmp_path / f"cluster{len(made)}"), **kw)
        made.append(c)
        return c.start()

    yield make
    for c in made:
        print(c.logs())
        c.stop()


class FakeRedis:
    """Stands in for conftest's RedisServer where a Tickerd only needs .url
    (with sentinels the URL gives only credentials and database)."""

    def __init__(self, url):
        self.url = url


# --------------------------------------------------------------------------
# servers that pass for Redis


def resp(v):
    """v (int, None, bytes/str, or a list of those) in RESP2."""
    if isinstance(v, int):
        return b":%d\r\n" % v
    if v is None:
        return b"*-1\r\n"
    if isinstance(v, list):
        return b"*%d\r\n" % len(v) + b"".join(resp(x) for x in v)
    v = v.encode() if isinstance(v, str) else v
    return b"$%d\r\n%s\r\n" % (len(v), v)


def read_command(buf):
    """One RESP command (an array of bulk strings) from the front of buf:
    (args, rest), or (None, buf) while it is incomplete."""
    def line(pos):
        end = buf.find(b"\r\n", pos)
        return (None, pos) if end < 0 else (buf[pos:end], end + 2)
    head, pos = line(0)
    if head is None:
        return None, buf
    args = []
    for _ in range(int(head[1:])):
        h, pos = line(pos)
        if h is None or len(buf) < pos + int(h[1:]) + 2:
            return None, buf
        args.append(buf[pos:pos + int(h[1:])])
        pos += int(h[1:]) + 2
    return args, buf[pos:]


class FakeServer:
    """A server on a free loopback port that reads RESP commands, one
    thread a connection, and hands each to handle(conn, args)."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def handle(self, c, cmd):
        raise NotImplementedError

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        buf = b""
        try:
            while True:
                cmd, buf = read_command(buf)
                if cmd is None:
                    data = c.recv(4096)
                    if not data:
                        return
                    buf += data
                    continue
                self.handle(c, cmd)
        except OSError:
            return

    def stop(self):
        self.sock.close()
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()


# --------------------------------------------------------------------------
# Redis Cluster


def free_cluster_port(taken=()):
    """A free loopback port whose cluster bus port (+10000) is free too,
    neither of them in taken (the ports of nodes not started yet)."""
    while True:
        port = free_port()
        if port + 10000 > 65535 or {port, port + 10000} & set(taken):
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


class RedisClusterNodes:
    """A Redis Cluster of `masters` masters with `replicas` replicas each,
    made by `redis-cli --cluster create`, every node a redis-server
    --cluster-enabled yes in a directory of its own. node_timeout_ms is
    cluster-node-timeout: how long a master may be unreachable before its
    replica takes over."""

    def __init__(self, workdir, masters=3, replicas=1, node_timeout_ms=1000, password=None):
        self.dir = workdir
        self.password = password
        self.replicas = replicas
        extra = ["cluster-enabled yes", "cluster-config-file nodes.conf",
                 f"cluster-node-timeout {node_timeout_ms}"]
        self.nodes = [RedisNode(os.path.join(workdir, f"node{i}"), password=password,
                                extra=extra) for i in range(masters * (1 + replicas))]
        taken = set()
        for n in self.nodes:
            n.port = free_cluster_port(taken)
            taken |= {n.port, n.port + 10000}

    def start(self, timeout=30):
        for n in self.nodes:
            n.start()
        cmd = ["redis-cli", "--cluster", "create"] + [f"127.0.0.1:{n.port}" for n in self.nodes]
        cmd += ["--cluster-replicas", str(self.replicas), "--cluster-yes"]
        if self.password:
            cmd += ["-a", self.password, "--no-auth-warning"]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        assert out.returncode == 0, out.stdout + out.stderr

        def ready():
            for n in self.nodes:
                info = n.client().execute_command("CLUSTER", "INFO").decode()
                if ("cluster_state:ok" not in info
                        or f"cluster_known_nodes:{len(self.nodes)}" not in info):
                    return False
            return all(n.role() == "master" or n.client().info("replication").get(
                "master_link_status") == "up" for n in self.nodes)
        wait_until(ready, timeout, interval=0.1, what="the cluster ok on every node, replicas in sync")
        return self

    @property
    def addrs(self):
        return ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def live(self):
        return [n for n in self.nodes if n.proc and n.proc.poll() is None]

    def master_port(self, key, asked=None):
        """The port of the master that `asked` (default: any live node)
        names for key's slot."""
        node = asked or self.live()[0]
        r = node.client()
        slot = r.execute_command("CLUSTER", "KEYSLOT", key)
        for start, end, master, *_ in r.execute_command("CLUSTER", "SLOTS"):
            if start <= slot <= end:
                return int(master[1])
        return None

    def master_of(self, key):
        port = self.master_port(key)
        return next(n for n in self.nodes if n.port == port)

    def wait_new_master(self, key, old, timeout=20):
        """Waits until every live node names a master other than `old` for
        key's slot, and that node says it is a master; returns it."""
        def switched():
            ports = {self.master_port(key, n) for n in self.live() if n is not old}
            if len(ports) != 1 or old.port in ports:
                return None
            node = next(n for n in self.nodes if n.port == ports.pop())
            return node if node.role() == "master" else None
        return wait_until(switched, timeout, interval=0.02, what="the cluster's failover")

    def move_slot(self, slot, src, dst):
        """Reshards: moves slot, its keys with it, from master src to master
        dst (CLUSTER SETSLOT IMPORTING/MIGRATING, MIGRATE, SETSLOT NODE), as
        `redis-cli --cluster reshard` does."""
        r_src, r_dst = src.client(), dst.client()
        src_id = r_src.execute_command("CLUSTER", "MYID").decode()
        dst_id = r_dst.execute_command("CLUSTER", "MYID").decode()
        r_dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
        r_src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
        auth = ["AUTH", self.password] if self.password else []
        while keys := r_src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
            r_src.execute_command("MIGRATE", "127.0.0.1", dst.port, "", 0, 5000, *auth, "KEYS",
                                  *keys)
        masters = [n for n in self.live() if n.role() == "master"]
        for n in [dst, src] + [m for m in masters if m not in (src, dst)]:
            n.client().execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)

    def client(self, **kw):
        """redis-py's cluster client (follows MOVED and failovers)."""
        from redis.cluster import ClusterNode, RedisCluster
        kw.setdefault("socket_timeout", 2)
        kw.setdefault("socket_connect_timeout", 1)
        return RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", n.port) for n in self.nodes],
                            password=self.password, **kw)

    def stop(self):
        for n in self.nodes:
            n.stop()

    def logs(self, lines=20):
        out = []
        for n in self.nodes:
            try:
                with open(n.logfile) as f:
                    out.append(f"--- redis {n.port}\n" + "\n".join(f.read().splitlines()[-lines:]))
            except FileNotFoundError:
                pass
        return "\n".join(out)


# --------------------------------------------------------------------------
# nginx


def render_nginx_conf(workdir, listen_port, upstream_ports):
    """config/nginx-tickerd.conf with our upstream servers and listen port,
    wrapped into a complete nginx.conf whose files all live in workdir."""
    with open(NGINX_CONF) as f:
        shipped = f.read()
    # Our nodes, with the shipped server parameters (max_fails, ...).
    params = re.search(r"(?m)^\s*server \S+([^;]*);", shipped).group(1)
    servers = "".join(f"    server 127.0.0.1:{p}{params};\n" for p in upstream_ports)
    body, n = re.subn(r"(upstream tickerd_nodes \{\n(?:.*\n)*?)(?:    server .*\n)+",
                      lambda m: m.group(1) + servers, shipped)
    assert n == 1, "no server lines in the upstream of config/nginx-tickerd.conf"
    body, n = re.subn(r"(?m)^(\s*)listen 8080;", rf"\1listen 127.0.0.1:{listen_port};", body)
    assert n == 1, "no 'listen 8080;' in config/nginx-tickerd.conf"
    tmp = os.path.join(workdir, "tmp")
    os.makedirs(tmp, exist_ok=True)
    # As root the workers would switch to nobody, who cannot enter pytest's
    # 0700 temporary directory.
    user = "user root root;\n" if os.geteuid() == 0 else ""
    conf = (f"{user}daemon off;\nmaster_process on;\nworker_processes 1;\n"
            f"pid {workdir}/nginx.pid;\nerror_log {workdir}/error.log info;\n"
            "events { worker_connections 1024; }\n"
            "http {\n"
            "  log_format up '$msec $request_uri -> $status [$upstream_addr] [$upstream_status]';\n"
            f"  access_log {workdir}/access.log up;\n"
            f"  client_body_temp_path {tmp}/body;\n  proxy_temp_path {tmp}/proxy;\n"
            f"  fastcgi_temp_path {tmp}/fastcgi;\n  uwsgi_temp_path {tmp}/uwsgi;\n"
            f"  scgi_temp_path {tmp}/scgi;\n"
            + body + "\n}\n")
    path = os.path.join(workdir, "nginx.conf")
    with open(path, "w") as f:
        f.write(conf)
    return path


class Nginx:
    """nginx -p DIR -c DIR/nginx.conf in the foreground, as the current user."""

    def __init__(self, workdir, upstream_ports):
        self.dir = workdir
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.conf = render_nginx_conf(self.dir, self.port, upstream_ports)
        self.proc = None

    def start(self):
        out = subprocess.run([NGINX, "-t", "-p", self.dir, "-c", self.conf],
                             capture_output=True, text=True, timeout=10)
        assert out.returncode == 0, out.stderr
        self.proc = subprocess.Popen([NGINX, "-p", self.dir, "-c", self.conf],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)

        def listening():
            assert self.proc.poll() is None, f"nginx exited: {self.error_log()}"
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        wait_until(listening, START_TIMEOUT, what="nginx")
        return self

    def stop(self):
        if self.proc is not None:
            stop_process(self.proc)  # SIGTERM: fast shutdown of master and workers

    def error_log(self):
        try:
            with open(os.path.join(self.dir, "error.log")) as f:
                return f.read()
        except FileNotFoundError:
            return ""


def pids_of(td):
    """The tickerd process and its children (workers) now."""
    pid = td.proc.pid
    kids = set()
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                kids.update(int(x) for x in f.read().split())
    except FileNotFoundError:
        pass
    return pid, frozenset(kids)
