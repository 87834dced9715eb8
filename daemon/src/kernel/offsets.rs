//! Resolves every kernel struct offset the eBPF programs use from a kernel's BTF.
use podtrail_common::offsets::KernelOffsets;

use super::btf::{Btf, BtfError};

/// Each namespace struct embeds a `struct ns_common ns` whose `inum` is the inode number.
fn ns_inum(btf: &Btf, strukt: &str) -> Result<u32, BtfError> {
    btf.offset_of(strukt, "ns.inum")
}

pub fn resolve(btf: &Btf) -> Result<KernelOffsets, BtfError> {
    let task = |m: &str| btf.offset_of("task_struct", m);
    let nsproxy = |m: &str| btf.offset_of("nsproxy", m);
    Ok(KernelOffsets {
        task_pid: task("pid")?,
        task_tgid: task("tgid")?,
        task_real_parent: task("real_parent")?,
        task_nsproxy: task("nsproxy")?,
        task_cgroups: task("cgroups")?,
        task_mm: task("mm")?,
        task_exit_code: task("exit_code")?,
        task_real_cred: task("real_cred")?,
        task_thread_pid: task("thread_pid")?,
        task_comm: task("comm")?,
        nsproxy_uts_ns: nsproxy("uts_ns")?,
        nsproxy_ipc_ns: nsproxy("ipc_ns")?,
        nsproxy_mnt_ns: nsproxy("mnt_ns")?,
        nsproxy_pid_ns_for_children: nsproxy("pid_ns_for_children")?,
        nsproxy_net_ns: nsproxy("net_ns")?,
        nsproxy_cgroup_ns: nsproxy("cgroup_ns")?,
        uts_ns_inum: ns_inum(btf, "uts_namespace")?,
        ipc_ns_inum: ns_inum(btf, "ipc_namespace")?,
        mnt_ns_inum: ns_inum(btf, "mnt_namespace")?,
        pid_ns_inum: ns_inum(btf, "pid_namespace")?,
        net_ns_inum: ns_inum(btf, "net")?,
        cgroup_ns_inum: ns_inum(btf, "cgroup_namespace")?,
        user_ns_inum: ns_inum(btf, "user_namespace")?,
        cred_user_ns: btf.offset_of("cred", "user_ns")?,
        pid_level: btf.offset_of("pid", "level")?,
        pid_numbers: btf.offset_of("pid", "numbers")?,
        upid_size: btf.struct_size("upid")?,
        upid_ns: btf.offset_of("upid", "ns")?,
        mm_arg_start: btf.offset_of("mm_struct", "arg_start")?,
        mm_arg_end: btf.offset_of("mm_struct", "arg_end")?,
        css_set_dfl_cgrp: btf.offset_of("css_set", "dfl_cgrp")?,
        css_set_subsys: btf.offset_of("css_set", "subsys")?,
        css_cgroup: btf.offset_of("cgroup_subsys_state", "cgroup")?,
        cgroup_kn: btf.offset_of("cgroup", "kn")?,
        kernfs_node_id: btf.offset_of("kernfs_node", "id")?,
        memory_cgrp_id: btf
            .enum_value("memory_cgrp_id")
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(u32::MAX),
        // `struct clone_args` is uapi with `flags` first by definition; BTF confirms it when
        // the kernel has clone3, and 0 is right for every kernel that does.
        clone_args_flags: btf.offset_of("clone_args", "flags").unwrap_or(0),
        upid_nr: btf.offset_of("upid", "nr")?,
        mem_cgroup_css: btf.offset_of("mem_cgroup", "css")?,
        mem_cgroup_memory_usage: btf.offset_of("mem_cgroup", "memory.usage")?,
        mem_cgroup_memory_max: btf.offset_of("mem_cgroup", "memory.max")?,
        _pad: 0,
    })
}

/// The (name, value) pairs of a resolution, for `--print-offsets` and tests.
pub fn named(o: &KernelOffsets) -> Vec<(&'static str, u32)> {
    vec![
        ("task_struct.pid", o.task_pid),
        ("task_struct.tgid", o.task_tgid),
        ("task_struct.real_parent", o.task_real_parent),
        ("task_struct.nsproxy", o.task_nsproxy),
        ("task_struct.cgroups", o.task_cgroups),
        ("task_struct.mm", o.task_mm),
        ("task_struct.exit_code", o.task_exit_code),
        ("task_struct.real_cred", o.task_real_cred),
        ("task_struct.thread_pid", o.task_thread_pid),
        ("task_struct.comm", o.task_comm),
        ("nsproxy.uts_ns", o.nsproxy_uts_ns),
        ("nsproxy.ipc_ns", o.nsproxy_ipc_ns),
        ("nsproxy.mnt_ns", o.nsproxy_mnt_ns),
        ("nsproxy.pid_ns_for_children", o.nsproxy_pid_ns_for_children),
        ("nsproxy.net_ns", o.nsproxy_net_ns),
        ("nsproxy.cgroup_ns", o.nsproxy_cgroup_ns),
        ("uts_namespace.ns.inum", o.uts_ns_inum),
        ("ipc_namespace.ns.inum", o.ipc_ns_inum),
        ("mnt_namespace.ns.inum", o.mnt_ns_inum),
        ("pid_namespace.ns.inum", o.pid_ns_inum),
        ("net.ns.inum", o.net_ns_inum),
        ("cgroup_namespace.ns.inum", o.cgroup_ns_inum),
        ("user_namespace.ns.inum", o.user_ns_inum),
        ("cred.user_ns", o.cred_user_ns),
        ("pid.level", o.pid_level),
        ("pid.numbers", o.pid_numbers),
        ("sizeof(upid)", o.upid_size),
        ("upid.ns", o.upid_ns),
        ("mm_struct.arg_start", o.mm_arg_start),
        ("mm_struct.arg_end", o.mm_arg_end),
        ("css_set.dfl_cgrp", o.css_set_dfl_cgrp),
        ("css_set.subsys", o.css_set_subsys),
        ("cgroup_subsys_state.cgroup", o.css_cgroup),
        ("cgroup.kn", o.cgroup_kn),
        ("kernfs_node.id", o.kernfs_node_id),
        ("memory_cgrp_id", o.memory_cgrp_id),
        ("clone_args.flags", o.clone_args_flags),
        ("upid.nr", o.upid_nr),
        ("mem_cgroup.css", o.mem_cgroup_css),
        ("mem_cgroup.memory.usage", o.mem_cgroup_memory_usage),
        ("mem_cgroup.memory.max", o.mem_cgroup_memory_max),
    ]
}
