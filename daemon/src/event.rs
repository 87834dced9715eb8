//! The decoded, owned form of an event: what every sink (JSON / text output today, CRI
//! enrichment, metrics, OTLP and the timeline later) consumes. Field names here are the
//! public JSON schema (`schema/event.schema.json`); change them only with the schema.
use serde::Serialize;

pub use crate::{
    argv::Argv,
    inline::{Comm, NsList},
};

pub use crate::cri::Metadata;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// Position in this daemon's output (1, 2, ...); `late` re-emits point back to it.
    pub seq: u64,
    /// CLOCK_BOOTTIME nanoseconds, as stamped in the kernel.
    pub ts_boot_ns: u64,
    /// Stable kind name (`exec`, `exec_failed`, `fork`, ...).
    pub kind: &'static str,
    /// Where the event came from: `kernel` (ring buffer) or `v1_freezer_poll`.
    pub source: &'static str,
    pub process: Process,
    /// cgroup2 id of the task (0 for user-space generated events without a task).
    pub cgroup_id: u64,
    pub ns: NsInodes,
    /// Pod and container the event is about (see [`Event::subject_cgroup_id`]), from CRI.
    pub metadata: Metadata,
    /// `entrypoint`, `runtime_exec`, `nsenter`, `ephemeral` or `host` (see `entry.rs`).
    pub entry_path: &'static str,
    /// This setns started an entry session (the first of an nsenter / runtime exec).
    #[serde(skip)]
    pub entry_started: bool,
    #[serde(flatten)]
    pub detail: Detail,
}

/// Every `kind` an event can have: the kernel's, plus `anomaly` (filters validate against it).
pub const KINDS: &[&str] = &[
    "exec",
    "exec_failed",
    "fork",
    "exit",
    "setns",
    "unshare",
    "oom_kill",
    "cgroup_mkdir",
    "cgroup_rmdir",
    "cgroup_freeze",
    "cgroup_unfreeze",
    "cgroup_frozen",
    "anomaly",
];

impl Event {
    /// The cgroup2 id the event is about, whose container `metadata` names: the victim's for
    /// an OOM kill, the cgroup itself for cgroup events (not the writer's), else the task's.
    pub fn subject_cgroup_id(&self) -> u64 {
        match &self.detail {
            Detail::Oom(o) => o.victim_cgroup_id,
            // Kernel cgroup events are cgroup2-only; the v1 poller puts the cgroup2 twin in
            // `cgroup_id` (its `id` is the v1 one).
            Detail::Cgroup(c) if self.source == "kernel" => c.id,
            _ => self.cgroup_id,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Process {
    pub pid: u32,
    pub tgid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    pub comm: Comm,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct NsInodes {
    pub mnt: u32,
    pub pid: u32,
    pub net: u32,
    pub uts: u32,
    pub ipc: u32,
    pub user: u32,
    pub cgroup: u32,
    pub pid_for_children: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Detail {
    Exec(ExecDetail),
    Fork(ForkDetail),
    Exit(ExitDetail),
    NsChange(NsChangeDetail),
    Oom(OomDetail),
    Cgroup(CgroupDetail),
    Anomaly(crate::anomaly::AnomalyDetail),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExecDetail {
    pub filename: String,
    pub filename_truncated: bool,
    /// argv as read from the new image (empty for failed execs: only the path is kept).
    pub args: Argv,
    pub args_truncated: bool,
    pub args_unreadable: bool,
    /// Some argument values were replaced by the `[secrets]` mask.
    pub args_masked: bool,
    /// 0 on success, the errno (positive) for a failed exec.
    pub errno: i32,
    /// Symbolic errno (`ENOENT`, ...), null on success.
    pub error: Option<&'static str>,
    /// `execve` or `execveat`.
    pub syscall: &'static str,
    /// execveat's dirfd (null for execve).
    pub dirfd: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ForkDetail {
    pub child_pid: u32,
    pub child_tgid: u32,
    pub thread: bool,
    /// Raw clone flags; null when the syscall was fork/vfork or a kernel thread.
    pub clone_flags: Option<u64>,
    /// Namespaces the clone asked to create (`mnt`, `pid`, ...).
    pub new_namespaces: NsList,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExitDetail {
    /// Exit status when the task exited normally, else null.
    pub code: Option<u32>,
    /// Terminating signal number, else null.
    pub signal: Option<u32>,
    pub signal_name: Option<&'static str>,
    pub core_dumped: bool,
    /// Raw `task->exit_code`.
    pub raw: u32,
    /// pid == tgid.
    pub leader: bool,
    /// Whole thread group gone (null when the kernel does not say).
    pub group_dead: Option<bool>,
    /// pid inside the task's own pid namespace (1 = a container's init).
    pub ns_pid: u32,
    /// Set when this is the exit of a container's init: the container stopped.
    pub container_exit: Option<ContainerExit>,
}

/// A container stopped (its init exited): how often this pod/container name stopped before.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContainerExit {
    /// Earlier exits seen for the same namespace/pod/container name (what the kubelet shows as
    /// restarts when it restarts the container).
    pub restart_count: u32,
    /// The CRI `attempt` of this container (kubelet's restart counter), as the runtime says.
    pub attempt: u32,
    /// Nanoseconds since the previous exit of the same pod/container name (null on the first).
    pub since_previous_exit_ns: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NsChangeDetail {
    /// `setns` or `unshare`.
    pub op: &'static str,
    /// setns: the nstype argument; unshare: its flags.
    pub flags: u64,
    /// Namespace types named by `flags`.
    pub requested: NsList,
    /// setns fd argument (null for unshare).
    pub fd: Option<i32>,
    pub errno: i32,
    pub error: Option<&'static str>,
    /// Namespace types whose inode changed; the event's `ns` holds the new inodes.
    pub changed: NsList,
    pub before: NsInodes,
    /// The container whose namespaces the task is in after a successful setns (matched by
    /// inode against CRI metadata): who got entered, whatever cgroup the caller is in.
    pub target: Option<std::sync::Arc<crate::cri::ContainerMeta>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OomDetail {
    pub victim_pid: u32,
    pub victim_tgid: u32,
    pub victim_comm: Comm,
    pub victim_cgroup_id: u64,
    /// Memory cgroup id (v1 hierarchy on hybrid hosts; equals the cgroup2 id on v2 hosts).
    pub victim_memcg_id: u64,
    /// The victim's pid inside its own pid namespace.
    pub victim_ns_pid: u32,
    /// Whether the victim was its container's init (its death stops the container); null
    /// when the victim is not in a known container.
    pub victim_is_init: Option<bool>,
    /// The victim's memory cgroup at the kill: usage and limit (null: unlimited/unreadable).
    pub memory_usage_bytes: Option<u64>,
    pub memory_limit_bytes: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CgroupDetail {
    pub id: u64,
    pub path: String,
    pub path_truncated: bool,
    pub level: i32,
    pub root: i32,
    /// `cgroup_frozen`: true when frozen, false when no longer frozen.
    pub frozen: Option<bool>,
    /// On the event that ends a freeze (thawed / no longer frozen): how long it was frozen,
    /// from the first freeze event of that cgroup this daemon saw.
    pub frozen_duration_ns: Option<u64>,
}
