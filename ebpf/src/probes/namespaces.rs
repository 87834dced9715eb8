//! setns / unshare: namespaces are read at entry and again at exit, so the event says which
//! ones changed and carries the *new* inodes (what identifies the target of `runc exec` or
//! `nsenter`, which call setns before joining the container's cgroup).
use aya_ebpf::{
    macros::{map, tracepoint},
    maps::HashMap,
    programs::TracePointContext,
};
use podtrail_common::{
    EventKind, Namespaces,
    namespace::{
        NS_CGROUP, NS_IPC, NS_MNT, NS_NET, NS_PID, NS_PID_FOR_CHILDREN, NS_USER, NS_UTS,
        NsChangeEvent,
    },
};

use super::tp_field;
use crate::{
    emit::{fill_header, reserve, stash_put, stash_take, submit},
    globals::tpoff,
    task::{changeable_namespaces, current_task},
};

#[derive(Clone, Copy)]
pub struct NsStash {
    kind: u32,
    fd: i32,
    flags: u64,
    before: Namespaces,
}

#[map]
static NS_STASH: HashMap<u64, NsStash> = HashMap::with_max_entries(16384, 0);

#[inline(always)]
fn stash(kind: EventKind, fd: i32, flags: u64) {
    let s = NsStash {
        kind: kind as u32,
        fd,
        flags,
        before: changeable_namespaces(current_task()),
    };
    stash_put(&NS_STASH, &s, kind);
}

#[tracepoint]
pub fn sys_enter_setns(ctx: TracePointContext) -> u32 {
    let fd = tp_field::<u64>(&ctx, tpoff!(setns_fd)) as i32;
    let nstype = tp_field::<u64>(&ctx, tpoff!(setns_nstype)) as u32 as u64;
    stash(EventKind::Setns, fd, nstype);
    0
}

#[tracepoint]
pub fn sys_enter_unshare(ctx: TracePointContext) -> u32 {
    stash(EventKind::Unshare, -1, tp_field::<u64>(&ctx, tpoff!(unshare_flags)));
    0
}

#[inline(always)]
fn changed(a: &Namespaces, b: &Namespaces) -> u32 {
    let mut m = 0;
    if a.mnt != b.mnt { m |= NS_MNT }
    if a.pid != b.pid { m |= NS_PID }
    if a.net != b.net { m |= NS_NET }
    if a.uts != b.uts { m |= NS_UTS }
    if a.ipc != b.ipc { m |= NS_IPC }
    if a.user != b.user { m |= NS_USER }
    if a.cgroup != b.cgroup { m |= NS_CGROUP }
    if a.pid_for_children != b.pid_for_children { m |= NS_PID_FOR_CHILDREN }
    m
}

/// Attached to `sys_exit_setns` and `sys_exit_unshare`.
#[tracepoint]
pub fn sys_exit_ns(ctx: TracePointContext) -> u32 {
    let Some(s) = stash_take(&NS_STASH) else { return 0 };
    let kind = if s.kind == EventKind::Setns as u32 { EventKind::Setns } else { EventKind::Unshare };
    let Some(mut entry) = reserve::<NsChangeEvent>(kind) else { return 0 };
    let ev = entry.as_mut_ptr();
    // SAFETY: `ev` is a reservation of size_of::<NsChangeEvent>().
    unsafe {
        fill_header(&raw mut (*ev).header, kind, size_of::<NsChangeEvent>());
        let after = (*ev).header.ns;
        let mut before = s.before;
        before.pid = after.pid; // never changes; not read at entry

        (*ev).flags = s.flags;
        (*ev).fd = s.fd;
        (*ev).ret = tp_field::<i64>(&ctx, tpoff!(sys_exit_ret)) as i32;
        (*ev).changed = changed(&before, &after);
        (*ev)._pad = 0;
        (&raw mut (*ev).before).write(before);
    }
    submit(entry);
    0
}
