//! OOM kills: `raw_tp/mark_victim` gets the victim `task_struct *` as arg0 (the plain
//! tracepoint runs in the triggering task and has no cgroup), so the victim's identity and
//! cgroups are read through it.
use aya_ebpf::{macros::raw_tracepoint, programs::RawTracePointContext};
use podtrail_common::{EventKind, oom::OomKillEvent};

use crate::{
    emit::{fill_header, reserve, submit},
    globals::koff,
    task::{KPtr, ns_pid, read_kernel, task_cgroup2_id, task_memcg_pages, task_memcg_v1_id},
};

#[raw_tracepoint(tracepoint = "mark_victim")]
pub fn mark_victim(ctx: RawTracePointContext) -> u32 {
    let victim = ctx.arg::<u64>(0) as KPtr;
    let Some(mut entry) = reserve::<OomKillEvent>(EventKind::OomKill) else { return 0 };
    let ev = entry.as_mut_ptr();
    // SAFETY: `ev` is a reservation of size_of::<OomKillEvent>().
    unsafe {
        fill_header(&raw mut (*ev).header, EventKind::OomKill, size_of::<OomKillEvent>());
        (*ev).victim_pid = read_kernel::<u32>(victim, koff!(task_pid)).unwrap_or(0);
        (*ev).victim_tgid = read_kernel::<u32>(victim, koff!(task_tgid)).unwrap_or(0);
        (*ev).victim_cgroup_id = task_cgroup2_id(victim);
        (*ev).victim_memcg_id = task_memcg_v1_id(victim);
        (*ev).victim_comm = read_kernel::<[u8; 16]>(victim, koff!(task_comm)).unwrap_or([0; 16]);
        (*ev).victim_ns_pid = ns_pid(victim);
        (*ev)._pad = 0;
        let (usage, limit) = task_memcg_pages(victim);
        (*ev).memcg_usage_pages = usage;
        (*ev).memcg_limit_pages = limit;
    }
    submit(entry);
    0
}
