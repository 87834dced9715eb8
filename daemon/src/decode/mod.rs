//! Ring-buffer record -> [`Event`]. One decoder per probe family; every read is
//! length-checked against the record, and field offsets come from the shared `#[repr(C)]`
//! types via `offset_of!`, so both sides cannot drift apart silently.
mod bytes;
mod cgroup;
mod exec;
pub mod names;
mod namespace;
mod oom;
mod process;

use std::mem::offset_of;

pub use bytes::{Bytes, DecodeError};
use podtrail_common::{COMM_LEN, EventHeader, EventKind, HEADER_SIZE, Namespaces};
pub use cgroup::v1_freezer_event;

use crate::event::{Event, NsInodes, Process};

pub fn decode(data: &[u8]) -> Result<Event, DecodeError> {
    let b = Bytes::new(data, "event header");
    b.require(HEADER_SIZE)?;
    let kind_raw = b.u32(offset_of!(EventHeader, kind))?;
    let kind = EventKind::from_u32(kind_raw).ok_or(DecodeError::UnknownKind(kind_raw))?;
    let claimed = b.u32(offset_of!(EventHeader, size))?;
    if claimed as usize > data.len() || (claimed as usize) < HEADER_SIZE {
        return Err(DecodeError::SizeMismatch { claimed, actual: data.len() });
    }
    let b = Bytes::new(&data[..claimed as usize], kind.name());
    let detail = match kind {
        EventKind::Exec | EventKind::ExecFailed => exec::decode(&b)?,
        EventKind::Fork => process::decode_fork(&b)?,
        EventKind::Exit => process::decode_exit(&b)?,
        EventKind::Setns | EventKind::Unshare => namespace::decode(&b, kind)?,
        EventKind::OomKill => oom::decode(&b)?,
        EventKind::CgroupMkdir
        | EventKind::CgroupRmdir
        | EventKind::CgroupFreeze
        | EventKind::CgroupUnfreeze
        | EventKind::CgroupFrozen => cgroup::decode(&b, kind)?,
    };
    Ok(Event {
        seq: 0,
        ts_boot_ns: b.u64(offset_of!(EventHeader, ts_ns))?,
        kind: kind.name(),
        source: "kernel",
        process: Process {
            pid: b.u32(offset_of!(EventHeader, pid))?,
            tgid: b.u32(offset_of!(EventHeader, tgid))?,
            ppid: b.u32(offset_of!(EventHeader, ppid))?,
            uid: b.u32(offset_of!(EventHeader, uid))?,
            gid: b.u32(offset_of!(EventHeader, gid))?,
            comm: b.comm(offset_of!(EventHeader, comm), COMM_LEN)?,
        },
        cgroup_id: b.u64(offset_of!(EventHeader, cgroup_id))?,
        ns: namespaces(&b, offset_of!(EventHeader, ns))?,
        metadata: crate::event::Metadata::host(),
        entry_path: "host",
        entry_started: false,
        detail,
    })
}

/// Reads a [`Namespaces`] struct at `base`.
fn namespaces(b: &Bytes<'_>, base: usize) -> Result<NsInodes, DecodeError> {
    let f = |off: usize| b.u32(base + off);
    Ok(NsInodes {
        mnt: f(offset_of!(Namespaces, mnt))?,
        pid: f(offset_of!(Namespaces, pid))?,
        net: f(offset_of!(Namespaces, net))?,
        uts: f(offset_of!(Namespaces, uts))?,
        ipc: f(offset_of!(Namespaces, ipc))?,
        user: f(offset_of!(Namespaces, user))?,
        cgroup: f(offset_of!(Namespaces, cgroup))?,
        pid_for_children: f(offset_of!(Namespaces, pid_for_children))?,
    })
}

#[cfg(test)]
mod tests;
