#!/usr/bin/env python3
"""Query files for benches/load.sh, and a check that a server answers them
as Meridian's config says it should.

    python3 queries.py gen   --config zones/example.toml --out DIR [--subnets 3000]
                             [--flood 100000] [--flood-burst 50000]
    python3 queries.py check --port PORT --dir DIR --kind KIND [--no-geo]
    python3 queries.py burst --port PORT --pid PID --dir DIR --kind KIND

`gen` writes dnsperf binary query files (`dnsperf -B`: each message prefixed
by its 2-byte length; dnsperf overwrites the ID) into DIR:

- static.bin  the first A record and the first TXT record of [[records]],
              alternating, with EDNS and no ECS;
- geo.bin     the first service's name, type A, each with an EDNS Client
              Subnet option for a different /24: a third each from the US,
              Europe and Asia, drawn at random (fixed seed) from the GeoIP
              file the config names and classified with it;
- geo1.bin    3,000 times the geo query of one /24 (the first of geo.bin's):
              after the first, every answer is a routing-memo hit;
- geo1k.bin   the geo queries of the first 1,024 /24s of geo.bin, once each;
- mix.bin     40% geo A, 10% geo AAAA (both with ECS), 30% static (the A,
              TXT, MX and SRV records), 20% NXDOMAIN (random labels); used
              over UDP and over TCP;
- flood.bin   the random-subnet flood: the geo query with ECS for --flood
              distinct /24s drawn at random (fixed seed) over the whole IPv4
              space the GeoIP file locates, none of them in geo.bin; each is
              asked once per pass. More /24s than the routing memo keeps per
              thread (16,384 networks, replaced within their sets), so a
              server that loops over the file never finds one it still
              remembers;
- flood-burst.bin  --flood-burst more /24s, distinct from all the above,
              for the queued-burst measurement (`burst` reads KIND-burst.bin
              when it exists): a burst starts at the file's beginning each
              time, and these were not asked by the dnsperf runs before it.

Each .bin has a .expect beside it: per query, the expected rcode and, for
service answers, the expected address (the zone nearest the subnet's GeoIP
location by great-circle distance, which is what the `nearest` policy and
gdnsd's city-auto mode both compute).

`check` sends every query of a file to 127.0.0.1:PORT over UDP, compares
the replies with the .expect file and prints a one-line summary; it exits 1
when fewer than --min-agree of the replies match (static and NXDOMAIN
answers must match exactly; with --no-geo, service addresses are not
compared: Knot serves them statically).

Standard library only. The .mmdb reader below is a minimal one written for
this script from the MaxMind DB format description (search tree + data
section); it reads only what the classification needs.
"""

import argparse
import ipaddress
import math
import os
import random
import socket
import struct
import sys
import tomllib

SEED = 20261123
RESERVED_V4 = [
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
        "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15",
        "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/3",
    )
]

# --- a minimal MaxMind DB reader -------------------------------------------------


