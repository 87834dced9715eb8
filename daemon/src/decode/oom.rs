use std::mem::{offset_of, size_of};

use podtrail_common::{COMM_LEN, oom::OomKillEvent};

use super::{Bytes, DecodeError};
use crate::event::{Detail, OomDetail};

pub fn decode(b: &Bytes<'_>) -> Result<Detail, DecodeError> {
    b.require(size_of::<OomKillEvent>())?;
    Ok(Detail::Oom(OomDetail {
        victim_pid: b.u32(offset_of!(OomKillEvent, victim_pid))?,
        victim_tgid: b.u32(offset_of!(OomKillEvent, victim_tgid))?,
        victim_comm: b.cstr(offset_of!(OomKillEvent, victim_comm), COMM_LEN)?,
        victim_cgroup_id: b.u64(offset_of!(OomKillEvent, victim_cgroup_id))?,
        victim_memcg_id: b.u64(offset_of!(OomKillEvent, victim_memcg_id))?,
    }))
}
