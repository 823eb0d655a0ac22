#!/usr/bin/env python3
"""The soak: mcpinit as PID 1 of its own PID namespace under a churn workload for a long
run, sampled once a second from outside (RSS, open fds, CPU, live processes).

Run through `scripts/bench.sh --soak [SECONDS]`, which builds what this needs. Writes
soak.csv (one row a second), soak.json (the figures), soak.md (the section for
docs/benchmarks.md) and benchmarks-soak.png into --out; with --docs, also replaces the
soak section of docs/benchmarks.md and its plot. Exits 1 when RSS grew by more than 50 %
from minute 1 to the end, or open fds grew, so that a leak shows.
"""

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import CGROUPS, Namespace, load, log, machine  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
BEGIN, END = "<!-- soak:begin -->", "<!-- soak:end -->"

RATE = 200  # fork actions a second asked of the workload
CAP = 100  # MCPINIT_MAX_PROCS
# Every 30 s, 120 processes at once (each exits 10 s later): over the cap.
BURST_EVERY, BURST_N = 30, 120
ENV = {
    "MCPINIT_MAX_PROCS": str(CAP),
    "MCPINIT_KILL_GRACE": "500ms",
    "MCPINIT_DEDUPE": "npm exec",
    "MCPINIT_DEDUPE_IDLE": "2s",
    "MCPINIT_LOG_FORMAT": "json",
}
RSS_GROWTH = 1.5  # end / minute 1 above this fails the run


def sample(pid, procdir):
    status = Path(f"/proc/{pid}/status").read_text()
    rss = next(int(line.split()[1]) for line in status.splitlines()
               if line.startswith("VmRSS:"))
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    ticks = int(fields[11]) + int(fields[12])  # utime + stime
    # Ticks are 10 ms: a second's CPU of well under 1 % reads as 0 or 1 tick, so the
    # scheduler's run time (ns) gives the per-second series; ticks the totals.
    run_ns = int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    procs = sum(1 for n in os.listdir(procdir) if n.isdigit()) - 1
    return rss, fds, ticks, run_ns, procs


def run(args, out):
    seconds = args.seconds
    state = out / "soak-state.json"
    logfile = out / "logs" / "soak.log"
    logfile.parent.mkdir(parents=True, exist_ok=True)
    env = {**ENV, "MCPINIT_STATE_FILE": str(state)}
    workload = [args.benchkit, "churn", str(seconds), str(RATE), str(BURST_EVERY),
                str(BURST_N)]
    loads = [load()]
    rows, counters = [], None
    space = Namespace([args.mcpinit, "--"], workload, env=env, limit=seconds + 120,
                      log_path=logfile)
    try:
        t0 = time.monotonic()
        prev = None
        tick = t0
        while space.proc.poll() is None:
            tick += 1
            time.sleep(max(0, tick - time.monotonic()))
            try:
                rss, fds, ticks, run_ns, procs = sample(space.pid, space.procdir)
            except (OSError, StopIteration, ValueError, IndexError):
                break  # mcpinit has exited
            now = time.monotonic()
            cpu = None
            if prev:
                cpu = 100 * (run_ns - prev[1]) / 1e9 / (now - prev[0])
            prev = (now, run_ns)
            rows.append({"t_s": round(now - t0, 2), "rss_kb": rss, "fds": fds,
                         "cpu_ticks": ticks, "run_ns": run_ns,
                         "cpu_pct": "" if cpu is None else round(cpu, 3),
                         "procs": procs, "load1": round(os.getloadavg()[0], 2)})
            try:  # the last counters before exit: the state file is removed then
                counters = json.loads(state.read_text()).get("counters", counters)
            except (OSError, ValueError):
                pass
            if len(rows) % 60 == 0:
                loads.append(load())
                log(f"soak: {len(rows)} s, rss {rss} kB, fds {fds}, procs {procs}, "
                    f"load {loads[-1]}")
        status = space.wait(150)
    finally:
        space.close()
    loads.append(load())
    return rows, counters, status, logfile, loads


def parse_log(logfile):
    kit, shutdown, terminated = {}, None, {}
    for line in logfile.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if doc.get("event") == "shutdown":
                shutdown = doc
            elif doc.get("event") == "terminate":
                why = doc.get("reason", "?")
                terminated[why] = terminated.get(why, 0) + 1
        else:
            parts = line.split()
            if len(parts) == 2 and parts[1].lstrip("-").isdigit():
                kit[parts[0]] = int(parts[1])
    return kit, shutdown, terminated


