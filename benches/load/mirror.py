#!/usr/bin/env python3
"""Writes gdnsd and Knot configurations that do the same job as a Meridian
config (for benches/load.sh), so the servers are compared on equal work.

    python3 mirror.py --config zones/example.toml --out WORKDIR \
        --gdnsd-listen 127.0.0.1:15301 --knot-listen 127.0.0.1:15302

Writes WORKDIR/gdnsd/{config,zones/<domain>,geo.mmdb} and
WORKDIR/knot/{knot.conf,<domain>.zone}:

- static records, apex NS set with glue, and SOA: the same in both zones;
- each service becomes a gdnsd geoip resource in city-auto mode with the
  config's zone coordinates (the same nearest-by-distance ranking as
  Meridian's `nearest` policy over the same GeoIP file), health `up` for
  endpoints whose check is `none`; CIDR rules become the map's `nets`;
- Knot has no geo routing here: each service is a static A/AAAA with the
  first endpoint's addresses, so Knot is a reference for the static path.

gdnsd's city-auto mode refuses a database whose metadata `database_type`
does not say "City"; Meridian's shipped file holds the GeoIP2 City layout
but is typed "Meridian-DBIP-Country-Centroids", so gdnsd gets a copy whose
type string alone is replaced (same length; the data are byte-identical).

Only what the benchmark needs is mirrored: a service must use the `nearest`
policy with one answer and `none` checks, or this exits with an error
rather than benchmark gdnsd on a different job.
"""

import argparse
import ipaddress
import os
import sys
import tomllib

DEFAULT_TTL = 300
DEFAULT_SERVICE_TTL = 30


def fail(msg):
    sys.exit(f"mirror.py: {msg}")


def absolute(name, domain):
    if name == "@":
        return domain
    if name.endswith("."):
        return name
    return f"{name}.{domain}"


def quote_txt(data):
    if data.startswith('"'):
        return data  # already zone-file character strings
    return '"' + data.replace("\\", "\\\\").replace('"', '\\"') + '"'


def zone_file(cfg, services_static):
    """The zone in RFC 1035 form; services_static maps a service name to the
    RR lines standing in for it (DYNA for gdnsd, A/AAAA for Knot)."""
    dom = cfg["domain"]
    domain = dom["name"]
    if not domain.endswith("."):
        domain += "."
    ttl = dom.get("ttl", DEFAULT_TTL)
    soa = dom.get("soa", {})
    nameservers = dom.get("nameservers", [])
    if not nameservers:
        fail("domain.nameservers is empty")
    mname = absolute(soa.get("mname", nameservers[0]["name"]), domain)
    rname = soa.get("rname", "hostmaster")
    if "@" in rname:
        user, host = rname.split("@", 1)
        rname = user.replace(".", "\\.") + "." + host.rstrip(".") + "."
    else:
        rname = absolute(rname, domain)
    lines = [
        f"$ORIGIN {domain}",
        f"$TTL {ttl}",
        f"@ {soa.get('ttl', 3600)} SOA {mname} {rname} {soa.get('serial', 1)} "
        f"{soa.get('refresh', 3600)} {soa.get('retry', 600)} "
        f"{soa.get('expire', 604800)} {soa.get('minimum', 60)}",
    ]
    for ns in nameservers:
        lines.append(f"@ NS {absolute(ns['name'], domain)}")
    for ns in nameservers:
        owner = absolute(ns["name"], domain)
        if not owner.endswith(domain):
            continue
        for addr in ns.get("addresses", []):
            rtype = "AAAA" if ":" in addr else "A"
            lines.append(f"{owner} {rtype} {addr}")
    for rec in cfg.get("records", []):
        data = rec["data"]
        datas = data if isinstance(data, list) else [data]
        rtype = rec["type"].upper()
        rttl = rec.get("ttl", ttl)
        for d in datas:
            if rtype == "TXT":
                d = quote_txt(d)
            lines.append(f"{rec['name']} {rttl} {rtype} {d}")
    for svc in cfg.get("services", []):
        lines.extend(services_static[svc["name"]])
    return "\n".join(lines) + "\n"


