//! CRI metadata: which pod and container a cgroup2 id belongs to, fetched from the node's
//! runtime socket off the event path. The event path only does an O(1) map lookup.
mod sync;

use std::{
    collections::{BTreeMap, HashMap},
    path::Path,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
};

use serde::Serialize;
pub use sync::{SyncOptions, spawn_sync};

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
    pub labels: BTreeMap<String, String>,
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

/// cgroup2 id -> container, shared between the sync task (writer) and the pipeline (reader).
#[derive(Clone, Default)]
pub struct MetadataCache {
    inner: Arc<RwLock<HashMap<u64, Arc<ContainerMeta>>>>,
    /// Bumped whenever a new cgroup id is added, so the event path knows when to retry
    /// pending events.
    generation: Arc<AtomicU64>,
}

impl MetadataCache {
    pub fn lookup(&self, cgroup_id: u64) -> Metadata {
        match self.inner.read().ok().and_then(|m| m.get(&cgroup_id).cloned()) {
            Some(c) => Metadata { state: "complete", container: Some(c), late_of: None },
            None => Metadata::host(),
        }
    }

    /// Merges a fresh listing. Containers that vanished are kept: their cgroup is gone with
    /// them, so the ids cannot be reused for anything else, and late events still resolve.
    pub fn merge(&self, fresh: HashMap<u64, Arc<ContainerMeta>>) {
        if let Ok(mut m) = self.inner.write() {
            let added = fresh.keys().any(|k| !m.contains_key(k));
            m.extend(fresh);
            if added {
                self.generation.fetch_add(1, Ordering::Release);
            }
        }
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
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
