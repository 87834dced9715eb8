//! Container lifecycle facts that need memory across events: how long a cgroup stayed
//! frozen, whether an exit (or an OOM victim) was a container's init, and how often a
//! pod/container name stopped before (restart counts). Bounded maps; no I/O.
use std::collections::HashMap;

use crate::{
    cri::ContainerMeta,
    event::{ContainerExit, Detail, Event},
};

/// Bounds: cgroups frozen at once, and pod/container names with exit history.
const MAX_FROZEN: usize = 16_384;
const MAX_EXIT_HISTORY: usize = 16_384;

/// (source is the v1 poller, cgroup id in that hierarchy).
type FreezeKey = (bool, u64);

#[derive(Default)]
pub struct Lifecycle {
    frozen_since: HashMap<FreezeKey, u64>,
    /// (pod uid, container name) -> (exits seen, last exit ts).
    exits: HashMap<(String, String), (u32, u64)>,
}

impl Lifecycle {
    /// Freeze bookkeeping; works on every event (no metadata needed).
    pub fn observe(&mut self, ev: &mut Event) {
        let v1 = ev.source == "v1_freezer_poll";
        let ts = ev.ts_boot_ns;
        let Detail::Cgroup(c) = &mut ev.detail else { return };
        let key = (v1, c.id);
        match (ev.kind, c.frozen) {
            ("cgroup_freeze", _) | ("cgroup_frozen", Some(true)) => {
                if self.frozen_since.len() < MAX_FROZEN || self.frozen_since.contains_key(&key) {
                    self.frozen_since.entry(key).or_insert(ts);
                }
            }
            // cgroup2 reports unfreeze, then "no longer frozen"; the v1 poller only unfreeze.
            ("cgroup_unfreeze", _) | ("cgroup_frozen", Some(false)) => {
                c.frozen_duration_ns = self.frozen_since.get(&key).map(|t| ts.saturating_sub(*t));
                if v1 || ev.kind == "cgroup_frozen" {
                    self.frozen_since.remove(&key);
                }
            }
            ("cgroup_rmdir", _) => {
                self.frozen_since.remove(&key);
            }
            _ => {}
        }
    }

    /// Facts that need the event's container (call once per event whose metadata names
    /// one: directly or on its `late` copy, never both).
    pub fn with_container(&mut self, ev: &mut Event) {
        let Some(meta) = ev.metadata.container.clone() else { return };
        let ts = ev.ts_boot_ns;
        let tgid = ev.process.tgid;
        let pid_ns = ev.ns.pid;
        match &mut ev.detail {
            Detail::Exit(x) if x.leader && is_init(&meta, tgid, x.ns_pid, pid_ns) => {
                x.container_exit = Some(self.container_stopped(&meta, ts));
            }
            Detail::Oom(o) => {
                o.victim_is_init = Some(is_init(&meta, o.victim_tgid, o.victim_ns_pid, 0));
            }
            _ => {}
        }
    }

    fn container_stopped(&mut self, meta: &ContainerMeta, ts: u64) -> ContainerExit {
        let key = (meta.pod_uid.clone(), meta.container.clone());
        if self.exits.len() >= MAX_EXIT_HISTORY && !self.exits.contains_key(&key) {
            // Forget the name that stopped longest ago.
            if let Some(oldest) = self.exits.iter().min_by_key(|(_, (_, t))| *t).map(|(k, _)| k.clone()) {
                self.exits.remove(&oldest);
            }
        }
        let (count, last) = self.exits.entry(key).or_insert((0, 0));
        let out = ContainerExit {
            restart_count: *count,
            attempt: meta.attempt,
            since_previous_exit_ns: (*count > 0).then(|| ts.saturating_sub(*last)),
        };
        *count += 1;
        *last = ts;
        out
    }
}

