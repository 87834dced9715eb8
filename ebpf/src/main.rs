//! podtrail's kernel side: one program family per file in `probes/`, one ring buffer.
//!
//! Nothing here knows a kernel struct layout: member offsets arrive in [`globals`] from the
//! daemon, which resolves them from the running kernel's BTF and tracefs at load time.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(target_arch = "bpf")]
mod emit;
#[cfg(target_arch = "bpf")]
mod globals;
#[cfg(target_arch = "bpf")]
mod probes;
#[cfg(target_arch = "bpf")]
mod task;

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects any path that could reach here; there is no unwinding in BPF.
    loop {}
}

/// The crate only means something for the BPF target; host builds (e.g. `cargo check
/// --workspace`) get an empty binary.
#[cfg(not(target_arch = "bpf"))]
fn main() {}

#[cfg(target_arch = "bpf")]
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
