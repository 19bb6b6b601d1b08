#!/usr/bin/python3
"""Prints the findings of a conformance run and decides pass or fail.

    report.py zonemaster RESULTS.jsonl
        RESULTS.jsonl: `zonemaster-cli --json-stream --json-translate` output.
        Prints every message at NOTICE and above, and counts per level.
        Fails on any WARNING, ERROR or CRITICAL (the README promises none;
        the findings accepted for the test network are all NOTICE).

    report.py targets ALLOWED ZONEMASTER.jsonl PROBE.json
        ALLOWED: comma-separated addresses of the test network. Lists every
        server address Zonemaster (its DEBUG EXTERNAL_QUERY messages) and
        DNSViz (the servers in its probe data) sent queries to, and fails
        if any is not in ALLOWED.

    report.py dnsviz GROK_WARNINGS.json GROK_ALL.json
        GROK_WARNINGS.json: `dnsviz grok -l warning` output (empty when
        there is nothing at that level); GROK_ALL.json: plain `dnsviz grok`
        output, for the summary. Prints every warning and error with where
        it was found. Fails on any.

Exit status: 0 pass, 1 findings.
"""

import json
import sys
from collections import Counter

LEVELS = ["CRITICAL", "ERROR", "WARNING", "NOTICE", "INFO", "DEBUG"]
FAILING = {"CRITICAL", "ERROR", "WARNING"}


def zonemaster(path):
    entries = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if line:
                entries.append(json.loads(line))
    counts = Counter(e.get("level", "?") for e in entries)
    testcases = sorted({e.get("testcase", "") for e in entries} - {"", "UNSPECIFIED"})
    shown = [e for e in entries if e.get("level") in LEVELS[:4]]
    shown.sort(key=lambda e: (LEVELS.index(e["level"]), e.get("testcase", ""), e.get("tag", "")))
    for e in shown:
        print(f"  {e['level']:<8} {e.get('testcase', ''):<13} {e.get('tag', '')}: {e.get('message', '')}")
    summary = ", ".join(f"{counts.get(level, 0)} {level}" for level in LEVELS[:5])
    print(f"zonemaster: {summary} ({len(testcases)} test cases reported)")
    if not entries:
        print("zonemaster: no output at all")
        return 1
    failing = sum(counts.get(level, 0) for level in FAILING)
    if failing:
        print(f"zonemaster: FAIL, {failing} finding(s) at WARNING, ERROR or CRITICAL")
        return 1
    print("zonemaster: pass (nothing at WARNING, ERROR or CRITICAL)")
    return 0


def walk(node, path, found):
    """Collects every `errors` and `warnings` list in grok's output."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("errors", "warnings") and isinstance(value, list):
                for item in value:
                    found.append((key[:-1], "/".join(path), item))
            else:
                walk(value, path + [key], found)
    elif isinstance(node, list):
        for item in node:
            walk(item, path, found)


def load_json(path):
    with open(path, encoding="utf-8") as fh:
        text = fh.read().strip()
    return json.loads(text) if text else {}


def dnsviz(warnings_path, all_path):
    full = load_json(all_path)
    if not full:
        print("dnsviz: grok produced no analysis")
        return 1
    for name, data in full.items():
        status = data.get("status", "?")
        delegation = data.get("delegation", {}).get("status", "-")
        servers = ", ".join(f"{ns}={'/'.join(v.get('auth', []))}"
                            for ns, v in sorted(data.get("zone", {}).get("servers", {}).items()))
        line = f"  {name:<28} {status:<9} delegation {delegation:<9} {len(data.get('queries', {}))} query sets"
        print(line + (f"; servers {servers}" if servers else ""))
    found = []
    walk(load_json(warnings_path), [], found)
    for kind, where, item in found:
        servers = item.get("servers") or []
        if isinstance(servers, dict):
            servers = sorted(servers)
        print(f"  {kind.upper():<7} {where}: {item.get('code', '')}: {item.get('description', '')}"
              + (f" [servers: {', '.join(servers)}]" if servers else ""))
    counts = Counter(kind for kind, _, _ in found)
    print(f"dnsviz: {counts.get('error', 0)} errors, {counts.get('warning', 0)} warnings"
          f" ({len(full)} names analysed)")
    if found:
        print("dnsviz: FAIL")
        return 1
    print("dnsviz: pass (no warnings or errors)")
    return 0


def probe_servers(node, found):
    """Server addresses in DNSViz probe data: the keys of `responses`."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "responses" and isinstance(value, dict):
                found.update(value)
            else:
                probe_servers(value, found)
    elif isinstance(node, list):
        for item in node:
            probe_servers(item, found)


def targets(allowed, zonemaster_path, probe_path):
    allowed = set(allowed.split(","))
    zm = Counter()
    with open(zonemaster_path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                entry = json.loads(line)
                if entry.get("tag") == "EXTERNAL_QUERY":
                    zm[entry.get("args", {}).get("ip", "?")] += 1
    dv = set()
    probe_servers(load_json(probe_path), dv)
    print("  zonemaster queried: " + ", ".join(f"{ip} ({n})" for ip, n in sorted(zm.items())))
    print("  dnsviz analysed:    " + ", ".join(sorted(dv)))
    stray = (set(zm) | dv) - allowed
    if not zm or not dv:
        print("network: FAIL, no queries seen from one of the tools")
        return 1
    if stray:
        print(f"network: FAIL, queries to addresses outside the test network: {', '.join(sorted(stray))}")
        return 1
    print("network: every query went to the test network")
    return 0


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "targets":
        return targets(*sys.argv[2:5])
    if len(sys.argv) == 3 and sys.argv[1] == "zonemaster":
        return zonemaster(sys.argv[2])
    if len(sys.argv) == 4 and sys.argv[1] == "dnsviz":
        return dnsviz(sys.argv[2], sys.argv[3])
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main())
