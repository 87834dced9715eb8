use std::mem::{offset_of, size_of};

use podtrail_common::{COMM_LEN, oom::OomKillEvent};

use super::{Bytes, DecodeError};
use crate::event::{Detail, OomDetail};

pub fn decode(b: &Bytes<'_>) -> Result<Detail, DecodeError> {
    b.require(size_of::<OomKillEvent>())?;
    Ok(Detail::Oom(OomDetail {
        victim_pid: b.u32(offset_of!(OomKillEvent, victim_pid))?,
        victim_tgid: b.u32(offset_of!(OomKillEvent, victim_tgid))?,
        victim_comm: b.comm(offset_of!(OomKillEvent, victim_comm), COMM_LEN)?,
        victim_cgroup_id: b.u64(offset_of!(OomKillEvent, victim_cgroup_id))?,
        victim_memcg_id: b.u64(offset_of!(OomKillEvent, victim_memcg_id))?,
        victim_ns_pid: b.u32(offset_of!(OomKillEvent, victim_ns_pid))?,
        victim_is_init: None,
        memory_usage_bytes: pages_to_bytes(b.u64(offset_of!(OomKillEvent, memcg_usage_pages))?),
        memory_limit_bytes: pages_to_bytes(b.u64(offset_of!(OomKillEvent, memcg_limit_pages))?),
    }))
}

/// Bytes of a page count; None for 0 (unreadable) and for the kernel's "no limit"
/// (PAGE_COUNTER_MAX = LONG_MAX / PAGE_SIZE).
fn pages_to_bytes(pages: u64) -> Option<u64> {
    let page = page_size();
    (pages != 0 && pages < i64::MAX as u64 / page).then(|| pages * page)
}

fn page_size() -> u64 {
    static PAGE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    // SAFETY: sysconf has no preconditions.
    *PAGE.get_or_init(|| u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096))
}
