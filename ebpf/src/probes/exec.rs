//! exec: `sched_process_exec` for successful execs; `sys_enter/exit_execve(at)` for the
//! failed ones (the exit record only has the return value, so entry stashes the path).
use aya_ebpf::{
    helpers::generated::{bpf_probe_read_user, bpf_probe_read_user_str},
    macros::{map, tracepoint},
    maps::LruHashMap,
    programs::TracePointContext,
};
use podtrail_common::{
    EventKind,
    exec::{
        ARGS_LEN, EXEC_ARGS_TRUNCATED, EXEC_ARGS_UNREADABLE, EXEC_FILENAME_TRUNCATED,
        EXEC_VIA_EXECVEAT, ExecEvent, FILENAME_LEN,
    },
};

use super::{read_data_loc_str, tp_field};
use crate::{
    emit::{fill_header, reserve, stash_put, stash_take, submit},
    globals::{koff, tpoff},
    task::{current_task, read_kernel, read_ptr},
};

const AT_FDCWD: i32 = -100;

#[derive(Clone, Copy)]
pub struct ExecStash {
    filename: u64,
    dirfd: i32,
    flags: u32,
}

#[map]
static EXEC_STASH: LruHashMap<u64, ExecStash> = LruHashMap::with_max_entries(16384, 0);

#[tracepoint]
pub fn sched_process_exec(ctx: TracePointContext) -> u32 {
    let Some(mut entry) = reserve::<ExecEvent>(EventKind::Exec) else { return 0 };
    let ev = entry.as_mut_ptr();
    // SAFETY: `ev` is a reservation of size_of::<ExecEvent>(); fields are written in place.
    unsafe {
        fill_header(&raw mut (*ev).header, EventKind::Exec, size_of::<ExecEvent>());
        let (len, cut) = read_data_loc_str(
            &ctx,
            tpoff!(exec_filename),
            (&raw mut (*ev).filename).cast(),
            FILENAME_LEN,
        );
        let mut flags = if cut { EXEC_FILENAME_TRUNCATED } else { 0 };
        (*ev).filename_len = len as u16;
        (*ev).ret = 0;
        (*ev).dirfd = AT_FDCWD;

        // argv lives in the new image's memory between mm->arg_start and mm->arg_end.
        let mm = read_ptr(current_task(), koff!(task_mm));
        let start = read_kernel::<u64>(mm, koff!(mm_arg_start)).unwrap_or(0);
        let end = read_kernel::<u64>(mm, koff!(mm_arg_end)).unwrap_or(0);
        let total = end.wrapping_sub(start);
        let mut len = 0u64;
        if start != 0 && end > start {
            len = if total > ARGS_LEN as u64 { ARGS_LEN as u64 } else { total };
            if total > ARGS_LEN as u64 {
                flags |= EXEC_ARGS_TRUNCATED;
            }
            let rc = bpf_probe_read_user(
                (&raw mut (*ev).args).cast(),
                len as u32,
                start as *const _,
            );
            if rc != 0 {
                len = 0;
                flags |= EXEC_ARGS_UNREADABLE;
            }
        }
        (*ev).args_len = len as u16;
        (*ev).flags = flags;
    }
    submit(entry);
    0
}

#[inline(always)]
fn stash(stash: ExecStash) {
    stash_put(&EXEC_STASH, &stash, EventKind::ExecFailed);
}

#[tracepoint]
pub fn sys_enter_execve(ctx: TracePointContext) -> u32 {
    let filename = tp_field::<u64>(&ctx, tpoff!(execve_filename));
    stash(ExecStash { filename, dirfd: AT_FDCWD, flags: 0 });
    0
}

#[tracepoint]
pub fn sys_enter_execveat(ctx: TracePointContext) -> u32 {
    let filename = tp_field::<u64>(&ctx, tpoff!(execveat_filename));
    let dirfd = tp_field::<u64>(&ctx, tpoff!(execveat_fd)) as i32;
    stash(ExecStash { filename, dirfd, flags: EXEC_VIA_EXECVEAT });
    0
}

/// Attached to both `sys_exit_execve` and `sys_exit_execveat`.
#[tracepoint]
pub fn sys_exit_exec(ctx: TracePointContext) -> u32 {
    let Some(stashed) = stash_take(&EXEC_STASH) else { return 0 };
    let ret = tp_field::<i64>(&ctx, tpoff!(sys_exit_ret));
    if ret >= 0 {
        return 0; // success is reported by sched_process_exec
    }
    let Some(mut entry) = reserve::<ExecEvent>(EventKind::ExecFailed) else { return 0 };
    let ev = entry.as_mut_ptr();
    // SAFETY: as above; the filename is user memory of the (unchanged) calling image.
    unsafe {
        fill_header(&raw mut (*ev).header, EventKind::ExecFailed, size_of::<ExecEvent>());
        let n = bpf_probe_read_user_str(
            (&raw mut (*ev).filename).cast(),
            FILENAME_LEN as u32,
            stashed.filename as *const _,
        );
        let len = if n > 0 { n as u32 - 1 } else { 0 };
        let mut flags = stashed.flags;
        if len as usize >= FILENAME_LEN - 1 {
            flags |= EXEC_FILENAME_TRUNCATED;
        }
        (*ev).filename_len = len as u16;
        (*ev).args_len = 0;
        (*ev).ret = ret as i32;
        (*ev).dirfd = stashed.dirfd;
        (*ev).flags = flags;
    }
    submit(entry);
    0
}
