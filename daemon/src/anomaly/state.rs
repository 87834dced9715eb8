//! What the anomaly rules remember between events, each map bounded.
use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::Arc,
};

use crate::{cri::ContainerMeta, event::Process};

pub const MAX_PROCS: usize = 65_536;
pub const MAX_IMAGES: usize = 4_096;
pub const MAX_EXES_PER_IMAGE: usize = 1_024;
pub const MAX_KEYS: usize = 16_384;
pub const MAX_INITS: usize = 4_096;

/// A process as far as its ancestry goes.
pub struct Proc {
    pub ppid: u32,
    pub comm: crate::event::Comm,
}

pub struct Frozen {
    pub since: u64,
    pub container: Arc<ContainerMeta>,
    pub reported: bool,
}

/// A `runc init` (`runc:[2:INIT]`) that has not exec'd the container's entrypoint yet.
pub struct RuncInit {
    pub since: u64,
    pub process: Process,
    pub container: Option<Arc<ContainerMeta>>,
    /// (errno name, path) of a failed exec of the entrypoint.
    pub exec_failed: Option<(&'static str, String)>,
    pub reported: bool,
}

/// An entry into a container (nsenter / runtime exec), reported once the entering process
/// has joined every namespace it asked for: at its exec (or exit).
pub struct Session {
    pub seq: u64,
    pub process: Process,
    pub entry_path: &'static str,
    /// None until CRI knows the entered container (then a `late` copy of the first setns
    /// brings it).
    pub target: Option<Arc<ContainerMeta>>,
    pub changed: crate::event::NsList,
    pub parents: String,
}

#[derive(Default)]
pub struct State {
    /// tgid -> entry session not reported yet.
    pub sessions: HashMap<u32, Session>,
    /// Ended sessions still waiting for their target, by the first setns's seq.
    pub parked: HashMap<u64, Session>,
    pub procs: HashMap<u32, Proc>,
    /// image -> executables its containers ran from their entrypoint.
    pub baseline: HashMap<String, HashSet<String>>,
    /// (pod uid, container name) -> recent stop timestamps.
    pub stops: HashMap<(String, String), VecDeque<u64>>,
    /// subject cgroup id -> freeze in progress.
    pub frozen: HashMap<u64, Frozen>,
    pub inits: HashMap<u32, RuncInit>,
    /// Ephemeral containers already reported (by container id).
    pub ephemeral_seen: HashSet<String>,
}

/// Inserts unless the map is full (a full map keeps its entries: new keys are not tracked).
pub fn bounded_insert<K: std::hash::Hash + Eq, V>(m: &mut HashMap<K, V>, max: usize, k: K, v: V) {
    if m.len() < max || m.contains_key(&k) {
        m.insert(k, v);
    }
}
