#!/usr/bin/env python3
"""A whole world of real parts, inside private network namespaces.

Three zones, each with a real nginx as its load balancer; three Meridian
nodes forming one cluster and the domain's NS set; unbound as the recursive
resolver that the domain is delegated from (a stub zone) and that forwards
EDNS Client Subnet; one internal resolver per zone (an unbound in the zone's
private network, sending no ECS); and clients that resolve through them and
fetch the page from the address they got.

Layout (every address exists only inside namespaces made here):

    core namespace  (lo: the load balancers, the resolvers, the clients)
      10.1.0.10  nginx of us-east       10.1.0.53  us-east's internal resolver
      10.2.0.10  nginx of eu-west       10.2.0.53  eu-west's internal resolver
      10.3.0.10  nginx of ap-northeast  10.3.0.53  ap-northeast's internal resolver
      10.9.0.53  the public resolver (unbound with ECS)
      v1, v2, v3: veth pairs to the nodes' namespaces, 10.0.N.1/24
    node namespaces n1, n2, n3: Meridian on 10.0.N.2 (DNS :53, admin :8053),
      default route through the core; nothing else.

The core has no route out, and the nodes' only route leads into the core,
so no packet can leave (checked at start). A path from one node to one zone
is cut with an nftables set in the core's input hook that drops that
(node, load balancer) pair; every other path keeps working.

Usage, as root:
  world.py scenarios [--bin PATH] [--break checks-none|quorum-off|no-subnetcache]
  world.py soak [--bin PATH] [--duration 600] [--seed N] [--out DIR]

`scenarios` prints PASS/FAIL per scenario and exits 0 only if all pass;
`--break` runs them against a deliberately broken setup, to show that the
scenarios that depend on it fail. `soak` is the chaos soak (see soak()).
The process itself joins the core namespace after building it, so every
client socket it opens is inside.
"""

import argparse
import ctypes
import http.client
import json
import os
import random
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

DOMAIN = "gslb.test."
ADMIN_TOKEN = "world-admin-token-0123456789"
CLUSTER_TOKEN = "world-cluster-token-0123456789"

# Health checks and timings. Failover through a resolver is bounded by
# interval x fall + pull_interval + TTL (plus a timeout for a hang).
INTERVAL = 0.5
TIMEOUT = 0.4
FALL = 2
RISE = 2
PULL = 0.25
TTL = 2
FAILOVER_BOUND = INTERVAL * FALL + PULL + TTL
HANG_BOUND = TIMEOUT + FAILOVER_BOUND
RECOVERY_BOUND = INTERVAL * RISE + PULL + TTL
# Room for a loaded two-core CI machine running debug binaries; printed
# next to every measurement, which is what the scenario is about.
SLACK = 2.0

ZONES = [
    {"name": "us-east", "lat": 38.9, "lon": -77.4, "country": "US", "n": 1},
    {"name": "eu-west", "lat": 53.3, "lon": -6.3, "country": "IE", "n": 2},
    {"name": "ap-northeast", "lat": 35.7, "lon": 139.7, "country": "JP", "n": 3},
]
for _z in ZONES:
    _z["lb"] = f"10.{_z['n']}.0.10"
    _z["resolver"] = f"10.{_z['n']}.0.53"
    _z["private"] = f"10.{_z['n']}.0.0/16"
ZONE_BY_LB = {z["lb"]: z["name"] for z in ZONES}
ZONE = {z["name"]: z for z in ZONES}
# Each zone's private clients: their own zone first, then the nearest others.
INTERNAL_ORDER = {
    "us-east": ["us-east", "eu-west", "ap-northeast"],
    "eu-west": ["eu-west", "us-east", "ap-northeast"],
    "ap-northeast": ["ap-northeast", "eu-west", "us-east"],
}
NODES = [{"name": f"n{i}", "zone": ZONES[i - 1]["name"], "addr": f"10.0.{i}.2"} for i in (1, 2, 3)]
PUBLIC_RESOLVER = "10.9.0.53"

# Clients in three regions, by the ECS subnet their resolver is told about.
# The shipped geo/default.mmdb maps these real prefixes to US, NL and JP;
# `next` is the nearest other zone from there (great-circle distance).
REGIONS = {
    "us": {"subnet": "8.8.8.0/24", "zone": "us-east", "next": "eu-west"},
    "nl": {"subnet": "193.0.0.0/24", "zone": "eu-west", "next": "us-east"},
    "jp": {"subnet": "202.12.27.0/24", "zone": "ap-northeast", "next": "eu-west"},
}

CLONE_NEWNET = 0x40000000


def log(msg):
    print(msg, flush=True)


# --------------------------------------------------------------------------
# A small DNS client: enough to ask for A records with ECS and read the
# answer, its TTL and the ECS scope. Used where a test loops fast; dig
# is used where one query is checked.


def encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def skip_name(msg, i):
    for _ in range(128):
        n = msg[i]
        if n == 0:
            return i + 1
        if n & 0xC0 == 0xC0:
            return i + 2
        i += 1 + n
    raise ValueError("name too long")


