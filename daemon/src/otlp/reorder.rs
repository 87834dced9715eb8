//! Puts events back in timestamp order before the span tree sees them: ring-buffer records
//! from different CPUs interleave, and a `late` copy keeps its original (older) timestamp.
//! Events wait `hold` (by the boot clock) unless the buffer is over its bound.
use std::{cmp::Ordering, collections::BinaryHeap};

use crate::event::Event;

struct ByTime(Box<Event>);

impl ByTime {
    fn key(&self) -> (u64, u64) {
        (self.0.ts_boot_ns, self.0.seq)
    }
}

impl PartialEq for ByTime {
    fn eq(&self, o: &Self) -> bool {
        self.key() == o.key()
    }
}
impl Eq for ByTime {}
impl PartialOrd for ByTime {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for ByTime {
    // Reversed: BinaryHeap is a max-heap, the oldest event must come out first.
    fn cmp(&self, o: &Self) -> Ordering {
        o.key().cmp(&self.key())
    }
}

pub struct Reorder {
    heap: BinaryHeap<ByTime>,
    hold_ns: u64,
    cap: usize,
}

impl Reorder {
    pub fn new(hold_ns: u64, cap: usize) -> Self {
        Reorder { heap: BinaryHeap::new(), hold_ns, cap: cap.max(1) }
    }

    pub fn push(&mut self, ev: Box<Event>) {
        self.heap.push(ByTime(ev));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.heap.len()
    }

    /// The next event that has waited long enough at boot time `now` (or every one when
    /// `now` is `u64::MAX`), or the oldest when over the bound.
    pub fn pop_ready(&mut self, now: u64) -> Option<Box<Event>> {
        let oldest = self.heap.peek()?.0.ts_boot_ns;
        if self.heap.len() > self.cap || oldest.saturating_add(self.hold_ns) <= now {
            return self.heap.pop().map(|b| b.0);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Detail, ExitDetail, Metadata, NsInodes, Process};

    fn ev(ts: u64, seq: u64) -> Box<Event> {
        Box::new(Event {
            seq,
            ts_boot_ns: ts,
            kind: "exit",
            source: "kernel",
            process: Process::default(),
            cgroup_id: 0,
            ns: NsInodes::default(),
            metadata: Metadata::host(),
            entry_path: "host",
            entry_started: false,
            detail: Detail::Exit(ExitDetail {
                code: Some(0),
                signal: None,
                signal_name: None,
                core_dumped: false,
                raw: 0,
                leader: true,
                group_dead: Some(true),
                ns_pid: 1,
                container_exit: None,
            }),
        })
    }

    #[test]
    fn releases_in_time_order_after_the_hold() {
        let mut r = Reorder::new(100, 10);
        r.push(ev(50, 3));
        r.push(ev(10, 4)); // a late copy of something older
        r.push(ev(50, 2));
        assert!(r.pop_ready(100).is_none(), "nothing has waited 100 yet");
        let order: Vec<_> = std::iter::from_fn(|| r.pop_ready(150)).map(|e| e.seq).collect();
        assert_eq!(order, vec![4, 2, 3]);
    }

    #[test]
    fn over_the_bound_the_oldest_goes_early() {
        let mut r = Reorder::new(1_000, 2);
        for s in 0..3 {
            r.push(ev(s, s));
        }
        assert_eq!(r.pop_ready(0).map(|e| e.seq), Some(0));
        assert!(r.pop_ready(0).is_none());
        assert_eq!(r.len(), 2);
        assert_eq!(r.pop_ready(u64::MAX).map(|e| e.seq), Some(1));
    }
}
