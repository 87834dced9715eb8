//! The event path in user space: drain the ring buffer (on wake-up or timer), decode,
//! enrich with CRI metadata, and write to the output; merge v1 freezer poll events; report
//! every loss.
use std::{
    collections::BTreeMap,
    io::{self, Write},
    os::fd::{AsRawFd, RawFd},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use aya::maps::{MapData, RingBuf};
use tokio::{io::unix::AsyncFd, sync::mpsc};

use crate::{
    clock, decode,
    drops::DropCounters,
    enrich::Enricher,
    entry::EntryTracker,
    event::Event,
    anomaly::Anomalies,
    lifecycle::Lifecycle,
    secrets::Masker,
    sink::EventSink,
    output::{DropReport, Line, Output},
};

/// Per-run totals, printed when the daemon stops.
#[derive(Debug, Default)]
pub struct Stats {
    pub by_kind: BTreeMap<&'static str, u64>,
    pub decode_errors: u64,
    pub kernel_drops: BTreeMap<(&'static str, &'static str), u64>,
    pub late: u64,
    /// CRI client counters, when CRI enrichment ran.
    pub cri: Option<String>,
    /// One line per exporter that reports at stop (e.g. exported / dropped counts).
    pub exporters: Vec<String>,
}

impl Stats {
    pub fn summary(&self) -> String {
        let events: u64 = self.by_kind.values().sum();
        let kinds: Vec<String> = self.by_kind.iter().map(|(k, n)| format!("{k}={n}")).collect();
        let dropped: u64 = self.kernel_drops.values().sum::<u64>() + self.decode_errors;
        let drops: Vec<String> =
            self.kernel_drops.iter().map(|((r, k), n)| format!("{r}/{k}={n}")).collect();
        format!(
            "{events} events ({}); {} late re-emits; {dropped} dropped ({}{}decode_error={}){}",
            kinds.join(" "),
            self.late,
            drops.join(" "),
            if drops.is_empty() { "" } else { " " },
            self.decode_errors,
            self.cri.as_deref().map(|c| format!("; {c}")).unwrap_or_default()
        ) + &self.exporters.iter().map(|e| format!("; {e}")).collect::<String>()
    }
}

/// Everything after the ring buffer: numbering, enrichment, output and counters.
pub struct Sinks<W: Write> {
    pub enricher: Option<Enricher>,
    entries: EntryTracker,
    lifecycle: Lifecycle,
    pub output: Output<W>,
    /// Metrics, OTLP, ...: every event after the output line is written.
    pub exporters: Vec<Box<dyn EventSink>>,
    masker: Masker,
    anomalies: Anomalies,
    pub stats: Stats,
    seq: u64,
}

/// Output errors end the run: a closed stdout (EPIPE) is a normal way to stop.
type Flow = Result<(), io::Error>;

impl<W: Write> Sinks<W> {
    pub fn new(enricher: Option<Enricher>, output: Output<W>, masker: Masker, anomalies: Anomalies) -> Self {
        let host = crate::cri::ns_inodes(std::process::id());
        Sinks {
            enricher,
            entries: EntryTracker::new(&host),
            lifecycle: Lifecycle::default(),
            output,
            exporters: Vec::new(),
            masker,
            anomalies,
            stats: Stats::default(),
            seq: 0,
        }
    }

    fn handle(&mut self, mut ev: Event) -> Flow {
        self.seq += 1;
        ev.seq = self.seq;
        // First: no sink (nor the pending buffer) ever holds an unmasked secret.
        self.masker.apply(&mut ev);
        let waits = self.enricher.as_mut().and_then(|e| e.enrich(&mut ev));
        (ev.entry_path, ev.entry_started) = self.entries.classify_entry(&ev, fallback_entry(&ev));
        self.lifecycle.observe(&mut ev);
        // A pending event gets its container facts on its `late` copy instead.
        self.lifecycle.with_container(&mut ev);
        if let (Some(e), Some(w)) = (self.enricher.as_mut(), waits) {
            e.hold(ev.clone(), w);
        }
        *self.stats.by_kind.entry(ev.kind).or_default() += 1;
        self.finish(ev)
    }

    /// Writes a numbered, enriched event to every sink, then whatever anomalies it triggers.
    fn finish(&mut self, ev: Event) -> Flow {
        let line = Line::new(self.output.clock(), &ev);
        self.output.event(&ev, &line)?;
        self.export(&ev, &line);
        let found = self.anomalies.check(&ev);
        self.emit_anomalies(found)
    }

    fn emit_anomalies(&mut self, found: Vec<Event>) -> Flow {
        for mut a in found {
            self.seq += 1;
            a.seq = self.seq;
            *self.stats.by_kind.entry(a.kind).or_default() += 1;
            let line = Line::new(self.output.clock(), &a);
            self.output.event(&a, &line)?;
            self.export(&a, &line);
        }
        Ok(())
    }

    /// Timer-based anomaly rules, once a second.
    fn tick(&mut self) -> Flow {
        let found = self.anomalies.tick(clock::boot_ns());
        self.emit_anomalies(found)
    }

    fn export(&mut self, ev: &Event, line: &Line) {
        for sink in &mut self.exporters {
            sink.event(ev, line);
        }
    }

    /// `late` copies of pending events whose metadata has arrived.
    fn resolve_pending(&mut self) -> Flow {
        let Some(e) = self.enricher.as_mut() else { return Ok(()) };
        for mut ev in e.resolve_pending() {
            if ev.entry_path == "entrypoint" {
                ev.entry_path = fallback_entry(&ev);
            }
            self.lifecycle.with_container(&mut ev);
            self.seq += 1;
            ev.seq = self.seq;
            self.stats.late += 1;
            self.finish(ev)?;
        }
        Ok(())
    }

    fn decode_error(&mut self, len: usize, e: decode::DecodeError) -> Flow {
        self.stats.decode_errors += 1;
        if self.stats.decode_errors <= 5 {
            tracing::warn!("undecodable record ({len} bytes): {e}");
        }
        let total = self.stats.decode_errors;
        let report = DropReport { reason: "decode_error", event_kind: "unknown", count: 1, total };
        for s in &mut self.exporters {
            s.drops(&report);
        }
        self.output.drops(clock::boot_ns(), &report)
    }
}

/// Entry path of a process nothing recorded an entry for: its cgroup says where it started.
fn fallback_entry(ev: &Event) -> &'static str {
    match (&ev.metadata.container, ev.metadata.state) {
        (Some(c), _) if c.ephemeral_of.is_some() => "ephemeral",
        (_, "host") => "host",
        _ => "entrypoint",
    }
}

