//! CRI metadata: which pod and container a cgroup2 id belongs to, fetched from the node's
//! runtime socket off the event path. The event path only does an O(1) map lookup.
mod lists;
mod sync;

use std::{
    collections::{BTreeMap, HashMap},
    path::Path,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use serde::Serialize;
pub use sync::{OneShot, SyncOptions, runtime_version, spawn_sync, timed};

#[derive(Debug, thiserror::Error)]
pub enum CriError {
    #[error("invalid CRI endpoint {0:?}")]
    BadEndpoint(String),
    #[error("cannot connect to CRI endpoint {endpoint}: {source}")]
    Connect { endpoint: String, source: tonic::transport::Error },
    #[error("CRI call {call} to {endpoint} failed: {status}")]
    Call { endpoint: String, call: &'static str, status: Box<tonic::Status> },
    #[error("CRI call {call} to {endpoint} timed out")]
    Timeout { endpoint: String, call: &'static str },
}

/// Counters of the CRI client (shared with the sync task; read for the stop summary and
/// metrics). Every failed or timed-out call is counted here, never silently retried.
#[derive(Default)]
pub struct CriStats {
    pub calls: AtomicU64,
    pub errors: AtomicU64,
    pub timeouts: AtomicU64,
    /// Connections established (the first, then one per reconnect).
    pub connects: AtomicU64,
    pub syncs: AtomicU64,
    /// Per-call hook (call, latency, failure reason `error`/`timeout`), set by metrics.
    pub observer: std::sync::OnceLock<CallObserver>,
}

pub type CallObserver = Box<dyn Fn(&'static str, Duration, Option<&'static str>) + Send + Sync>;

impl std::fmt::Debug for CriStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.summary())
    }
}

impl CriStats {
    pub fn observe(&self, call: &'static str, took: Duration, failure: Option<&'static str>) {
        if let Some(o) = self.observer.get() {
            o(call, took, failure);
        }
    }

    pub fn summary(&self) -> String {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "CRI: {} calls, {} errors, {} timeouts, {} connects, {} syncs",
            n(&self.calls),
            n(&self.errors),
            n(&self.timeouts),
            n(&self.connects),
            n(&self.syncs)
        )
    }
}

/// What the runtime says about one container.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContainerMeta {
    pub namespace: String,
    pub pod: String,
    pub pod_uid: String,
    pub container: String,
    pub container_id: String,
    pub image: String,
    pub runtime: String,
    /// The container's init pid as the host sees it (0 once it exited).
    pub pid: u32,
    /// CRI `attempt`: the kubelet's restart counter for this container name in its pod.
    pub attempt: u32,
    pub labels: BTreeMap<String, String>,
    /// Namespace inodes of the container's init (what setns targets are matched against).
    #[serde(skip)]
    pub ns: crate::event::NsInodes,
    /// For an ephemeral (debug) container: the name of the container whose pid namespace it
    /// joined (`kubectl debug --target`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ephemeral_of: Option<String>,
}

/// `metadata` of an event: `complete` with the container's identity, or `host`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metadata {
    /// `complete`, `host`, `pending` (new cgroup, CRI has not reported it yet) or `late`
    /// (re-emitted once the metadata arrived; `late_of` is the original event's `seq`).
    pub state: &'static str,
    #[serde(flatten)]
    pub container: Option<Arc<ContainerMeta>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub late_of: Option<u64>,
}

impl Metadata {
    pub fn host() -> Self {
        Metadata { state: "host", container: None, late_of: None }
    }
}

/// (namespace type: 0 mnt, 1 pid, 2 ipc, 3 uts, 4 net; inode).
type NsKey = (u8, u32);

struct Entry {
    meta: Arc<ContainerMeta>,
    /// When the runtime stopped listing the container (it was removed).
    removed_at: Option<Instant>,
}

/// cgroup2 id -> container, shared between the sync task (writer) and the pipeline (reader).
/// Removed containers stay as tombstones for `tombstone_ttl`, then go: memory is bounded by
/// the live containers plus those removed within the TTL.
#[derive(Clone)]
pub struct MetadataCache {
    inner: Arc<RwLock<HashMap<u64, Entry>>>,
    /// Namespace (type, inode) -> live container, for namespaces a container does not share
    /// with the host: entering one of them means entering that container.
    by_ns: Arc<RwLock<HashMap<NsKey, Arc<ContainerMeta>>>>,
    /// Bumped whenever a new cgroup id is added, so the event path knows when to retry
    /// pending events.
    generation: Arc<AtomicU64>,
    tombstone_ttl: Duration,
    pub stats: Arc<CriStats>,
}

impl Default for MetadataCache {
    fn default() -> Self {
        Self::new(Duration::from_secs(300))
    }
}

impl MetadataCache {
    pub fn new(tombstone_ttl: Duration) -> Self {
        MetadataCache {
            inner: Default::default(),
            by_ns: Default::default(),
            generation: Default::default(),
            tombstone_ttl,
            stats: Default::default(),
        }
    }

    pub fn lookup(&self, cgroup_id: u64) -> Metadata {
        let Ok(m) = self.inner.read() else { return Metadata::host() };
        match m.get(&cgroup_id) {
            Some(e) => Metadata {
                state: if e.removed_at.is_some() { "tombstone" } else { "complete" },
                container: Some(e.meta.clone()),
                late_of: None,
            },
            None => Metadata::host(),
        }
    }

