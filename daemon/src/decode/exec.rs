use std::mem::{offset_of, size_of};

use podtrail_common::exec::{
    ARGS_LEN, EXEC_ARGS_TRUNCATED, EXEC_ARGS_UNREADABLE, EXEC_FILENAME_TRUNCATED,
    EXEC_VIA_EXECVEAT, ExecEvent, FILENAME_LEN,
};

use super::{Bytes, DecodeError, names};
use crate::event::{Argv, Detail, ExecDetail};

pub fn decode(b: &Bytes<'_>) -> Result<Detail, DecodeError> {
    b.require(size_of::<ExecEvent>())?;
    let flags = b.u32(offset_of!(ExecEvent, flags))?;
    let ret = b.i32(offset_of!(ExecEvent, ret))?;
    let filename_len = b.u16(offset_of!(ExecEvent, filename_len))? as usize;
    let args_len = b.u16(offset_of!(ExecEvent, args_len))? as usize;
    let args_raw = b.slice(offset_of!(ExecEvent, args), ARGS_LEN)?;
    let args_raw = &args_raw[..args_len.min(ARGS_LEN)];
    let via_at = flags & EXEC_VIA_EXECVEAT != 0;
    let errno = ret.checked_neg().unwrap_or(0).max(0);
    Ok(Detail::Exec(ExecDetail {
        filename: b.string(offset_of!(ExecEvent, filename), FILENAME_LEN, filename_len)?,
        filename_truncated: flags & EXEC_FILENAME_TRUNCATED != 0,
        args: Argv::from_raw(args_raw),
        args_truncated: flags & EXEC_ARGS_TRUNCATED != 0,
        args_unreadable: flags & EXEC_ARGS_UNREADABLE != 0,
        args_masked: false,
        errno,
        error: (errno != 0).then(|| names::errno_name(errno)),
        syscall: if via_at { "execveat" } else { "execve" },
        dirfd: via_at.then_some(b.i32(offset_of!(ExecEvent, dirfd))?),
    }))
}