class Mmdb:
    META_MARKER = b"\xab\xcd\xefMaxMind.com"

    def __init__(self, path):
        with open(path, "rb") as f:
            self.buf = f.read()
        at = self.buf.rfind(self.META_MARKER)
        if at < 0:
            raise ValueError(f"{path}: not a MaxMind DB file")
        meta_start = at + len(self.META_MARKER)
        meta, _ = self._decode(meta_start, meta_start)
        self.node_count = meta["node_count"]
        self.record_size = meta["record_size"]
        self.node_bytes = self.record_size * 2 // 8
        self.data_start = self.node_count * self.node_bytes + 16
        node, depth = 0, 0
        if meta["ip_version"] == 6:
            while depth < 96 and node < self.node_count:
                node, depth = self._child(node, 0), depth + 1
        self.v4_root, self.v4_root_depth = node, depth

    def _child(self, node, bit):
        b, o = self.buf, node * self.node_bytes
        if self.record_size == 24:
            o += 3 * bit
            return int.from_bytes(b[o : o + 3], "big")
        if self.record_size == 28:
            if bit == 0:
                return ((b[o + 3] & 0xF0) << 20) | int.from_bytes(b[o : o + 3], "big")
            return ((b[o + 3] & 0x0F) << 24) | int.from_bytes(b[o + 4 : o + 7], "big")
        if self.record_size == 32:
            o += 4 * bit
            return int.from_bytes(b[o : o + 4], "big")
        raise ValueError(f"unsupported record size {self.record_size}")

    def _decode(self, off, base):
        b = self.buf
        ctrl = b[off]
        off += 1
        kind = ctrl >> 5
        if kind == 1:  # pointer, relative to base
            ss, v = (ctrl >> 3) & 3, ctrl & 7
            if ss == 0:
                p, off = (v << 8) | b[off], off + 1
            elif ss == 1:
                p, off = ((v << 16) | int.from_bytes(b[off : off + 2], "big")) + 2048, off + 2
            elif ss == 2:
                p, off = ((v << 24) | int.from_bytes(b[off : off + 3], "big")) + 526336, off + 3
            else:
                p, off = int.from_bytes(b[off : off + 4], "big"), off + 4
            value, _ = self._decode(base + p, base)
            return value, off
        if kind == 0:  # extended type
            kind, off = 7 + b[off], off + 1
        size = ctrl & 0x1F
        if size == 29:
            size, off = 29 + b[off], off + 1
        elif size == 30:
            size, off = 285 + int.from_bytes(b[off : off + 2], "big"), off + 2
        elif size == 31:
            size, off = 65821 + int.from_bytes(b[off : off + 3], "big"), off + 3
        if kind == 2:
            return b[off : off + size].decode("utf-8", "replace"), off + size
        if kind == 3:
            return struct.unpack(">d", b[off : off + 8])[0], off + 8
        if kind == 4:
            return bytes(b[off : off + size]), off + size
        if kind in (5, 6, 9, 10):
            return int.from_bytes(b[off : off + size], "big"), off + size
        if kind == 8:
            return int.from_bytes(b[off : off + size], "big", signed=size == 4), off + size
        if kind == 7:
            out = {}
            for _ in range(size):
                key, off = self._decode(off, base)
                out[key], off = self._decode(off, base)
            return out, off
        if kind == 11:
            out = []
            for _ in range(size):
                item, off = self._decode(off, base)
                out.append(item)
            return out, off
        if kind == 14:
            return bool(size), off
        if kind == 15:
            return struct.unpack(">f", b[off : off + 4])[0], off + 4
        raise ValueError(f"unsupported MaxMind DB data type {kind}")

    def lookup_v4(self, addr):
        """The record for an IPv4 address (int), or None."""
        node = self.v4_root
        for i in range(32):
            if node >= self.node_count:
                break
            node = self._child(node, (addr >> (31 - i)) & 1)
        if node <= self.node_count:
            return None
        return self._decode(self.data_start + node - self.node_count - 16, self.data_start)[0]


def place(rec):
    """(country, continent, lat, lon) from a GeoIP2 City or flat DB-IP record."""
    if rec is None:
        return None
    if "location" in rec:
        loc = rec["location"]
        return (
            rec.get("country", {}).get("iso_code"),
            rec.get("continent", {}).get("code"),
            loc.get("latitude"),
            loc.get("longitude"),
        )
    if "latitude" in rec:
        return (rec.get("country_code"), None, rec["latitude"], rec["longitude"])
    return None


# --- DNS wire format ----------------------------------------------------------------

TYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "MX": 15, "TXT": 16, "AAAA": 28, "SRV": 33, "CAA": 257}


def encode_name(name):
    out = bytearray()
    for label in name.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return bytes(out + b"\x00")


