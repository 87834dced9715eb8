//! Types shared by the eBPF programs and the daemon.
//!
//! Every record in the ring buffer starts with an [`EventHeader`]; its `kind` says which
//! `#[repr(C)]` payload struct follows. All structs are laid out without implicit padding so
//! the daemon can decode them field by field from little-endian bytes.
#![no_std]

pub mod cgroup;
pub mod drops;
pub mod exec;
pub mod namespace;
pub mod offsets;
pub mod oom;
pub mod process;

pub const COMM_LEN: usize = 16;

/// What kind of record follows the header. Values are part of the ring-buffer ABI.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Exec = 1,
    ExecFailed = 2,
    Fork = 3,
    Exit = 4,
    Setns = 5,
    Unshare = 6,
    OomKill = 7,
    CgroupMkdir = 8,
    CgroupRmdir = 9,
    CgroupFreeze = 10,
    CgroupUnfreeze = 11,
    CgroupFrozen = 12,
}

/// Number of distinct kinds, plus one so kinds index arrays directly.
pub const EVENT_KIND_SLOTS: u32 = 16;

impl EventKind {
    pub const ALL: [EventKind; 12] = [
        EventKind::Exec,
        EventKind::ExecFailed,
        EventKind::Fork,
        EventKind::Exit,
        EventKind::Setns,
        EventKind::Unshare,
        EventKind::OomKill,
        EventKind::CgroupMkdir,
        EventKind::CgroupRmdir,
        EventKind::CgroupFreeze,
        EventKind::CgroupUnfreeze,
        EventKind::CgroupFrozen,
    ];

    pub fn from_u32(v: u32) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| *k as u32 == v)
    }

    /// Stable name used in JSON output and drop reports.
    pub const fn name(self) -> &'static str {
        match self {
            EventKind::Exec => "exec",
            EventKind::ExecFailed => "exec_failed",
            EventKind::Fork => "fork",
            EventKind::Exit => "exit",
            EventKind::Setns => "setns",
            EventKind::Unshare => "unshare",
            EventKind::OomKill => "oom_kill",
            EventKind::CgroupMkdir => "cgroup_mkdir",
            EventKind::CgroupRmdir => "cgroup_rmdir",
            EventKind::CgroupFreeze => "cgroup_freeze",
            EventKind::CgroupUnfreeze => "cgroup_unfreeze",
            EventKind::CgroupFrozen => "cgroup_frozen",
        }
    }
}

/// Namespace inode numbers (`/proc/<pid>/ns/*`). Zero means "could not be read".
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Namespaces {
    pub mnt: u32,
    pub pid: u32,
    pub net: u32,
    pub uts: u32,
    pub ipc: u32,
    pub user: u32,
    pub cgroup: u32,
    /// `pid_for_children`: differs from `pid` after `unshare(CLONE_NEWPID)` or `setns` into a pid ns.
    pub pid_for_children: u32,
}

/// Common prefix of every ring-buffer record (96 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct EventHeader {
    /// [`EventKind`] as u32.
    pub kind: u32,
    /// Size in bytes of the whole record, header included (lets the decoder check lengths).
    pub size: u32,
    /// CLOCK_BOOTTIME nanoseconds (`bpf_ktime_get_boot_ns`).
    pub ts_ns: u64,
    /// cgroup2 id (inode of the task's cgroup2 directory).
    pub cgroup_id: u64,
    pub pid: u32,
    pub tgid: u32,
    /// Thread-group id of the real parent.
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    pub _pad: u32,
    pub ns: Namespaces,
    pub comm: [u8; COMM_LEN],
}

pub const HEADER_SIZE: usize = core::mem::size_of::<EventHeader>();
const _: () = assert!(HEADER_SIZE == 96);