/// Reads everything currently in the ring buffer, then flushes.
fn drain<W: Write>(ring: &mut RingBuf<MapData>, sinks: &mut Sinks<W>) -> Flow {
    let mut bytes = 0u64;
    while let Some(item) = ring.next() {
        bytes += item.len() as u64;
        match decode::decode(&item) {
            Ok(ev) => sinks.handle(ev)?,
            Err(e) => sinks.decode_error(item.len(), e)?,
        }
    }
    for s in &mut sinks.exporters {
        s.drained(bytes);
    }
    sinks.resolve_pending()?;
    sinks.output.flush()
}

fn report_drops<W: Write>(drops: &mut DropCounters, sinks: &mut Sinks<W>) -> Flow {
    for report in drops.poll() {
        tracing::warn!(
            "lost {} {} events: {} ({} since start)",
            report.count,
            report.event_kind,
            report.reason,
            report.total
        );
        sinks.output.drops(clock::boot_ns(), &report)?;
        for s in &mut sinks.exporters {
            s.drops(&report);
        }
    }
    for s in &mut sinks.exporters {
        s.tick();
    }
    sinks.tick()?;
    sinks.output.flush()
}

pub struct Pipeline<W: Write> {
    pub ring: RingBuf<MapData>,
    pub drops: DropCounters,
    pub sinks: Sinks<W>,
    pub drain_interval: Duration,
}

impl<W: Write> Pipeline<W> {
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
        let (ring, sinks, drops) = (&mut self.ring, &mut self.sinks, &mut self.drops);
        let result: Flow = async {
            loop {
                tokio::select! {
                    biased;
                    _ = &mut stop => break,
                    guard = ring_fd.readable() => {
                        // Cleared before draining: a wake-up the kernel sends while we drain
                        // (the ring grew past another `wakeup_bytes`) must not be lost.
                        guard?.clear_ready();
                        drain(ring, sinks)?;
                    }
                    _ = tick.tick() => drain(ring, sinks)?,
                    Some(ev) = side_events.recv() => sinks.handle(ev)?,
                    _ = drop_check.tick() => report_drops(drops, sinks)?,
                }
            }
            // Detach-time flush: whatever the kernel produced before we stopped.
            while let Ok(ev) = side_events.try_recv() {
                sinks.handle(ev)?;
            }
            drain(ring, sinks)?;
            report_drops(drops, sinks)
        }
        .await;
        if let Err(e) = result {
            if e.kind() != io::ErrorKind::BrokenPipe {
                return Err(e.into());
            }
            tracing::info!("output closed; stopping");
        }
        drop(ring_fd);
        let mut stats = std::mem::take(&mut self.sinks.stats);
        stats.kernel_drops = self.drops.totals();
        stats.cri = self.sinks.enricher.as_ref().map(|e| e.cache.stats.summary());
        stats.exporters = self.sinks.exporters.iter_mut().filter_map(|s| s.finish()).collect();
        if let Some(e) = &self.sinks.enricher
            && e.late_evicted > 0
        {
            tracing::warn!("{} pending events were evicted before their metadata arrived", e.late_evicted);
        }
        Ok(stats)
    }
}

/// Registers the ring buffer's fd with tokio for wake-ups.
fn register_ring_fd(ring: &RingBuf<MapData>) -> io::Result<AsyncFd<RawFd>> {
    let fd = ring.as_raw_fd();
    // SAFETY: the fd is owned by `ring`, which lives in the Pipeline for the whole of `run`;
    // the returned AsyncFd is dropped (deregistered) inside `run`, before the Pipeline.
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
                tracing::warn!(
                    "v1 freezer: more cgroups than freezer_v1.max_cgroups; the rest are not polled"
                );
                warned = true;
            }
            std::thread::sleep(interval);
        }
    })
}
