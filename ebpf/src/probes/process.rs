//! fork / clone / clone3 (`sched_process_fork`, flags stashed at `sys_enter_clone*`) and
//! exit (`sched_process_exit`, code from `task->exit_code`).
use aya_ebpf::{
    helpers::generated::bpf_probe_read_user,
    macros::{map, tracepoint},
    maps::HashMap,
    programs::TracePointContext,
};
use podtrail_common::{
    EventKind,
    offsets::ABSENT,
    process::{EXIT_GROUP_DEAD_UNKNOWN, ExitEvent, FORK_FLAGS_KNOWN, FORK_THREAD, ForkEvent},
};

use super::tp_field;
use crate::{
    emit::{fill_header, pid_tgid, reserve, stash_put, submit},
    globals::{koff, tpoff},
    task::{current_task, ns_pid, read_kernel},
};

const CLONE_THREAD: u64 = 0x0001_0000;

/// clone flags of the syscall in flight, per thread.
#[map]
static CLONE_STASH: HashMap<u64, u64> = HashMap::with_max_entries(16384, 0);

#[inline(always)]
fn stash_flags(flags: u64) {
    stash_put(&CLONE_STASH, &flags, EventKind::Fork);
}

#[tracepoint]
pub fn sys_enter_clone(ctx: TracePointContext) -> u32 {
    stash_flags(tp_field::<u64>(&ctx, tpoff!(clone_flags)));
    0
}

#[tracepoint]
pub fn sys_enter_clone3(ctx: TracePointContext) -> u32 {
    let uargs = tp_field::<u64>(&ctx, tpoff!(clone3_uargs));
    let mut flags = 0u64;
    // SAFETY: fault-safe read of 8 bytes of the caller's struct clone_args.
    let rc = unsafe {
        bpf_probe_read_user(
            (&raw mut flags).cast(),
            8,
            (uargs as *const u8).wrapping_add(koff!(clone_args_flags)).cast(),
        )
    };
    if rc == 0 {
        stash_flags(flags);
    }
    0
}

/// Attached to `sys_exit_clone` and `sys_exit_clone3`: a failed clone must not leave its
/// flags behind for a later plain `fork()` of the same thread.
#[tracepoint]
pub fn sys_exit_clone(_ctx: TracePointContext) -> u32 {
    let _ = CLONE_STASH.remove(&pid_tgid());
    0
}

#[tracepoint]
pub fn sched_process_fork(ctx: TracePointContext) -> u32 {
    let Some(mut entry) = reserve::<ForkEvent>(EventKind::Fork) else { return 0 };
    let key = pid_tgid();
    // SAFETY: copied out immediately.
    let stashed = unsafe { CLONE_STASH.get(&key) }.copied();
    let child_pid = tp_field::<i32>(&ctx, tpoff!(fork_child_pid)) as u32;
    let ev = entry.as_mut_ptr();
    // SAFETY: `ev` is a reservation of size_of::<ForkEvent>().
    unsafe {
        fill_header(&raw mut (*ev).header, EventKind::Fork, size_of::<ForkEvent>());
        let (clone_flags, mut flags) = match stashed {
            Some(f) => (f, FORK_FLAGS_KNOWN),
            None => (0, 0),
        };
        let child_tgid = if clone_flags & CLONE_THREAD != 0 {
            flags |= FORK_THREAD;
            (key >> 32) as u32
        } else {
            child_pid
        };
        (*ev).child_pid = child_pid;
        (*ev).child_tgid = child_tgid;
        (*ev).clone_flags = clone_flags;
        (*ev).flags = flags;
        (*ev)._pad = 0;
    }
    submit(entry);
    0
}

#[tracepoint]
pub fn sched_process_exit(ctx: TracePointContext) -> u32 {
    let Some(mut entry) = reserve::<ExitEvent>(EventKind::Exit) else { return 0 };
    let ev = entry.as_mut_ptr();
    let group_dead_off = tpoff!(exit_group_dead);
    // SAFETY: `ev` is a reservation of size_of::<ExitEvent>().
    unsafe {
        fill_header(&raw mut (*ev).header, EventKind::Exit, size_of::<ExitEvent>());
        (*ev).exit_code = read_kernel::<u32>(current_task(), koff!(task_exit_code)).unwrap_or(0);
        (*ev).group_dead = if group_dead_off == ABSENT as usize {
            EXIT_GROUP_DEAD_UNKNOWN
        } else {
            tp_field::<u8>(&ctx, group_dead_off)
        };
        (*ev)._pad = [0; 3];
        (*ev).ns_pid = ns_pid(current_task());
        (*ev)._pad2 = 0;
    }
    submit(entry);
    0
}
