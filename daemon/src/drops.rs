//! Reads the kernel's per-CPU drop counters and turns growth into [`DropReport`]s.
use std::collections::BTreeMap;

use aya::maps::{MapData, PerCpuArray};
use podtrail_common::{
    EVENT_KIND_SLOTS, EventKind,
    drops::{DROP_REASONS, drop_index},
};

use crate::output::DropReport;

pub struct DropCounters {
    map: PerCpuArray<MapData, u64>,
    /// Totals last reported, by (reason, kind).
    seen: BTreeMap<(&'static str, &'static str), u64>,
}

impl DropCounters {
    pub fn new(map: PerCpuArray<MapData, u64>) -> Self {
        DropCounters { map, seen: BTreeMap::new() }
    }

    /// Current totals summed over CPUs, by (reason, kind).
    pub fn totals(&self) -> BTreeMap<(&'static str, &'static str), u64> {
        let mut out = BTreeMap::new();
        for reason in DROP_REASONS {
            for kind in EventKind::ALL {
                debug_assert!((kind as u32) < EVENT_KIND_SLOTS);
                let Ok(values) = self.map.get(&drop_index(reason, kind as u32), 0) else { continue };
                let total: u64 = values.iter().sum();
                if total > 0 {
                    out.insert((reason.name(), kind.name()), total);
                }
            }
        }
        out
    }

    /// Reports for every counter that grew since the last call.
    pub fn poll(&mut self) -> Vec<DropReport> {
        let mut reports = Vec::new();
        for (key, total) in self.totals() {
            let prev = self.seen.insert(key, total).unwrap_or(0);
            if total > prev {
                reports.push(DropReport { reason: key.0, event_kind: key.1, count: total - prev, total });
            }
        }
        reports
    }
}
