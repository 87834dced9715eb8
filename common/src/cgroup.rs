//! cgroup lifecycle and cgroup2 freezer notifications (`cgroup:*` tracepoints), plus the
//! v1 freezer, which the daemon polls and reports with the same payload.
use crate::EventHeader;

pub const CGROUP_PATH_LEN: usize = 256;

/// The path was cut at [`CGROUP_PATH_LEN`].
pub const CGROUP_PATH_TRUNCATED: u32 = 1 << 0;

/// Header = the task that made the change (for v1 freezer polling: zeroed).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct CgroupEvent {
    pub header: EventHeader,
    /// Target cgroup's id (kernfs inode number).
    pub id: u64,
    /// Hierarchy id (0 = cgroup2).
    pub root: i32,
    pub level: i32,
    /// `cgroup_notify_frozen`: 1 frozen, 0 no longer frozen. Otherwise 0.
    pub val: i32,
    pub flags: u32,
    pub path_len: u32,
    pub _pad: u32,
    pub path: [u8; CGROUP_PATH_LEN],
}
