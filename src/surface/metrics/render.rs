//! Figures -> the text exposition format: Prometheus 0.0.4 by default, OpenMetrics
//! 1.0.0 when the scraper asks for it. The two differ only in how a counter's family
//! is named (OpenMetrics drops `_total` from the metadata lines) and in the closing
//! `# EOF`.

use super::{Ended, Figures, OUTCOMES, REASONS};
use std::fmt::Write;

/// At most this many keys get a series of their own; the rest are summed into
/// `mcpinit_server_instances_unlisted`, so a leak of many distinct servers cannot grow
/// the scrape (or the scraper's database) without bound.
pub const MAX_KEYS: usize = 32;
/// A key longer than this is cut (at a character boundary) before it becomes a label.
pub const MAX_KEY_BYTES: usize = 160;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Prometheus,
    OpenMetrics,
}

impl Format {
    /// From a request's `Accept` header: OpenMetrics only when named.
    pub fn from_accept(accept: &str) -> Format {
        if accept.contains("application/openmetrics-text") {
            Format::OpenMetrics
        } else {
            Format::Prometheus
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

struct Out {
    text: String,
    format: Format,
}

impl Out {
    /// The metadata of a family; `name` is the sample name for gauges and histograms,
    /// and the name without `_total` for counters.
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let meta = match (kind, self.format) {
            ("counter", Format::Prometheus) => format!("{name}_total"),
            _ => name.to_string(),
        };
        let _ = writeln!(self.text, "# HELP {meta} {help}");
        let _ = writeln!(self.text, "# TYPE {meta} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (label, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{label}=\"{}\"", escape_label(v));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
    }

    fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, "counter", help);
        self.sample(&format!("{name}_total"), &[], value);
    }

    fn gauge(&mut self, name: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, "gauge", help);
        self.sample(name, &[], value);
    }
}

/// The scrape's text.
pub fn render(f: &Figures, format: Format) -> String {
    let mut out = Out {
        text: String::with_capacity(4096 + f.instances.len().min(MAX_KEYS) * 200),
        format,
    };
    terminations(&mut out, f);
    out.counter(
        "mcpinit_escalations",
        "Terminations that needed SIGKILL after the kill grace.",
        f.escalations,
    );
    out.counter(
        "mcpinit_crashes",
        "Instances a gateway tracked that had to be ended by a signal: a crash to a gateway that counts them as MetaMCP does.",
        f.crashes,
    );
    out.counter(
        "mcpinit_spared",
        "Instances a gateway tracked that dedupe or the idle rule left alone: no clean end was possible.",
        f.spared,
    );
    out.counter(
        "mcpinit_env_splits",
        "Server keys seen running under more environments than expected (more than 2): their instances are never duplicates of each other.",
        f.env_splits,
    );
    out.counter(
        "mcpinit_zombies_reaped",
        "Exited processes reaped, the main child not counted.",
        f.zombies_reaped,
    );
    out.counter(
        "mcpinit_signals_forwarded",
        "Signals forwarded to the main child (or its group with -g).",
        f.signals_forwarded,
    );
    population(&mut out, f);
    instances(&mut out, f);
    scans(&mut out, f);
    endpoint(&mut out, f);
    out.gauge(
        "mcpinit_start_time_seconds",
        "When mcpinit started, in seconds since the Unix epoch.",
        seconds(f.started_unix_ms),
    );
    out.family(
        "mcpinit_build",
        "gauge",
        "Always 1; the version as a label.",
    );
    out.sample("mcpinit_build", &[("version", f.version)], 1);
    out.family(
        "mcpinit_input_route",
        "gauge",
        "Always 1; how server inputs are closed here as a label: pidfd, ptrace, none, unprobed.",
    );
    out.sample("mcpinit_input_route", &[("route", f.input_route)], 1);
    if format == Format::OpenMetrics {
        out.text.push_str("# EOF\n");
    }
    out.text
}

fn terminations(out: &mut Out, f: &Figures) {
    out.family(
        "mcpinit_terminations",
        "counter",
        "Units mcpinit began to terminate, by reason (dry runs not counted).",
    );
    for (reason, n) in REASONS.iter().zip(f.terminated) {
        out.sample("mcpinit_terminations_total", &[("reason", reason)], n);
    }
    out.family(
        "mcpinit_terminations_ended",
        "counter",
        "Terminated units now gone, by reason and by the last step they got: \
         eof (input closed), term (SIGTERM), kill (SIGKILL).",
    );
    for (i, reason) in REASONS.iter().enumerate() {
        for ended in Ended::ALL {
            let labels = [("reason", *reason), ("ended", ended.as_str())];
            out.sample(
                "mcpinit_terminations_ended_total",
                &labels,
                f.ended.get(i, ended),
            );
        }
    }
}

