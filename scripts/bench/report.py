#!/usr/bin/env python3
"""results.json (from compare.py) -> results.md (the tables) and the plots (gnuplot).
With --docs, also replaces the results part of docs/benchmarks.md and its plots."""

import argparse
import json
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PEERS = ["tini-static", "catatonit", "dumb-init"]
NAMES = ["mcpinit", *PEERS]
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def num(value, digits=2):
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def ratios(values, digits=2):
    """mcpinit's value divided by each peer's."""
    mine = values.get("mcpinit")
    out = []
    for peer in PEERS:
        theirs = values.get(peer)
        if isinstance(mine, (int, float)) and isinstance(theirs, (int, float)) and theirs:
            out.append(f"{mine / theirs:.{digits}f}×")
        else:
            out.append("—")
    return " / ".join(out)


def verdict(ok):
    return "met" if ok else "**missed**"


def comparison(r):
    rows = []

    def row(measure, values, target="", ok=None, show_ratio=True):
        cells = [num(values.get(n)) for n in NAMES]
        rows.append([measure, *cells, ratios(values) if show_ratio else "—", target,
                     "" if ok is None else verdict(ok)])

    if "startup" in r:
        s = r["startup"]
        over = {n: s[n]["overhead_ms"] for n in NAMES}
        row(f"start-up overhead, `INIT -- true` − `true` (ms; `true` alone {s['true_ms']:.2f})",
            over, "≤ catatonit", over["mcpinit"] <= over["catatonit"])
        row("`INIT -- true`, wall (ms)", {n: s[n]["wall_ms"] for n in NAMES})
    if "memory" in r:
        m = r["memory"]
        for size, label in (("1", "one child"), ("1000", "1,000 descendants")):
            rss = {n: m[f"{n}/{size}"]["rss_kb"] for n in NAMES}
            pss = {n: m[f"{n}/{size}"]["pss_kb"] for n in NAMES}
            hwm = {n: m[f"{n}/{size}"]["hwm_kb"] for n in NAMES}
            if size == "1":
                row(f"RSS, {label} (kB)", rss, "≤ tini-static",
                    rss["mcpinit"] <= rss["tini-static"])
                runs = {n: m[f"{n}/{size}"].get("rss_runs_kb") for n in NAMES}
                if all(runs.values()):
                    rows.append(["… lowest–highest of the runs (kB)",
                                 *[f"{min(runs[n])}–{max(runs[n])}" for n in NAMES], "—", "",
                                 ""])
            else:
                row(f"RSS, {label} (kB)", rss, "< 2,048", rss["mcpinit"] < 2048)
            row(f"PSS, {label} (kB)", pss)
            row(f"peak RSS (VmHWM), {label} (kB)", hwm,
                "< 2,048" if size != "1" else "", hwm["mcpinit"] < 2048 if size != "1" else None)
    if "size" in r:
        z = r["size"]
        sizes = {n: z[n]["bytes"] / 1024 for n in NAMES}
        dynamic = [n for n in NAMES if not z[n]["static"]]
        label = "binary size (KiB)" + (
            f"; {', '.join(dynamic)} is dynamically linked (+ libc)" if dynamic else "")
        row(label, sizes, "< 1,024 (static)", sizes["mcpinit"] < 1024 and z["mcpinit"]["static"])
    if "reaping" in r:
        p = r["reaping"]
        n = f"{p['orphans']:,}"
        reap = {k: p[k]["reap_ms"] for k in NAMES}
        row(f"reap {n} orphans released together (ms)", reap, "≤ tini",
            reap["mcpinit"] <= reap["tini-static"])
        if "reap_iqr_ms" in p["mcpinit"]:
            rows.append([f"… interquartile range of those {p['trials']} runs (ms)",
                         *[f"{p[k]['reap_iqr_ms'][0]:.0f}–{p[k]['reap_iqr_ms'][1]:.0f}"
                           for k in NAMES], "—", "", ""])
        row(f"making those {n} orphans under the init (ms)",
            {k: p[k]["spawn_ms"] for k in NAMES})
        if "baseline" in p:
            b = p["baseline"]
            rows.append([f"… mcpinit before issue 14 (rev {p.get('baseline_rev', '?')}), "
                         f"same rotation: reap, interquartile (ms)",
                         f"{b['reap_ms']:.0f} ({b['reap_iqr_ms'][0]:.0f}–{b['reap_iqr_ms'][1]:.0f})",
                         "", "", "", "", "—", ""])
    if "burst" in r:
        b = r["burst"]
        never = {n: "never (no cap)" for n in PEERS}
        for variant, label in (("term", "SIGTERM honoured"),
                               ("ignore_term", "SIGTERM ignored: SIGKILL after 100 ms")):
            v = b[variant]
            value = v["back_under_ms"] if not v["never_under"] else "not always"
            row(f"{r.get('burst_size', 200)} over the cap of 100 → back under it, {label} (ms)",
                {"mcpinit": value, **never}, "≤ 250" if variant == "term" else "",
                (v["never_under"] == 0 and v["back_under_ms"] <= 250)
                if variant == "term" else None, show_ratio=False)
        peak = b["term"]["peak"]
        row("highest count in those bursts (cap 100 + burst 200)",
            {"mcpinit": peak, **{n: "unbounded" for n in PEERS}}, "≤ 300", peak <= 300,
            show_ratio=False)
    if "storm" in r:
        s = r["storm"]
        row(f"fork storm {s['seconds']} s: peak processes (cap 100; the storm stops at "
            f"{s['ceiling']:,})", {n: s[n]["peak"] for n in NAMES})
        row("fork storm: processes forked", {n: s[n]["forked"] for n in NAMES})
    if "idle" in r:
        i = r["idle"]
        cpu = {n: i[n]["cpu_pct"] for n in NAMES}
        rows.append([f"idle CPU, 100 descendants, {i['seconds']} s (% of one core; "
                     "scheduler run time)", *[f"{cpu[n]:.4f}" for n in NAMES], "—",
                     "< 0.03", verdict(cpu["mcpinit"] < 0.03)])
        row("idle CPU from utime+stime ticks (%)", {n: i[n]["cpu_pct_ticks"] for n in NAMES},
            show_ratio=False)
        row("idle wake-ups per second", {n: i[n]["wakeups_per_s"] for n in NAMES},
            show_ratio=False)
    head = ["measure (median)", *NAMES, "mcpinit ÷ tini-static / catatonit / dumb-init",
            "target", ""]
    return table(head, rows)


