#!/usr/bin/env python3
"""The ECS scopes servers return for the same clients over the same GeoIP
file, and whether any is harmful (for benches/load.sh).

    python3 scopes.py --geo geo/default.mmdb --name www.gslb.example \
        --server gdnsd=15352 --server meridian=15353 [--v4 500 --v6 250]

Clients are random /24s (IPv4) and /56s (IPv6, found by a random descent
of the tree, as IPv6 data is sparse) that the GeoIP file locates, outside
reserved space, drawn with a fixed seed so every server
gets the same ones. Each server is asked for the name's A record with
each client as its ECS subnet; the reply's scope is recorded. A wider
scope tells a resolver to reuse the answer for the whole scope, so it is
harmful if some subnet inside it gets another answer: for every reply
whose scope is shorter than the client's prefix, SAMPLES random subnets
of the client's length inside the scope (and its first and last) are
asked too, and any other answer counts as harmful.

Prints, per server: the median scope length per family, the share of
IPv4 answers at /16 or shorter and at exactly /24, harmful scopes, and the
share of clients given exactly the scope the first server gave.
Traffic goes to 127.0.0.1 only.
"""

import argparse
import ipaddress
import os
import random
import socket
import statistics
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import queries  # noqa: E402  (the Mmdb reader and the DNS helpers)

SEED = 20261205
SAMPLES = 8
GLOBAL_V6 = ipaddress.ip_network("2000::/3")
RESERVED_V6 = [ipaddress.ip_network(n) for n in ("2001:db8::/32", "2002::/16", "2001::/32")]


def lookup_v6(db, addr):
    node = 0
    for i in range(128):
        if node >= db.node_count:
            break
        node = db._child(node, (addr >> (127 - i)) & 1)
    if node <= db.node_count:
        return None
    return db._decode(db.data_start + node - db.node_count - 16, db.data_start)[0]


def random_v6(db, rng):
    """A random /56 under a recorded IPv6 network: a descent from the root
    that turns away from empty branches (random addresses would almost
    never land in a database's sparse IPv6 space)."""
    node, bits, depth = 0, 0, 0
    while node < db.node_count and depth < 128:
        sides = [0, 1]
        rng.shuffle(sides)
        for side in sides:
            child = db._child(node, side)
            if child != db.node_count:
                break
        else:
            return None
        bits |= side << (127 - depth)
        node, depth = child, depth + 1
    if node <= db.node_count:
        return None
    if depth < 128:
        bits |= rng.getrandbits(128 - depth)
    return bits & ~((1 << 72) - 1)


def located(rec):
    where = queries.place(rec)
    return where is not None and where[2] is not None


def pick_clients(db, v4, v6, rng):
    out, seen, tries = [], set(), 0
    while len(out) < v4:
        tries += 1
        if tries > v4 * 1000:
            sys.exit("scopes.py: too few located IPv4 /24s in the GeoIP file")
        addr = rng.getrandbits(24) << 8
        if addr in seen or queries.is_reserved(addr) or not located(db.lookup_v4(addr)):
            continue
        seen.add(addr)
        out.append(ipaddress.ip_network((addr, 24)))
    tries = 0
    while len(out) < v4 + v6:
        tries += 1
        if tries > v6 * 1000:
            sys.exit("scopes.py: too few located IPv6 /56s in the GeoIP file")
        addr = random_v6(db, rng)
        if addr is None or addr in seen:
            continue
        net = ipaddress.ip_network((addr, 56))
        if not net.subnet_of(GLOBAL_V6) or any(net.subnet_of(r) for r in RESERVED_V6):
            continue
        if not located(lookup_v6(db, addr)):
            continue
        seen.add(addr)
        out.append(net)
    return out


