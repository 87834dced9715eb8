//! Symbolic names for errnos, signals and namespace flags.
use podtrail_common::namespace::{
    NS_CGROUP, NS_IPC, NS_MNT, NS_NET, NS_PID, NS_PID_FOR_CHILDREN, NS_USER, NS_UTS,
};

pub fn errno_name(errno: i32) -> &'static str {
    match errno {
        1 => "EPERM",
        2 => "ENOENT",
        3 => "ESRCH",
        4 => "EINTR",
        5 => "EIO",
        7 => "E2BIG",
        8 => "ENOEXEC",
        9 => "EBADF",
        11 => "EAGAIN",
        12 => "ENOMEM",
        13 => "EACCES",
        14 => "EFAULT",
        16 => "EBUSY",
        20 => "ENOTDIR",
        21 => "EISDIR",
        22 => "EINVAL",
        24 => "EMFILE",
        26 => "ETXTBSY",
        28 => "ENOSPC",
        36 => "ENAMETOOLONG",
        38 => "ENOSYS",
        40 => "ELOOP",
        95 => "EOPNOTSUPP",
        _ => "E?",
    }
}

pub fn signal_name(sig: u32) -> &'static str {
    const NAMES: [&str; 32] = [
        "", "SIGHUP", "SIGINT", "SIGQUIT", "SIGILL", "SIGTRAP", "SIGABRT", "SIGBUS", "SIGFPE",
        "SIGKILL", "SIGUSR1", "SIGSEGV", "SIGUSR2", "SIGPIPE", "SIGALRM", "SIGTERM",
        "SIGSTKFLT", "SIGCHLD", "SIGCONT", "SIGSTOP", "SIGTSTP", "SIGTTIN", "SIGTTOU", "SIGURG",
        "SIGXCPU", "SIGXFSZ", "SIGVTALRM", "SIGPROF", "SIGWINCH", "SIGIO", "SIGPWR", "SIGSYS",
    ];
    NAMES.get(sig as usize).copied().filter(|n| !n.is_empty()).unwrap_or("SIGRT")
}

/// CLONE_NEW* bits shared by clone, unshare and setns.
const CLONE_NS: [(u64, &str); 8] = [
    (0x0000_0080, "time"),
    (0x0002_0000, "mnt"),
    (0x0200_0000, "cgroup"),
    (0x0400_0000, "uts"),
    (0x0800_0000, "ipc"),
    (0x1000_0000, "user"),
    (0x2000_0000, "pid"),
    (0x4000_0000, "net"),
];

pub fn clone_ns_flags(flags: u64) -> crate::event::NsList {
    CLONE_NS
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, n)| *n)
        .collect()
}

pub fn ns_change_bits(bits: u32) -> crate::event::NsList {
    [
        (NS_MNT, "mnt"),
        (NS_PID, "pid"),
        (NS_NET, "net"),
        (NS_UTS, "uts"),
        (NS_IPC, "ipc"),
        (NS_USER, "user"),
        (NS_CGROUP, "cgroup"),
        (NS_PID_FOR_CHILDREN, "pid_for_children"),
    ]
    .iter()
    .filter(|(bit, _)| bits & bit != 0)
    .map(|(_, n)| *n)
    .collect()
}