def scan_table(r):
    rows = []
    for n, v in r["scan"].items():
        size = int(n)
        full = v.get("full_us", v.get("warm_us"))
        ms = lambda key: num(v[key] / 1e3, 3) if key in v else "—"
        rows.append([f"{size:,}", num(full / 1e3, 3), num(full / size, 2),
                     ms("incremental_us"), ms("unchanged_us"), ms("cold_us"),
                     num(v["floor_us"] / 1e3, 3), f"{full / v['floor_us']:.2f}×"])
    head = ["processes", "full read (ms)", "per process (µs)", "incremental, unchanged tree (ms)",
            "skipped look: the probe's two reads (ms)", "first look, cmdlines too (ms)",
            "C floor (ms)", "full ÷ floor"]
    return table(head, rows)


def scale_table(r):
    s = r["scale"]
    scan = r.get("scan", {})
    rows = []
    for n, v in s["populations"].items():
        look = scan.get(str(v.get("requested", n)), {})
        ms = lambda key: num(look[key] / 1e3, 3) if key in look else "—"
        base, cur = v.get("baseline", {}), v["current"]
        cap = v["env"].get("MCPINIT_MAX_PROCS", "128 (default)")
        rows.append([f"{int(n):,}", cap, ms("full_us"), ms("incremental_us"), ms("unchanged_us"),
                     num(base.get("cpu_pct"), 4) if base else "—", num(cur["cpu_pct"], 4),
                     num(base.get("wakeups_per_s")) if base else "—", num(cur["wakeups_per_s"]),
                     f"{num(base.get('rss_kb'))} / {num(base.get('hwm_kb'))}" if base else "—",
                     f"{num(cur['rss_kb'])} / {num(cur['hwm_kb'])}"])
    head = ["processes", "MCPINIT_MAX_PROCS", "full read (ms)", "incremental look (ms)",
            "skipped look (ms)", f"idle CPU % before ({s['baseline_rev']})", "idle CPU % now",
            "wake-ups/s before", "wake-ups/s now", "RSS / peak kB before", "RSS / peak kB now"]
    return table(head, rows)


def halt_table(r):
    rows = [[label, str(v["trials"]), num(v["halt_us"] / 1e3, 3), num(v["halt_us_max"] / 1e3, 3),
             str(v["leaked"]), str(v["leaked_max"])] for label, v in r["halt"].items()]
    return table(["mechanism", "trials", "to halted, median (ms)", "max (ms)",
                  "forks after the request, median", "max"], rows)


