//! Checks that turn environment problems into one clear sentence before anything loads.
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    #[error(
        "podtrail needs root or CAP_BPF + CAP_PERFMON (+ CAP_SYS_RESOURCE on kernels < 5.11) to \
         load eBPF programs; running as uid {uid} without them. Run it with sudo."
    )]
    NotPrivileged { uid: u32 },
    #[error(
        "kernel BTF not found at {0}: podtrail needs a kernel built with CONFIG_DEBUG_INFO_BTF=y \
         (5.8 or newer) to resolve struct layouts; pass --btf <file> to use a BTF file instead"
    )]
    NoBtf(String),
}

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

pub fn effective_caps() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0)
}

pub fn check_privileges() -> Result<(), PreflightError> {
    let caps = effective_caps();
    let has = |c: u32| caps & (1 << c) != 0;
    if has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON)) {
        return Ok(());
    }
    // SAFETY: geteuid has no preconditions.
    Err(PreflightError::NotPrivileged { uid: unsafe { libc::geteuid() } })
}

pub fn check_btf(path: &Path) -> Result<(), PreflightError> {
    if path.is_file() {
        Ok(())
    } else {
        Err(PreflightError::NoBtf(path.display().to_string()))
    }
}
