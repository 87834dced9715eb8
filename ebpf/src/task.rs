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

/// Namespace inode numbers of `task` but its own pid namespace (0): a task's active pid
/// namespace never changes (setns and unshare of a pid namespace change only
/// `pid_for_children`), so a syscall-entry stash does not need to read it.
#[inline(always)]
pub fn changeable_namespaces(task: KPtr) -> Namespaces {
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
    out
}

/// Namespace inode numbers of `task`, as `/proc/<pid>/ns/*` shows them.
#[inline(always)]
pub fn namespaces(task: KPtr) -> Namespaces {
    let mut out = changeable_namespaces(task);
    let (pid, upid) = own_upid(task);
    out.pid = ns_inum(pid, upid + koff!(upid_ns), koff!(pid_ns_inum));
    out
}

/// The task's `struct pid` and the offset in it of the `upid` for the task's own (deepest)
/// pid namespace.
#[inline(always)]
fn own_upid(task: KPtr) -> (KPtr, usize) {
    let pid = read_ptr(task, koff!(task_thread_pid));
    let level = read_kernel::<u32>(pid, koff!(pid_level)).unwrap_or(0) as usize;
    // Bounded so the verifier can see the offset range; real nesting is at most 32.
    let level = if level > 32 { 0 } else { level };
    (pid, koff!(pid_numbers) + level * koff!(upid_size))
}

/// The task's pid as its own pid namespace sees it (1 for a container's init).
#[inline(always)]
pub fn ns_pid(task: KPtr) -> u32 {
    let (pid, upid) = own_upid(task);
    read_kernel::<u32>(pid, upid + koff!(upid_nr)).unwrap_or(0)
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
    cgroup_id(read_ptr(memory_css(task, idx), koff!(css_cgroup)))
}

/// The task's memory `cgroup_subsys_state *` (null when `idx` is out of range).
#[inline(always)]
fn memory_css(task: KPtr, idx: usize) -> KPtr {
    if idx >= 64 {
        return core::ptr::null();
    }
    let cset = read_ptr(task, koff!(task_cgroups));
    read_ptr(cset, koff!(css_set_subsys) + idx * 8)
}

/// (usage, max) of the task's memory cgroup page counter, in pages; (0, 0) if unreadable.
#[inline(always)]
pub fn task_memcg_pages(task: KPtr) -> (u64, u64) {
    let idx = crate::globals::global!(KERNEL_OFFSETS.memory_cgrp_id) as usize;
    let css = memory_css(task, idx);
    if css.is_null() {
        return (0, 0);
    }
    // `css` is embedded in `struct mem_cgroup`: step back to the containing struct.
    let memcg = css.wrapping_sub(koff!(mem_cgroup_css));
    (
        read_kernel::<u64>(memcg, koff!(mem_cgroup_memory_usage)).unwrap_or(0),
        read_kernel::<u64>(memcg, koff!(mem_cgroup_memory_max)).unwrap_or(0),
    )
}
