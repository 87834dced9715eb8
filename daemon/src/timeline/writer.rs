//! The timeline sink: the pipeline thread clones each event into a bounded queue
//! (`try_send`, drops counted); the `podtrail-timeline` thread serialises them and writes
//! them in batches: when `batch_size` are waiting or when the oldest has waited
//! `flush_interval_ms`, whichever comes first. Retention runs on the same thread.
use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
        mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError},
    },
    thread::JoinHandle,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use super::{
    TimelineError,
    store::{Row, Store},
};
use crate::{
    clock::WallClock,
    config::TimelineConfig,
    event::{Detail, Event},
    sink::EventSink,
};

/// Age retention runs this often (size is checked after every batch).
const AGE_RETENTION_EVERY: Duration = Duration::from_secs(60);

/// Writer counters, shared with the writer thread; read for the stop summary.
#[derive(Debug, Default)]
pub struct Counters {
    pub stored: AtomicU64,
    pub batches: AtomicU64,
    /// Longest batch write (insert + commit), microseconds.
    pub max_batch_us: AtomicU64,
    /// Not queued: the queue was full (or the writer thread is gone).
    pub queue_full: AtomicU64,
    /// In batches whose write failed (disk full, I/O error, ...).
    pub write_failed: AtomicU64,
    pub retention_deleted: AtomicU64,
}

impl Counters {
    pub fn summary(&self, path: &std::path::Path) -> String {
        let n = |c: &AtomicU64| c.load(Relaxed);
        let (full, failed) = (n(&self.queue_full), n(&self.write_failed));
        format!(
            "timeline {}: {} events stored in {} batches (longest write {:.1} ms); {} dropped (queue_full={full} write_failed={failed}); {} removed by retention",
            path.display(),
            n(&self.stored),
            n(&self.batches),
            n(&self.max_batch_us) as f64 / 1000.0,
            full + failed,
            n(&self.retention_deleted),
        )
    }
}

pub struct TimelineSink {
    path: std::path::PathBuf,
    queue_size: usize,
    tx: Option<SyncSender<Box<Row>>>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
    warned_full: bool,
    clock: WallClock,
}

impl TimelineSink {
    /// Opens the store (integrity check; a corrupt file is moved aside and reported) and
    /// starts the writer thread. `clock` is the JSON output's, so stored `ts` match it.
    pub fn start(cfg: &TimelineConfig, clock: WallClock) -> Result<TimelineSink, TimelineError> {
        let opened = Store::open(&cfg.path, super::run_id(), super::boot_id())?;
        let store = opened.store;
        tracing::info!(
            "timeline: {} (run {}, integrity check {:?}{})",
            cfg.path.display(),
            super::run_id(),
            opened.check_took,
            opened.moved_aside.as_ref().map(|(p, _)| format!("; corrupt store moved to {}", p.display())).unwrap_or_default()
        );
        let counters = Arc::new(Counters::default());
        let (tx, rx) = mpsc::sync_channel(cfg.queue_size.max(1));
        let writer = Writer {
            store,
            batch_size: cfg.batch_size.max(1),
            flush_interval: Duration::from_millis(cfg.flush_interval_ms),
            max_age: Duration::from_secs(cfg.max_age_hours * 3600),
            max_bytes: cfg.max_bytes,
            counters: counters.clone(),
            last_error: None,
        };
        let thread = std::thread::Builder::new()
            .name("podtrail-timeline".into())
            .spawn(move || writer.run(rx))
            .map_err(TimelineError::Thread)?;
        Ok(TimelineSink {
            path: cfg.path.clone(),
            queue_size: cfg.queue_size,
            tx: Some(tx),
            thread: Some(thread),
            counters,
            warned_full: false,
            clock,
        })
    }

    pub fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }
}

impl EventSink for TimelineSink {
    fn event(&mut self, ev: &Event, line: &crate::output::Line) {
        let Some(tx) = &self.tx else { return };
        // The row (a few short strings and the shared JSON line) is built here rather than
        // a deep copy of the event: cheaper, and the line is serialized only once.
        match tx.try_send(Box::new(to_row(self.clock, ev, line.json().clone()))) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.counters.queue_full.fetch_add(1, Relaxed);
                if !self.warned_full {
                    self.warned_full = true;
                    tracing::warn!(
                        "timeline writer queue for {} is full (timeline.queue_size = {}): events are not stored (counted in the stop summary)",
                        self.path.display(),
                        self.queue_size
                    );
                }
            }
        }
    }

    /// Closes the queue; the writer stores what is left and exits.
    fn finish(&mut self) -> Option<String> {
        drop(self.tx.take());
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            tracing::error!("the timeline writer thread panicked");
        }
        Some(self.counters.summary(&self.path))
    }
}

