use std::mem::{offset_of, size_of};

use podtrail_common::{
    EventKind,
    cgroup::{CGROUP_PATH_LEN, CGROUP_PATH_TRUNCATED, CgroupEvent},
};

use super::{Bytes, DecodeError};
use crate::event::{CgroupDetail, Detail, Event, NsInodes, Process};

pub fn decode(b: &Bytes<'_>, kind: EventKind) -> Result<Detail, DecodeError> {
    b.require(size_of::<CgroupEvent>())?;
    let path_len = b.u32(offset_of!(CgroupEvent, path_len))? as usize;
    let val = b.i32(offset_of!(CgroupEvent, val))?;
    Ok(Detail::Cgroup(CgroupDetail {
        id: b.u64(offset_of!(CgroupEvent, id))?,
        path: b.string(offset_of!(CgroupEvent, path), CGROUP_PATH_LEN, path_len)?,
        path_truncated: b.u32(offset_of!(CgroupEvent, flags))? & CGROUP_PATH_TRUNCATED != 0,
        level: b.i32(offset_of!(CgroupEvent, level))?,
        root: b.i32(offset_of!(CgroupEvent, root))?,
        frozen: (kind == EventKind::CgroupFrozen).then_some(val != 0),
        frozen_duration_ns: None,
    }))
}

/// The v1 freezer fires no tracepoint; its poller reports transitions with the same kinds
/// and payload as the cgroup2 events, with `source = v1_freezer_poll` and no task.
pub fn v1_freezer_event(
    ts_boot_ns: u64,
    kind: EventKind,
    cgroup2_id: u64,
    v1_id: u64,
    path: &str,
    level: i32,
    hierarchy: i32,
) -> Event {
    Event {
        seq: 0,
        ts_boot_ns,
        kind: kind.name(),
        source: "v1_freezer_poll",
        process: Process::default(),
        cgroup_id: cgroup2_id,
        ns: NsInodes::default(),
        metadata: crate::event::Metadata::host(),
        entry_path: "host",
        entry_started: false,
        detail: Detail::Cgroup(CgroupDetail {
            id: v1_id,
            path: path.to_string(),
            path_truncated: false,
            level,
            root: hierarchy,
            frozen: match kind {
                EventKind::CgroupFrozen => Some(true),
                EventKind::CgroupUnfreeze => Some(false),
                _ => None,
            },
            frozen_duration_ns: None,
        }),
    }
}
