//! The one ring buffer, loss accounting and the shared event header.
use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::generated::{
        bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid,
        bpf_get_current_uid_gid, bpf_ktime_get_boot_ns,
    },
    macros::map,
    maps::{HashMap, LruHashMap, PerCpuArray, RingBuf, ring_buf::RingBufEntry},
};
use podtrail_common::{
    EventHeader, EventKind,
    drops::{DROP_SLOTS, DropReason, drop_index},
};

use crate::{globals::global, task};

/// Default size; the daemon overrides it from its config (`map_max_entries`).
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(8 << 20, 0);

#[map]
pub static DROPS: PerCpuArray<u64> = PerCpuArray::with_max_entries(DROP_SLOTS, 0);

#[inline(always)]
pub fn count_drop(reason: DropReason, kind: EventKind) {
    if let Some(slot) = DROPS.get_ptr_mut(drop_index(reason, kind as u32)) {
        // SAFETY: per-CPU slot, only this CPU writes it while this program runs.
        unsafe { *slot += 1 };
    }
}

/// Reserves a record of type `T`, counting a drop when the ring buffer is full.
#[inline(always)]
pub fn reserve<T: 'static>(kind: EventKind) -> Option<RingBufEntry<T>> {
    let entry = EVENTS.reserve::<T>(0);
    if entry.is_none() {
        count_drop(DropReason::RingbufFull, kind);
    }
    entry
}

/// Submits without waking the reader (the daemon mostly drains on a timer), except once
/// each time the waiting data grows past another multiple of `wakeup_bytes`. A wake-up is an
/// irq_work self-IPI: under virtualization a trapped APIC write, dearer than the probe
/// itself. Waking on every record once the threshold is passed made a reader that fell
/// behind cost the traced tasks a quarter of the machine's CPU in a throughput profile.
/// A crossing missed in a race between CPUs only delays the read to the drain timer.
#[inline(always)]
pub fn submit<T>(entry: RingBufEntry<T>) {
    let waiting = EVENTS.query(BPF_RB_AVAIL_DATA as u64);
    let every = global!(PROBE_CONFIG.wakeup_bytes);
    // This record's share of `waiting`: its size plus the ring buffer's 8-byte header,
    // rounded up to 8 as the kernel does.
    let record = ((size_of::<T>() as u64 + 8) + 7) & !7;
    let crossed =
        every > 0 && waiting >= every && waiting / every != (waiting - record.min(waiting)) / every;
    let flags = if crossed {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    };
    entry.submit(flags as u64);
}

/// Fills the header describing the current task. `size` is the full record size.
#[inline(always)]
pub fn fill_header(hdr: *mut EventHeader, kind: EventKind, size: usize) {
    let task = task::current_task();
    // SAFETY: `hdr` points into a ring-buffer reservation of at least `size` bytes, which
    // starts with an EventHeader; all stores are plain field writes.
    unsafe {
        let pid_tgid = bpf_get_current_pid_tgid();
        let uid_gid = bpf_get_current_uid_gid();
        (*hdr).kind = kind as u32;
        (*hdr).size = size as u32;
        (*hdr).ts_ns = bpf_ktime_get_boot_ns();
        (*hdr).cgroup_id = bpf_get_current_cgroup_id();
        (*hdr).pid = pid_tgid as u32;
        (*hdr).tgid = (pid_tgid >> 32) as u32;
        (*hdr).ppid = task::parent_tgid(task);
        (*hdr).uid = uid_gid as u32;
        (*hdr).gid = (uid_gid >> 32) as u32;
        (*hdr)._pad = 0;
        (&raw mut (*hdr).ns).write(task::namespaces(task));
        bpf_get_current_comm((&raw mut (*hdr).comm).cast(), 16);
    }
}

/// Key for per-thread syscall stashes.
#[inline(always)]
pub fn pid_tgid() -> u64 {
    // SAFETY: helper without arguments.
    unsafe { bpf_get_current_pid_tgid() }
}

/// A per-thread syscall stash: a plain hash where the exit program always runs on the same
/// thread (setns, unshare, clone: the key cannot change), an LRU where it may not (execve
/// from a non-leader thread takes the leader's pid), so stale entries evict themselves.
/// The plain hash is the cheaper of the two on the hot path.
pub trait Stash<V> {
    fn put(&self, key: &u64, value: &V) -> Result<(), i32>;
    fn get_copy(&self, key: &u64) -> Option<V>;
    fn delete(&self, key: &u64);
}

macro_rules! impl_stash {
    ($map:ident) => {
        impl<V: Copy> Stash<V> for $map<u64, V> {
            #[inline(always)]
            fn put(&self, key: &u64, value: &V) -> Result<(), i32> {
                self.insert(key, value, 0)
            }
            #[inline(always)]
            fn get_copy(&self, key: &u64) -> Option<V> {
                // SAFETY: the value is copied out at once, before any removal.
                unsafe { self.get(key) }.copied()
            }
            #[inline(always)]
            fn delete(&self, key: &u64) {
                let _ = self.remove(key);
            }
        }
    };
}
impl_stash!(HashMap);
impl_stash!(LruHashMap);

/// Stores this thread's syscall-entry state for the matching exit (or fork) program; a
/// store that fails is a counted `stash_full` drop for `kind`.
#[inline(always)]
pub fn stash_put<V>(map: &impl Stash<V>, value: &V, kind: EventKind) {
    if map.put(&pid_tgid(), value).is_err() {
        count_drop(DropReason::StashFull, kind);
    }
}

/// Takes (copies out, then removes) this thread's stashed state.
#[inline(always)]
pub fn stash_take<V>(map: &impl Stash<V>) -> Option<V> {
    let key = pid_tgid();
    let value = map.get_copy(&key);
    if value.is_some() {
        map.delete(&key);
    }
    value
}
