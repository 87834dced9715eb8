//! The timeline: every event and anomaly in a node-local SQLite store (`store.rs`), written
//! in batches by a thread of its own (`writer.rs`), read back by `podtrail timeline`
//! (`query.rs`, `story.rs`) and, later, by `podtrail tail --since`.
//!
//! Each daemon run has a random [`run_id`]; `(run_id, seq)` names a stored event, so a
//! replay followed by a live stream can drop what it already printed.
mod query;
mod store;
mod story;
mod writer;

#[cfg(test)]
mod tests;

use std::{
    io::Write,
    path::{Path, PathBuf},
    sync::OnceLock,
};

pub use query::{Filter, StoredEvent, container_width, kinds, parse_time, query, query_each};
pub use store::{Opened, Retained, Row, Store};
pub use story::{Story, text_lines};
pub use writer::{Counters, TimelineSink, to_row};

use crate::output::Format;

#[derive(Debug, thiserror::Error)]
pub enum TimelineError {
    #[error(
        "no timeline store at {path}: the daemon (`podtrail run` with [timeline] enabled) writes it there; \
         pass --db PATH (or set [timeline] path) if it lives elsewhere"
    )]
    Missing { path: PathBuf },
    #[error("cannot create the timeline directory {path}: {source}")]
    Dir { path: PathBuf, source: std::io::Error },
    #[error("cannot create the timeline store {path}: {source}")]
    Create { path: PathBuf, source: std::io::Error },
    #[error("timeline store {path}: {source}")]
    Sql { path: PathBuf, source: rusqlite::Error },
    #[error("timeline store {path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("{path} is an SQLite database but not a podtrail timeline store; point [timeline] path / --db elsewhere")]
    NotTimeline { path: PathBuf },
    #[error("timeline store {path} has schema version {version}, newer than this podtrail understands")]
    NewerSchema { path: PathBuf, version: i64 },
    #[error("cannot move the corrupt timeline store {path} aside: {source}")]
    MoveAside { path: PathBuf, source: std::io::Error },
    #[error("cannot start the timeline writer thread: {0}")]
    Thread(std::io::Error),
    #[error(
        "invalid {flag} {value:?}: expected a duration such as 10m, 1h or 2h30m, or an RFC 3339 UTC time such as 2026-01-02T15:04:05Z"
    )]
    BadTime { flag: String, value: String },
    #[error("unknown event kind {kind:?} (known: {known})")]
    UnknownKind { kind: String, known: String },
    #[error("writing the output: {0}")]
    Output(#[from] std::io::Error),
}

/// This daemon run's id: 32 random hex digits, fixed at first use.
pub fn run_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        let from_kernel = std::fs::read_to_string("/proc/sys/kernel/random/uuid").map(|u| u.trim().replace('-', ""));
        from_kernel.unwrap_or_else(|_| {
            // No procfs: time and pid are unique enough per node.
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            format!("{:024x}{:08x}", now.as_nanos(), std::process::id())
        })
    })
}

/// The kernel's boot id (`ts_boot_ns` values compare only within one boot).
pub fn boot_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id").map(|u| u.trim().to_string()).unwrap_or_default()
    })
}

/// `podtrail timeline`: prints the matching events (JSON lines as stored, or aligned text).
/// Returns how many were printed.
pub fn print(db: &Path, filter: &Filter, format: Format, out: &mut impl Write) -> Result<usize, TimelineError> {
    let mut n = 0;
    match format {
        Format::Json => query_each(db, filter, |e| {
            n += 1;
            writeln!(out, "{}", e.json).map_err(TimelineError::Output)
        })?,
        // Streamed (a store can hold 256 MiB): the column width comes from one SQL pass.
        Format::Text => {
            let mut story = Story::new(container_width(db, filter)?);
            query_each(db, filter, |e| {
                n += 1;
                writeln!(out, "{}", story.line(&e)).map_err(TimelineError::Output)
            })?
        }
    }
    out.flush()?;
    Ok(n)
}
