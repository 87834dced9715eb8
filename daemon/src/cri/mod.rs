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
    /// Namespace inodes of the container's init (what setns targets are matched against).
    #[serde(skip)]
    pub ns: crate::event::NsInodes,
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

/// cgroup2 id -> container, shared between the sync task (writer) and the pipeline (reader).
#[derive(Clone, Default)]
pub struct MetadataCache {
    inner: Arc<RwLock<HashMap<u64, Arc<ContainerMeta>>>>,
    /// Namespace (type, inode) -> container, for namespaces a container does not share with
    /// the host: entering one of them means entering that container.
    by_ns: Arc<RwLock<HashMap<NsKey, Arc<ContainerMeta>>>>,
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
        let host = host_namespaces();
        if let Ok(mut idx) = self.by_ns.write() {
            for c in fresh.values().filter(|c| c.pid != 0) {
                let ns = &c.ns;
                for (kind, ino, host_ino) in
                    [(0u8, ns.mnt, host.mnt), (1, ns.pid, host.pid), (2, ns.ipc, host.ipc), (3, ns.uts, host.uts), (4, ns.net, host.net)]
                {
                    if ino != 0 && ino != host_ino {
                        idx.insert((kind, ino), c.clone());
                    }
                }
            }
        }
        if let Ok(mut m) = self.inner.write() {
            let added = fresh.keys().any(|k| !m.contains_key(k));
            m.extend(fresh);
            if added {
                self.generation.fetch_add(1, Ordering::Release);
            }
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
