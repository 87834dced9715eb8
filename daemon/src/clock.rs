//! Kernel timestamps are CLOCK_BOOTTIME; output shows wall-clock time.
use std::time::{Duration, SystemTime};

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid out-pointer; both clocks always exist on Linux.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

pub fn boot_ns() -> u64 {
    clock_ns(libc::CLOCK_BOOTTIME)
}

/// Converts boot-time stamps to wall time with an offset taken once at start-up.
#[derive(Clone, Copy)]
pub struct WallClock {
    realtime_minus_boot: u64,
}

impl Default for WallClock {
    fn default() -> Self {
        Self::new()
    }
}

impl WallClock {
    pub fn new() -> Self {
        WallClock { realtime_minus_boot: clock_ns(libc::CLOCK_REALTIME) - boot_ns() }
    }

    pub fn to_system_time(self, ts_boot_ns: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_nanos(ts_boot_ns + self.realtime_minus_boot)
    }
}