def figures(rows, counters, status, kit, shutdown, terminated, loads, seconds):
    # The churn itself, not mcpinit's shutdown drain at the end.
    steady = [r for r in rows if r["t_s"] <= seconds] or rows
    minute1 = next((r for r in steady if r["t_s"] >= 60), steady[0])
    last = steady[-1]
    cpus = [r["cpu_pct"] for r in steady if r["cpu_pct"] != ""]
    hz = os.sysconf("SC_CLK_TCK")
    span = steady[-1]["t_s"] - steady[0]["t_s"]
    tail = [r for r in steady if r["t_s"] > last["t_s"] - 60]
    elapsed = kit.get("elapsed_ns", 0) / 1e9
    f = {
        "seconds": seconds,
        "samples": len(rows),
        "exit_status": status,
        "rss_kb": {"start": steady[0]["rss_kb"], "minute1": minute1["rss_kb"],
                   "end": last["rss_kb"], "max": max(r["rss_kb"] for r in steady)},
        "fds": {"min": min(r["fds"] for r in steady), "max": max(r["fds"] for r in steady),
                "minute1": minute1["fds"], "end": last["fds"]},
        "cpu_pct": {"mean": sum(cpus) / len(cpus) if cpus else None,
                    "max": max(cpus) if cpus else None,
                    "mean_ticks": 100 * (last["cpu_ticks"] - steady[0]["cpu_ticks"]) / hz
                    / span if span else None},
        "procs": {"max": max(r["procs"] for r in steady),
                  "mean": sum(r["procs"] for r in steady) / len(steady),
                  "mean_last_minute": sum(r["procs"] for r in tail) / len(tail)},
        "workload": kit,
        "forks_per_s": kit.get("forks", 0) / elapsed if elapsed else None,
        "actions_per_s": kit.get("actions", 0) / elapsed if elapsed else None,
        "asked_per_s": RATE,
        "shutdown": shutdown,
        "terminated_by_reason": terminated,
        "counters": counters,
        "loads": loads,
        "env": ENV,
        "cap": CAP,
        "burst": [BURST_EVERY, BURST_N],
    }
    problems = []
    if last["rss_kb"] > RSS_GROWTH * minute1["rss_kb"]:
        problems.append(f"RSS grew from {minute1['rss_kb']} kB at minute 1 to "
                        f"{last['rss_kb']} kB")
    if last["fds"] > minute1["fds"]:
        problems.append(f"open fds grew from {minute1['fds']} at minute 1 to {last['fds']}")
    if f["procs"]["mean_last_minute"] > CAP:
        problems.append(f"{f['procs']['mean_last_minute']:.0f} processes on average in the "
                        f"last minute, above the cap of {CAP}: the cap was not held")
    if shutdown is None:
        problems.append("no shutdown line in the log")
    f["problems"] = problems
    return f


def plot(csvfile, png, f):
    seconds = f["seconds"]
    # Columns: 1 t_s, 2 rss_kb, 3 fds, 4 cpu_ticks, 5 run_ns, 6 cpu_pct, 7 procs, 8 load1.
    script = f"""
set terminal pngcairo size 900,960 font ",10"
set output '{png}'
set datafile separator ','
set multiplot layout 4,1 title "Soak: mcpinit under churn for {seconds} s (cap {CAP}), sampled each second"
set xrange [0:*]
set autoscale xfixmax
set grid
set key top left
set lmargin 12
set ylabel "RSS (kB)"
set yrange [0:{f["rss_kb"]["max"] * 1.3:.0f}]
plot '{csvfile}' every ::1 using 1:2 with lines lw 2 title "VmRSS"
set ylabel "open fds"
set yrange [0:{f["fds"]["max"] + 3}]
plot '{csvfile}' every ::1 using 1:3 with steps lw 2 title "entries in /proc/PID/fd"
set ylabel "CPU (% of a core)"
set yrange [0:*]
plot '{csvfile}' every ::2 using 1:6 with lines lw 1 title "scheduler run time per second"
set ylabel "processes"
set xlabel "seconds"
set yrange [0:*]
set arrow from graph 0, first {CAP} to graph 1, first {CAP} nohead dt 3
plot '{csvfile}' every ::1 using 1:7 with lines lw 1 title "live in the namespace (zombies too; cap dotted)"
unset multiplot
"""
    subprocess.run(["gnuplot"], input=script, text=True, check=True)


