//! cgroup mkdir / rmdir and cgroup2 freezer transitions. These tracepoints fire for every
//! hierarchy; only the cgroup2 one (its hierarchy id is a load-time global) is reported.
use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use podtrail_common::{
    EventKind,
    cgroup::{CGROUP_PATH_LEN, CGROUP_PATH_TRUNCATED, CgroupEvent},
};

use super::{read_data_loc_str, tp_field};
use crate::{
    emit::{fill_header, reserve, submit},
    globals::{global, tpoff},
};

#[inline(always)]
fn cgroup_event(ctx: &TracePointContext, kind: EventKind) -> u32 {
    let root = tp_field::<i32>(ctx, tpoff!(cgroup_root));
    if root != global!(PROBE_CONFIG.cgroup2_hierarchy) {
        return 0;
    }
    let Some(mut entry) = reserve::<CgroupEvent>(kind) else { return 0 };
    let ev = entry.as_mut_ptr();
    // SAFETY: `ev` is a reservation of size_of::<CgroupEvent>().
    unsafe {
        fill_header(&raw mut (*ev).header, kind, size_of::<CgroupEvent>());
        (*ev).id = tp_field::<u64>(ctx, tpoff!(cgroup_id));
        (*ev).root = root;
        (*ev).level = tp_field::<i32>(ctx, tpoff!(cgroup_level));
        (*ev).val = if matches!(kind, EventKind::CgroupFrozen) {
            tp_field::<i32>(ctx, tpoff!(cgroup_frozen_val))
        } else {
            0
        };
        let (len, cut) = read_data_loc_str(
            ctx,
            tpoff!(cgroup_path),
            (&raw mut (*ev).path).cast(),
            CGROUP_PATH_LEN,
        );
        (*ev).path_len = len;
        (*ev).flags = if cut { CGROUP_PATH_TRUNCATED } else { 0 };
        (*ev)._pad = 0;
    }
    submit(entry);
    0
}

#[tracepoint]
pub fn cgroup_mkdir(ctx: TracePointContext) -> u32 {
    cgroup_event(&ctx, EventKind::CgroupMkdir)
}

#[tracepoint]
pub fn cgroup_rmdir(ctx: TracePointContext) -> u32 {
    cgroup_event(&ctx, EventKind::CgroupRmdir)
}

#[tracepoint]
pub fn cgroup_freeze(ctx: TracePointContext) -> u32 {
    cgroup_event(&ctx, EventKind::CgroupFreeze)
}

#[tracepoint]
pub fn cgroup_unfreeze(ctx: TracePointContext) -> u32 {
    cgroup_event(&ctx, EventKind::CgroupUnfreeze)
}

#[tracepoint]
pub fn cgroup_notify_frozen(ctx: TracePointContext) -> u32 {
    cgroup_event(&ctx, EventKind::CgroupFrozen)
}