def ecs_query(name, net):
    header = struct.pack(">HHHHHH", random.getrandbits(16), 0, 1, 0, 0, 1)
    question = queries.encode_name(name) + struct.pack(">HH", 1, 1)
    family = 1 if net.version == 4 else 2
    addr = net.network_address.packed[: (net.prefixlen + 7) // 8]
    body = struct.pack(">HBB", family, net.prefixlen, 0) + addr
    options = struct.pack(">HH", 8, len(body)) + body
    opt = b"\x00" + struct.pack(">HHIH", 41, 1232, 0, len(options)) + options
    return header + question + opt


def parse(msg):
    """(sorted answer addresses, ECS scope or None)"""
    _, _, qd, an, ns, ar = struct.unpack(">HHHHHH", msg[:12])
    off = 12
    for _ in range(qd):
        off = queries.skip_name(msg, off) + 4
    addrs, scope = [], None
    for i in range(an + ns + ar):
        off = queries.skip_name(msg, off)
        rtype, _, _, rdlen = struct.unpack(">HHIH", msg[off : off + 10])
        off += 10
        rdata = msg[off : off + rdlen]
        if i < an and rtype == 1:
            addrs.append(str(ipaddress.IPv4Address(rdata)))
        if rtype == 41:
            o = 0
            while o + 4 <= len(rdata):
                code, length = struct.unpack(">HH", rdata[o : o + 4])
                if code == 8 and length >= 4:
                    scope = rdata[o + 7]
                o += 4 + length
        off += rdlen
    return sorted(addrs), scope


class Server:
    def __init__(self, name, port):
        self.name, self.port = name, port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(1.0)

    def ask(self, qname, net):
        for _ in range(3):
            q = ecs_query(qname, net)
            self.sock.sendto(q, ("127.0.0.1", self.port))
            try:
                while True:
                    msg, _ = self.sock.recvfrom(4096)
                    if msg[:2] == q[:2]:
                        return parse(msg)
            except socket.timeout:
                continue
        sys.exit(f"scopes.py: {self.name} did not answer for {net}")


def inside(net, scope, rng):
    """The first, the last and SAMPLES random subnets of net's length
    within net's supernet of length scope."""
    block = net.supernet(new_prefix=scope) if scope < net.prefixlen else net
    span = net.prefixlen - block.prefixlen
    picks = {0, (1 << span) - 1} | {rng.getrandbits(span) for _ in range(SAMPLES)}
    base = int(block.network_address)
    for k in sorted(picks):
        yield ipaddress.ip_network((base + (k << (net.max_prefixlen - net.prefixlen)), net.prefixlen))


def measure(server, qname, clients):
    rng = random.Random(SEED + 1)
    scopes, harmful, each = {4: [], 6: []}, [], []
    for net in clients:
        answer, scope = server.ask(qname, net)
        if scope is None:
            sys.exit(f"scopes.py: {server.name} returned no ECS scope for {net}")
        scopes[net.version].append(scope)
        each.append(scope)
        if scope < net.prefixlen:
            for other in inside(net, scope, rng):
                if server.ask(qname, other)[0] != answer:
                    harmful.append((net, scope, other))
                    break
    return scopes, harmful, each


def median(xs):
    return f"/{statistics.median(xs):g}" if xs else "-"


def share(xs, pred):
    return f"{100 * sum(map(pred, xs)) / len(xs):.0f}%" if xs else "-"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--geo", required=True)
    p.add_argument("--name", default="www.gslb.example")
    p.add_argument("--server", action="append", required=True, help="NAME=PORT")
    p.add_argument("--v4", type=int, default=500)
    p.add_argument("--v6", type=int, default=250)
    args = p.parse_args()
    db = queries.Mmdb(args.geo)
    clients = pick_clients(db, args.v4, args.v6, random.Random(SEED))
    print(
        f"ECS scopes for {args.name} A, {args.v4} IPv4 /24 and {args.v6} IPv6 /56 clients "
        f"located by {os.path.basename(args.geo)} (seed {SEED}):"
    )
    print(
        f"{'server':<10} {'v4 median':>9} {'v4 <=/16':>8} {'v4 /24':>7} {'v6 median':>9} "
        f"{'harmful':>8} {'same as first':>13}"
    )
    worst, first = 0, None
    for spec in args.server:
        name, port = spec.split("=")
        scopes, harmful, each = measure(Server(name, int(port)), args.name, clients)
        v4, v6 = scopes[4], scopes[6]
        first = first or each
        same = f"{100 * sum(a == b for a, b in zip(each, first)) / len(each):.0f}%"
        print(
            f"{name:<10} {median(v4):>9} {share(v4, lambda s: s <= 16):>8} "
            f"{share(v4, lambda s: s == 24):>7} {median(v6):>9} {len(harmful):>8} {same:>13}"
        )
        for net, scope, other in harmful[:5]:
            print(f"  harmful: {net} scope /{scope}, but {other} inside it is answered otherwise")
        worst = max(worst, len(harmful))
    return 1 if worst else 0


if __name__ == "__main__":
    sys.exit(main())