def scale_targets(r):
    s, pops = r.get("scale", {}), r.get("scale", {}).get("populations", {})
    rows = []

    def target(what, value, goal, ok):
        rows.append([what, "not run" if value is None else num(value, 4), goal,
                     "" if value is None or ok is None else verdict(ok)])

    unchanged = r.get("scan", {}).get("10000", {}).get("unchanged_us")
    target("a look at 10,000 unchanged descendants (ms)",
           None if unchanged is None else unchanged / 1e3, "< 1", unchanged and unchanged < 1000)
    cpu5k = pops.get("4999", {}).get("current", {}).get("cpu_pct")
    target("idle CPU, 5,000 idle descendants, cap 8,000 (%)", cpu5k, "< 0.1",
           cpu5k is not None and cpu5k < 0.1)
    cpu100 = pops.get("100", {}).get("current", {}).get("cpu_pct")
    target("idle CPU, 100 descendants, defaults, own cgroup: scale section (%)", cpu100,
           "< 0.03", cpu100 is not None and cpu100 < 0.03)
    idle = r.get("idle", {}).get("mcpinit", {}).get("cpu_pct")
    target("… the same in the idle section, beside the peers (%)", idle, "< 0.03",
           idle is not None and idle < 0.03)
    rss = pops.get("10000", {}).get("current", {}).get("rss_kb")
    target("RSS at 10,000 descendants (kB)", rss, "< 4,096", rss is not None and rss < 4096)
    hwm = pops.get("10000", {}).get("current", {}).get("hwm_kb")
    target("… peak RSS (VmHWM) at 10,000 (kB)", hwm, "not a target; shown", None)
    peak = r.get("storm", {}).get("mcpinit", {}).get("peak")
    target("fork storm: peak processes (cap 100)", peak, "≤ 200 (2× the cap)",
           peak is not None and peak <= 200)
    im = r.get("idleminute", {})
    if im.get("worst_minute_pct") is not None:
        target(f"idle at 5,000 over {im['seconds']} s, sweeps included: the worst minute "
               f"(mean {num(im['mean_pct'], 3)}, best minute {num(im['best_minute_pct'], 3)}; %)",
               im["worst_minute_pct"], "< 0.1", im["worst_minute_pct"] < 0.1)
    sh = r.get("shstorm", {})
    if "peak" in sh:
        target(f"shell-loop storm in the main child's group: peak by cgroup.procs, median of "
               f"{sh['trials']} (runs: {', '.join(str(p) for p in sh['peaks'])})", sh["peak"],
               "≤ 200 (2× the cap)", sh["peak"] <= 200)
    burst = r.get("burst", {}).get("term", {}).get("back_under_ms")
    target("burst: back under the cap, median (ms)", burst, "≤ 111 (as before)",
           burst is not None and burst <= 111)
    reap = r.get("reaping", {})
    ratio = (reap["mcpinit"]["reap_ms"] / reap["tini-static"]["reap_ms"]) if reap else None
    target("reaping 10,000 orphans, mcpinit ÷ tini-static", ratio, "≤ 0.99× (as before)",
           ratio is not None and ratio <= 0.99)
    if reap and "baseline" in reap:
        before = reap["baseline"]["reap_ms"] / reap["tini-static"]["reap_ms"]
        target("… the mcpinit before issue 14 ÷ tini-static, same runs", before,
               "(what \"as before\" measures today)", None)
    return table(["target (issue 14)", "measured", "goal", ""], rows)


def core_table(r):
    rows = [[k, num(v / 1e3, 2)] for k, v in r["core_ns"].items()]
    return table(["criterion bench", "median (µs)"], rows)


