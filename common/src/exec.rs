//! exec family: successful execs (`sched_process_exec`) and failed ones (`sys_exit_execve*` < 0).
use crate::EventHeader;

pub const FILENAME_LEN: usize = 256;
pub const ARGS_LEN: usize = 512;

/// The argument bytes were cut at [`ARGS_LEN`].
pub const EXEC_ARGS_TRUNCATED: u32 = 1 << 0;
/// The filename was cut at [`FILENAME_LEN`].
pub const EXEC_FILENAME_TRUNCATED: u32 = 1 << 1;
/// The argument bytes could not be read (the event still carries the filename).
pub const EXEC_ARGS_UNREADABLE: u32 = 1 << 2;
/// The exec went through `execveat` (otherwise `execve`).
pub const EXEC_VIA_EXECVEAT: u32 = 1 << 3;

/// Shared by [`crate::EventKind::Exec`] and [`crate::EventKind::ExecFailed`].
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ExecEvent {
    pub header: EventHeader,
    /// 0 for a successful exec, `-errno` for a failed one.
    pub ret: i32,
    pub flags: u32,
    /// Bytes of `filename` used, without the trailing NUL.
    pub filename_len: u16,
    /// Bytes of `args` used: NUL-separated argv, as in `/proc/<pid>/cmdline`.
    pub args_len: u16,
    /// `execveat` dirfd (meaningful with [`EXEC_VIA_EXECVEAT`]).
    pub dirfd: i32,
    pub filename: [u8; FILENAME_LEN],
    pub args: [u8; ARGS_LEN],
}
