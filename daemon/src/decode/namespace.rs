use std::mem::{offset_of, size_of};

use podtrail_common::{EventKind, namespace::NsChangeEvent};

use super::{Bytes, DecodeError, names, namespaces};
use crate::event::{Detail, NsChangeDetail};

pub fn decode(b: &Bytes<'_>, kind: EventKind) -> Result<Detail, DecodeError> {
    b.require(size_of::<NsChangeEvent>())?;
    let flags = b.u64(offset_of!(NsChangeEvent, flags))?;
    let ret = b.i32(offset_of!(NsChangeEvent, ret))?;
    let errno = ret.checked_neg().unwrap_or(0).max(0);
    let setns = kind == EventKind::Setns;
    Ok(Detail::NsChange(NsChangeDetail {
        op: if setns { "setns" } else { "unshare" },
        flags,
        requested: names::clone_ns_flags(flags),
        fd: setns.then_some(b.i32(offset_of!(NsChangeEvent, fd))?),
        errno,
        error: (errno != 0).then(|| names::errno_name(errno)),
        changed: names::ns_change_bits(b.u32(offset_of!(NsChangeEvent, changed))?),
        before: namespaces(b, offset_of!(NsChangeEvent, before))?,
        target: None,
    }))
}
