//! Layout facts the eBPF programs cannot compile in: kernel struct member offsets (resolved
//! by the daemon from the running kernel's BTF) and tracepoint record offsets (parsed from
//! tracefs `format` files). The daemon writes both into eBPF globals before loading.

/// Byte offsets of kernel struct members, all from `/sys/kernel/btf/vmlinux`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelOffsets {
    pub task_pid: u32,
    pub task_tgid: u32,
    pub task_real_parent: u32,
    pub task_nsproxy: u32,
    pub task_cgroups: u32,
    pub task_mm: u32,
    pub task_exit_code: u32,
    pub task_real_cred: u32,
    pub task_thread_pid: u32,
    pub task_comm: u32,
    pub nsproxy_uts_ns: u32,
    pub nsproxy_ipc_ns: u32,
    pub nsproxy_mnt_ns: u32,
    pub nsproxy_pid_ns_for_children: u32,
    pub nsproxy_net_ns: u32,
    pub nsproxy_cgroup_ns: u32,
    /// `<ns struct>.ns.inum`, i.e. offset of the `ns_common` member plus `ns_common.inum`.
    pub uts_ns_inum: u32,
    pub ipc_ns_inum: u32,
    pub mnt_ns_inum: u32,
    pub pid_ns_inum: u32,
    pub net_ns_inum: u32,
    pub cgroup_ns_inum: u32,
    pub user_ns_inum: u32,
    pub cred_user_ns: u32,
    pub pid_level: u32,
    pub pid_numbers: u32,
    pub upid_size: u32,
    pub upid_ns: u32,
    pub mm_arg_start: u32,
    pub mm_arg_end: u32,
    pub css_set_dfl_cgrp: u32,
    pub css_set_subsys: u32,
    pub css_cgroup: u32,
    pub cgroup_kn: u32,
    pub kernfs_node_id: u32,
    /// Index of the memory controller in `css_set.subsys[]` (`memory_cgrp_id`), or
    /// `u32::MAX` when the kernel has no memory controller.
    pub memory_cgrp_id: u32,
    pub clone_args_flags: u32,
    /// `upid.nr`: a task's pid as one pid namespace level sees it.
    pub upid_nr: u32,
    /// `struct mem_cgroup` embeds its `css`; a memory css pointer minus this is the memcg.
    pub mem_cgroup_css: u32,
    /// `mem_cgroup.memory.usage` / `.max`: the memory page counter, in pages.
    pub mem_cgroup_memory_usage: u32,
    pub mem_cgroup_memory_max: u32,
    pub _pad: u32,
}

/// Field offsets inside tracepoint records. `u32::MAX` marks a field this kernel lacks.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TracepointOffsets {
    /// `sched_process_exec.filename` (`__data_loc`).
    pub exec_filename: u32,
    pub fork_parent_pid: u32,
    pub fork_child_pid: u32,
    /// `sched_process_exit.group_dead` (absent before 6.16 or so).
    pub exit_group_dead: u32,
    pub execve_filename: u32,
    pub execveat_fd: u32,
    pub execveat_filename: u32,
    /// `ret` of every `sys_exit_*` record.
    pub sys_exit_ret: u32,
    pub clone_flags: u32,
    pub clone3_uargs: u32,
    pub unshare_flags: u32,
    pub setns_fd: u32,
    pub setns_nstype: u32,
    pub cgroup_root: u32,
    pub cgroup_level: u32,
    pub cgroup_id: u32,
    /// `path` (`__data_loc`).
    pub cgroup_path: u32,
    /// `cgroup_notify_frozen.val`.
    pub cgroup_frozen_val: u32,
}

pub const ABSENT: u32 = u32::MAX;

/// Run-time knobs for the eBPF side.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProbeConfig {
    /// Force a ring-buffer wake-up once this many bytes wait to be read; below it events are
    /// submitted with `BPF_RB_NO_WAKEUP` and the daemon drains on a timer.
    pub wakeup_bytes: u64,
    /// cgroup hierarchy id whose mkdir/rmdir/freeze events are reported (0 = cgroup2).
    pub cgroup2_hierarchy: i32,
    pub _pad: u32,
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all three are #[repr(C)], made only of u32/u64/i32 fields with explicit padding
    // members, so every byte pattern is a valid value and there are no padding bytes.
    unsafe impl aya::Pod for super::KernelOffsets {}
    unsafe impl aya::Pod for super::TracepointOffsets {}
    unsafe impl aya::Pod for super::ProbeConfig {}
}