def query(name, qtype, ecs=None):
    """A query as a resolver sends it to an authoritative server: RD=0,
    EDNS with a 1232-byte buffer, optionally ECS (IPv4 /24)."""
    header = struct.pack(">HHHHHH", 0, 0, 1, 0, 0, 1)
    question = encode_name(name) + struct.pack(">HH", TYPES[qtype], 1)
    options = b""
    if ecs is not None:
        net = ipaddress.ip_network(ecs)
        addr = net.network_address.packed[: (net.prefixlen + 7) // 8]
        body = struct.pack(">HBB", 1, net.prefixlen, 0) + addr
        options = struct.pack(">HH", 8, len(body)) + body
    opt = b"\x00" + struct.pack(">HHIH", 41, 1232, 0, len(options)) + options
    return header + question + opt


def skip_name(msg, off):
    while True:
        n = msg[off]
        if n & 0xC0 == 0xC0:
            return off + 2
        if n == 0:
            return off + 1
        off += 1 + n


def parse_reply(msg):
    """(rcode, [addresses in the answer section])"""
    _, flags, qd, an, _, _ = struct.unpack(">HHHHHH", msg[:12])
    off = 12
    for _ in range(qd):
        off = skip_name(msg, off) + 4
    addrs = []
    for _ in range(an):
        off = skip_name(msg, off)
        rtype, _, _, rdlen = struct.unpack(">HHIH", msg[off : off + 10])
        off += 10
        rdata = msg[off : off + rdlen]
        if rtype == 1:
            addrs.append(str(ipaddress.IPv4Address(rdata)))
        elif rtype == 28:
            addrs.append(str(ipaddress.IPv6Address(rdata)))
        off += rdlen
    return flags & 0xF, addrs


# --- gen ------------------------------------------------------------------------------


def haversine(lat1, lon1, lat2, lon2):
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * math.asin(min(1.0, math.sqrt(a)))


def is_reserved(addr):
    ip = ipaddress.IPv4Address(addr)
    return any(ip in n for n in RESERVED_V4)


def pick_subnets(db, per_region, rng):
    """per_region random /24s each in the US, Europe and Asia."""
    buckets = {"US": [], "EU": [], "AS": []}
    seen = set()
    tries = 0
    while any(len(v) < per_region for v in buckets.values()):
        tries += 1
        if tries > per_region * 400:
            sys.exit("queries.py: could not find enough US/EU/Asia subnets in the GeoIP file")
        addr = rng.getrandbits(24) << 8
        if addr in seen or is_reserved(addr):
            continue
        seen.add(addr)
        where = place(db.lookup_v4(addr))
        if where is None or where[2] is None:
            continue
        country, continent, lat, lon = where
        region = "US" if country == "US" else continent
        if region in buckets and len(buckets[region]) < per_region:
            buckets[region].append((f"{ipaddress.IPv4Address(addr)}/24", lat, lon))
    return buckets


def pick_anywhere(db, count, exclude, rng):
    """count distinct random /24s the GeoIP file gives a location, anywhere,
    none in exclude: a flood spread over the database's networks as the
    address space weighs them."""
    out, seen = [], set(exclude)
    tries = 0
    while len(out) < count:
        tries += 1
        if tries > count * 50:
            sys.exit(f"queries.py: found only {len(out)} of {count} located /24s in the GeoIP file")
        addr = rng.getrandbits(24) << 8
        net = f"{ipaddress.IPv4Address(addr)}/24"
        if net in seen or is_reserved(addr):
            continue
        seen.add(net)
        where = place(db.lookup_v4(addr))
        if where is None or where[2] is None:
            continue
        out.append((net, where[2], where[3]))
    return out


def gen(args):
    with open(args.config, "rb") as f:
        cfg = tomllib.load(f)
    domain = cfg["domain"]["name"].rstrip(".")

    def fq(name):
        return domain if name == "@" else (name.rstrip(".") if name.endswith(".") else f"{name}.{domain}")

    records = cfg.get("records", [])

    def first(rtype):
        for r in records:
            if r["type"].upper() == rtype:
                return fq(r["name"]), r["data"][0] if isinstance(r["data"], list) else r["data"]
        return None

    a_rec, txt_rec = first("A"), first("TXT")
    if not a_rec or not txt_rec:
        sys.exit("queries.py: the config needs an A and a TXT record for the static queries")
    extra_static = [(fq(r["name"]), r["type"].upper()) for r in records if r["type"].upper() in ("MX", "SRV")]
    services = cfg.get("services", [])
    if not services:
        sys.exit("queries.py: the config has no [[services]]")
    svc = services[0]
    svc_name = fq(svc["name"])
    zones = {z["name"]: z for z in cfg["zones"]}
    endpoints = [(ep["zone"], ep["addresses"]) for ep in svc["endpoints"]]
    files = cfg.get("geoip", {}).get("files", [])
    mmdb = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(args.config)), files[0]))
    db = Mmdb(mmdb)
    rng = random.Random(SEED)
    buckets = pick_subnets(db, args.subnets // 3, rng)

    def nearest(lat, lon, family):
        best = min(
            endpoints,
            key=lambda e: haversine(lat, lon, zones[e[0]]["latitude"], zones[e[0]]["longitude"]),
        )
        for a in best[1]:
            if (":" in a) == (family == 6):
                return a
        return "-"

    geo = [s for region in ("US", "EU", "AS") for s in buckets[region]]
    rng.shuffle(geo)
    os.makedirs(args.out, exist_ok=True)

    def write(name, items):
        with open(os.path.join(args.out, name + ".bin"), "wb") as fb, open(
            os.path.join(args.out, name + ".expect"), "w"
        ) as fe:
            for wire, rcode, addr, label in items:
                fb.write(struct.pack(">H", len(wire)) + wire)
                kind = "service" if label.startswith(svc_name + "/") else "other"
                fe.write(f"{rcode} {addr} {kind} {label}\n")

    static_items = []
    for i in range(1000):
        name, rtype, want = (a_rec[0], "A", a_rec[1]) if i % 2 == 0 else (txt_rec[0], "TXT", "-")
        static_items.append((query(name, rtype), 0, want, f"{name}/{rtype}"))
    write("static", static_items)

    geo_items = [
        (query(svc_name, "A", net), 0, nearest(lat, lon, 4), f"{svc_name}/A/{net}") for net, lat, lon in geo
    ]
    write("geo", geo_items)

    write("geo1", [geo_items[0]] * 3000)
    write("geo1k", geo_items[:1024])

    mix = []
    statics = [(a_rec[0], "A", a_rec[1]), (txt_rec[0], "TXT", "-")] + [(n, t, "-") for n, t in extra_static]
    for i in range(10000):
        r = rng.random()
        net, lat, lon = geo[i % len(geo)]
        if r < 0.40:
            mix.append((query(svc_name, "A", net), 0, nearest(lat, lon, 4), f"{svc_name}/A/{net}"))
        elif r < 0.50:
            mix.append((query(svc_name, "AAAA", net), 0, nearest(lat, lon, 6), f"{svc_name}/AAAA/{net}"))
        elif r < 0.80:
            name, rtype, want = statics[i % len(statics)]
            mix.append((query(name, rtype), 0, want, f"{name}/{rtype}"))
        else:
            label = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(10))
            mix.append((query(f"{label}.{domain}", "A"), 3, "-", f"{label}.{domain}/A"))
    write("mix", mix)

    flood_nets = pick_anywhere(db, args.flood + args.flood_burst, {net for net, _, _ in geo}, rng)
    flood_items = [
        (query(svc_name, "A", net), 0, nearest(lat, lon, 4), f"{svc_name}/A/{net}") for net, lat, lon in flood_nets
    ]
    write("flood", flood_items[: args.flood])
    write("flood-burst", flood_items[args.flood :])

    counts = {}
    for _, _, addr, _ in geo_items:
        counts[addr] = counts.get(addr, 0) + 1
    print(
        f"query files in {args.out}: static {len(static_items)}, geo {len(geo_items)} "
        f"({', '.join(f'{k} {len(v)}' for k, v in buckets.items())} /24s; expected answers "
        f"{', '.join(f'{a} {n}' for a, n in sorted(counts.items()))}), geo1 3000 (one /24), "
        f"geo1k 1024, mix {len(mix)}, flood {args.flood} + {args.flood_burst} for bursts (distinct /24s)"
    )