def dns_query(server, name, subnet=None, timeout=2.0):
    """Returns (rcode, [A addresses], ttl, ecs_scope) or raises OSError."""
    qid = random.getrandbits(16)
    header = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 1)
    question = encode_name(name) + struct.pack(">HH", 1, 1)
    option = b""
    if subnet:
        ip, plen = subnet.split("/")
        plen = int(plen)
        addr = socket.inet_aton(ip)[: (plen + 7) // 8]
        option = struct.pack(">HHHBB", 8, 4 + len(addr), 1, plen, 0) + addr
    opt = b"\0" + struct.pack(">HHIH", 41, 1232, 0, len(option)) + option
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.connect((server, 53))
        s.send(header + question + opt)
        deadline = time.monotonic() + timeout
        while True:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            msg = s.recv(4096)
            if len(msg) >= 12 and struct.unpack(">H", msg[:2])[0] == qid:
                break
    flags, qd, an, ns, ar = struct.unpack(">HHHHH", msg[2:12])
    i = 12
    for _ in range(qd):
        i = skip_name(msg, i) + 4
    addrs, ttl, scope = [], None, None
    for k in range(an + ns + ar):
        i = skip_name(msg, i)
        rtype, _rclass, rttl, rdlen = struct.unpack(">HHIH", msg[i : i + 10])
        i += 10
        rdata = msg[i : i + rdlen]
        i += rdlen
        if k < an and rtype == 1:
            addrs.append(socket.inet_ntoa(rdata))
            ttl = rttl if ttl is None else min(ttl, rttl)
        if rtype == 41:
            j = 0
            while j + 4 <= len(rdata):
                code, length = struct.unpack(">HH", rdata[j : j + 4])
                if code == 8 and length >= 4:
                    scope = rdata[j + 7]
                j += 4 + length
    return flags & 0xF, addrs, ttl, scope


def zones_of(addrs):
    return [ZONE_BY_LB.get(a, a) for a in addrs]


def fetch(addr, timeout=1.0):
    """GETs the page; returns the zone it names, or None."""
    try:
        conn = http.client.HTTPConnection(addr, 80, timeout=timeout)
        conn.request("GET", "/")
        resp = conn.getresponse()
        body = resp.read(200).decode(errors="replace")
        conn.close()
    except (OSError, http.client.HTTPException):
        return None
    if resp.status != 200 or not body.startswith("zone "):
        return None
    return body.split()[1]


def admin(node, method, path, body=None, timeout=2.0):
    conn = http.client.HTTPConnection(node["addr"], 8053, timeout=timeout)
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read().decode()
    conn.close()
    return resp.status, data


# --------------------------------------------------------------------------
# The world


class World:
    def __init__(self, binary, broken=None, keep=False):
        self.bin = binary
        self.broken = broken
        self.keep = keep
        self.work = tempfile.mkdtemp(prefix="meridian-world.")
        tag = f"mw{os.getpid()}"
        self.core = f"{tag}-core"
        self.node_ns = {n["name"]: f"{tag}-{n['name']}" for n in NODES}
        self.namespaces = []
        self.procs = {}  # name -> Popen
        self.cuts = set()

    # --- processes -------------------------------------------------------
    def spawn(self, name, ns, argv):
        out = open(os.path.join(self.work, f"{name}.log"), "ab")
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, *argv],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        out.close()
        self.procs[name] = proc
        return proc

    def kill(self, name, sig=signal.SIGKILL):
        proc = self.procs.pop(name, None)
        if proc is None:
            return
        try:
            proc.send_signal(signal.SIGCONT)
            proc.send_signal(sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def close(self):
        for name in list(self.procs):
            self.kill(name)
        for ns in reversed(self.namespaces):
            pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout
            for pid in pids.split():
                if pid == str(os.getpid()):
                    continue  # this process joined the core namespace
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        if self.keep:
            log(f"world: work directory kept: {self.work}")
        else:
            shutil.rmtree(self.work, ignore_errors=True)

    # --- network ---------------------------------------------------------
    def ip(self, *args):
        subprocess.run(["ip", *args], check=True)

    def build_network(self):
        self.ip("netns", "add", self.core)
        self.namespaces.append(self.core)
        self.ip("-n", self.core, "link", "set", "lo", "up")
        for z in ZONES:
            self.ip("-n", self.core, "addr", "add", f"{z['lb']}/32", "dev", "lo")
            self.ip("-n", self.core, "addr", "add", f"{z['resolver']}/32", "dev", "lo")
        self.ip("-n", self.core, "addr", "add", f"{PUBLIC_RESOLVER}/32", "dev", "lo")
        for i, n in enumerate(NODES, 1):
            ns = self.node_ns[n["name"]]
            self.ip("netns", "add", ns)
            self.namespaces.append(ns)
            self.ip("-n", ns, "link", "set", "lo", "up")
            self.ip("-n", self.core, "link", "add", f"v{i}", "type", "veth", "peer", "name", "w0", "netns", ns)
            self.ip("-n", self.core, "addr", "add", f"10.0.{i}.1/24", "dev", f"v{i}")
            self.ip("-n", self.core, "link", "set", f"v{i}", "up")
            self.ip("-n", ns, "addr", "add", f"{n['addr']}/24", "dev", "w0")
            self.ip("-n", ns, "link", "set", "w0", "up")
            self.ip("-n", ns, "route", "add", "default", "via", f"10.0.{i}.1")
        subprocess.run(
            ["ip", "netns", "exec", self.core, "sysctl", "-qw", "net.ipv4.ip_forward=1"], check=True
        )
        # The cut paths: (node address, load balancer address) pairs dropped
        # on their way into the core.
        rules = (
            "table inet world {\n"
            "  set cuts { type ipv4_addr . ipv4_addr; }\n"
            "  chain input { type filter hook input priority 0; policy accept;\n"
            "    ip saddr . ip daddr @cuts drop\n  }\n}\n"
        )
        subprocess.run(["ip", "netns", "exec", self.core, "nft", "-f", "-"], input=rules.encode(), check=True)
        # No way out: the core has no default route, a node's only route is
        # into the core.
        for ns in self.namespaces:
            r = subprocess.run(["ip", "-n", ns, "route", "show", "default"], capture_output=True, text=True)
            if ns == self.core and r.stdout.strip():
                raise SystemExit(f"world: the core namespace has a default route: {r.stdout}")
        r = subprocess.run(["ip", "-n", self.core, "route", "get", "192.0.2.1"], capture_output=True)
        if r.returncode == 0:
            raise SystemExit("world: the core namespace has a route out")
        # From here on, every socket this process opens is inside the core.
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(f"/run/netns/{self.core}", os.O_RDONLY)
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise SystemExit(f"world: setns into {self.core}: errno {ctypes.get_errno()}")
        os.close(fd)

    def cut(self, node, zone):
        elem = f"{{ {ZONE_BY_NODE(node)} . {ZONE[zone]['lb']} }}"
        subprocess.run(["nft", "add", "element", "inet", "world", "cuts", elem], check=True)
        self.cuts.add((node, zone))

    def uncut(self, node, zone):
        elem = f"{{ {ZONE_BY_NODE(node)} . {ZONE[zone]['lb']} }}"
        subprocess.run(["nft", "delete", "element", "inet", "world", "cuts", elem], check=True)
        self.cuts.discard((node, zone))

    # --- nginx -----------------------------------------------------------
    def nginx_dir(self, zone):
        return os.path.join(self.work, f"nginx-{zone}")

    def write_nginx(self, z):
        d = self.nginx_dir(z["name"])
        os.makedirs(os.path.join(d, "tmp"), exist_ok=True)
        fail = os.path.join(d, "fail")
        temps = "".join(
            f"  {k}_temp_path {d}/tmp/{k};\n" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        conf = f"""daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 512; }}
http {{
  access_log off;
{temps}  default_type text/plain;
  server {{
    listen {z['lb']}:80;
    location = /healthz {{
      if (-f {fail}) {{ return 500 "failing\\n"; }}
      return 200 "ok {z['name']}\\n";
    }}
    location / {{
      if (-f {fail}) {{ return 500 "failing\\n"; }}
      return 200 "zone {z['name']}\\n";
    }}
  }}
}}
"""
        with open(os.path.join(d, "nginx.conf"), "w") as f:
            f.write(conf)

    def start_nginx(self, zone):
        d = self.nginx_dir(zone)
        self.spawn(f"nginx-{zone}", self.core, ["nginx", "-p", d, "-e", f"{d}/error.log", "-c", f"{d}/nginx.conf"])

    def stop_nginx(self, zone):
        self.kill(f"nginx-{zone}")

    def hang_nginx(self, zone, hung=True):
        self.procs[f"nginx-{zone}"].send_signal(signal.SIGSTOP if hung else signal.SIGCONT)

    def fail_nginx(self, zone, failing=True):
        path = os.path.join(self.nginx_dir(zone), "fail")
        if failing:
            open(path, "w").close()
        elif os.path.exists(path):
            os.unlink(path)

    # --- unbound ---------------------------------------------------------
    def write_unbound(self, name, addr, ecs):
        d = os.path.join(self.work, f"unbound-{name}")
        os.makedirs(d, exist_ok=True)
        if ecs:
            modules = '  module-config: "subnetcache validator iterator"\n'
            modules += "  send-client-subnet: 10.0.0.0/16\n  client-subnet-always-forward: yes\n"
            modules += "  max-client-subnet-ipv4: 24\n"
        else:
            modules = '  module-config: "validator iterator"\n'
        stubs = "".join(f"  stub-addr: {n['addr']}\n" for n in NODES)
        conf = f"""server:
  interface: {addr}
  port: 53
  outgoing-interface: {addr}
  access-control: 10.0.0.0/8 allow
  do-ip6: no
  do-not-query-localhost: no
  chroot: ""
  username: ""
  directory: "{d}"
  pidfile: "{d}/unbound.pid"
  use-syslog: no
  logfile: "{d}/unbound.log"
  verbosity: 1
  num-threads: 1
  so-reuseport: no
  outgoing-range: 128
  num-queries-per-thread: 64
  prefetch: no
  cache-min-ttl: 0
  infra-host-ttl: 30
  extended-statistics: yes
{modules}
  local-zone: "test." nodefault

stub-zone:
  name: "{DOMAIN}"
{stubs}
remote-control:
  control-enable: yes
  control-interface: "{d}/control.sock"
  control-use-cert: no
"""
        path = os.path.join(d, "unbound.conf")
        with open(path, "w") as f:
            f.write(conf)
        return path

    def start_resolvers(self):
        ecs = self.broken != "no-subnetcache"
        conf = self.write_unbound("public", PUBLIC_RESOLVER, ecs)
        subprocess.run(["unbound-checkconf", conf], check=True, capture_output=True)
        self.spawn("unbound-public", self.core, ["unbound", "-d", "-c", conf])
        for z in ZONES:
            conf = self.write_unbound(z["name"], z["resolver"], False)
            self.spawn(f"unbound-{z['name']}", self.core, ["unbound", "-d", "-c", conf])

    # --- Meridian --------------------------------------------------------
    def config_text(self):
        check_kind = "none" if self.broken == "checks-none" else "http"
        text = f"""# The world's Meridian config (written by tests/world/world.py).
[server]
admin_token = "{ADMIN_TOKEN}"
udp_sockets = 1

[domain]
name = "{DOMAIN}"
service_ttl = {TTL}
"""
        for n in NODES:
            text += f'\n[[domain.nameservers]]\nname = "ns-{n["name"]}"\naddresses = ["{n["addr"]}"]\n'
        text += f'\n[geoip]\nfiles = ["{REPO}/geo/default.mmdb"]\n'
        text += f"""
[cluster]
token = "{CLUSTER_TOKEN}"
pull_interval = "{int(PULL * 1000)}ms"
pull_timeout = "500ms"
stale_after = "2s"
"""
        if self.broken == "quorum-off":
            text += "quorum = 1\n"
        for n in NODES:
            text += f'\n[[cluster.nodes]]\nname = "{n["name"]}"\nzone = "{n["zone"]}"\nadmin = "http://{n["addr"]}:8053"\n'
        for z in ZONES:
            text += (
                f'\n[[zones]]\nname = "{z["name"]}"\nlatitude = {z["lat"]}\nlongitude = {z["lon"]}\n'
                f'country = "{z["country"]}"\n'
            )
        for z in ZONES:
            order = ", ".join(f'"{x}"' for x in INTERNAL_ORDER[z["name"]])
            text += f'\n[[cidr_rules]]\nnetworks = ["{z["private"]}"]\nzones = [{order}]\n'
        for service, answers in (("www", 1), ("app", 2)):
            text += f"""
[[services]]
name = "{service}"
policy = "nearest"
answers = {answers}
ttl = {TTL}
[services.check]
kind = "{check_kind}"
path = "/healthz"
interval = "{int(INTERVAL * 1000)}ms"
timeout = "{int(TIMEOUT * 1000)}ms"
rise = {RISE}
fall = {FALL}
"""
            for z in ZONES:
                text += f'\n[[services.endpoints]]\nzone = "{z["name"]}"\naddresses = ["{z["lb"]}"]\n'
        return text

    def start_node(self, name):
        n = NODE[name]
        self.spawn(
            f"meridian-{name}",
            self.node_ns[name],
            [
                self.bin,
                "serve",
                "--config",
                self.config,
                "--node",
                name,
                "--listen",
                f"{n['addr']}:53",
                "--admin",
                f"{n['addr']}:8053",
            ],
        )

    def stop_node(self, name):
        self.kill(f"meridian-{name}")

    def node_answers(self, name):
        try:
            rcode, _, _, _ = dns_query(NODE[name]["addr"], DOMAIN, timeout=0.5)
            return rcode == 0
        except OSError:
            return False

    def node_in_cluster(self, name):
        """The node answers and pulls from every peer."""
        try:
            status, body = admin(NODE[name], "GET", "/v1/cluster", timeout=1.0)
        except OSError:
            return False
        if status != 200:
            return False
        nodes = json.loads(body)["nodes"]
        return all(p.get("self") or p.get("fresh") for p in nodes)

    # --- start -----------------------------------------------------------
    def start(self):
        t0 = time.monotonic()
        self.build_network()
        self.config = os.path.join(self.work, "meridian.toml")
        with open(self.config, "w") as f:
            f.write(self.config_text())
        r = subprocess.run([self.bin, "check", "--config", self.config], capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"world: config does not check:\n{r.stdout}{r.stderr}")
        for z in ZONES:
            self.write_nginx(z)
            self.start_nginx(z["name"])
        for n in NODES:
            self.start_node(n["name"])
        self.start_resolvers()
        ok = wait_until(lambda: all(fetch(z["lb"]) == z["name"] for z in ZONES), 20)
        if ok is None:
            self.dump_logs()
            raise SystemExit("world: nginx did not come up")
        ok = wait_until(lambda: all(self.node_in_cluster(n["name"]) for n in NODES), 30)
        if ok is None:
            self.dump_logs()
            raise SystemExit("world: the Meridian nodes did not form a cluster")

        def resolvers_answer():
            try:
                return all(
                    dns_query(a, f"www.{DOMAIN}", timeout=1.0)[1]
                    for a in [PUBLIC_RESOLVER] + [z["resolver"] for z in ZONES]
                )
            except OSError:
                return False

        if wait_until(resolvers_answer, 20) is None and os.environ.get("WORLD_DEBUG") is None:
            self.dump_logs()
            raise SystemExit("world: the resolvers do not answer")
        log(
            f"world: up in {time.monotonic() - t0:.1f} s: 3 nginx, 3 Meridian nodes, "
            f"4 unbound; work directory {self.work}"
        )

    def dump_logs(self):
        for name in sorted(os.listdir(self.work)):
            path = os.path.join(self.work, name)
            if name.endswith(".log") and os.path.isfile(path):
                with open(path, errors="replace") as f:
                    lines = f.readlines()[-15:]
                log(f"--- {name}\n" + "".join(lines))


NODE = {n["name"]: n for n in NODES}


def ZONE_BY_NODE(node):  # noqa: N802 (the node's address, for nft)
    return NODE[node]["addr"]


def wait_until(pred, timeout, step=0.1):
    """Seconds until pred() held, or None after timeout."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if pred():
            return time.monotonic() - start
        time.sleep(step)
    return None


# --------------------------------------------------------------------------
# Scenarios


class Failed(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failed(msg)


def resolve(server, name="www", subnet=None, tries=1):
    """The zones a resolver answers with; `tries` > 1 retries a timeout as
    a stub resolver does (glibc: `attempts:2`)."""
    for _ in range(tries):
        try:
            rcode, addrs, ttl, scope = dns_query(server, f"{name}.{DOMAIN}", subnet, timeout=2.5)
        except OSError:
            continue
        return zones_of(addrs) if rcode == 0 else None
    return None


def dig(server, name, subnet=None):
    argv = ["dig", f"@{server}", f"{name}.{DOMAIN}", "A", "+short", "+time=2", "+tries=2"]
    if subnet:
        argv.append(f"+subnet={subnet}")
    r = subprocess.run(argv, capture_output=True, text=True, timeout=15)
    return [line for line in r.stdout.split() if line]


def curl(addr):
    r = subprocess.run(
        ["curl", "-s", "--max-time", "2", f"http://{addr}/"], capture_output=True, text=True, timeout=10
    )
    return r.stdout.strip()


def scenario_regions(w):
    """Clients in three regions reach their nearest zone's nginx (dig + curl)."""
    out = []
    for region, r in REGIONS.items():
        addrs = dig(PUBLIC_RESOLVER, "www", r["subnet"])
        check(len(addrs) == 1, f"{region}: dig +subnet={r['subnet']} gave {addrs}")
        page = curl(addrs[0])
        check(page == f"zone {r['zone']}", f"{region}: expected zone {r['zone']}, the page says {page!r}")
        out.append(f"{region}->{r['zone']}")
    return ", ".join(out)


def cache_hits(w):
    """How many queries the public resolver answered from its ECS cache
    (the subnetcache module's own counter; extended-statistics)."""
    conf = os.path.join(w.work, "unbound-public", "unbound.conf")
    r = subprocess.run(["unbound-control", "-c", conf, "stats_noreset"], capture_output=True, text=True, timeout=10)
    for line in r.stdout.splitlines():
        if line.startswith("num.query.subnet_cache="):
            return int(line.split("=")[1])
    raise Failed(f"unbound-control stats gave no cache hits: {r.stdout}{r.stderr}")


def scenario_ecs_cache(w):
    """Within one TTL, clients of different regions each get their own region's answer."""
    hits_before = cache_hits(w)
    rounds = []
    for attempt in range(3):
        start = time.monotonic()
        seen = {}
        for region in ["us", "nl", "jp", "us", "nl", "jp"]:
            seen.setdefault(region, []).append(resolve(PUBLIC_RESOLVER, "www", REGIONS[region]["subnet"]))
        took = time.monotonic() - start
        for region, answers in seen.items():
            for a in answers:
                check(a == [REGIONS[region]["zone"]], f"{region} got {a} (round {attempt}); expected its own region's")
        rounds.append(took)
        time.sleep(0.3)
    # With TTL 2 s, each round's repeat queries come from unbound's cache.
    check(max(rounds) < TTL, f"rounds took {rounds}, longer than the TTL: the cache was not exercised")
    hits = cache_hits(w) - hits_before
    check(hits >= 6, f"unbound answered only {hits} of the 18 queries from its cache")
    # The ECS scope unbound stores each answer under is what Meridian sent.
    scopes = {}
    for region, r in REGIONS.items():
        rcode, addrs, ttl, scope = dns_query(NODES[0]["addr"], f"www.{DOMAIN}", r["subnet"])
        scopes[region] = scope
        check(scope and scope > 0, f"{region}: Meridian's ECS scope is {scope}")
    return f"every region got its own answer, {hits} of 18 from unbound's cache; scopes " + ", ".join(
        f"{k}=/{v}" for k, v in scopes.items()
    )


def scenario_internal(w):
    """A zone's internal resolver (no ECS) gets its own zone's load balancer."""
    out = []
    for z in ZONES:
        addrs = dig(z["resolver"], "www")
        check(addrs == [z["lb"]], f"{z['name']}'s internal resolver got {addrs}, expected {z['lb']}")
        page = curl(addrs[0])
        check(page == f"zone {z['name']}", f"{z['name']}: page {page!r}")
        out.append(z["name"])
        # The shipped example of this shape maps the same networks the same way.
        r = subprocess.run(
            [w.bin, "explain", "--config", f"{REPO}/zones/internal.toml", "--name", "api", "--client", f"10.{z['n']}.7.9"],
            capture_output=True,
            text=True,
        )
        check(f"answer: {z['lb']} " in r.stdout, f"zones/internal.toml explains 10.{z['n']}.7.9 as:\n{r.stdout}{r.stderr}")
    return "each of " + ", ".join(out) + " answered with itself (and so does zones/internal.toml)"


def node_answer(node, name, subnet):
    try:
        rcode, addrs, _, _ = dns_query(NODE[node]["addr"], f"{name}.{DOMAIN}", subnet, timeout=1.0)
    except OSError:
        return None
    return zones_of(addrs)


def lb_fault(w, kind, zone, region):
    """A load balancer fault: its region's public and internal clients move
    to the next zone through their resolvers within the bound, fetch from
    there, and come back after the fault ends."""
    r = REGIONS[region]
    internal = ZONE[zone]["resolver"]
    nxt_internal = INTERNAL_ORDER[zone][1]
    bound = (HANG_BOUND if kind == "hang" else FAILOVER_BOUND) + SLACK
    for res, subnet, want in ((PUBLIC_RESOLVER, r["subnet"], zone), (internal, None, zone)):
        check(resolve(res, "www", subnet) == [want], f"before the fault {res} did not answer {want}")
    start = time.monotonic()
    if kind == "stop":
        w.stop_nginx(zone)
    elif kind == "hang":
        w.hang_nginx(zone, True)
    else:
        w.fail_nginx(zone, True)
    try:
        moved = {}
        for label, res, subnet, nxt in (
            ("public", PUBLIC_RESOLVER, r["subnet"], r["next"]),
            ("internal", internal, None, nxt_internal),
        ):
            t = wait_until(lambda: resolve(res, "www", subnet) == [nxt], bound + 3, 0.1)
            elapsed = time.monotonic() - start
            check(t is not None, f"{label} clients of {zone} still not moved to {nxt} after {elapsed:.1f} s")
            check(elapsed <= bound, f"{label} clients moved after {elapsed:.1f} s, over the bound {bound:.1f} s")
            page = fetch(ZONE[nxt]["lb"])
            check(page == nxt, f"{label}: fetch from {nxt} gave {page}")
            moved[label] = elapsed
        for n in NODES:
            a = node_answer(n["name"], "www", r["subnet"])
            check(a == [r["next"]], f"node {n['name']} answers {a} while {zone} is down")
    finally:
        if kind == "stop":
            w.start_nginx(zone)
        elif kind == "hang":
            w.hang_nginx(zone, False)
        else:
            w.fail_nginx(zone, False)
    restored = time.monotonic()
    back_bound = RECOVERY_BOUND + SLACK
    back = {}
    for label, res, subnet in (("public", PUBLIC_RESOLVER, r["subnet"]), ("internal", internal, None)):
        t = wait_until(lambda: resolve(res, "www", subnet) == [zone], back_bound + 5, 0.1)
        elapsed = time.monotonic() - restored
        check(t is not None, f"{label} clients not back on {zone} after {elapsed:.1f} s")
        check(elapsed <= back_bound, f"{label} clients back after {elapsed:.1f} s, over {back_bound:.1f} s")
        back[label] = elapsed
    return (
        f"moved in {moved['public']:.1f} s (public) / {moved['internal']:.1f} s (internal), "
        f"bound {bound - SLACK:.2f} s + {SLACK:.0f} s slack; back in {back['public']:.1f} / "
        f"{back['internal']:.1f} s (bound {back_bound - SLACK:.2f} + {SLACK:.0f})"
    )


def scenario_lb_stop(w):
    """nginx of us-east stopped (killed): connections refused."""
    return lb_fault(w, "stop", "us-east", "us")


def scenario_lb_hang(w):
    """nginx of ap-northeast hung (SIGSTOP): connections accepted, no reply."""
    return lb_fault(w, "hang", "ap-northeast", "jp")


def scenario_lb_500(w):
    """nginx of eu-west answering 500."""
    return lb_fault(w, "500", "eu-west", "nl")


def cluster_view(node):
    status, body = admin(NODE[node], "GET", "/v1/cluster")
    check(status == 200, f"{node} /v1/cluster: {status}")
    return json.loads(body)


def disagreement_metric(node):
    status, body = admin(NODE[node], "GET", "/metrics")
    for line in body.splitlines():
        if line.startswith("meridian_cluster_disagreements "):
            return float(line.split()[1])
    raise Failed(f"{node}: no meridian_cluster_disagreements in /metrics")


def scenario_cut_path(w):
    """n2's path to us-east cut: nobody is moved away from us-east; n2 says it disagrees."""
    w.cut("n2", "us-east")
    try:
        start = time.monotonic()
        said = None
        polls = 0
        while time.monotonic() - start < 10:
            polls += 1
            for n in NODES:
                a = node_answer(n["name"], "www", REGIONS["us"]["subnet"])
                check(a == ["us-east"], f"node {n['name']} moved US clients to {a} ({time.monotonic() - start:.1f} s into the cut)")
            a = resolve(PUBLIC_RESOLVER, "www", REGIONS["us"]["subnet"])
            check(a == ["us-east"], f"unbound moved US clients to {a}")
            a = resolve(ZONE["us-east"]["resolver"], "www")
            check(a == ["us-east"], f"us-east's internal resolver moved to {a}")
            if said is None:
                d = cluster_view("n2")["disagreements"]
                if any(x["zone"] == "us-east" for x in d):
                    said = time.monotonic() - start
            # Keep watching for a while after n2 has seen the cut.
            if said is not None and time.monotonic() - start > said + 3 * INTERVAL * FALL + 2 * PULL + TTL:
                break
            time.sleep(0.2)
        check(said is not None, "n2 never reported a disagreement about us-east in /v1/cluster")
        metric = disagreement_metric("n2")
        check(metric >= 1, f"n2's meridian_cluster_disagreements is {metric}")
        for other in ("n1", "n3"):
            check(cluster_view(other)["disagreements"] == [], f"{other} disagrees too")
            check(disagreement_metric(other) == 0, f"{other}'s metric counts a disagreement")
    finally:
        w.uncut("n2", "us-east")
    t = wait_until(lambda: cluster_view("n2")["disagreements"] == [], 10, 0.2)
    check(t is not None, "n2 still disagrees 10 s after the path came back")
    return f"n2 disagreed after {said:.1f} s, metric {metric:.0f}; {polls} polls of every node and both resolvers stayed on us-east"


def scenario_node_kill(w):
    """n1 killed (SIGKILL): resolution through unbound keeps working."""
    w.stop_node("n1")
    try:
        start = time.monotonic()
        queries = 0
        # Over several TTLs, so unbound's cache expires and it must ask a
        # live node; each region and each internal resolver.
        while time.monotonic() - start < 3 * TTL + 1:
            for region, r in REGIONS.items():
                # A resolver asking the dead node first waits out its
                # timeout before it asks another: clients retry, as stubs do.
                a = resolve(PUBLIC_RESOLVER, "www", r["subnet"], tries=2)
                queries += 1
                check(a == [r["zone"]], f"{region} through unbound got {a} with n1 dead")
            for z in ZONES:
                a = resolve(z["resolver"], "www", tries=2)
                queries += 1
                check(a == [z["name"]], f"{z['name']}'s resolver got {a} with n1 dead")
            check(fetch(ZONE["us-east"]["lb"]) == "us-east", "fetch from us-east failed")
            time.sleep(0.4)
    finally:
        w.start_node("n1")
    t = wait_until(lambda: w.node_in_cluster("n1") and w.node_answers("n1"), 30, 0.2)
    check(t is not None, "n1 did not come back after a restart")
    return f"{queries} queries through the resolvers answered right with n1 dead; n1 rejoined {t:.1f} s after restart"


def scenario_drain(w):
    """eu-west drained on n3's admin API: every node's answers avoid it."""
    status, body = admin(NODE["n3"], "POST", "/v1/zones/eu-west/drain", '{"reason": "world drain scenario"}')
    check(status == 200, f"drain on n3: {status} {body}")
    start = time.monotonic()
    try:
        t = wait_until(
            lambda: all(node_answer(n["name"], "www", REGIONS["nl"]["subnet"]) == ["us-east"] for n in NODES),
            5,
            0.05,
        )
        check(t is not None, "not every node avoids the drained eu-west after 5 s")
        t2 = wait_until(lambda: resolve(PUBLIC_RESOLVER, "www", REGIONS["nl"]["subnet"]) == ["us-east"], TTL + 3, 0.1)
        check(t2 is not None, "unbound still answers eu-west for NL clients")
        t3 = wait_until(lambda: resolve(ZONE["eu-west"]["resolver"], "www") == ["us-east"], TTL + 3, 0.1)
        check(t3 is not None, "eu-west's internal resolver still answers eu-west")
        for n in NODES:
            for region in REGIONS:
                a = node_answer(n["name"], "app", REGIONS[region]["subnet"])
                check("eu-west" not in a, f"{n['name']} answers app with {a} for {region}")
    finally:
        # Undrained on another node: the newest record wins everywhere.
        status, body = admin(NODE["n1"], "POST", "/v1/zones/eu-west/undrain")
        check(status == 200, f"undrain on n1: {status} {body}")
    back = wait_until(
        lambda: all(node_answer(n["name"], "www", REGIONS["nl"]["subnet"]) == ["eu-west"] for n in NODES), 5, 0.05
    )
    check(back is not None, "an undrain on n1 did not bring eu-west back on every node")
    return f"every node avoided eu-west {t:.2f} s after the drain on n3, unbound {time.monotonic() - start:.1f} s in; undrain on n1 converged in {back:.2f} s"


SCENARIOS = [
    ("regions", scenario_regions),
    ("ecs-cache", scenario_ecs_cache),
    ("internal", scenario_internal),
    ("lb-stop", scenario_lb_stop),
    ("lb-hang", scenario_lb_hang),
    ("lb-500", scenario_lb_500),
    ("cut-path", scenario_cut_path),
    ("node-kill", scenario_node_kill),
    ("drain", scenario_drain),
]


def run_scenarios(w, only=None):
    passed, failed = [], []
    for name, fn in SCENARIOS:
        if only and name not in only:
            continue
        start = time.monotonic()
        try:
            detail = fn(w)
            passed.append(name)
            log(f"PASS {name} ({time.monotonic() - start:.1f} s): {detail}")
        except Failed as e:
            failed.append(name)
            log(f"FAIL {name} ({time.monotonic() - start:.1f} s): {e}")
            # Let the world settle before the next scenario.
            time.sleep(INTERVAL * RISE + TTL + 1)
    log(f"world: {len(passed)} passed, {len(failed)} failed")
    return not failed


# --------------------------------------------------------------------------
# The chaos soak


def soak(w, duration, seed, out_dir, command):
    """Runs the world for `duration` seconds with a fault every 30-60 s
    (each lasting 8-20 s, one at a time), clients resolving and fetching
    throughout, a monitor asking every node directly; writes a Markdown
    report and an SVG timeline to out_dir."""
    rng = random.Random(seed)
    t_base = time.monotonic()
    now = lambda: time.monotonic() - t_base  # noqa: E731
    lock = threading.Lock()
    fetches = []  # (t, client, ok, first_try_ok, zone)
    resolutions = []  # (t, client, zones or None)
    direct = []  # (t, node, region, zones)
    faults = []  # dicts: kind, target, start, end
    stop = threading.Event()

    clients = [(f"public-{r}", PUBLIC_RESOLVER, REGIONS[r]["subnet"]) for r in REGIONS]
    clients += [(f"internal-{z['name']}", z["resolver"], None) for z in ZONES]

    def client_loop(name, resolver, subnet):
        addrs, expires = [], 0.0
        while not stop.is_set():
            t = now()
            if t >= expires or not addrs:
                try:
                    rcode, got, ttl, _ = dns_query(resolver, f"app.{DOMAIN}", subnet, timeout=2.0)
                    if rcode == 0 and got:
                        addrs, expires = got, t + (ttl if ttl is not None else TTL)
                    with lock:
                        resolutions.append((t, name, zones_of(got) if rcode == 0 else None))
                except OSError:
                    with lock:
                        resolutions.append((t, name, None))
            ok = first = False
            zone = None
            for k, addr in enumerate(addrs[:2]):
                zone = fetch(addr, timeout=1.0)
                if zone:
                    ok, first = True, k == 0
                    break
            with lock:
                fetches.append((now(), name, ok, first, zone))
            if not ok:
                expires = 0.0  # a real client re-resolves after a failure
            stop.wait(0.2)

    def monitor_loop():
        while not stop.is_set():
            t = now()
            for n in NODES:
                for region, r in REGIONS.items():
                    a = node_answer(n["name"], "app", r["subnet"])
                    if a is not None:
                        with lock:
                            direct.append((t, n["name"], region, a))
            stop.wait(0.25)

    threads = [threading.Thread(target=client_loop, args=c, daemon=True) for c in clients]
    threads.append(threading.Thread(target=monitor_loop, daemon=True))
    for t in threads:
        t.start()

    kinds = ["stop", "hang", "500", "cut", "node"]
    next_fault = rng.uniform(10, 20)
    log(f"soak: {duration} s, seed {seed}")
    # The last fault ends at least 10 s before the end, so its recovery is
    # measured too.
    while next_fault + 20 + 10 <= duration:
        time.sleep(max(0.0, next_fault - now()))
        kind = rng.choice(kinds)
        length = rng.uniform(8, 20)
        zone = rng.choice(ZONES)["name"]
        node = rng.choice(NODES)["name"]
        f = {"kind": kind, "start": now(), "zone": zone if kind != "node" else None, "node": None}
        if kind == "stop":
            w.stop_nginx(zone)
        elif kind == "hang":
            w.hang_nginx(zone, True)
        elif kind == "500":
            w.fail_nginx(zone, True)
        elif kind == "cut":
            f["node"] = node
            w.cut(node, zone)
        else:
            f["node"] = node
            w.stop_node(node)
        log(f"soak: {f['start']:6.1f} s  {kind} {f['zone'] or ''} {f['node'] or ''}")
        time.sleep(max(0.0, f["start"] + length - now()))
        if kind == "stop":
            w.start_nginx(zone)
        elif kind == "hang":
            w.hang_nginx(zone, False)
        elif kind == "500":
            w.fail_nginx(zone, False)
        elif kind == "cut":
            w.uncut(node, zone)
        else:
            w.start_node(node)
        f["end"] = now()
        faults.append(f)
        next_fault = f["start"] + rng.uniform(30, 60)
    time.sleep(max(0.0, duration - now()))
    end = now()
    stop.set()
    for t in threads:
        t.join(timeout=5)
    report = analyse(fetches, resolutions, direct, faults, end)
    os.makedirs(out_dir, exist_ok=True)
    svg = timeline_svg(fetches, resolutions, faults, end)
    with open(os.path.join(out_dir, "timeline.svg"), "w") as fh:
        fh.write(svg)
    md = render_report(report, faults, duration, seed, command)
    with open(os.path.join(out_dir, "report.md"), "w") as fh:
        fh.write(md)
    log(md)
    return report


def analyse(fetches, resolutions, direct, faults, end):
    late_after = INTERVAL * FALL + 1.0
    rows = []
    late_direct = late_unbound = 0
    for f in faults:
        if f["kind"] not in ("stop", "hang", "500"):
            continue
        z, t0, t1 = f["zone"], f["start"], f["end"]
        row = {"fault": f, "per_node": {}, "recovery_node": {}}
        for n in NODES:
            hits = [t for (t, node, _r, zs) in direct if node == n["name"] and t0 <= t < t1 and z in zs]
            row["per_node"][n["name"]] = (max(hits) - t0) if hits else 0.0
            late_direct += sum(1 for t in hits if t > t0 + late_after)
            home = [r for r, v in REGIONS.items() if v["zone"] == z][0]
            back = [t for (t, node, r, zs) in direct if node == n["name"] and r == home and t >= t1 and z in zs]
            row["recovery_node"][n["name"]] = (min(back) - t1) if back else None
        hits = [t for (t, _c, zs) in resolutions if zs and t0 <= t < t1 and z in zs]
        row["unbound"] = (max(hits) - t0) if hits else 0.0
        late_unbound += sum(1 for t in hits if t > t0 + late_after + TTL)
        home_clients = {f"public-{r}" for r, v in REGIONS.items() if v["zone"] == z} | {f"internal-{z}"}
        # By the set of zones, not the order: unbound rotates the records
        # of an RRset (rrset-roundrobin), as many resolvers do.
        back = [t for (t, c, zs) in resolutions if c in home_clients and zs and t >= t1 and z in zs]
        row["recovery_unbound"] = (min(back) - t1) if back else None
        rows.append(row)
    per_fault = {}
    for f in faults:
        t0, t1 = f["start"], f["end"] + RECOVERY_BOUND
        per_fault[id(f)] = (
            sum(1 for x in fetches if t0 <= x[0] < t1 and not x[2]),
            sum(1 for x in fetches if t0 <= x[0] < t1 and not x[3]),
            sum(1 for x in resolutions if t0 <= x[0] < t1 and x[2] is None),
        )
    # Cut paths and node restarts must move nobody: count answers that left
    # a region's own zone while it was healthy.
    moved_by_cut = 0
    for f in faults:
        if f["kind"] != "cut":
            continue
        home = [r for r, v in REGIONS.items() if v["zone"] == f["zone"]][0]
        moved_by_cut += sum(
            1
            for (t, _n, r, zs) in direct
            if r == home and f["start"] <= t < f["end"] and zs[:1] != [f["zone"]] and not lb_fault_at(faults, t)
        )
    total = len(fetches)
    ok = sum(1 for x in fetches if x[2])
    first = sum(1 for x in fetches if x[3])
    failed_res = sum(1 for x in resolutions if x[2] is None)
    return {
        "rows": rows,
        "per_fault": per_fault,
        "fetches": total,
        "ok": ok,
        "first_try_ok": first,
        "availability": ok / total if total else 0.0,
        "late_direct": late_direct,
        "late_unbound": late_unbound,
        "late_after": late_after,
        "moved_by_cut": moved_by_cut,
        "resolutions": len(resolutions),
        "failed_resolutions": failed_res,
        "direct_answers": len(direct),
        "end": end,
    }


def lb_fault_at(faults, t):
    return any(f["kind"] in ("stop", "hang", "500") and f["start"] <= t < f["end"] + RECOVERY_BOUND for f in faults)


def fmt_stats(values):
    values = [v for v in values if v is not None]
    if not values:
        return "–", "–"
    return f"{statistics.median(values):.2f}", f"{max(values):.2f}"


def render_report(rep, faults, duration, seed, command):
    lines = ["# Chaos soak", ""]
    lines.append(f"Command: `{command}`  ")
    lines.append(
        f"Duration {duration} s, seed {seed}, {len(faults)} faults; checks every {INTERVAL} s, "
        f"timeout {TIMEOUT} s, fall {FALL}, rise {RISE}, pull {PULL} s, TTL {TTL} s; "
        f"clients fetch `app` (two addresses per answer) and retry once on the other address."
    )
    lines.append("")
    lines.append("| measure | value |")
    lines.append("|---|---|")
    lines.append(
        f"| availability (fetches that succeeded) | **{100 * rep['availability']:.3f}%** ({rep['ok']} of {rep['fetches']}) |"
    )
    ft = rep["first_try_ok"] / rep["fetches"] if rep["fetches"] else 0
    lines.append(f"| succeeded on the first address | {100 * ft:.3f}% |")
    lines.append(f"| resolutions through the resolvers that failed | {rep['failed_resolutions']} of {rep['resolutions']} |")
    node_fail = [max(r["per_node"].values()) for r in rep["rows"]]
    ub_fail = [r["unbound"] for r in rep["rows"]]
    node_rec = [max((v for v in r["recovery_node"].values() if v is not None), default=None) for r in rep["rows"]]
    ub_rec = [r["recovery_unbound"] for r in rep["rows"]]
    for label, vals in (
        ("failover, direct (fault to last answer naming the dead zone, slowest node), median / max s", node_fail),
        ("failover, through the resolvers, median / max s", ub_fail),
        ("recovery, direct (restore to first answer naming it again, slowest node), median / max s", node_rec),
        ("recovery, through the resolvers, median / max s", ub_rec),
    ):
        med, mx = fmt_stats(vals)
        lines.append(f"| {label} | {med} / {mx} |")
    lines.append(
        f"| direct answers naming a zone dead longer than interval × fall + 1 s ({rep['late_after']:.1f} s) | {rep['late_direct']} |"
    )
    lines.append(
        f"| resolver answers naming a zone dead longer than that + TTL ({rep['late_after'] + TTL:.1f} s) | {rep['late_unbound']} |"
    )
    lines.append(f"| direct answers that moved a region off its zone during a cut path | {rep['moved_by_cut']} |")
    lines.append("")
    lines.append(
        "| # | at s | fault | target | lasted s | failover n1 / n2 / n3 s | through resolvers s "
        "| recovery direct / resolvers s | failed fetches / first address failed / failed resolutions |"
    )
    lines.append("|---|---|---|---|---|---|---|---|---|")
    rows = {id(r["fault"]): r for r in rep["rows"]}
    for i, f in enumerate(faults, 1):
        target = f["zone"] or ""
        if f["node"]:
            target = f"{f['node']} → {f['zone']}" if f["kind"] == "cut" else f["node"]
        r = rows.get(id(f))
        counts = " / ".join(str(c) for c in rep["per_fault"][id(f)])
        if r:
            per = " / ".join(f"{r['per_node'][n['name']]:.2f}" for n in NODES)
            rn = max((v for v in r["recovery_node"].values() if v is not None), default=None)
            rec = f"{rn:.2f}" if rn is not None else "–"
            rec += " / " + (f"{r['recovery_unbound']:.2f}" if r["recovery_unbound"] is not None else "–")
            lines.append(f"| {i} | {f['start']:.0f} | {f['kind']} | {target} | {f['end'] - f['start']:.1f} | {per} | {r['unbound']:.2f} | {rec} | {counts} |")
        else:
            lines.append(f"| {i} | {f['start']:.0f} | {f['kind']} | {target} | {f['end'] - f['start']:.1f} | – | – | – | {counts} |")
    lines.append("")
    lines.append(
        "Per fault, failures are counted from its start to `interval × rise + pull + TTL` after its end. "
        "Failover is the time from the fault to the last answer that still named the dead zone "
        "(0 when none did after it); recovery, from the end of the fault to the first answer that "
        "named the zone again for its own clients. Cut paths and node kills should move nobody "
        "and lose nothing."
    )
    lines.append("")
    lines.append("![timeline](timeline.svg)")
    lines.append("")
    return "\n".join(lines)


COLORS = {"us-east": "#1f77b4", "eu-west": "#2ca02c", "ap-northeast": "#ff7f0e"}
FAULT_COLORS = {"stop": "#d62728", "hang": "#9467bd", "500": "#8c564b", "cut": "#7f7f7f", "node": "#17becf"}


def timeline_svg(fetches, resolutions, faults, end):
    width, left, row = 1200, 150, 22
    client_names = [f"public-{r}" for r in REGIONS] + [f"internal-{z['name']}" for z in ZONES]
    rows = ["faults"] + client_names + ["failed fetches"]
    height = 40 + row * len(rows) + 40
    span = max(end, 1.0)
    x = lambda t: left + (width - left - 10) * t / span  # noqa: E731
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="14">Chaos soak: faults, and the zones each client was answered with (app, two per answer), over {end:.0f} s; red ticks: failed fetches, grey: first address failed</text>',
    ]
    for i, name in enumerate(rows):
        y = 30 + i * row
        out.append(f'<text x="4" y="{y + 14}">{name}</text>')
        out.append(f'<line x1="{left}" y1="{y + row}" x2="{width - 10}" y2="{y + row}" stroke="#eee"/>')
    for f in faults:
        c = FAULT_COLORS[f["kind"]]
        label = f"{f['kind']} {f['zone'] or ''}{' ' + f['node'] if f['node'] else ''}"
        out.append(
            f'<rect x="{x(f["start"]):.1f}" y="32" width="{max(1.0, x(f["end"]) - x(f["start"])):.1f}" height="{row - 4}" fill="{c}" opacity="0.8"><title>{label}</title></rect>'
        )
        short = {"stop": "stop", "hang": "hang", "500": "500", "cut": "cut", "node": "kill"}[f["kind"]]
        target = f["node"] if f["kind"] == "node" else (f["zone"] or "")
        if f["kind"] == "cut":
            target = f"{f['node']}-{f['zone']}"
        out.append(f'<text x="{x(f["start"]) + 1:.1f}" y="{30 + row - 2}" font-size="7" fill="black">{short} {target}</text>')
    # One bar per run of answers naming the same set of zones (the order
    # is the resolver's rotation), a stripe per zone; red: no answer.
    order = [z["name"] for z in ZONES]
    for i, c in enumerate(client_names):
        y = 30 + (1 + i) * row
        runs = []
        for t, who, zs in resolutions:
            if who != c:
                continue
            key = tuple(sorted(set(zs), key=order.index)) if zs else ()
            if runs and runs[-1][2] == key:
                continue
            if runs:
                runs[-1][1] = t
            runs.append([t, t, key])
        if runs:
            runs[-1][1] = end
        for a, b, key in runs:
            h = (row - 8) / max(1, len(key))
            for k, zone in enumerate(key or ("none",)):
                color = COLORS.get(zone, "red")
                out.append(
                    f'<rect x="{x(a):.1f}" y="{y + 4 + k * h:.1f}" width="{max(1.5, x(b) - x(a)):.1f}" height="{h:.1f}" fill="{color}"/>'
                )
    y = 30 + (len(rows) - 1) * row
    for t, c, ok, first, _z in fetches:
        if not ok:
            out.append(f'<rect x="{x(t):.1f}" y="{y + 3}" width="2" height="{row - 6}" fill="red"/>')
        elif not first:
            out.append(f'<rect x="{x(t):.1f}" y="{y + 8}" width="1" height="{row - 16}" fill="#ccc"/>')
    ly = height - 18
    lx = left
    for name, c in list(COLORS.items()) + [(f"fault: {k}", v) for k, v in FAULT_COLORS.items()]:
        out.append(f'<rect x="{lx}" y="{ly - 9}" width="10" height="10" fill="{c}"/><text x="{lx + 13}" y="{ly}">{name}</text>')
        lx += 18 + 7 * len(name)
    for s in range(0, int(span) + 1, 60):
        out.append(f'<text x="{x(s):.1f}" y="{ly + 14}" font-size="9">{s}s</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("command", choices=["scenarios", "soak", "up"])
    ap.add_argument("--bin", default=os.environ.get("MERIDIAN_BIN", os.path.join(REPO, "target/debug/meridian")))
    ap.add_argument("--break", dest="broken", choices=["checks-none", "quorum-off", "no-subnetcache"])
    ap.add_argument("--only", action="append", help="run only this scenario (repeatable)")
    ap.add_argument("--duration", type=float, default=600)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=os.path.join(REPO, "docs/soak"))
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    os.environ["PATH"] = os.environ.get("PATH", "") + ":/usr/local/sbin:/usr/sbin:/sbin"
    if os.geteuid() != 0:
        raise SystemExit("world: needs root (network namespaces, port 53)")
    for tool in ("ip", "nft", "nginx", "unbound", "unbound-checkconf", "unbound-control", "dig", "curl"):
        if shutil.which(tool) is None:
            raise SystemExit(f"world: `{tool}` is not installed (apt-get install nginx unbound nftables iproute2 bind9-dnsutils curl)")
    if not os.access(args.bin, os.X_OK):
        raise SystemExit(f"world: no Meridian binary at {args.bin}; build it with `cargo build`")
    w = World(os.path.abspath(args.bin), args.broken, args.keep)

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        w.start()
        if args.broken:
            log(f"world: deliberately broken: {args.broken}")
        if args.command == "scenarios":
            ok = run_scenarios(w, args.only)
        elif args.command == "up":
            # For looking around: `ip netns exec <core> dig @10.9.0.53 ...`.
            log(f"world: core namespace {w.core}; holding for {args.duration:.0f} s (Ctrl-C ends it)")
            time.sleep(args.duration)
            ok = True
        else:
            cmd = " ".join(["python3", "tests/world/world.py", *sys.argv[1:]])
            soak(w, args.duration, args.seed, args.out, cmd)
            ok = True
        if not ok and not args.keep:
            w.dump_logs()
    finally:
        w.close()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
