//! Process lifecycle: fork / clone / clone3 and exit.
use crate::EventHeader;

/// The clone flags came from the syscall (`clone`/`clone3`); otherwise they are unknown
/// (`fork`/`vfork`, kernel threads) and reported as 0.
pub const FORK_FLAGS_KNOWN: u32 = 1 << 0;
/// The child is a thread (`CLONE_THREAD`).
pub const FORK_THREAD: u32 = 1 << 1;

/// Header = the parent (the task calling fork/clone).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ForkEvent {
    pub header: EventHeader,
    pub child_pid: u32,
    pub child_tgid: u32,
    pub clone_flags: u64,
    pub flags: u32,
    pub _pad: u32,
}

pub const EXIT_GROUP_DEAD_UNKNOWN: u8 = 0xff;

/// Header = the exiting task.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ExitEvent {
    pub header: EventHeader,
    /// Raw `task->exit_code`: `(code << 8)` for a normal exit, the signal number (| 0x80 if it
    /// dumped core) for a death by signal.
    pub exit_code: u32,
    /// Whether the whole thread group died with this task: 1 / 0, or
    /// [`EXIT_GROUP_DEAD_UNKNOWN`] when the kernel's tracepoint lacks the field.
    pub group_dead: u8,
    pub _pad: [u8; 3],
    /// The task's pid inside its own pid namespace (1 = the init of a container's pid ns).
    pub ns_pid: u32,
    pub _pad2: u32,
}
