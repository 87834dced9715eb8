//! Namespace changes: `setns` and `unshare`, emitted at syscall exit.
use crate::{EventHeader, Namespaces};

/// Bits of [`NsChangeEvent::changed`]: which namespace inodes differ before/after the call.
pub const NS_MNT: u32 = 1 << 0;
pub const NS_PID: u32 = 1 << 1;
pub const NS_NET: u32 = 1 << 2;
pub const NS_UTS: u32 = 1 << 3;
pub const NS_IPC: u32 = 1 << 4;
pub const NS_USER: u32 = 1 << 5;
pub const NS_CGROUP: u32 = 1 << 6;
pub const NS_PID_FOR_CHILDREN: u32 = 1 << 7;

/// Header = the calling task *after* the syscall, so `header.ns` holds the new inodes.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct NsChangeEvent {
    pub header: EventHeader,
    /// `setns`: the nstype argument (CLONE_NEW* or 0); `unshare`: the flags argument.
    pub flags: u64,
    /// `setns`: the fd argument; `unshare`: -1.
    pub fd: i32,
    /// Syscall return value (0 or -errno).
    pub ret: i32,
    /// NS_* bits that changed.
    pub changed: u32,
    pub _pad: u32,
    /// Namespace inodes at syscall entry.
    pub before: Namespaces,
}