    /// Applies a complete listing: listed containers are live, unlisted ones become
    /// tombstones, and tombstones older than the TTL are evicted.
    pub fn merge(&self, fresh: HashMap<u64, Arc<ContainerMeta>>) {
        let now = Instant::now();
        let host = host_namespaces();
        let mut idx = HashMap::new();
        for c in fresh.values().filter(|c| c.pid != 0) {
            let ns = &c.ns;
            for (kind, ino, host_ino) in [
                (0u8, ns.mnt, host.mnt),
                (1, ns.pid, host.pid),
                (2, ns.ipc, host.ipc),
                (3, ns.uts, host.uts),
                (4, ns.net, host.net),
            ] {
                if ino != 0 && ino != host_ino {
                    idx.insert((kind, ino), c.clone());
                }
            }
        }
        if let Ok(mut by_ns) = self.by_ns.write() {
            *by_ns = idx;
        }
        let Ok(mut m) = self.inner.write() else {
            return;
        };
        // New containers, and known ones whose init pid changed (created -> running: their
        // namespaces enter the by-ns index only now), can resolve pending events.
        let added = fresh
            .iter()
            .any(|(k, c)| m.get(k).is_none_or(|e| e.meta.pid != c.pid));
        for (id, e) in m.iter_mut() {
            if !fresh.contains_key(id) && e.removed_at.is_none() {
                e.removed_at = Some(now);
            }
        }
        let ttl = self.tombstone_ttl;
        m.retain(|_, e| e.removed_at.is_none_or(|t| now.duration_since(t) < ttl));
        for (id, meta) in fresh {
            m.insert(id, Entry { meta, removed_at: None });
        }
        if added {
            self.generation.fetch_add(1, Ordering::Release);
        }
    }

    /// The container whose namespaces `ns` are in (mnt first: it is never shared with the
    /// host by a container; then pid, ipc, uts, net).
    pub fn container_by_ns(&self, ns: &crate::event::NsInodes) -> Option<Arc<ContainerMeta>> {
        let idx = self.by_ns.read().ok()?;
        [(0u8, ns.mnt), (1, ns.pid), (2, ns.ipc), (3, ns.uts), (4, ns.net)]
            .iter()
            .find_map(|k| idx.get(k).cloned())
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// (namespace, pod, container) of every live (not removed) container.
    pub fn live_names(&self) -> std::collections::HashSet<(String, String, String)> {
        let Ok(m) = self.inner.read() else { return Default::default() };
        m.values()
            .filter(|e| e.removed_at.is_none())
            .map(|e| (e.meta.namespace.clone(), e.meta.pod.clone(), e.meta.container.clone()))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.inner.read().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Well-known CRI sockets, in the order kubelet users most often have them.
pub const KNOWN_ENDPOINTS: &[&str] = &[
    "/run/containerd/containerd.sock",
    "/run/crio/crio.sock",
    "/run/cri-dockerd.sock",
    "/var/run/containerd/containerd.sock",
    "/var/run/crio/crio.sock",
];

/// `--cri-endpoint` (a socket path or `unix://` URL) or the first known socket present.
pub fn detect_endpoint(configured: Option<&str>) -> Option<String> {
    if let Some(e) = configured.filter(|e| !e.is_empty()) {
        return Some(if e.starts_with("unix://") { e.to_string() } else { format!("unix://{e}") });
    }
    KNOWN_ENDPOINTS.iter().find(|p| Path::new(p).exists()).map(|p| format!("unix://{p}"))
}

/// The daemon runs in the host's namespaces (hostPID/hostNetwork in a DaemonSet), so its
/// own inodes say which namespaces a container shares with the host.
fn host_namespaces() -> crate::event::NsInodes {
    ns_inodes(std::process::id())
}

/// `/proc/<pid>/ns/*` inode numbers (0 where unreadable).
pub fn ns_inodes(pid: u32) -> crate::event::NsInodes {
    use std::os::unix::fs::MetadataExt;
    let ino = |n: &str| {
        std::fs::metadata(format!("/proc/{pid}/ns/{n}")).map(|m| m.ino() as u32).unwrap_or(0)
    };
    crate::event::NsInodes {
        mnt: ino("mnt"),
        pid: ino("pid"),
        net: ino("net"),
        uts: ino("uts"),
        ipc: ino("ipc"),
        user: ino("user"),
        cgroup: ino("cgroup"),
        pid_for_children: ino("pid_for_children"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(name: &str) -> Arc<ContainerMeta> {
        crate::testutil::meta(name, 0)
    }

    #[test]
    fn removed_containers_become_tombstones_then_expire() {
        let cache = MetadataCache::new(Duration::from_millis(50));
        cache.merge(HashMap::from([(1, meta("a")), (2, meta("b"))]));
        assert_eq!(cache.lookup(1).state, "complete");
        let g = cache.generation();
        cache.merge(HashMap::from([(2, meta("b"))]));
        assert_eq!(cache.generation(), g, "nothing new: no generation bump");
        let m = cache.lookup(1);
        assert_eq!((m.state, m.container.unwrap().container.as_str()), ("tombstone", "a"));
        assert_eq!(cache.lookup(2).state, "complete");
        assert_eq!(cache.lookup(3).state, "host");
        std::thread::sleep(Duration::from_millis(80));
        cache.merge(HashMap::from([(2, meta("b")), (3, meta("c"))]));
        assert_eq!(cache.lookup(1).state, "host", "tombstone evicted after the TTL");
        assert_eq!(cache.len(), 2);
        assert!(cache.generation() > g);
    }

    #[test]
    fn a_relisted_container_is_live_again() {
        let cache = MetadataCache::new(Duration::from_secs(60));
        cache.merge(HashMap::from([(1, meta("a"))]));
        cache.merge(HashMap::new());
        assert_eq!(cache.lookup(1).state, "tombstone");
        cache.merge(HashMap::from([(1, meta("a"))]));
        assert_eq!(cache.lookup(1).state, "complete");
    }
}
