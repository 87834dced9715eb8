//! How a process came to run where it runs: `entrypoint` (started by the container's own
//! init chain), `ephemeral` (the same, in a debug container that joined another container's
//! namespaces), `runtime_exec` (a runtime's exec: runc/crun joined the container's
//! namespaces, as `kubectl exec` / `crictl exec` do), `nsenter` (any other host process that
//! setns'ed into a container's namespaces) or `host`.
//!
//! An entry is recorded when a successful setns moves a task into a mount namespace that is
//! not the host's, or -- for a non-runtime process -- into any namespace of a known
//! container (`nsenter -n` / `-i` alone). runc's own container start joins only the
//! sandbox's shared namespaces with setns and creates its mount namespace with unshare, so it
//! is not an entry. Children inherit their parent's entry; the record goes when the
//! thread-group leader exits.
use std::collections::HashMap;

use crate::event::{Detail, Event, NsInodes};

/// Bound on tracked processes (entries of processes that never exit are rare; on overflow
/// new entries are not recorded and their processes show their cgroup-based path).
const MAX_TRACKED: usize = 65_536;

/// Runtimes whose exec helpers call setns (runc names its children `runc:[1:CHILD]`, ...).
const RUNTIME_COMMS: &[&str] = &["runc", "crun", "youki"];

pub struct EntryTracker {
    by_tgid: HashMap<u32, &'static str>,
    host_mnt: u32,
    pub untracked: u64,
}

impl EntryTracker {
    pub fn new(host: &NsInodes) -> Self {
        EntryTracker { by_tgid: HashMap::new(), host_mnt: host.mnt, untracked: 0 }
    }

    fn record(&mut self, tgid: u32, path: &'static str) {
        if self.by_tgid.len() < MAX_TRACKED || self.by_tgid.contains_key(&tgid) {
            self.by_tgid.insert(tgid, path);
        } else {
            self.untracked += 1;
        }
    }

    /// The entry path of `ev`'s process; `fallback` is what a process with no recorded entry
    /// gets (`host`, or `entrypoint` / `ephemeral` in a container's cgroup).
    pub fn classify(&mut self, ev: &Event, fallback: &'static str) -> &'static str {
        self.classify_entry(ev, fallback).0
    }

    /// [`Self::classify`], plus whether this event started the process's entry session
    /// (its first setns into the container; later ones of the same session are not).
    pub fn classify_entry(&mut self, ev: &Event, fallback: &'static str) -> (&'static str, bool) {
        let tgid = ev.process.tgid;
        match &ev.detail {
            Detail::NsChange(n) if n.op == "setns" && n.errno == 0 && !n.changed.is_empty() => {
                let runtime = RUNTIME_COMMS.iter().any(|r| ev.process.comm.starts_with(r));
                let into_mnt = n.changed.contains("mnt") && ev.ns.mnt != self.host_mnt;
                if into_mnt || (!runtime && n.target.is_some()) {
                    let path = if runtime { "runtime_exec" } else { "nsenter" };
                    let started = !self.by_tgid.contains_key(&tgid);
                    self.record(tgid, path);
                    return (path, started);
                }
            }
            Detail::Fork(f) if !f.thread => {
                if let Some(path) = self.by_tgid.get(&tgid).copied() {
                    self.record(f.child_tgid, path);
                }
            }
            _ => {}
        }
        let path = self
            .by_tgid
            .get(&tgid)
            .copied()
            .unwrap_or(fallback);
        if let Detail::Exit(x) = &ev.detail
            && x.leader
        {
            self.by_tgid.remove(&tgid);
        }
        (path, false)
    }

    pub fn tracked(&self) -> usize {
        self.by_tgid.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil;

    const HOST: NsInodes = NsInodes { mnt: 1, pid: 2, net: 3, uts: 4, ipc: 5, user: 6, cgroup: 7, pid_for_children: 2 };

    fn ev(tgid: u32, comm: &str, mnt: u32, detail: Detail) -> Event {
        let mut e = testutil::event(0, tgid, None, detail);
        e.process.comm = comm.into();
        e.ns = NsInodes { mnt, ..HOST };
        e
    }

    fn setns(changed: Vec<&'static str>) -> Detail {
        testutil::setns(changed, None)
    }

    fn fork(child: u32) -> Detail {
        testutil::fork(child, child, false)
    }

    fn exit() -> Detail {
        testutil::exit(0, 1, None)
    }

    #[test]
    fn setns_into_container_mnt_is_an_entry_inherited_by_children() {
        let mut t = EntryTracker::new(&HOST);
        assert_eq!(t.classify(&ev(10, "nsenter", 99, setns(vec!["mnt"])), "host"), "nsenter");
        assert_eq!(t.classify(&ev(10, "nsenter", 99, fork(11)), "host"), "nsenter");
        assert_eq!(t.classify(&ev(11, "sh", 99, exit()), "entrypoint"), "nsenter");
        assert_eq!(t.classify(&ev(10, "nsenter", 99, exit()), "host"), "nsenter");
        assert_eq!(t.tracked(), 0, "leaders' exits drop their records");
        assert_eq!(t.classify(&ev(12, "runc:[2:INIT]", 99, setns(vec!["mnt", "pid"])), "host"), "runtime_exec");
    }

    #[test]
    fn joining_shared_sandbox_namespaces_is_not_an_entry() {
        let mut t = EntryTracker::new(&HOST);
        // runc's container start joins the pause container's ipc/uts but stays in the host
        // mnt namespace until it unshares its own.
        assert_eq!(t.classify(&ev(20, "runc:[1:CHILD]", 1, setns(vec!["ipc", "uts"])), "entrypoint"), "entrypoint");
        assert_eq!(t.classify(&ev(21, "sh", 1, fork(22)), "host"), "host");
        assert_eq!(t.tracked(), 0);
    }

    #[test]
    fn nsenter_into_a_containers_ipc_alone_is_an_entry_but_runc_joining_it_is_not() {
        let mut t = EntryTracker::new(&HOST);
        let with_target = |changed| testutil::setns(changed, Some(testutil::meta("c", 5)));
        assert_eq!(t.classify(&ev(30, "nsenter", 1, with_target(vec!["ipc"])), "host"), "nsenter");
        assert_eq!(t.classify(&ev(31, "runc:[1:CHILD]", 1, with_target(vec!["ipc"])), "host"), "host");
        // Without a known target and no mount namespace change, nothing says "container".
        assert_eq!(t.classify(&ev(32, "nsenter", 1, setns(vec!["net"])), "host"), "host");
    }
}