def check_mirrorable(cfg):
    for svc in cfg.get("services", []):
        name = svc["name"]
        policy = svc.get("policy", "nearest")
        if policy != "nearest":
            fail(f"service {name!r}: policy {policy!r} is not mirrored (only 'nearest')")
        if svc.get("answers", 1) != 1:
            fail(f"service {name!r}: answers != 1 is not mirrored")
        kind = svc.get("check", {}).get("kind", "http")
        for ep in svc.get("endpoints", []):
            ekind = ep.get("check", {}).get("kind", kind)
            if ekind != "none":
                fail(
                    f"service {name!r}, zone {ep['zone']!r}: check kind {ekind!r} is not "
                    "mirrored; the load benchmark needs always-up ('none') checks"
                )


def gdnsd_config(cfg, listen, mmdb_path, udp_threads):
    zones = {z["name"]: z for z in cfg.get("zones", [])}
    rules = [
        (str(ipaddress.ip_network(net)), rule["zones"])
        for rule in cfg.get("cidr_rules", [])
        for net in rule["networks"]
    ]
    maps, resources = [], []
    for svc in cfg.get("services", []):
        name = svc["name"]
        dcs = [ep["zone"] for ep in svc["endpoints"]]
        coords = "\n".join(
            f"          {dc} => [ {zones[dc]['latitude']}, {zones[dc]['longitude']} ]" for dc in dcs
        )
        # A rule naming zones this service lacks cannot be a gdnsd dclist.
        svc_nets = [
            f"          {net} => [ {', '.join(zs)} ]" for net, zs in rules if all(z in dcs for z in zs)
        ]
        maps.append(
            f"      map_{name} => {{\n"
            f"        geoip2_db => {mmdb_path}\n"
            f"        datacenters => [ {', '.join(dcs)} ]\n"
            f"        auto_dc_coords => {{\n{coords}\n        }}\n"
            + (f"        nets => {{\n" + "\n".join(svc_nets) + "\n        }\n" if svc_nets else "")
            + "      }"
        )
        dcmap = []
        for ep in svc["endpoints"]:
            v4 = [a for a in ep["addresses"] if ":" not in a]
            v6 = [a for a in ep["addresses"] if ":" in a]
            parts = []
            if v4:
                parts.append(f"addrs_v4 => [ {', '.join(v4)} ]")
            if v6:
                parts.append(f"addrs_v6 => [ {', '.join(v6)} ]")
            dcmap.append(f"          {ep['zone']} => {{ {', '.join(parts)} }}")
        resources.append(
            f"      {resource_name(name)} => {{\n"
            f"        map => map_{name}\n"
            f"        service_types => up\n"
            f"        dcmap => {{\n" + "\n".join(dcmap) + "\n        }\n      }"
        )
    return (
        "# Written by benches/load/mirror.py from the Meridian config; do not edit.\n"
        "options => {\n"
        f"  listen => [ {listen} ]\n"
        f"  udp_threads => {udp_threads}\n"
        # Room for a queued burst (load.sh's "busy" measurement), as
        # Meridian and the null responder ask for themselves.
        "  udp_rcvbuf => 1048576\n"
        "  tcp_threads => 1\n"
        "  run_dir => RUN_DIR\n"
        "  state_dir => STATE_DIR\n"
        "}\n"
        "plugins => {\n  geoip => {\n    maps => {\n"
        + "\n".join(maps)
        + "\n    }\n    resources => {\n"
        + "\n".join(resources)
        + "\n    }\n  }\n}\n"
    )


def resource_name(service):
    return "svc_" + service.replace(".", "_").replace("-", "_")


def knot_config(listen, workdir, zone_name, zone_file_name, udp_workers):
    host, port = listen.rsplit(":", 1)
    return (
        "# Written by benches/load/mirror.py from the Meridian config; do not edit.\n"
        "server:\n"
        f"    listen: {host}@{port}\n"
        f"    rundir: {workdir}\n"
        f"    udp-workers: {udp_workers}\n"
        "    tcp-workers: 1\n"
        "    background-workers: 1\n"
        "database:\n"
        f"    storage: {workdir}/db\n"
        "log:\n"
        "  - target: stderr\n"
        "    any: warning\n"
        "template:\n"
        "  - id: default\n"
        f"    storage: {workdir}\n"
        "    semantic-checks: off\n"
        "zone:\n"
        f"  - domain: {zone_name}\n"
        f"    file: {zone_file_name}\n"
    )


