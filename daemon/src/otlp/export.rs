//! The export thread: events in time order through the span tree, logs and spans into
//! batches, batches to the collector. A sender task makes the gRPC calls so that a slow
//! collector only fills the (bounded) batch queue; what overflows or fails is counted.
use std::{
    sync::{Arc, atomic::Ordering::Relaxed},
    time::{Duration, Instant},
};

use opentelemetry_proto::tonic::{
    collector::{
        logs::v1::{ExportLogsServiceRequest, logs_service_client::LogsServiceClient},
        trace::v1::{ExportTraceServiceRequest, trace_service_client::TraceServiceClient},
    },
    logs::v1::{LogRecord, ResourceLogs, ScopeLogs},
    resource::v1::Resource,
    trace::v1::{ResourceSpans, ScopeSpans, Span},
};
use tokio::sync::mpsc;
use tonic::transport::{Channel, Endpoint};

use super::{Counters, convert, reorder::Reorder, spans::Spans};
use crate::{clock, clock::WallClock, event::Event};

/// How long events wait to be put in time order (covers CPU interleaving and most
/// `pending` -> `late` resolutions, which take one CRI sync).
const REORDER_HOLD: Duration = Duration::from_millis(1_500);
/// Partial batches go out at least this often.
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
const TICK: Duration = Duration::from_millis(100);
/// Tries per batch while the collector answers (one while it is failing).
const ATTEMPTS: u32 = 3;
const RETRY_BACKOFF: Duration = Duration::from_millis(200);

pub struct Exporter {
    pub endpoint: String,
    pub batch_size: usize,
    pub queue_size: usize,
    pub timeout: Duration,
    pub clock: WallClock,
    pub counters: Arc<Counters>,
}

enum Batch {
    Spans(Vec<Span>),
    Logs(Vec<LogRecord>),
}

impl Batch {
    fn len(&self) -> u64 {
        match self {
            Batch::Spans(s) => s.len() as u64,
            Batch::Logs(l) => l.len() as u64,
        }
    }
}

impl Exporter {
    /// The thread's body: a runtime of its own, so nothing here ever runs on (or waits for)
    /// the pipeline's.
    pub fn run_blocking(self, rx: mpsc::Receiver<Box<Event>>) {
        match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt.block_on(self.run(rx)),
            // The queue closes with `rx`: every event is then counted as dropped.
            Err(e) => tracing::error!("OTLP export to {}: cannot start a runtime: {e}; nothing is exported", self.endpoint),
        }
    }

    async fn run(self, mut rx: mpsc::Receiver<Box<Event>>) {
        let endpoint = match Endpoint::from_shared(self.endpoint.clone()) {
            Ok(e) => e.connect_timeout(self.timeout).timeout(self.timeout),
            Err(e) => {
                tracing::error!("OTLP endpoint {}: {e}; nothing is exported", self.endpoint);
                return;
            }
        };
        // Batches waiting for the collector: about one queue's worth of records.
        let (btx, brx) = mpsc::channel((self.queue_size / self.batch_size).max(2));
        let sender = tokio::spawn(send_loop(endpoint, self.endpoint.clone(), self.timeout, brx, self.counters.clone()));
        let mut state = State {
            reorder: Reorder::new(REORDER_HOLD.as_nanos() as u64, self.queue_size.saturating_mul(4).max(1024)),
            spans: Spans::new(self.clock),
            logs: Vec::new(),
            btx,
            ex: &self,
            last_flush: Instant::now(),
        };
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(ev) => {
                        state.reorder.push(ev);
                        state.release(0); // only what is over the reorder bound
                    }
                    None => break,
                },
                _ = tick.tick() => {
                    state.release(clock::boot_ns());
                    if state.last_flush.elapsed() >= FLUSH_INTERVAL {
                        state.flush();
                    }
                }
            }
        }
        // Stopping: everything left, then spans still open end now.
        state.release(u64::MAX);
        state.spans.finish_all(clock::boot_ns());
        state.flush();
        self.counters.untracked.store(state.spans.untracked, Relaxed);
        drop(state);
        // The sender finishes the queued batches, within one export timeout.
        let mut sender = sender;
        if tokio::time::timeout(self.timeout, &mut sender).await.is_err() {
            sender.abort();
            tracing::warn!("OTLP export to {}: batches still queued at stop are dropped", self.endpoint);
        }
    }
}

