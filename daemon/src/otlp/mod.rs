//! OpenTelemetry export over OTLP/gRPC (off unless an endpoint is set): container, exec
//! session and process spans, and every event as a log record.
//!
//! The sink on the pipeline thread only clones the event into a bounded queue
//! (`try_send`, drops counted). A thread of its own runs the rest: reordering, the span
//! tree (`spans.rs`), conversion (`convert.rs`), batching and the gRPC calls
//! (`export.rs`), so a slow or absent collector never reaches the event path.
mod convert;
mod export;
mod reorder;
mod spans;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    thread::JoinHandle,
};

use tokio::sync::mpsc;
use tonic::codegen::http::Uri;

use crate::{clock::WallClock, config::OtlpConfig, event::Event, sink::EventSink};

/// The OTLP/gRPC port collectors listen on.
const DEFAULT_PORT: u16 = 4317;

#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    #[error("invalid OTLP endpoint {endpoint:?}: {reason}")]
    BadEndpoint { endpoint: String, reason: String },
    #[error("cannot start the OTLP export thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// Export counters, shared with the export thread; read for the stop summary.
#[derive(Debug, Default)]
pub struct Counters {
    pub spans_exported: AtomicU64,
    pub logs_exported: AtomicU64,
    /// Handed to the sender task (exported, failed, or still queued at stop).
    pub spans_queued: AtomicU64,
    pub logs_queued: AtomicU64,
    /// Events not queued: the export queue was full (or the export thread is gone).
    pub queue_full: AtomicU64,
    /// Records dropped because the batches waiting for the collector were at their bound.
    pub backlog: AtomicU64,
    /// Records in exports that failed, timed out, or that the collector rejected.
    pub failed: AtomicU64,
    /// Containers, sessions or processes without a span (span-state bounds reached).
    pub untracked: AtomicU64,
}

impl Counters {
    fn unsent(&self) -> u64 {
        let n = |c: &AtomicU64| c.load(Relaxed);
        (n(&self.spans_queued) + n(&self.logs_queued))
            .saturating_sub(n(&self.spans_exported) + n(&self.logs_exported) + n(&self.failed))
    }

    pub fn summary(&self, endpoint: &str) -> String {
        let n = |c: &AtomicU64| c.load(Relaxed);
        let unsent = self.unsent();
        let dropped = n(&self.queue_full) + n(&self.backlog) + n(&self.failed) + unsent;
        let untracked = match n(&self.untracked) {
            0 => String::new(),
            u => format!(", {u} untracked"),
        };
        format!(
            "OTLP to {endpoint}: {} spans, {} logs exported; {dropped} dropped (queue_full={} backlog={} failed={} unsent_at_stop={unsent}){untracked}",
            n(&self.spans_exported),
            n(&self.logs_exported),
            n(&self.queue_full),
            n(&self.backlog),
            n(&self.failed),
        )
    }
}

/// Checks an OTLP/gRPC endpoint and normalises it to `http://host:port`.
pub fn parse_endpoint(raw: &str) -> Result<String, OtlpError> {
    let bad = |reason: &str| OtlpError::BadEndpoint { endpoint: raw.to_string(), reason: reason.to_string() };
    let uri: Uri = raw.trim().parse().map_err(|e: tonic::codegen::http::uri::InvalidUri| bad(&e.to_string()))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(bad("https (TLS) is not supported by this build; use http:// (e.g. a node-local collector)"));
        }
        Some(_) | None => return Err(bad("expected http://HOST:PORT (OTLP over gRPC)")),
    }
    let host = uri.host().filter(|h| !h.is_empty()).ok_or_else(|| bad("no host"))?;
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(bad("OTLP/gRPC takes no path (an OTLP/HTTP URL such as :4318/v1/traces is not supported)"));
    }
    Ok(format!("http://{host}:{}", uri.port_u16().unwrap_or(DEFAULT_PORT)))
}

pub struct OtlpSink {
    endpoint: String,
    queue_size: usize,
    tx: Option<mpsc::Sender<Box<Event>>>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
    warned_full: bool,
}

impl OtlpSink {
    /// Validates the endpoint and starts the export thread. Timestamps go through `clock`,
    /// the JSON output's, so both show the same times.
    pub fn start(cfg: &OtlpConfig, clock: WallClock) -> Result<OtlpSink, OtlpError> {
        let endpoint = parse_endpoint(&cfg.endpoint)?;
        let counters = Arc::new(Counters::default());
        let (tx, rx) = mpsc::channel(cfg.queue_size.max(1));
        let exporter = export::Exporter {
            endpoint: endpoint.clone(),
            batch_size: cfg.batch_size.max(1),
            queue_size: cfg.queue_size.max(1),
            timeout: std::time::Duration::from_millis(cfg.timeout_ms.max(1)),
            clock,
            counters: counters.clone(),
        };
        let thread = std::thread::Builder::new().name("podtrail-otlp".into()).spawn(move || exporter.run_blocking(rx))?;
        tracing::info!("OTLP export to {endpoint} (traces and logs)");
        Ok(OtlpSink {
            endpoint,
            queue_size: cfg.queue_size,
            tx: Some(tx),
            thread: Some(thread),
            counters,
            warned_full: false,
        })
    }
}

impl EventSink for OtlpSink {
    fn event(&mut self, ev: &Event, _line: &crate::output::Line) {
        let Some(tx) = &self.tx else { return };
        if tx.try_send(Box::new(ev.clone())).is_err() {
            self.counters.queue_full.fetch_add(1, Relaxed);
            if !self.warned_full {
                self.warned_full = true;
                tracing::warn!(
                    "OTLP export queue to {} is full (otlp.queue_size = {}): events are dropped for export (counted in the stop summary)",
                    self.endpoint,
                    self.queue_size
                );
            }
        }
    }

    /// Closes the queue, lets the export thread flush (bounded by `otlp.timeout_ms`), and
    /// reports what was exported and dropped.
    fn finish(&mut self) -> Option<String> {
        drop(self.tx.take());
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            tracing::error!("the OTLP export thread panicked");
        }
        Some(self.counters.summary(&self.endpoint))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(parse_endpoint("http://127.0.0.1:4317").unwrap(), "http://127.0.0.1:4317");
        assert_eq!(parse_endpoint(" http://collector/ ").unwrap(), "http://collector:4317");
        assert_eq!(parse_endpoint("http://[::1]:9").unwrap(), "http://[::1]:9");
        for bad in ["", "not a url", "localhost:4317", "ftp://x:1", "https://x:4317", "http://x:4318/v1/traces", "http://:80"] {
            let e = parse_endpoint(bad).expect_err(bad).to_string();
            assert!(e.contains(&format!("{bad:?}")), "error names the endpoint: {e}");
        }
    }

    #[test]
    fn summary_counts_unsent() {
        let c = Counters::default();
        c.spans_queued.store(10, Relaxed);
        c.spans_exported.store(4, Relaxed);
        c.failed.store(2, Relaxed);
        c.queue_full.store(1, Relaxed);
        let s = c.summary("http://x:1");
        assert!(s.contains("4 spans, 0 logs exported; 7 dropped"), "{s}");
        assert!(s.contains("unsent_at_stop=4"), "{s}");
    }
}