# --- check ----------------------------------------------------------------------------


def read_bin(path):
    data = open(path, "rb").read()
    out, off = [], 0
    while off < len(data):
        (n,) = struct.unpack(">H", data[off : off + 2])
        out.append(data[off + 2 : off + 2 + n])
        off += 2 + n
    return out


def check(args):
    queries = read_bin(os.path.join(args.dir, args.kind + ".bin"))
    expects = [line.split() for line in open(os.path.join(args.dir, args.kind + ".expect"))]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(2.0)
    sock.connect(("127.0.0.1", args.port))
    agree, lost, bad = 0, 0, []
    for i, (q, (want_rcode, want_addr, kind, label)) in enumerate(zip(queries, expects)):
        qid = i & 0xFFFF
        q = struct.pack(">H", qid) + q[2:]
        for _attempt in range(3):
            sock.send(q)
            try:
                while True:
                    reply = sock.recv(4096)
                    if reply[:2] == q[:2]:
                        break
                break
            except socket.timeout:
                reply = None
        if reply is None:
            lost += 1
            continue
        rcode, addrs = parse_reply(reply)
        ok = rcode == int(want_rcode)
        if ok and want_addr != "-" and not (args.no_geo and kind == "service"):
            ok = addrs == [want_addr]
        if ok:
            agree += 1
        elif len(bad) < 5:
            bad.append(f"{label}: rcode {rcode} {addrs}, expected rcode {want_rcode} {want_addr}")
    total = len(queries)
    share = agree / total if total else 0.0
    print(f"{args.name}: {args.kind}: {agree}/{total} answers as expected ({share:.1%}), {lost} lost")
    for b in bad:
        print(f"  mismatch: {b}")
    if share < args.min_agree:
        sys.exit(1)


