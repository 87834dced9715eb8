//! How a process came to run where it runs: `entrypoint` (started by the container's own
//! init chain), `runtime_exec` (a runtime's exec: runc/crun joined the container's
//! namespaces, as `kubectl exec` / `crictl exec` do), `nsenter` (any other host process that
//! setns'ed into a non-host mount namespace) or `host`.
//!
//! An entry is recorded when a successful setns moves a task into a mount namespace that is
//! not the host's: runc's own container start joins only the sandbox's shared namespaces
//! with setns and creates its mount namespace with unshare, so it is not an entry. Children
//! inherit their parent's entry; the record goes when the thread-group leader exits.
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

    /// The entry path of `ev`'s process; `in_container` says whether its cgroup belongs to
    /// a container (used when no entry was recorded).
    pub fn classify(&mut self, ev: &Event, in_container: bool) -> &'static str {
        let tgid = ev.process.tgid;
        match &ev.detail {
            Detail::NsChange(n)
                if n.op == "setns"
                    && n.errno == 0
                    && n.changed.contains(&"mnt")
                    && ev.ns.mnt != self.host_mnt =>
            {
                let comm = ev.process.comm.as_str();
                let path = if RUNTIME_COMMS.iter().any(|r| comm.starts_with(r)) {
                    "runtime_exec"
                } else {
                    "nsenter"
                };
                self.record(tgid, path);
                return path;
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
            .unwrap_or(if in_container { "entrypoint" } else { "host" });
        if let Detail::Exit(x) = &ev.detail
            && x.leader
        {
            self.by_tgid.remove(&tgid);
        }
        path
    }

    pub fn tracked(&self) -> usize {
        self.by_tgid.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{ExitDetail, ForkDetail, Metadata, NsChangeDetail, Process};

    const HOST: NsInodes = NsInodes { mnt: 1, pid: 2, net: 3, uts: 4, ipc: 5, user: 6, cgroup: 7, pid_for_children: 2 };

    fn ev(tgid: u32, comm: &str, mnt: u32, detail: Detail) -> Event {
        Event {
            seq: 0,
            ts_boot_ns: 0,
            kind: "x",
            source: "kernel",
            process: Process { pid: tgid, tgid, comm: comm.into(), ..Default::default() },
            cgroup_id: 1,
            ns: NsInodes { mnt, ..HOST },
            metadata: Metadata::host(),
            entry_path: "host",
            detail,
        }
    }

    fn setns(changed: Vec<&'static str>) -> Detail {
        Detail::NsChange(NsChangeDetail {
            op: "setns",
            flags: 0,
            requested: vec![],
            fd: Some(3),
            errno: 0,
            error: None,
            changed,
            before: HOST,
            target: None,
        })
    }

    fn fork(child: u32) -> Detail {
        Detail::Fork(ForkDetail { child_pid: child, child_tgid: child, thread: false, clone_flags: None, new_namespaces: vec![] })
    }

    fn exit() -> Detail {
        Detail::Exit(ExitDetail { code: Some(0), signal: None, signal_name: None, core_dumped: false, raw: 0, leader: true, group_dead: Some(true) })
    }

    #[test]
    fn setns_into_container_mnt_is_an_entry_inherited_by_children() {
        let mut t = EntryTracker::new(&HOST);
        assert_eq!(t.classify(&ev(10, "nsenter", 99, setns(vec!["mnt"])), false), "nsenter");
        assert_eq!(t.classify(&ev(10, "nsenter", 99, fork(11)), false), "nsenter");
        assert_eq!(t.classify(&ev(11, "sh", 99, exit()), true), "nsenter");
        assert_eq!(t.classify(&ev(10, "nsenter", 99, exit()), false), "nsenter");
        assert_eq!(t.tracked(), 0, "leaders' exits drop their records");
        assert_eq!(t.classify(&ev(12, "runc:[2:INIT]", 99, setns(vec!["mnt", "pid"])), false), "runtime_exec");
    }

    #[test]
    fn joining_shared_sandbox_namespaces_is_not_an_entry() {
        let mut t = EntryTracker::new(&HOST);
        // runc's container start joins the pause container's ipc/uts but stays in the host
        // mnt namespace until it unshares its own.
        assert_eq!(t.classify(&ev(20, "runc:[1:CHILD]", 1, setns(vec!["ipc", "uts"])), true), "entrypoint");
        assert_eq!(t.classify(&ev(21, "sh", 1, fork(22)), false), "host");
        assert_eq!(t.tracked(), 0);
    }
}