struct Writer {
    store: Store,
    batch_size: usize,
    flush_interval: Duration,
    max_age: Duration,
    max_bytes: u64,
    counters: Arc<Counters>,
    /// Last write error logged (one warning per distinct error).
    last_error: Option<String>,
}

impl Writer {
    fn run(mut self, rx: Receiver<Box<Row>>) {
        let mut batch: Vec<Row> = Vec::with_capacity(self.batch_size);
        let mut last_age_pass = None::<Instant>;
        loop {
            if last_age_pass.is_none_or(|t| t.elapsed() >= AGE_RETENTION_EVERY) {
                self.retain(true);
                last_age_pass = Some(Instant::now());
            }
            // Idle: wait for the first event of the next batch (or the next age pass).
            let first = match rx.recv_timeout(AGE_RETENTION_EVERY) {
                Ok(ev) => ev,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let deadline = Instant::now() + self.flush_interval;
            batch.push(*first);
            let mut closed = false;
            while batch.len() < self.batch_size {
                match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                    Ok(row) => batch.push(*row),
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => {
                        closed = true;
                        break;
                    }
                }
            }
            self.write(&mut batch);
            self.retain(false);
            if closed {
                break;
            }
        }
        tracing::debug!("timeline writer stopped");
    }

    fn write(&mut self, batch: &mut Vec<Row>) {
        let t = Instant::now();
        match self.store.insert(batch) {
            Ok(()) => {
                let us = t.elapsed().as_micros() as u64;
                self.counters.stored.fetch_add(batch.len() as u64, Relaxed);
                self.counters.batches.fetch_add(1, Relaxed);
                self.counters.max_batch_us.fetch_max(us, Relaxed);
                self.last_error = None;
            }
            Err(e) => {
                self.counters.write_failed.fetch_add(batch.len() as u64, Relaxed);
                self.warn_once(format!("cannot write {} events to {}: {e}", batch.len(), self.store.path().display()));
            }
        }
        batch.clear();
    }

    fn retain(&mut self, by_age: bool) {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0);
        match self.store.retain(now, by_age.then_some(self.max_age), self.max_bytes) {
            Ok(r) => {
                let n = r.by_age + r.by_size;
                if n > 0 {
                    self.counters.retention_deleted.fetch_add(n, Relaxed);
                    tracing::debug!("timeline retention: {} events older than {:?}, {} over {} bytes", r.by_age, self.max_age, r.by_size, self.max_bytes);
                }
            }
            Err(e) => self.warn_once(format!("timeline retention on {} failed: {e}", self.store.path().display())),
        }
    }

    fn warn_once(&mut self, msg: String) {
        if self.last_error.as_deref() != Some(msg.as_str()) {
            tracing::warn!("{msg}");
            self.last_error = Some(msg);
        }
    }
}

/// The stored form of an event: its JSON line plus the columns queries filter on.
pub fn to_row(clock: WallClock, ev: &Event, json: Arc<str>) -> Row {
    let ts_unix_ns = clock
        .to_system_time(ev.ts_boot_ns)
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos().min(i64::MAX as u128) as i64)
        .unwrap_or(0);
    // The container the event is about; for a setns from the host, the one it entered.
    let subject = ev.metadata.container.as_deref().or(match &ev.detail {
        Detail::NsChange(n) => n.target.as_deref(),
        _ => None,
    });
    let (rule, thread) = match &ev.detail {
        Detail::Anomaly(a) => (Some(a.rule.to_string()), false),
        Detail::Fork(f) => (None, f.thread),
        Detail::Exit(x) => (None, !x.leader),
        _ => (None, false),
    };
    Row {
        seq: ev.seq,
        ts_unix_ns,
        ts_boot_ns: ev.ts_boot_ns,
        kind: ev.kind.to_string(),
        state: ev.metadata.state.to_string(),
        late_of: ev.metadata.late_of,
        namespace: subject.map(|c| c.namespace.clone()),
        pod: subject.map(|c| c.pod.clone()),
        container: subject.map(|c| c.container.clone()),
        container_id: subject.map(|c| c.container_id.clone()),
        rule,
        thread,
        json,
    }
}