/// A container's init: the pid CRI reported, or -- when CRI never saw it running (a
/// short-lived container) -- pid 1 of the container's own pid namespace.
fn is_init(meta: &ContainerMeta, tgid: u32, ns_pid: u32, pid_ns: u32) -> bool {
    if meta.pid != 0 {
        return meta.pid == tgid;
    }
    ns_pid == 1 && (meta.ns.pid == 0 || pid_ns == 0 || meta.ns.pid == pid_ns)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{
        event::{CgroupDetail, Metadata, NsInodes, Process},
        testutil,
    };

    fn cgroup_ev(kind: &'static str, source: &'static str, ts: u64, frozen: Option<bool>) -> Event {
        Event {
            seq: 0,
            ts_boot_ns: ts,
            kind,
            source,
            process: Process::default(),
            cgroup_id: 9,
            ns: NsInodes::default(),
            metadata: Metadata::host(),
            entry_path: "host",
            entry_started: false,
            detail: Detail::Cgroup(CgroupDetail {
                id: 42,
                path: "/x".into(),
                path_truncated: false,
                level: 1,
                root: 0,
                frozen,
                frozen_duration_ns: None,
            }),
        }
    }

    fn duration(ev: &Event) -> Option<u64> {
        match &ev.detail {
            Detail::Cgroup(c) => c.frozen_duration_ns,
            _ => None,
        }
    }

    #[test]
    fn cgroup2_freeze_duration_runs_from_freeze_to_no_longer_frozen() {
        let mut l = Lifecycle::default();
        for (kind, ts, frozen) in [("cgroup_freeze", 100, None), ("cgroup_frozen", 150, Some(true))] {
            let mut e = cgroup_ev(kind, "kernel", ts, frozen);
            l.observe(&mut e);
            assert_eq!(duration(&e), None);
        }
        let mut e = cgroup_ev("cgroup_unfreeze", "kernel", 1_100, None);
        l.observe(&mut e);
        assert_eq!(duration(&e), Some(1_000));
        let mut e = cgroup_ev("cgroup_frozen", "kernel", 1_200, Some(false));
        l.observe(&mut e);
        assert_eq!(duration(&e), Some(1_100));
        assert!(l.frozen_since.is_empty());
        // The v1 poller's cgroup ids are another hierarchy's: never mixed with cgroup2 ones.
        let mut e = cgroup_ev("cgroup_unfreeze", "v1_freezer_poll", 2_000, Some(false));
        l.observe(&mut e);
        assert_eq!(duration(&e), None);
    }

    fn meta(pid: u32) -> Arc<ContainerMeta> {
        testutil::meta("c", pid)
    }

    fn exit_ev(tgid: u32, ns_pid: u32, ts: u64, m: Arc<ContainerMeta>) -> Event {
        let mut e = testutil::event(0, tgid, Some(&m), testutil::exit(3, ns_pid, None));
        e.ts_boot_ns = ts;
        e
    }

    fn container_exit(ev: &Event) -> Option<ContainerExit> {
        match &ev.detail {
            Detail::Exit(x) => x.container_exit.clone(),
            _ => None,
        }
    }

    #[test]
    fn init_exits_count_restarts_per_pod_and_container_name() {
        let mut l = Lifecycle::default();
        // Another process of the container: not a container stop.
        let mut e = exit_ev(501, 7, 10, meta(500));
        l.with_container(&mut e);
        assert_eq!(container_exit(&e), None);
        let mut first = exit_ev(500, 1, 1_000, meta(500));
        l.with_container(&mut first);
        let c = container_exit(&first).unwrap();
        assert_eq!((c.restart_count, c.since_previous_exit_ns), (0, None));
        // The next attempt never got a pid from CRI: pid 1 of its pid namespace is its init.
        let mut second = exit_ev(600, 1, 3_000, meta(0));
        l.with_container(&mut second);
        let c = container_exit(&second).unwrap();
        assert_eq!((c.restart_count, c.since_previous_exit_ns), (1, Some(2_000)));
    }
}