def typed_city_copy(src, dst):
    data = open(src, "rb").read()
    marker = data.rfind(b"\xab\xcd\xefMaxMind.com")
    if marker < 0:
        fail(f"{src} is not an .mmdb file")
    meta = data[marker:]
    key = b"database_type"
    at = meta.find(key)
    if at < 0:
        fail(f"{src}: no database_type in the metadata")
    ctrl_at = at + len(key)
    ctrl = meta[ctrl_at]
    if ctrl >> 5 != 2 or (ctrl & 0x1F) > 29:
        fail(f"{src}: unexpected database_type encoding")
    size, start = ctrl & 0x1F, ctrl_at + 1
    if size == 29:  # 29 + one more size byte
        size, start = 29 + meta[start], start + 1
    old = meta[start : start + size]
    if b"City" in old:
        new = old
    else:
        if size < len(b"GeoIP2-City"):
            fail(f"{src}: database_type {old!r} too short to retype")
        new = b"GeoIP2-City (retyped for gdnsd)"[:size].ljust(size, b" ")
    out = data[:marker] + meta[:start] + new + meta[start + size :]
    with open(dst, "wb") as f:
        f.write(out)
    return old.decode(), new.decode()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--gdnsd-listen", required=True)
    ap.add_argument("--knot-listen", required=True)
    ap.add_argument("--threads", type=int, default=2, help="UDP threads for gdnsd and Knot")
    args = ap.parse_args()

    with open(args.config, "rb") as f:
        cfg = tomllib.load(f)
    check_mirrorable(cfg)
    domain = cfg["domain"]["name"].rstrip(".")
    service_ttl = cfg["domain"].get("service_ttl", DEFAULT_SERVICE_TTL)
    files = cfg.get("geoip", {}).get("files", [])
    if len(files) != 1:
        fail("exactly one [geoip] file is mirrored")
    mmdb = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(args.config)), files[0]))

    out = os.path.abspath(args.out)
    gd = os.path.join(out, "gdnsd")
    kn = os.path.join(out, "knot")
    for d in (os.path.join(gd, "zones"), os.path.join(gd, "run"), os.path.join(gd, "state"), kn):
        os.makedirs(d, exist_ok=True)

    dyna, static = {}, {}
    for svc in cfg.get("services", []):
        ttl = svc.get("ttl", service_ttl)
        dyna[svc["name"]] = [f"{svc['name']} {ttl} DYNA geoip!{resource_name(svc['name'])}"]
        first = svc["endpoints"][0]["addresses"]
        static[svc["name"]] = [
            f"{svc['name']} {ttl} {'AAAA' if ':' in a else 'A'} {a}" for a in first
        ]

    geo_copy = os.path.join(gd, "geo.mmdb")
    old, new = typed_city_copy(mmdb, geo_copy)
    conf = gdnsd_config(cfg, args.gdnsd_listen, geo_copy, args.threads)
    conf = conf.replace("RUN_DIR", os.path.join(gd, "run")).replace("STATE_DIR", os.path.join(gd, "state"))
    with open(os.path.join(gd, "config"), "w") as f:
        f.write(conf)
    with open(os.path.join(gd, "zones", domain), "w") as f:
        f.write(zone_file(cfg, dyna))
    with open(os.path.join(kn, f"{domain}.zone"), "w") as f:
        f.write(zone_file(cfg, static))
    with open(os.path.join(kn, "knot.conf"), "w") as f:
        f.write(knot_config(args.knot_listen, kn, domain, f"{domain}.zone", args.threads))
    print(f"gdnsd: {gd} (GeoIP copy typed {new!r}, was {old!r}); knot: {kn}")


if __name__ == "__main__":
    main()
