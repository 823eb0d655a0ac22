#!/usr/bin/env python3
"""Compare one scrape of mcpinit's metrics with `mcpinit status --json`.

    compare.py BASE_URL STATUS_JSON_FILE [SCRAPE_OUT]

BASE_URL is http://ADDR:PORT. Both text formats are scraped and parsed with
prometheus_client; every figure the state document also carries must agree. The
state file's RSS rides a heartbeat (it is rewritten without a scan), so RSS is only
compared within 25 %. Exit 0 when all agree (the Prometheus scrape is written to
SCRAPE_OUT when given); exit 1 with one line per disagreement otherwise.
"""
import json
import sys
from collections import defaultdict

from scrape import scrape


def value(families, name, sample=None, **labels):
    family = families.get(name)
    if family is None:
        return None
    sample = sample or name
    for s_name, s_labels, s_value in family["samples"]:
        if s_name == sample and all(s_labels.get(k) == v for k, v in labels.items()):
            return s_value
    return None


def expected(state):
    """(metric family, sample, labels, value) the state document implies."""
    c = state["counters"]
    s = state["settings"]
    rows = state["processes"]
    out = [
        ("mcpinit_processes", None, {}, state["live"]),
        ("mcpinit_peak_processes", None, {}, c["peak_procs"]),
        ("mcpinit_peak_rss_bytes", None, {}, c["peak_rss"]),
        ("mcpinit_zombies_reaped", "mcpinit_zombies_reaped_total", {}, c["zombies_reaped"]),
        ("mcpinit_signals_forwarded", "mcpinit_signals_forwarded_total", {}, c["signals_forwarded"]),
        ("mcpinit_escalations", "mcpinit_escalations_total", {}, c["escalations"]),
        ("mcpinit_max_procs", None, {}, s["max_procs"]),
        ("mcpinit_max_memory_bytes", None, {}, s["max_memory"]),
        ("mcpinit_start_time_seconds", None, {}, state["started_unix_ms"] / 1000),
    ]
    for reason, n in c["terminated"].items():
        out.append(("mcpinit_terminations", "mcpinit_terminations_total", {"reason": reason}, n))
    if state["cgroup"].get("pids_max") is not None:
        out.append(("mcpinit_cgroup_pids_max", None, {}, state["cgroup"]["pids_max"]))
    units_by_role = defaultdict(set)
    units_by_key = defaultdict(set)
    terminating = set()
    for row in rows:
        units_by_role[row["role"]].add(row["unit"])
        if row.get("key") is not None:
            units_by_key[row["key"]].add(row["unit"])
        if row["terminating"]:
            terminating.add(row["unit"])
    for role in ["main", "server", "orphan", "other"]:
        out.append(("mcpinit_units", None, {"role": role}, len(units_by_role[role])))
    for key, units in units_by_key.items():
        out.append(("mcpinit_server_instances", None, {"key": key}, len(units)))
    out.append(("mcpinit_server_keys", None, {}, len(units_by_key)))
    out.append(("mcpinit_terminating_units", None, {}, len(terminating)))
    return out


def main():
    base, state_file = sys.argv[1], sys.argv[2]
    state = json.load(open(state_file))
    problems = []
    scraped = {}
    for fmt in ["prometheus", "openmetrics"]:
        status, content_type, families, text = scrape(base + "/metrics", fmt)
        scraped[fmt] = (families, text)
        if status != 200:
            problems.append(f"{fmt}: HTTP {status}")
        want_type = "application/openmetrics-text" if fmt == "openmetrics" else "text/plain"
        if not content_type.startswith(want_type):
            problems.append(f"{fmt}: content type {content_type!r}")
        for family, sample, labels, want in expected(state):
            got = value(families, family, sample, **labels)
            if got is None or abs(got - want) > 1e-3:
                problems.append(f"{fmt}: {sample or family}{labels} = {got}, status says {want}")
        got_rss = value(families, "mcpinit_rss_bytes")
        if got_rss is None or abs(got_rss - state["rss"]) > 0.25 * max(state["rss"], 1):
            problems.append(f"{fmt}: mcpinit_rss_bytes = {got_rss}, status says {state['rss']}")
        # Only what began can have ended, and only what got SIGKILL ended by it.
        for reason, n in state["counters"]["terminated"].items():
            ended = sum(
                value(families, "mcpinit_terminations_ended", "mcpinit_terminations_ended_total",
                      reason=reason, ended=e) or 0
                for e in ["eof", "term", "kill"]
            )
            if ended > n:
                problems.append(f"{fmt}: {ended} {reason} terminations ended, {n} began")
        killed = sum(
            value(families, "mcpinit_terminations_ended", "mcpinit_terminations_ended_total",
                  reason=r, ended="kill") or 0
            for r in state["counters"]["terminated"]
        )
        if killed > state["counters"]["escalations"]:
            problems.append(f"{fmt}: {killed} ended by SIGKILL, {state['counters']['escalations']} escalations")
    # The two formats must say the same thing.
    for name, family in scraped["prometheus"][0].items():
        other = scraped["openmetrics"][0].get(name)
        if other is None or other["type"] != family["type"]:
            problems.append(f"family {name} differs between the formats")
    if problems:
        print("\n".join(problems))
        sys.exit(1)
    if len(sys.argv) > 3:
        open(sys.argv[3], "w").write(scraped["prometheus"][1])


if __name__ == "__main__":
    main()
