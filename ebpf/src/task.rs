//! Reading the current (or a given) `task_struct` through offsets resolved at load time.
use aya_ebpf::helpers::generated::{bpf_get_current_task, bpf_probe_read_kernel};
use podtrail_common::Namespaces;

use crate::globals::koff;

pub type KPtr = *const u8;

/// Reads a `T` at `base + off` from kernel memory; `None` on a fault or a null base.
#[inline(always)]
pub fn read_kernel<T: Copy>(base: KPtr, off: usize) -> Option<T> {
    if base.is_null() {
        return None;
    }
    let mut out = core::mem::MaybeUninit::<T>::uninit();
    // SAFETY: bpf_probe_read_kernel never faults: it copies size_of::<T>() bytes into `out`
    // or returns an error, and `out` is a valid destination of exactly that size.
    let rc = unsafe {
        bpf_probe_read_kernel(
            out.as_mut_ptr().cast(),
            core::mem::size_of::<T>() as u32,
            base.wrapping_add(off).cast(),
        )
    };
    if rc == 0 {
        // SAFETY: the helper filled all bytes; T is plain data (integers / pointers).
        Some(unsafe { out.assume_init() })
    } else {
        None
    }
}

#[inline(always)]
pub fn read_ptr(base: KPtr, off: usize) -> KPtr {
    read_kernel::<u64>(base, off).unwrap_or(0) as KPtr
}

#[inline(always)]
pub fn current_task() -> KPtr {
    // SAFETY: helper without arguments, available to all tracing programs.
    unsafe { bpf_get_current_task() as KPtr }
}

/// `ns->ns.inum` for a namespace struct pointer stored at `holder + ptr_off`.
#[inline(always)]
fn ns_inum(holder: KPtr, ptr_off: usize, inum_off: usize) -> u32 {
    read_kernel::<u32>(read_ptr(holder, ptr_off), inum_off).unwrap_or(0)
}

/// Namespace inode numbers of `task`, as `/proc/<pid>/ns/*` shows them.
#[inline(always)]
pub fn namespaces(task: KPtr) -> Namespaces {
    let mut out = Namespaces::default();
    let nsproxy = read_ptr(task, koff!(task_nsproxy));
    out.mnt = ns_inum(nsproxy, koff!(nsproxy_mnt_ns), koff!(mnt_ns_inum));
    out.net = ns_inum(nsproxy, koff!(nsproxy_net_ns), koff!(net_ns_inum));
    out.uts = ns_inum(nsproxy, koff!(nsproxy_uts_ns), koff!(uts_ns_inum));
    out.ipc = ns_inum(nsproxy, koff!(nsproxy_ipc_ns), koff!(ipc_ns_inum));
    out.cgroup = ns_inum(nsproxy, koff!(nsproxy_cgroup_ns), koff!(cgroup_ns_inum));
    out.pid_for_children =
        ns_inum(nsproxy, koff!(nsproxy_pid_ns_for_children), koff!(pid_ns_inum));
    let cred = read_ptr(task, koff!(task_real_cred));
    out.user = ns_inum(cred, koff!(cred_user_ns), koff!(user_ns_inum));
    // The task's own pid namespace is the deepest level of its struct pid.
    let pid = read_ptr(task, koff!(task_thread_pid));
    let level = read_kernel::<u32>(pid, koff!(pid_level)).unwrap_or(0) as usize;
    // Bounded so the verifier can see the offset range; real nesting is at most 32.
    let level = if level > 32 { 0 } else { level };
    let upid = koff!(pid_numbers) + level * koff!(upid_size);
    out.pid = ns_inum(pid, upid + koff!(upid_ns), koff!(pid_ns_inum));
    out
}

#[inline(always)]
pub fn parent_tgid(task: KPtr) -> u32 {
    read_kernel::<u32>(read_ptr(task, koff!(task_real_parent)), koff!(task_tgid)).unwrap_or(0)
}

/// `kn->id` of a `struct cgroup *`.
#[inline(always)]
pub fn cgroup_id(cgrp: KPtr) -> u64 {
    read_kernel::<u64>(read_ptr(cgrp, koff!(cgroup_kn)), koff!(kernfs_node_id)).unwrap_or(0)
}

/// cgroup2 id of any task (`task->cgroups->dfl_cgrp->kn->id`).
#[inline(always)]
pub fn task_cgroup2_id(task: KPtr) -> u64 {
    let cset = read_ptr(task, koff!(task_cgroups));
    cgroup_id(read_ptr(cset, koff!(css_set_dfl_cgrp)))
}

/// id of the task's cgroup in the v1 memory hierarchy, 0 if there is none.
#[inline(always)]
pub fn task_memcg_v1_id(task: KPtr) -> u64 {
    let idx = crate::globals::global!(KERNEL_OFFSETS.memory_cgrp_id) as usize;
    if idx >= 64 {
        return 0;
    }
    let cset = read_ptr(task, koff!(task_cgroups));
    let css = read_ptr(cset, koff!(css_set_subsys) + idx * 8);
    cgroup_id(read_ptr(css, koff!(css_cgroup)))
}
