//! Live tail: a broadcast of finished events to `podtrail tail` clients over a gRPC service
//! on a unix socket. Publishing never waits: a client that reads too slowly lags (it is
//! told how many events it missed) and never slows the daemon.
pub mod client;
mod format;
mod server;

use std::sync::Arc;

use tokio::sync::broadcast;

pub use server::{Replay, TailServerError, serve};

use crate::{event::Event, sink::EventSink};

pub mod proto {
    tonic::include_proto!("podtrail.v1");
}

/// What a client filters on, plus the event's JSON line (serialized once for all clients).
#[derive(Debug)]
pub struct TailItem {
    pub seq: u64,
    pub kind: &'static str,
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub json: String,
}

impl TailItem {
    fn of(ev: &Event, json: String) -> Self {
        let m = ev.metadata.container.as_deref();
        TailItem {
            seq: ev.seq,
            kind: ev.kind,
            namespace: m.map(|m| m.namespace.clone()).unwrap_or_default(),
            pod: m.map(|m| m.pod.clone()).unwrap_or_default(),
            container: m.map(|m| m.container.clone()).unwrap_or_default(),
            json,
        }
    }

    pub fn matches(&self, f: &proto::FollowRequest) -> bool {
        (f.namespace.is_empty() || f.namespace == self.namespace)
            && (f.pod.is_empty() || f.pod == self.pod)
            && (f.container.is_empty() || f.container == self.container)
            && (f.kinds.is_empty() || f.kinds.iter().any(|k| k == self.kind))
            && (!f.anomalies || self.kind == "anomaly")
    }
}

/// The pipeline's side: one `send` per event while at least one client listens.
pub struct TailSink {
    tx: broadcast::Sender<Arc<TailItem>>,
}

impl TailSink {
    pub fn new(buffer: usize) -> (Self, broadcast::Sender<Arc<TailItem>>) {
        let (tx, _) = broadcast::channel(buffer.max(16));
        (TailSink { tx: tx.clone() }, tx)
    }
}

impl EventSink for TailSink {
    fn event(&mut self, ev: &Event, line: &crate::output::Line) {
        if self.tx.receiver_count() == 0 {
            return; // nobody tails: not even the JSON is built
        }
        let _ = self
            .tx
            .send(Arc::new(TailItem::of(ev, line.json().to_string())));
    }
}

/// Replay from the timeline store at `db`: stored events matching the request since its
/// time, oldest first, as (seq if written by this daemon run else 0, JSON). Live events
/// with a seq up to the last replayed one are then skipped: no gap, no duplicate.
pub fn timeline_replay(db: std::path::PathBuf, flush_interval: std::time::Duration) -> Replay {
    Arc::new(move |f: &proto::FollowRequest| {
        // The client subscribed to live events first; once the writer has flushed what was
        // published before that, the store and the live stream overlap (deduped by seq)
        // instead of leaving a gap.
        std::thread::sleep(flush_interval + std::time::Duration::from_millis(250));
        let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
        let filter = crate::timeline::Filter {
            namespace: some(&f.namespace),
            pod: some(&f.pod),
            container: some(&f.container),
            kinds: f.kinds.clone(),
            anomalies: f.anomalies,
            since_unix_ns: i64::try_from(f.since_unix_ns).ok(),
            until_unix_ns: None,
            threads: true,
        };
        let rows = crate::timeline::query(&db, &filter).map_err(|e| e.to_string())?;
        let run = crate::timeline::run_id();
        Ok(rows.into_iter().map(|r| (if r.run_id == run { r.seq } else { 0 }, r.json)).collect())
    })
}
