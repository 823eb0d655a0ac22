//! Which orphans were servers: the processes mcpinit saw in a server unit (a keyed one,
//! `npm exec`, `uvx`…) are remembered by pid and start time while they live, so that
//! when their launcher dies and they are reparented to mcpinit, their unit is known
//! for what it was: a leaked server, no longer tracked by anyone. An orphan never seen
//! in a server unit (a daemon an entrypoint started with a double fork: cron, nginx)
//! is left alone, as tini, dumb-init and catatonit leave it.

use crate::core::process::{ProcId, Snapshot};
use crate::core::units::Unit;
use std::collections::HashSet;

/// The live processes seen in a server unit, kept between looks.
#[derive(Debug, Default)]
pub struct Lineage {
    members: HashSet<ProcId>,
}

impl Lineage {
    /// Remember the members of the keyed units of a complete look, forget the processes
    /// gone from it, and mark `units`. Bounded by the processes of the look.
    pub fn remember(&mut self, snapshot: &Snapshot, units: &mut [Unit]) {
        let live = |id: &ProcId| {
            snapshot
                .get(id.pid)
                .is_some_and(|p| p.start == id.start && !p.is_zombie())
        };
        let mut next: HashSet<ProcId> = self.members.iter().copied().filter(live).collect();
        for unit in units.iter().filter(|u| u.key.is_some()) {
            next.extend(
                unit.pids
                    .iter()
                    .filter_map(|&pid| snapshot.get(pid))
                    .map(|p| p.id()),
            );
        }
        self.members = next;
        self.mark(snapshot, units);
    }

    /// Mark each unit that is keyed or holds a remembered process as `served`, without
    /// learning or forgetting anything (for a look that may be incomplete).
    pub fn mark(&self, snapshot: &Snapshot, units: &mut [Unit]) {
        for unit in units.iter_mut() {
            unit.served = unit.key.is_some()
                || unit.pids.iter().any(|&pid| {
                    snapshot
                        .get(pid)
                        .is_some_and(|p| self.members.contains(&p.id()))
                });
        }
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::testkit::*;
    use crate::core::units::{units, UnitId};

    fn look(lineage: &mut Lineage, procs: Vec<crate::core::process::Proc>) -> Vec<(UnitId, bool)> {
        let snap = snapshot(procs);
        let mut u = units(&snap, Some(MAIN), &defaults());
        lineage.remember(&snap, &mut u);
        u.iter()
            .map(|u| (u.id, u.served))
            .filter(|(id, _)| *id != UnitId::Main)
            .collect()
    }

    #[test]
    fn a_server_stays_served_after_its_launcher_dies_and_only_while_it_lives() {
        let mut lineage = Lineage::default();
        let backend = p(20, MAIN, MAIN, 100, "node backend");
        let mut first = vec![backend.clone()];
        first.extend(server(30, 20, 50, "@x/a"));
        first.push(p(40, MAIN, MAIN, 50, "sleep 300"));
        assert_eq!(
            look(&mut lineage, first.clone()),
            [
                (UnitId::Subtree(20), false),
                (UnitId::Group(30), true),
                (UnitId::Subtree(40), false)
            ]
        );
        assert_eq!(lineage.len(), 3, "npm exec, sh and node");
        // npm exec and sh died: node is an orphan of group 30, still a server's.
        let node = first[3].clone();
        let mut orphan = node.clone();
        orphan.ppid = ME;
        let mut daemon = first[4].clone();
        daemon.ppid = ME;
        assert_eq!(
            look(&mut lineage, vec![backend.clone(), orphan.clone(), daemon]),
            [
                (UnitId::Subtree(20), false),
                (UnitId::Group(30), true),
                (UnitId::Subtree(40), false)
            ]
        );
        assert_eq!(lineage.len(), 1, "the dead are forgotten");
        // Its pid reused by another process: not remembered.
        let mut reused = orphan;
        reused.start += 1;
        assert_eq!(
            look(&mut lineage, vec![backend, reused]),
            [(UnitId::Subtree(20), false), (UnitId::Group(30), false)]
        );
        assert!(lineage.is_empty());
    }
}