def markdown(f, m):
    r, fd, cpu = f["rss_kb"], f["fds"], f["cpu_pct"]
    kit, sd, c = f["workload"], f["shutdown"] or {}, f["counters"] or {}
    term = c.get("terminated", {})
    ended = c.get("ended", {})
    loads = ", ".join(f["loads"])
    reasons = ", ".join(f"{k} {v:,}" for k, v in sorted(f["terminated_by_reason"].items()))
    lines = [
        f"Measured {m['date']} on {m['cpu']}, {m['cores']} cores, Linux {m['kernel']}; "
        f"mcpinit {m['mcpinit_rev']}. Load average (1, 5, 15 min) at the start, every "
        f"minute and at the end: {loads}: other builds and tests shared the machine "
        "throughout (CPU is mcpinit's own run time, which waiting for a core does not "
        "count; the load shows in the workload's achieved rate).",
        "",
        "| measure | value |",
        "|---|---|",
        f"| duration of the churn (s) | {f['seconds']} |",
        f"| fork actions achieved / asked (per s) | {f['actions_per_s']:.0f} / "
        f"{f['asked_per_s']} ({kit.get('late', 0)} times more than 100 ms behind) |",
        f"| forks achieved (per s; an orphan is 2, a launcher tree 3, a burst {BURST_N}) | "
        f"{f['forks_per_s']:.0f} ({kit.get('forks', 0):,} forks, "
        f"{kit.get('failed', 0)} failed) |",
        f"| orphans made / launcher trees made / short-lived children | "
        f"{kit.get('orphans', 0):,} / {kit.get('launchers', 0):,} / "
        f"{kit.get('shortlived', 0):,} |",
        f"| bursts over the cap of {CAP} ({BURST_N} at once, every {BURST_EVERY} s) | "
        f"{kit.get('bursts', 0)} |",
        f"| RSS start / minute 1 / end / max (kB) | {r['start']:,} / {r['minute1']:,} / "
        f"{r['end']:,} / {r['max']:,} |",
        f"| open fds, lowest–highest (minute 1, end) | {fd['min']}–{fd['max']} "
        f"({fd['minute1']}, {fd['end']}) |",
        f"| CPU, mean / highest second (% of one core; scheduler run time) | "
        f"{cpu['mean']:.2f} / {cpu['max']:.2f} |",
        f"| CPU, mean from utime+stime ticks (% of one core) | {cpu['mean_ticks']:.2f} |",
        f"| live processes in the namespace, mean / last minute's mean / highest | "
        f"{f['procs']['mean']:.0f} / {f['procs']['mean_last_minute']:.0f} / "
        f"{f['procs']['max']:,} |",
        f"| zombies reaped (shutdown line) | {sd.get('zombies_reaped', 0):,} |",
        f"| units terminated (shutdown line) | {sd.get('terminated', 0):,} |",
        f"| … by reason (last state file before exit: duplicate / orphan / cap / memory) | "
        f"{term.get('duplicate', 0):,} / {term.get('orphan', 0):,} / "
        f"{term.get('cap', 0):,} / {term.get('memory', 0):,} |",
        f"| … ended after SIGTERM / after SIGKILL (last state file) | "
        f"{ended.get('term', 0):,} / {ended.get('kill', 0):,} |",
        f"| terminate log lines by reason | {reasons or '—'} |",
        f"| escalations to SIGKILL / peak processes (shutdown line) | "
        f"{sd.get('escalations', 0):,} / {sd.get('peak_procs', 0):,} |",
        f"| mcpinit's exit status | {f['exit_status']} |",
        "",
        ("Leak check: " + "; ".join(f["problems"])) if f["problems"] else
        f"Leak check passed: RSS at the end within {RSS_GROWTH:.1f}× minute 1, open fds "
        "not above minute 1, the cap held (live processes in the last minute at or under "
        "it on average).",
    ]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("seconds", type=int, nargs="?", default=600)
    parser.add_argument("--out", required=True)
    parser.add_argument("--mcpinit", required=True)
    parser.add_argument("--benchkit", required=True)
    parser.add_argument("--docs", action="store_true")
    args = parser.parse_args()
    if args.seconds < 1:
        parser.error("seconds must be at least 1")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    m = machine()
    log(f"soak: {args.seconds} s (load {load()})")
    try:
        rows, counters, status, logfile, loads = run(args, out)
    finally:
        if CGROUPS:
            try:  # as compare.py: the parent cgroup, once no run of anyone's is in it
                CGROUPS.rmdir()
            except OSError:
                pass
    if not rows:
        log("soak: no sample taken; see " + str(logfile))
        return 1
    kit, shutdown, terminated = parse_log(logfile)
    f = figures(rows, counters, status, kit, shutdown, terminated, loads, args.seconds)
    csvfile = out / "soak.csv"
    with open(csvfile, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (out / "soak.json").write_text(json.dumps({"machine": m, **f}, indent=1))
    png = out / "benchmarks-soak.png"
    plot(csvfile, png, f)
    md = markdown(f, m)
    (out / "soak.md").write_text(md)
    print(md)
    if args.docs:
        doc = ROOT / "docs" / "benchmarks.md"
        text = doc.read_text()
        if BEGIN in text and END in text:
            head, rest = text.split(BEGIN, 1)
            _, tail = rest.split(END, 1)
            doc.write_text(f"{head}{BEGIN}\n{md}{END}{tail}")
        shutil.copy(png, ROOT / "docs" / "benchmarks-soak.png")
        shutil.copy(csvfile, ROOT / "docs" / "benchmarks-soak.csv")
    for problem in f["problems"]:
        log(f"soak: FAILED: {problem}")
    return 1 if f["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
