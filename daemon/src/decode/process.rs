use std::mem::{offset_of, size_of};

use podtrail_common::process::{
    EXIT_GROUP_DEAD_UNKNOWN, ExitEvent, FORK_FLAGS_KNOWN, FORK_THREAD, ForkEvent,
};

use super::{Bytes, DecodeError, names};
use crate::event::{Detail, ExitDetail, ForkDetail};

pub fn decode_fork(b: &Bytes<'_>) -> Result<Detail, DecodeError> {
    b.require(size_of::<ForkEvent>())?;
    let flags = b.u32(offset_of!(ForkEvent, flags))?;
    let clone_flags = b.u64(offset_of!(ForkEvent, clone_flags))?;
    let known = flags & FORK_FLAGS_KNOWN != 0;
    Ok(Detail::Fork(ForkDetail {
        child_pid: b.u32(offset_of!(ForkEvent, child_pid))?,
        child_tgid: b.u32(offset_of!(ForkEvent, child_tgid))?,
        thread: flags & FORK_THREAD != 0,
        clone_flags: known.then_some(clone_flags),
        new_namespaces: if known {
            names::clone_ns_flags(clone_flags)
        } else {
            Default::default()
        },
    }))
}

pub fn decode_exit(b: &Bytes<'_>) -> Result<Detail, DecodeError> {
    b.require(size_of::<ExitEvent>())?;
    let raw = b.u32(offset_of!(ExitEvent, exit_code))?;
    let group_dead = b.u8(offset_of!(ExitEvent, group_dead))?;
    let pid = b.u32(std::mem::offset_of!(podtrail_common::EventHeader, pid))?;
    let tgid = b.u32(std::mem::offset_of!(podtrail_common::EventHeader, tgid))?;
    // Kernel encoding (wait(2) status): low 7 bits = signal, 0x80 = core, bits 8..16 = code.
    let sig = raw & 0x7f;
    Ok(Detail::Exit(ExitDetail {
        code: (sig == 0).then_some((raw >> 8) & 0xff),
        signal: (sig != 0).then_some(sig),
        signal_name: (sig != 0).then(|| names::signal_name(sig)),
        core_dumped: raw & 0x80 != 0,
        raw,
        leader: pid == tgid,
        group_dead: (group_dead != EXIT_GROUP_DEAD_UNKNOWN).then_some(group_dead != 0),
        ns_pid: b.u32(offset_of!(ExitEvent, ns_pid))?,
        container_exit: None,
    }))
}
