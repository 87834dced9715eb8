//! OOM kills, from `raw_tp/mark_victim` (runs in the context of the task that hit the OOM).
use crate::{COMM_LEN, EventHeader};

/// Header = the triggering task; the victim is described by the payload.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct OomKillEvent {
    pub header: EventHeader,
    pub victim_pid: u32,
    pub victim_tgid: u32,
    /// cgroup2 id of the victim (`task->cgroups->dfl_cgrp->kn->id`).
    pub victim_cgroup_id: u64,
    /// id of the victim's cgroup v1 memory cgroup (0 when there is no v1 memory hierarchy).
    pub victim_memcg_id: u64,
    pub victim_comm: [u8; COMM_LEN],
    /// The victim's pid inside its own pid namespace (1 = a container's init).
    pub victim_ns_pid: u32,
    pub _pad: u32,
    /// The victim's memory cgroup page counter at the kill, in pages (`memory.usage` and
    /// `memory.max`; max is the kernel's PAGE_COUNTER_MAX when unlimited).
    pub memcg_usage_pages: u64,
    pub memcg_limit_pages: u64,
}