def table(head, rows):
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def plots(r, out):
    made = []
    if "scan" in r:
        data = out / "scan.tsv"
        data.write_text("".join(
            f"{n}\t{v.get('full_us', v.get('warm_us')) / int(n)}\t{v['cold_us'] / int(n)}"
            f"\t{v['floor_us'] / int(n)}\n"
            for n, v in r["scan"].items()))
        png = out / "benchmarks-scan.png"
        gnuplot(f"""
set terminal pngcairo size 800,480 font ",11"
set output '{png}'
set title "/proc scan: cost per process as the tree grows"
set logscale x
set xlabel "processes in the PID namespace"
set ylabel "µs per process"
set yrange [0:*]
set key top left
set grid
plot '{data}' using 1:2 with linespoints lw 2 title "mcpinit full read", \\
     '' using 1:3 with linespoints lw 2 title "mcpinit first scan (cmdlines read too)", \\
     '' using 1:4 with linespoints lw 2 dt 2 title "C floor: readdir + openat/read/close"
""")
        made.append(png)
    if "scale" in r:
        scan = r.get("scan", {})
        data = out / "scale.tsv"
        lines = []
        for n, v in r["scale"]["populations"].items():
            look = scan.get(str(v.get("requested", n)), {})
            cells = [look.get(k, float("nan")) / 1e3 if k in look else "NaN"
                     for k in ("full_us", "incremental_us", "unchanged_us")]
            cells += [v.get("baseline", {}).get("cpu_pct", "NaN"), v["current"]["cpu_pct"]]
            lines.append("\t".join(str(c) for c in [n, *cells]) + "\n")
        data.write_text("".join(lines))
        png = out / "benchmarks-scale.png"
        gnuplot(f"""
set terminal pngcairo size 900,520 font ",11"
set output '{png}'
set title "Look cost and idle CPU against the population"
set logscale x
set logscale y
set logscale y2
set xlabel "idle descendants"
set ylabel "one look (ms)"
set y2label "idle CPU (% of one core)"
set ytics nomirror
set y2tics
set key top left
set grid
plot '{data}' using 1:2 axes x1y1 with linespoints lw 2 title "look: full read", \\
     '' using 1:3 axes x1y1 with linespoints lw 2 title "look: incremental", \\
     '' using 1:4 axes x1y1 with linespoints lw 2 title "look: skipped (probe)", \\
     '' using 1:5 axes x1y2 with linespoints lw 2 dt 2 title "idle CPU: full scans (before)", \\
     '' using 1:6 axes x1y2 with linespoints lw 2 dt 2 title "idle CPU: incremental (now)"
""")
        made.append(png)
    series = [(n, out / f"storm-{n}.tsv") for n in NAMES if (out / f"storm-{n}.tsv").exists()]
    if series:
        png = out / "benchmarks-storm.png"
        curves = ", \\\n     ".join(
            f"'{path}' using 1:2 with lines lw 2 title '{name}'" for name, path in series)
        gnuplot(f"""
set terminal pngcairo size 800,480 font ",11"
set output '{png}'
set title "Fork storm: processes in the namespace (mcpinit cap 100)"
set xlabel "ms since the watch began"
set ylabel "processes (log scale)"
set logscale y
set yrange [1:*]
set key bottom right
set grid
set arrow from graph 0, first 100 to graph 1, first 100 nohead dt 3
plot {curves}
""")
        made.append(png)
    return made


def gnuplot(script):
    subprocess.run(["gnuplot"], input=script, text=True, check=True)


def markdown(r):
    m = r["machine"]
    loads = "; ".join(f"{k}: {', '.join(v)}" for k, v in r["loads"].items())
    parts = [
        f"Measured {m['date']} on {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, "
        f"Linux {m['kernel']}; mcpinit {m['mcpinit_rev']}; peers: {', '.join(m['peers'])}. "
        + (f"Each run in its own PID namespace and pids cgroup ({m['cgroups']})."
           if m.get("cgroups") else "Each run in its own PID namespace (no cgroup of its own).")
        + (" **Quick mode: smoke figures only.**" if r.get("quick") else ""),
        "",
        f"Load average (1, 5, 15 min) at the start and end of each section: {loads}.",
        "",
        comparison(r),
    ]
    if r.get("halt"):
        parts += ["", "### Storm brake: SIGSTOP against the cgroup freezer", "",
                  "`benchkit halt`: a forker forking (and reaping) as fast as it can is halted "
                  "50 ms in; time from the request until the kernel says it is halted (state "
                  "T, `FROZEN`, `frozen 1`), and the forks it completes after the request "
                  "(medians and maxima of the trials).", "", halt_table(r)]
    if "scan" in r:
        parts += ["", "### /proc scan scaling (criterion, in a PID namespace)", "",
                  scan_table(r)]
    if "scale" in r:
        sc = r["scale"]
        parts += ["", "### Scale (issue 14): look cost and idle cost against the population", "",
                  f"Before: mcpinit {sc['baseline_rev']} (a full read on every look); now: this "
                  f"mcpinit. Both side by side over the same {sc['windows']} × {sc['seconds']} s "
                  "windows (medians); look costs from the scan section.", "",
                  scale_table(r), "", "![Look cost and idle CPU against the population]"
                  "(benchmarks-scale.png)", "", scale_targets(r)]
    if "core_ns" in r:
        parts += ["", "### Decision core (criterion)", "", core_table(r)]
    parts += ["", f"Full run: {r.get('seconds', 0)} s."]
    return "\n".join(parts) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--docs", action="store_true")
    args = parser.parse_args()
    out = Path(args.out)
    r = json.loads((out / "results.json").read_text())
    text = markdown(r)
    (out / "results.md").write_text(text)
    made = plots(r, out)
    print(text)
    if args.docs:
        doc = ROOT / "docs" / "benchmarks.md"
        current = doc.read_text()
        start, end = current.index(BEGIN) + len(BEGIN), current.index(END)
        doc.write_text(current[:start] + "\n" + text + current[end:])
        for png in made:
            shutil.copy(png, ROOT / "docs" / png.name)
        print(f"updated {doc} and {', '.join(p.name for p in made)}")


if __name__ == "__main__":
    main()