fn population(out: &mut Out, f: &Figures) {
    out.gauge(
        "mcpinit_processes",
        "Live descendants at the last scan (mcpinit and zombies not counted).",
        f.live,
    );
    out.gauge(
        "mcpinit_rss_bytes",
        "Total resident memory of the live descendants at the last scan.",
        f.rss,
    );
    out.gauge(
        "mcpinit_peak_processes",
        "Most live descendants seen at one scan.",
        f.peak_procs,
    );
    out.gauge(
        "mcpinit_tasks",
        "Threads of the live descendants at the last scan: what the cgroup's pids.max counts.",
        f.tasks,
    );
    out.gauge(
        "mcpinit_peak_tasks",
        "Most threads of live descendants seen at one scan.",
        f.peak_tasks,
    );
    out.gauge(
        "mcpinit_peak_rss_bytes",
        "Highest total RSS seen at one scan.",
        f.peak_rss,
    );
    out.gauge(
        "mcpinit_max_procs",
        "MCPINIT_MAX_PROCS in force (0 = no cap).",
        f.max_procs,
    );
    out.gauge(
        "mcpinit_max_memory_bytes",
        "MCPINIT_MAX_MEMORY in force (0 = no cap).",
        f.max_memory,
    );
    if let Some(n) = f.cgroup_pids_max {
        out.gauge(
            "mcpinit_cgroup_pids_max",
            "The container cgroup's pids.max.",
            n,
        );
    }
    if let Some(n) = f.cgroup_memory_max {
        out.gauge(
            "mcpinit_cgroup_memory_max_bytes",
            "The container cgroup's memory limit.",
            n,
        );
    }
    out.family(
        "mcpinit_units",
        "gauge",
        "Units (what is terminated together) at the last scan, by role.",
    );
    let u = f.units;
    for (role, n) in [
        ("main", u.main),
        ("server", u.server),
        ("orphan", u.orphan),
        ("other", u.other),
    ] {
        out.sample("mcpinit_units", &[("role", role)], n);
    }
    out.gauge(
        "mcpinit_terminating_units",
        "Units being terminated right now (SIGTERM sent, not yet gone).",
        f.terminating,
    );
}

fn instances(out: &mut Out, f: &Figures) {
    let (listed, unlisted, keys) = bounded_keys(&f.instances);
    out.gauge(
        "mcpinit_server_keys",
        "Distinct launcher keys (servers) among the live units.",
        keys,
    );
    out.family(
        "mcpinit_server_instances",
        "gauge",
        "Live instances (units) per launcher key; the keys with the most instances.",
    );
    for (key, n) in &listed {
        out.sample("mcpinit_server_instances", &[("key", key)], n);
    }
    out.gauge(
        "mcpinit_server_instances_unlisted",
        "Live instances of keys beyond the listed ones.",
        unlisted,
    );
}

/// Keys cut to `MAX_KEY_BYTES` (merging any that become equal), the `MAX_KEYS` with the
/// most instances (ties by key, so the set is stable), the instances of the others,
/// and the number of distinct keys.
fn bounded_keys(instances: &[(String, usize)]) -> (Vec<(String, usize)>, usize, usize) {
    let mut merged: Vec<(String, usize)> = Vec::new();
    let mut distinct: Vec<&str> = instances.iter().map(|(k, _)| k.as_str()).collect();
    distinct.sort_unstable();
    distinct.dedup();
    let mut cut: Vec<(String, usize)> = instances
        .iter()
        .map(|(k, n)| (truncate(k, MAX_KEY_BYTES), *n))
        .collect();
    cut.sort();
    for (key, n) in cut {
        match merged.last_mut() {
            Some((last, total)) if *last == key => *total += n,
            _ => merged.push((key, n)),
        }
    }
    merged.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let unlisted = merged.iter().skip(MAX_KEYS).map(|(_, n)| n).sum();
    merged.truncate(MAX_KEYS);
    (merged, unlisted, distinct.len())
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

fn scans(out: &mut Out, f: &Figures) {
    out.family(
        "mcpinit_scan_duration_seconds",
        "histogram",
        "Time one look at the process tree took (reading /proc).",
    );
    let name = "mcpinit_scan_duration_seconds";
    for (bound, n) in f.scans.cumulative() {
        let le = float(bound);
        out.sample(&format!("{name}_bucket"), &[("le", &le)], n);
    }
    out.sample(&format!("{name}_count"), &[], f.scans.count());
    out.sample(&format!("{name}_sum"), &[], float(f.scans.sum_seconds()));
}

fn endpoint(out: &mut Out, f: &Figures) {
    out.family(
        "mcpinit_metrics_requests",
        "counter",
        "Connections to this endpoint, by what became of them.",
    );
    for (outcome, n) in OUTCOMES.iter().zip(f.requests) {
        out.sample(
            "mcpinit_metrics_requests_total",
            &[("outcome", outcome.as_str())],
            n,
        );
    }
}

/// A float as both formats accept it: `1.0`, `0.0005`, `+Inf`.
fn float(value: f64) -> String {
    if value.is_infinite() {
        return if value > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let text = format!("{value}");
    if text.contains('.') {
        text
    } else {
        format!("{text}.0")
    }
}

fn seconds(unix_ms: u64) -> String {
    format!("{}.{:03}", unix_ms / 1000, unix_ms % 1000)
}

/// A label value as the text format needs it: backslash, double quote and newline
/// escaped; other control characters (which a command line may hold) replaced, since
/// the format has no escape for them and a terminal showing the scrape must not act
/// on them.
pub fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}
