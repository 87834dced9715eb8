//! CRI enrichment on the event path: an O(1) cache lookup per event, plus the `pending` ->
//! `late` protocol for containers whose metadata is not known yet when their first events
//! arrive (a short-lived container can start, exec and exit within one CRI round trip).
use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::sync::mpsc;

use crate::{
    cri::{Metadata, MetadataCache},
    event::{Detail, Event, NsInodes},
};

/// How long a new cgroup counts as "maybe a container that CRI has not reported yet".
const PENDING_WINDOW: Duration = Duration::from_secs(30);
/// Bounds on remembered cgroups and on events held for a `late` re-emit.
const MAX_RECENT_CGROUPS: usize = 16_384;
const MAX_PENDING_EVENTS: usize = 16_384;

/// Paths of cgroups created since start (cgroup2-relative path -> id). A container's cgroup
/// is removed when it exits, so for short-lived containers this is the only way the CRI sync
/// can map a container's `cgroupsPath` to the id its events carried.
pub type CreatedCgroups = Arc<Mutex<HashMap<String, u64>>>;

/// An event waiting for metadata (its cgroup is new) and/or a setns target (it entered
/// non-host namespaces no known container has yet).
struct Pending {
    at: Instant,
    event: Event,
    needs_metadata: bool,
    needs_target: bool,
}

pub struct Enricher {
    pub cache: MetadataCache,
    /// Nudges the CRI sync when a cgroup appears (`try_send`: never waits).
    pub created_tx: mpsc::Sender<()>,
    pub created_paths: CreatedCgroups,
    recent: HashMap<u64, Instant>,
    pending: VecDeque<Pending>,
    /// The daemon's own (host) namespaces: entering anything else may be a container that
    /// CRI has not reported yet.
    host_ns: NsInodes,
    seen_generation: u64,
    /// Pending events evicted before their metadata arrived because the buffer was full.
    pub late_evicted: u64,
}

impl Enricher {
    pub fn new(cache: MetadataCache, created_tx: mpsc::Sender<()>, created_paths: CreatedCgroups) -> Self {
        Enricher {
            cache,
            created_tx,
            created_paths,
            recent: HashMap::new(),
            pending: VecDeque::new(),
            host_ns: crate::cri::ns_inodes(std::process::id()),
            seen_generation: 0,
            late_evicted: 0,
        }
    }

    /// Sets `ev.metadata` (and a setns's target). Returns what the event still waits for
    /// (metadata, target) when it should be kept for a `late` re-emit: the caller passes the
    /// finished event to [`Enricher::hold`].
    pub fn enrich(&mut self, ev: &mut Event) -> Option<(bool, bool)> {
        if ev.kind == "cgroup_mkdir"
            && let Detail::Cgroup(c) = &ev.detail
        {
            self.remember_cgroup(c.id, &c.path);
        }
        let subject = ev.subject_cgroup_id();
        ev.metadata = self.cache.lookup(subject);
        let mut needs_target = false;
        if let Detail::NsChange(n) = &mut ev.detail
            && n.op == "setns"
            && n.errno == 0
            && !n.changed.is_empty()
        {
            n.target = self.cache.container_by_ns(&ev.ns);
            needs_target = n.target.is_none() && ev.ns.mnt != self.host_ns.mnt;
        }
        let needs_metadata = ev.metadata.state == "host"
            && self.recent.get(&subject).is_some_and(|t| t.elapsed() < PENDING_WINDOW);
        if needs_metadata {
            ev.metadata = Metadata { state: "pending", container: None, late_of: None };
        }
        (needs_metadata || needs_target).then_some((needs_metadata, needs_target))
    }

    /// Keeps a finished event for a `late` re-emit (bounded; evictions are counted).
    pub fn hold(&mut self, event: Event, (needs_metadata, needs_target): (bool, bool)) {
        if self.pending.len() >= MAX_PENDING_EVENTS {
            self.pending.pop_front();
            self.late_evicted += 1;
        }
        self.pending.push_back(Pending { at: Instant::now(), event, needs_metadata, needs_target });
    }

    fn remember_cgroup(&mut self, id: u64, path: &str) {
        let now = Instant::now();
        if self.recent.len() >= MAX_RECENT_CGROUPS {
            self.recent.retain(|_, t| now.duration_since(*t) < PENDING_WINDOW);
        }
        if self.recent.len() < MAX_RECENT_CGROUPS {
            self.recent.insert(id, now);
        }
        if let Ok(mut paths) = self.created_paths.lock() {
            if paths.len() >= MAX_RECENT_CGROUPS {
                paths.clear(); // bounded; the CRI sync also stats live cgroups directly
            }
            paths.insert(path.to_string(), id);
        }
        let _ = self.created_tx.try_send(());
    }

    /// Events whose metadata arrived since they were emitted as `pending`, as `late` copies
    /// linked by `late_of` to the original's `seq`. Expired pending events are dropped from
    /// the buffer (their `pending` original was already emitted).
    pub fn resolve_pending(&mut self) -> Vec<Event> {
        let now = Instant::now();
        while self.pending.front().is_some_and(|p| now.duration_since(p.at) > PENDING_WINDOW) {
            self.pending.pop_front();
        }
        let generation = self.cache.generation();
        if generation == self.seen_generation || self.pending.is_empty() {
            self.seen_generation = generation;
            return Vec::new();
        }
        self.seen_generation = generation;
        let mut late = Vec::new();
        self.pending.retain(|p| {
            let m = self.cache.lookup(p.event.subject_cgroup_id());
            let target = if p.needs_target { self.cache.container_by_ns(&p.event.ns) } else { None };
            let known = m.state == "complete" || m.state == "tombstone";
            if (p.needs_metadata && !known) || (p.needs_target && target.is_none()) {
                return true;
            }
            let mut copy = p.event.clone();
            copy.metadata = Metadata { state: "late", container: m.container, late_of: Some(p.event.seq) };
            if let Detail::NsChange(n) = &mut copy.detail
                && target.is_some()
            {
                n.target = target;
            }
            late.push(copy);
            false
        });
        late
    }
}