struct State<'a> {
    reorder: Reorder,
    spans: Spans,
    logs: Vec<LogRecord>,
    btx: mpsc::Sender<Batch>,
    ex: &'a Exporter,
    last_flush: Instant,
}

impl State<'_> {
    fn release(&mut self, now: u64) {
        while let Some(ev) = self.reorder.pop_ready(now) {
            let ctx = self.spans.on_event(&ev);
            let observed = convert::unix_nanos(self.ex.clock, clock::boot_ns());
            self.logs.push(convert::log_record(&ev, self.ex.clock, ctx, observed));
            if self.logs.len() >= self.ex.batch_size {
                let logs = std::mem::take(&mut self.logs);
                self.enqueue(Batch::Logs(logs));
            }
            if self.spans.finished.len() >= self.ex.batch_size {
                let spans = std::mem::take(&mut self.spans.finished);
                self.enqueue(Batch::Spans(spans));
            }
        }
    }

    fn flush(&mut self) {
        self.last_flush = Instant::now();
        if !self.spans.finished.is_empty() {
            let spans = std::mem::take(&mut self.spans.finished);
            self.enqueue(Batch::Spans(spans));
        }
        if !self.logs.is_empty() {
            let logs = std::mem::take(&mut self.logs);
            self.enqueue(Batch::Logs(logs));
        }
    }

    fn enqueue(&mut self, batch: Batch) {
        let n = batch.len();
        let c = &self.ex.counters;
        let queued = if matches!(batch, Batch::Spans(_)) { &c.spans_queued } else { &c.logs_queued };
        match self.btx.try_send(batch) {
            Ok(()) => queued.fetch_add(n, Relaxed),
            Err(_) => c.backlog.fetch_add(n, Relaxed),
        };
    }
}

/// A failure: its description, and its root cause, which says whether it is a new one.
struct Failure {
    msg: String,
    cause: String,
}

impl Failure {
    fn plain(msg: String) -> Failure {
        Failure { cause: msg.clone(), msg }
    }
}

/// Warns once per distinct failure (naming the collector), and once when it recovers.
struct Health {
    endpoint: String,
    last_error: Option<String>,
}

impl Health {
    fn failed(&mut self, what: &str, f: Failure) {
        if self.last_error.as_deref() != Some(f.cause.as_str()) {
            tracing::warn!(
                "OTLP {what} to {} failed: {}; the daemon keeps running, retries with every batch and counts what it drops",
                self.endpoint,
                f.msg
            );
            self.last_error = Some(f.cause);
        }
    }

    fn ok(&mut self) {
        if self.last_error.take().is_some() {
            tracing::info!("OTLP export to {} works again", self.endpoint);
        }
    }

    fn healthy(&self) -> bool {
        self.last_error.is_none()
    }
}

/// An error and its sources on one line (tonic's Display alone says "transport error").
fn chain(e: &dyn std::error::Error) -> Failure {
    let mut msg = e.to_string();
    let mut cause = msg.clone();
    let mut src = e.source();
    while let Some(s) = src {
        cause = s.to_string();
        if !msg.contains(&cause) {
            msg.push_str(": ");
            msg.push_str(&cause);
        }
        src = s.source();
    }
    Failure { msg, cause }
}

fn describe(status: &tonic::Status) -> Failure {
    let msg = format!("{:?}: {}", status.code(), status.message());
    match std::error::Error::source(status).map(chain) {
        Some(inner) if msg.contains(&inner.msg) => Failure { msg, cause: inner.cause },
        Some(inner) => Failure { msg: format!("{msg}: {}", inner.msg), cause: inner.cause },
        None => Failure::plain(msg),
    }
}

fn retryable(code: tonic::Code) -> bool {
    use tonic::Code::*;
    matches!(code, Unavailable | DeadlineExceeded | ResourceExhausted | Aborted)
}

