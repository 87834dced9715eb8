//! The event path in user space: drain the ring buffer (on wake-up or timer), decode, and
//! write to the output; merge v1 freezer poll events; report every loss.
use std::{
    collections::BTreeMap,
    io::{self, Write},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use std::os::fd::{AsRawFd, RawFd};

use aya::maps::{MapData, RingBuf};
use tokio::{io::unix::AsyncFd, sync::mpsc};

use crate::{
    clock,
    cri::MetadataCache,
    decode,
    drops::DropCounters,
    event::Event,
    output::{DropReport, Output},
};

/// Per-run totals, printed when the daemon stops.
#[derive(Debug, Default)]
pub struct Stats {
    pub by_kind: BTreeMap<&'static str, u64>,
    pub decode_errors: u64,
    pub kernel_drops: BTreeMap<(&'static str, &'static str), u64>,
}

impl Stats {
    pub fn summary(&self) -> String {
        let events: u64 = self.by_kind.values().sum();
        let kinds: Vec<String> = self.by_kind.iter().map(|(k, n)| format!("{k}={n}")).collect();
        let dropped: u64 = self.kernel_drops.values().sum::<u64>() + self.decode_errors;
        let drops: Vec<String> =
            self.kernel_drops.iter().map(|((r, k), n)| format!("{r}/{k}={n}")).collect();
        format!(
            "{events} events ({}); {dropped} dropped ({}{}decode_error={})",
            kinds.join(" "),
            drops.join(" "),
            if drops.is_empty() { "" } else { " " },
            self.decode_errors
        )
    }
}

/// Attaches CRI metadata to events and nudges the CRI sync when a cgroup appears.
pub struct Enricher {
    pub cache: MetadataCache,
    pub created: mpsc::Sender<()>,
}

impl Enricher {
    fn enrich(&self, ev: &mut Event) {
        ev.metadata = self.cache.lookup(ev.cgroup_id);
        if ev.kind == "cgroup_mkdir" {
            let _ = self.created.try_send(()); // never wait: a pending nudge is enough
        }
    }
}

pub struct Pipeline<W: Write> {
    pub ring: RingBuf<MapData>,
    pub enricher: Option<Enricher>,
    pub drops: DropCounters,
    pub output: Output<W>,
    pub drain_interval: Duration,
    pub stats: Stats,
}

/// Output errors end the run: a closed stdout (EPIPE) is a normal way to stop.
type Flow = Result<(), io::Error>;

impl<W: Write> Pipeline<W> {
    fn emit(&mut self, mut ev: Event) -> Flow {
        if let Some(e) = &self.enricher {
            e.enrich(&mut ev);
        }
        *self.stats.by_kind.entry(ev.kind).or_default() += 1;
        self.output.event(&ev)
    }

    /// Reads everything currently in the ring buffer.
    fn drain_ring(
        ring: &mut RingBuf<MapData>,
        enricher: Option<&Enricher>,
        stats: &mut Stats,
        output: &mut Output<W>,
    ) -> Flow {
        while let Some(item) = ring.next() {
            match decode::decode(&item) {
                Ok(mut ev) => {
                    if let Some(e) = enricher {
                        e.enrich(&mut ev);
                    }
                    *stats.by_kind.entry(ev.kind).or_default() += 1;
                    output.event(&ev)?;
                }
                Err(e) => {
                    stats.decode_errors += 1;
                    if stats.decode_errors <= 5 {
                        tracing::warn!("undecodable record ({} bytes): {e}", item.len());
                    }
                    let report = DropReport {
                        reason: "decode_error",
                        event_kind: "unknown",
                        count: 1,
                        total: stats.decode_errors,
                    };
                    output.drops(clock::boot_ns(), &report)?;
                }
            }
        }
        Ok(())
    }

    fn report_drops(&mut self) -> Flow {
        for report in self.drops.poll() {
            tracing::warn!(
                "lost {} {} events: {} ({} since start)",
                report.count,
                report.event_kind,
                report.reason,
                report.total
            );
            self.output.drops(clock::boot_ns(), &report)?;
        }
        Ok(())
    }

    /// Runs until `stop` resolves; then drains what is left and reports final drops.
    pub async fn run(
        mut self,
        mut side_events: mpsc::Receiver<Event>,
        stop: impl std::future::Future<Output = ()>,
    ) -> anyhow::Result<Stats> {
        let ring_fd = register_ring_fd(&self.ring)?;
        let mut tick = tokio::time::interval(self.drain_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut drop_check = tokio::time::interval(Duration::from_secs(1));
        tokio::pin!(stop);
        let result: Flow = async {
            loop {
                tokio::select! {
                    biased;
                    _ = &mut stop => break,
                    guard = ring_fd.readable() => {
                        let mut guard = guard?;
                        Self::drain_ring(&mut self.ring, self.enricher.as_ref(), &mut self.stats, &mut self.output)?;
                        guard.clear_ready();
                        self.output.flush()?;
                    }
                    _ = tick.tick() => {
                        Self::drain_ring(&mut self.ring, self.enricher.as_ref(), &mut self.stats, &mut self.output)?;
                        self.output.flush()?;
                    }
                    Some(ev) = side_events.recv() => {
                        self.emit(ev)?;
                    }
                    _ = drop_check.tick() => {
                        self.report_drops()?;
                        self.output.flush()?;
                    }
                }
            }
            // Detach-time flush: whatever the kernel produced before we stopped.
            Self::drain_ring(&mut self.ring, self.enricher.as_ref(), &mut self.stats, &mut self.output)?;
            while let Ok(ev) = side_events.try_recv() {
                self.emit(ev)?;
            }
            self.report_drops()?;
            self.output.flush()
        }
        .await;
        if let Err(e) = result {
            if e.kind() != io::ErrorKind::BrokenPipe {
                return Err(e.into());
            }
            tracing::info!("output closed; stopping");
        }
        self.stats.kernel_drops = self.drops.totals();
        Ok(self.stats)
    }
}

/// Registers the ring buffer's fd with tokio for wake-ups.
fn register_ring_fd(ring: &RingBuf<MapData>) -> io::Result<AsyncFd<RawFd>> {
    let fd = ring.as_raw_fd();
    // SAFETY: the fd is owned by `ring`, which lives in the Pipeline for the whole of `run`;
    // the returned AsyncFd is a local of `run` and is dropped (deregistered) before it.
    unsafe { AsyncFd::register(fd) }.map_err(io::Error::from)
}

/// Runs a v1 freezer poller on its own thread until `stop` is set.
pub fn spawn_freezer_poller(
    mut poller: crate::freezer_v1::V1FreezerPoller,
    interval: Duration,
    tx: mpsc::Sender<Event>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut warned = false;
        while !stop.load(Ordering::Relaxed) {
            for ev in poller.poll(clock::boot_ns()) {
                if tx.blocking_send(ev).is_err() {
                    return;
                }
            }
            if poller.truncated && !warned {
                tracing::warn!("v1 freezer: more cgroups than freezer_v1.max_cgroups; the rest are not polled");
                warned = true;
            }
            std::thread::sleep(interval);
        }
    })
}
