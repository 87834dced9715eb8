//! Load-time constants written by the daemon (`EbpfLoader::override_global`).
use podtrail_common::offsets::{KernelOffsets, ProbeConfig, TracepointOffsets};

const fn zeroed_kernel() -> KernelOffsets {
    KernelOffsets {
        task_pid: 0, task_tgid: 0, task_real_parent: 0, task_nsproxy: 0, task_cgroups: 0,
        task_mm: 0, task_exit_code: 0, task_real_cred: 0, task_thread_pid: 0, task_comm: 0,
        nsproxy_uts_ns: 0, nsproxy_ipc_ns: 0, nsproxy_mnt_ns: 0, nsproxy_pid_ns_for_children: 0,
        nsproxy_net_ns: 0, nsproxy_cgroup_ns: 0, uts_ns_inum: 0, ipc_ns_inum: 0, mnt_ns_inum: 0,
        pid_ns_inum: 0, net_ns_inum: 0, cgroup_ns_inum: 0, user_ns_inum: 0, cred_user_ns: 0,
        pid_level: 0, pid_numbers: 0, upid_size: 0, upid_ns: 0, mm_arg_start: 0, mm_arg_end: 0,
        css_set_dfl_cgrp: 0, css_set_subsys: 0, css_cgroup: 0, cgroup_kn: 0, kernfs_node_id: 0,
        memory_cgrp_id: u32::MAX, clone_args_flags: 0, upid_nr: 0, mem_cgroup_css: 0,
        mem_cgroup_memory_usage: 0, mem_cgroup_memory_max: 0, _pad: 0,
    }
}

const fn absent_tracepoints() -> TracepointOffsets {
    const A: u32 = u32::MAX;
    TracepointOffsets {
        exec_filename: A, fork_parent_pid: A, fork_child_pid: A, exit_group_dead: A,
        execve_filename: A, execveat_fd: A, execveat_filename: A, sys_exit_ret: A,
        clone_flags: A, clone3_uargs: A, unshare_flags: A, setns_fd: A, setns_nstype: A,
        cgroup_root: A, cgroup_level: A, cgroup_id: A, cgroup_path: A, cgroup_frozen_val: A,
    }
}

#[unsafe(no_mangle)]
pub static KERNEL_OFFSETS: KernelOffsets = zeroed_kernel();
#[unsafe(no_mangle)]
pub static TRACEPOINT_OFFSETS: TracepointOffsets = absent_tracepoints();
#[unsafe(no_mangle)]
pub static PROBE_CONFIG: ProbeConfig =
    ProbeConfig { wakeup_bytes: 1 << 20, cgroup2_hierarchy: 0, _pad: 0 };

/// Reads one field of a global. The volatile read keeps the compiler from folding the
/// compile-time placeholder into the code: the real value is patched in at load time.
macro_rules! global {
    ($static:ident . $field:ident) => {
        {
            // SAFETY: reading a field of an initialised, never-written static.
            #[allow(unused_unsafe)]
            let v = unsafe { core::ptr::read_volatile(&raw const $crate::globals::$static.$field) };
            v
        }
    };
}
pub(crate) use global;

macro_rules! koff {
    ($field:ident) => {
        $crate::globals::global!(KERNEL_OFFSETS.$field) as usize
    };
}
pub(crate) use koff;

macro_rules! tpoff {
    ($field:ident) => {
        $crate::globals::global!(TRACEPOINT_OFFSETS.$field) as usize
    };
}
pub(crate) use tpoff;
