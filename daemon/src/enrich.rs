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
    event::{Detail, Event},
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

pub struct Enricher {
    pub cache: MetadataCache,
    /// Nudges the CRI sync when a cgroup appears (`try_send`: never waits).
    pub created_tx: mpsc::Sender<()>,
    pub created_paths: CreatedCgroups,
    recent: HashMap<u64, Instant>,
    pending: VecDeque<(Instant, Event)>,
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
            seen_generation: 0,
            late_evicted: 0,
        }
    }

    /// Sets `ev.metadata`; an event from a new, not-yet-known cgroup is `pending` and kept
    /// for a `late` re-emit.
    pub fn enrich(&mut self, ev: &mut Event) {
        if ev.kind == "cgroup_mkdir"
            && let Detail::Cgroup(c) = &ev.detail
        {
            self.remember_cgroup(c.id, &c.path);
        }
        ev.metadata = self.cache.lookup(ev.cgroup_id);
        if ev.metadata.state == "host"
            && self.recent.get(&ev.cgroup_id).is_some_and(|t| t.elapsed() < PENDING_WINDOW)
        {
            ev.metadata = Metadata { state: "pending", container: None, late_of: None };
            if self.pending.len() >= MAX_PENDING_EVENTS {
                self.pending.pop_front();
                self.late_evicted += 1;
            }
            self.pending.push_back((Instant::now(), ev.clone()));
        }
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
        while self.pending.front().is_some_and(|(t, _)| now.duration_since(*t) > PENDING_WINDOW) {
            self.pending.pop_front();
        }
        let generation = self.cache.generation();
        if generation == self.seen_generation || self.pending.is_empty() {
            self.seen_generation = generation;
            return Vec::new();
        }
        self.seen_generation = generation;
        let mut late = Vec::new();
        self.pending.retain(|(_, ev)| {
            let m = self.cache.lookup(ev.cgroup_id);
            if m.state != "complete" {
                return true;
            }
            let mut copy = ev.clone();
            copy.metadata = Metadata { state: "late", container: m.container, late_of: Some(ev.seq) };
            late.push(copy);
            false
        });
        late
    }
}
