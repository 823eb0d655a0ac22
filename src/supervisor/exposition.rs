//! What the metrics endpoint shows of the loop: the figures of a scrape, taken from
//! what the loop keeps anyway plus the little only the metrics show (`Tally`), and the
//! `/healthz` verdict, the same one `health` gives.

use super::Supervisor;
use crate::core::units::UnitId;
use crate::supervisor::terminate::Event;
use crate::surface::metrics::{self, EndedCounts, Figures, Histogram, Reply, Roles, Route};
use crate::surface::statefile::{self, Role};
use crate::surface::status::Unhealthy;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How terminations ended and how long scans took: counted whether or not metrics
/// are served (a few adds per event), so that nothing differs with the endpoint on.
#[derive(Default)]
pub(super) struct Tally {
    ended: EndedCounts,
    scans: Histogram,
}

impl Tally {
    pub(super) fn scanned(&mut self, took: Duration) {
        self.scans.observe(took);
    }

    pub(super) fn event(&mut self, event: &Event) {
        if let Event::Gone { reason, ended, .. } = event {
            self.ended.add(reason.index(), *ended);
        }
    }
}

impl Supervisor {
    /// Do what the endpoint's sockets are ready for, and drop connections whose
    /// deadline passed.
    pub(super) fn serve(&mut self, ready: &[bool], now: Instant) {
        let Some(mut endpoint) = self.endpoint.take() else {
            return;
        };
        let due = endpoint.next_deadline().is_some_and(|at| now >= at);
        if due || ready.iter().any(|&r| r) {
            let requests = endpoint.counts();
            endpoint.service(ready, now, |route| self.reply(route, requests));
        }
        self.endpoint = Some(endpoint);
    }

    fn reply(&self, route: Route, requests: [u64; metrics::OUTCOMES.len()]) -> Reply {
        match route {
            Route::Metrics(format) => Reply {
                status: 200,
                content_type: format.content_type(),
                body: metrics::render(&self.figures(requests), format),
            },
            Route::Healthz => {
                let (status, body) = match self.health() {
                    Ok(summary) => (200, format!("healthy: {summary}\n")),
                    Err(reason) => (503, format!("unhealthy: {reason}\n")),
                };
                Reply {
                    status,
                    content_type: "text/plain; charset=utf-8",
                    body,
                }
            }
        }
    }

    pub(super) fn figures(&self, requests: [u64; metrics::OUTCOMES.len()]) -> Figures {
        let c = &self.counters;
        let units = &self.last.units;
        let mut roles = Roles::default();
        let mut instances: HashMap<&str, usize> = HashMap::new();
        for unit in units {
            match (unit.id, statefile::role(unit)) {
                (UnitId::Main, _) => roles.main += 1,
                (_, Role::Server) => roles.server += 1,
                (_, Role::Orphan) => roles.orphan += 1,
                _ => roles.other += 1,
            }
            if let Some(key) = &unit.key {
                *instances.entry(key).or_default() += 1;
            }
        }
        let busy = self.terminations.busy();
        Figures {
            version: env!("CARGO_PKG_VERSION"),
            started_unix_ms: self.started_unix_ms,
            terminated: [
                c.terminated_duplicate,
                c.terminated_orphan,
                c.terminated_cap,
                c.terminated_memory,
            ],
            ended: self.tally.ended.clone(),
            escalations: c.escalations,
            crashes: c.crashes,
            spared: c.spared,
            env_splits: c.env_splits,
            input_route: crate::sys::close_input::known_routes()
                .map_or("unprobed", |r| r.close.as_str()),
            zombies_reaped: c.zombies_reaped,
            signals_forwarded: c.signals_forwarded,
            live: units.iter().map(|u| u.pids.len()).sum(),
            rss: units.iter().map(|u| u.rss).sum(),
            peak_procs: c.peak_procs,
            tasks: self.last.snapshot.tasks(),
            peak_tasks: c.peak_tasks,
            peak_rss: c.peak_rss,
            max_procs: self.config.max_procs,
            max_memory: self.config.max_memory,
            cgroup_pids_max: self.limits.pids_max,
            cgroup_memory_max: self.limits.memory_max,
            units: roles,
            terminating: units.iter().filter(|u| busy.contains(&u.id)).count(),
            instances: instances
                .into_iter()
                .map(|(k, n)| (k.to_string(), n))
                .collect(),
            scans: self.tally.scans.clone(),
            requests,
        }
    }

    /// `health`'s verdict on the document the state file would hold now: rendered,
    /// read back and judged by the very code `mcpinit health` runs.
    fn health(&self) -> Result<String, Unhealthy> {
        let terminating = self.terminations.reasons();
        let view = self.view(&terminating);
        let now = statefile::unix_ms();
        let state = view.document(now).with_processes(Vec::new());
        crate::surface::status::verdict(&state, now)
    }
}
