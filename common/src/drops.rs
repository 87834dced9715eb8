//! Loss accounting. The eBPF side counts every event it could not deliver in a per-CPU
//! array indexed by `reason * EVENT_KIND_SLOTS + kind`.
use crate::EVENT_KIND_SLOTS;

#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// `bpf_ringbuf_reserve` failed: the daemon is not draining fast enough.
    RingbufFull = 0,
    /// A syscall-entry stash could not be stored, so the exit event lost its arguments.
    StashFull = 1,
}

pub const DROP_REASONS: [DropReason; 2] = [DropReason::RingbufFull, DropReason::StashFull];

impl DropReason {
    pub const fn name(self) -> &'static str {
        match self {
            DropReason::RingbufFull => "ringbuf_full",
            DropReason::StashFull => "stash_full",
        }
    }
}

pub const DROP_SLOTS: u32 = DROP_REASONS.len() as u32 * EVENT_KIND_SLOTS;

pub const fn drop_index(reason: DropReason, kind: u32) -> u32 {
    reason as u32 * EVENT_KIND_SLOTS + (kind % EVENT_KIND_SLOTS)
}