async fn send_loop(
    endpoint: Endpoint,
    addr: String,
    timeout: Duration,
    mut batches: mpsc::Receiver<Batch>,
    counters: Arc<Counters>,
) {
    let mut health = Health { endpoint: addr, last_error: None };
    // Connect once up front so that an unreachable collector is reported at start; the
    // lazy channel reconnects by itself afterwards.
    let channel = match tokio::time::timeout(timeout, endpoint.connect()).await {
        Ok(Ok(ch)) => ch,
        Ok(Err(e)) => {
            health.failed("connect", chain(&e));
            endpoint.connect_lazy()
        }
        Err(_) => {
            health.failed("connect", Failure::plain(format!("no connection within {timeout:?}")));
            endpoint.connect_lazy()
        }
    };
    let mut traces = TraceServiceClient::new(channel.clone());
    let mut logs = LogsServiceClient::new(channel);
    let resource = convert::resource();
    while let Some(batch) = batches.recv().await {
        let n = batch.len();
        let req = Request::new(batch, &resource);
        let attempts = if health.healthy() { ATTEMPTS } else { 1 };
        let mut attempt = 0;
        loop {
            attempt += 1;
            match req.send(&mut traces, &mut logs, timeout).await {
                Ok(rejected) => {
                    let exported = if req.is_spans() { &counters.spans_exported } else { &counters.logs_exported };
                    exported.fetch_add(n.saturating_sub(rejected.0), Relaxed);
                    counters.failed.fetch_add(rejected.0, Relaxed);
                    match rejected {
                        (0, _) => health.ok(),
                        (r, msg) => health.failed("export", Failure::plain(format!("the collector rejected {r} records: {msg}"))),
                    }
                    break;
                }
                // Our own timeouts (no code) are not retried: a slow collector gets no more load.
                Err((Some(code), err)) if attempt < attempts && retryable(code) => {
                    tracing::debug!("OTLP export attempt {attempt} failed: {}; retrying", err.msg);
                    tokio::time::sleep(RETRY_BACKOFF * attempt).await;
                }
                Err((_, err)) => {
                    counters.failed.fetch_add(n, Relaxed);
                    health.failed("export", err);
                    break;
                }
            }
        }
    }
}

enum Request {
    Spans(ExportTraceServiceRequest),
    Logs(ExportLogsServiceRequest),
}

/// (rejected records, the collector's message).
type Accepted = (u64, String);
/// (gRPC code, or none for a timeout; what went wrong).
type Failed = (Option<tonic::Code>, Failure);

impl Request {
    fn new(batch: Batch, resource: &Resource) -> Request {
        match batch {
            Batch::Spans(spans) => Request::Spans(ExportTraceServiceRequest {
                resource_spans: vec![ResourceSpans {
                    resource: Some(resource.clone()),
                    scope_spans: vec![ScopeSpans { scope: Some(convert::scope()), spans, schema_url: String::new() }],
                    schema_url: String::new(),
                }],
            }),
            Batch::Logs(log_records) => Request::Logs(ExportLogsServiceRequest {
                resource_logs: vec![ResourceLogs {
                    resource: Some(resource.clone()),
                    scope_logs: vec![ScopeLogs { scope: Some(convert::scope()), log_records, schema_url: String::new() }],
                    schema_url: String::new(),
                }],
            }),
        }
    }

    fn is_spans(&self) -> bool {
        matches!(self, Request::Spans(_))
    }

    async fn send(
        &self,
        traces: &mut TraceServiceClient<Channel>,
        logs: &mut LogsServiceClient<Channel>,
        timeout: Duration,
    ) -> Result<Accepted, Failed> {
        // Cloned per attempt: the request is kept for a retry.
        let call = async {
            match self {
                Request::Spans(r) => traces.export(r.clone()).await.map(|resp| {
                    let p = resp.into_inner().partial_success.unwrap_or_default();
                    (p.rejected_spans.max(0) as u64, p.error_message)
                }),
                Request::Logs(r) => logs.export(r.clone()).await.map(|resp| {
                    let p = resp.into_inner().partial_success.unwrap_or_default();
                    (p.rejected_log_records.max(0) as u64, p.error_message)
                }),
            }
        };
        match tokio::time::timeout(timeout, call).await {
            Ok(Ok(accepted)) => Ok(accepted),
            Ok(Err(status)) => Err((Some(status.code()), describe(&status))),
            Err(_) => Err((None, Failure::plain(format!("no answer within {timeout:?}")))),
        }
    }
}