def task_cpu_ns(pid):
    """On-CPU time of every live thread of pid, in ns (schedstat)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def burst(args):
    """CPU per query with queries waiting: the server is stopped (SIGSTOP)
    while a batch is queued in its socket, then continued and drained, so it
    answers the batch back to back without sleeping between queries. Prints
    "answered cpu_ns"."""
    import signal

    path = os.path.join(args.dir, args.kind + "-burst.bin")
    if not os.path.exists(path):
        path = os.path.join(args.dir, args.kind + ".bin")
    queries = read_bin(path)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    sock.connect(("127.0.0.1", args.port))
    sock.settimeout(0.5)
    answered, i = 0, 0
    cpu0 = task_cpu_ns(args.pid)
    for _ in range(args.cycles):
        os.kill(args.pid, signal.SIGSTOP)
        for _ in range(args.batch):
            q = queries[i % len(queries)]
            sock.send(struct.pack(">H", i & 0xFFFF) + q[2:])
            i += 1
        os.kill(args.pid, signal.SIGCONT)
        got = 0
        try:
            while got < args.batch:
                sock.recv(4096)
                got += 1
        except socket.timeout:
            pass
        answered += got
    cpu1 = task_cpu_ns(args.pid)
    print(f"{answered} {cpu1 - cpu0}")
    if answered < 0.95 * args.cycles * args.batch:
        sys.exit(f"queries.py burst: only {answered} of {args.cycles * args.batch} answered")


KINDS = ("static", "geo", "geo1", "geo1k", "mix", "flood")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen")
    g.add_argument("--config", required=True)
    g.add_argument("--out", required=True)
    g.add_argument("--subnets", type=int, default=3000)
    g.add_argument("--flood", type=int, default=100000, help="distinct /24s in flood.bin")
    g.add_argument("--flood-burst", type=int, default=50000, help="distinct /24s in flood-burst.bin")
    c = sub.add_parser("check")
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--dir", required=True)
    c.add_argument("--kind", choices=KINDS + ("flood-burst",), required=True)
    c.add_argument("--name", default="server")
    c.add_argument("--no-geo", action="store_true", help="do not compare service addresses")
    c.add_argument("--min-agree", type=float, default=0.99)
    b = sub.add_parser("burst")
    b.add_argument("--port", type=int, required=True)
    b.add_argument("--pid", type=int, required=True)
    b.add_argument("--dir", required=True)
    b.add_argument("--kind", choices=KINDS, required=True)
    b.add_argument("--batch", type=int, default=100)
    b.add_argument("--cycles", type=int, default=100)
    args = ap.parse_args()
    {"gen": gen, "check": check, "burst": burst}[args.cmd](args)


if __name__ == "__main__":
    main()
