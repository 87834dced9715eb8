//! One file per probe family. Program names are what the daemon attaches by.
pub mod cgroup;
pub mod exec;
pub mod namespaces;
pub mod oom;
pub mod process;

use aya_ebpf::{helpers::generated::bpf_probe_read_kernel_str, programs::TracePointContext, EbpfContext};

/// Copies a tracepoint `__data_loc` string (low 16 bits: offset in the record, high 16:
/// length) into `dst`. Returns bytes copied without the NUL, and whether it was cut.
#[inline(always)]
pub fn read_data_loc_str(ctx: &TracePointContext, loc_off: usize, dst: *mut u8, cap: usize) -> (u32, bool) {
    // SAFETY: reading 4 bytes of the tracepoint record via the fault-safe helper.
    let loc: u32 = unsafe { ctx.read_at::<u32>(loc_off) }.unwrap_or(0);
    let src = (ctx.as_ptr() as *const u8).wrapping_add((loc & 0xffff) as usize);
    let full_len = (loc >> 16) as usize; // includes the NUL
    // SAFETY: `dst` has `cap` writable bytes (a field of a ring-buffer reservation); the
    // helper stops at `cap` and always NUL-terminates.
    let n = unsafe { bpf_probe_read_kernel_str(dst.cast(), cap as u32, src.cast()) };
    if n <= 0 {
        return (0, false);
    }
    (n as u32 - 1, full_len > cap)
}

/// Reads a field of a tracepoint record; absent fields (`u32::MAX` offsets) read as 0.
#[inline(always)]
pub fn tp_field<T: Copy + Default>(ctx: &TracePointContext, off: usize) -> T {
    if off == u32::MAX as usize {
        return T::default();
    }
    // SAFETY: fault-safe read of the tracepoint record.
    unsafe { ctx.read_at::<T>(off) }.unwrap_or_default()
}
