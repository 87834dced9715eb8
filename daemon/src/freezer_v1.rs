//! The cgroup v1 freezer (what `ctr task pause` uses on hybrid hosts) fires no tracepoint,
//! so its `freezer.state` files are polled and transitions reported like cgroup2 ones.
use std::{
    collections::HashMap,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

use podtrail_common::EventKind;

use crate::{decode::v1_freezer_event, event::Event};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Thawed,
    Freezing,
    Frozen,
}

impl State {
    fn parse(s: &str) -> Option<State> {
        match s.trim() {
            "THAWED" => Some(State::Thawed),
            "FREEZING" => Some(State::Freezing),
            "FROZEN" => Some(State::Frozen),
            _ => None,
        }
    }
}

/// Kinds to report for a transition (cgroup2 reports freeze, then frozen once complete;
/// unfreeze is followed by "no longer frozen").
fn transition(from: State, to: State) -> &'static [EventKind] {
    use State::*;
    match (from, to) {
        (Thawed, Freezing) => &[EventKind::CgroupFreeze],
        (Thawed, Frozen) => &[EventKind::CgroupFreeze, EventKind::CgroupFrozen],
        (Freezing, Frozen) => &[EventKind::CgroupFrozen],
        (Freezing | Frozen, Thawed) => &[EventKind::CgroupUnfreeze],
        _ => &[],
    }
}

struct Known {
    state: State,
    v1_id: u64,
    cgroup2_id: u64,
}

pub struct V1FreezerPoller {
    root: PathBuf,
    unified: Option<PathBuf>,
    hierarchy: i32,
    max_cgroups: usize,
    known: HashMap<PathBuf, Known>,
    first_scan: bool,
    /// Set when the last scan hit `max_cgroups` (reported once per occurrence by the caller).
    pub truncated: bool,
}

impl V1FreezerPoller {
    pub fn new(root: PathBuf, unified: Option<PathBuf>, max_cgroups: usize) -> Self {
        let hierarchy = freezer_hierarchy_id().unwrap_or(-1);
        V1FreezerPoller {
            root,
            unified,
            hierarchy,
            max_cgroups,
            known: HashMap::new(),
            first_scan: true,
            truncated: false,
        }
    }

    /// Scans the hierarchy once; returns events for every state change since the last scan.
    /// The first scan only learns states (a cgroup frozen before start is not a transition).
    pub fn poll(&mut self, now_boot_ns: u64) -> Vec<Event> {
        let mut events = Vec::new();
        let mut seen = HashMap::with_capacity(self.known.len());
        let mut stack = vec![(self.root.clone(), 0i32)];
        self.truncated = false;
        while let Some((dir, level)) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for entry in entries.flatten() {
                if !entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    continue;
                }
                if seen.len() >= self.max_cgroups {
                    self.truncated = true;
                    break;
                }
                let path = entry.path();
                let Ok(text) = std::fs::read_to_string(path.join("freezer.state")) else { continue };
                let Some(state) = State::parse(&text) else { continue };
                let rel = path.strip_prefix(&self.root).unwrap_or(&path).to_path_buf();
                let prev = self.known.remove(&rel);
                let from = prev.as_ref().map(|k| k.state).unwrap_or(State::Thawed);
                let (v1_id, cgroup2_id) = match &prev {
                    Some(k) => (k.v1_id, k.cgroup2_id),
                    None => (inode(&path), self.cgroup2_id(&rel)),
                };
                if !(self.first_scan && prev.is_none()) {
                    for kind in transition(from, state) {
                        events.push(v1_freezer_event(
                            now_boot_ns,
                            *kind,
                            cgroup2_id,
                            v1_id,
                            &format!("/{}", rel.display()),
                            level + 1,
                            self.hierarchy,
                        ));
                    }
                }
                seen.insert(rel, Known { state, v1_id, cgroup2_id });
                stack.push((path, level + 1));
            }
        }
        self.known = seen;
        self.first_scan = false;
        events
    }

    pub fn tracked(&self) -> usize {
        self.known.len()
    }

    /// runc uses the same relative path in every hierarchy, so the cgroup2 twin gives the id
    /// kernel events carry.
    fn cgroup2_id(&self, rel: &Path) -> u64 {
        self.unified.as_ref().map(|u| inode(&u.join(rel))).unwrap_or(0)
    }
}

fn inode(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.ino()).unwrap_or(0)
}

/// The freezer's hierarchy id from /proc/cgroups (`subsys hierarchy num_cgroups enabled`).
fn freezer_hierarchy_id() -> Option<i32> {
    let text = std::fs::read_to_string("/proc/cgroups").ok()?;
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.first() == Some(&"freezer"))
        .and_then(|f| f.get(1)?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The transition table on a plain directory tree standing in for freezer files:
    /// the parsing and diffing logic is pure file reading, the kernel part is tested as root
    /// in tests/freezer.rs against the real v1 freezer.
    #[test]
    fn reports_transitions_after_first_scan() {
        let dir = std::env::temp_dir().join(format!("podtrail-fz-{}", std::process::id()));
        let cg = dir.join("a/b");
        std::fs::create_dir_all(&cg).unwrap();
        std::fs::write(dir.join("a/freezer.state"), "THAWED\n").unwrap();
        std::fs::write(cg.join("freezer.state"), "FROZEN\n").unwrap();
        let mut p = V1FreezerPoller::new(dir.clone(), None, 100);
        assert!(p.poll(1).is_empty(), "first scan reports nothing");
        assert_eq!(p.tracked(), 2);
        std::fs::write(dir.join("a/freezer.state"), "FREEZING\n").unwrap();
        std::fs::write(cg.join("freezer.state"), "THAWED\n").unwrap();
        let ev = p.poll(2);
        let kinds: Vec<_> = ev.iter().map(|e| (e.kind, e.source)).collect();
        assert!(kinds.contains(&("cgroup_freeze", "v1_freezer_poll")), "{kinds:?}");
        assert!(kinds.contains(&("cgroup_unfreeze", "v1_freezer_poll")), "{kinds:?}");
        assert_eq!(ev.len(), 2);
        std::fs::write(dir.join("a/freezer.state"), "FROZEN\n").unwrap();
        let ev = p.poll(3);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].kind, "cgroup_frozen");
        match &ev[0].detail {
            crate::event::Detail::Cgroup(c) => {
                assert_eq!((c.path.as_str(), c.level, c.frozen), ("/a", 1, Some(true)))
            }
            other => panic!("unexpected detail {other:?}"),
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn scan_is_bounded() {
        let dir = std::env::temp_dir().join(format!("podtrail-fzb-{}", std::process::id()));
        for i in 0..5 {
            let d = dir.join(format!("c{i}"));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("freezer.state"), "THAWED\n").unwrap();
        }
        let mut p = V1FreezerPoller::new(dir.clone(), None, 3);
        p.poll(1);
        assert_eq!(p.tracked(), 3);
        assert!(p.truncated);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
