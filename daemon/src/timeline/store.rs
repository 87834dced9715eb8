//! The SQLite file: open with an integrity check (a corrupt file is moved aside and a new
//! one started), the schema, batched inserts and retention by age and size.
//!
//! WAL mode with `synchronous=NORMAL`: a committed batch survives a crash or `kill -9` of
//! the daemon (it is in the WAL, in the page cache); a power loss or kernel crash can roll
//! back the batches committed since the last WAL checkpoint (at most ~4 MiB of WAL), never
//! leave a half-written batch.
use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use rusqlite::{Connection, ErrorCode, OpenFlags, params};

use super::TimelineError;

/// `PRAGMA application_id`: "podt". A SQLite file with tables and another id is not ours.
pub const APPLICATION_ID: i64 = 0x706f_6474;
/// `PRAGMA user_version` of the schema below.
pub const SCHEMA_VERSION: i64 = 1;
/// The WAL is truncated to this after checkpoints.
const JOURNAL_SIZE_LIMIT: i64 = 4 << 20;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    id           INTEGER PRIMARY KEY,
    run_id       TEXT NOT NULL,
    boot_id      TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    ts_unix_ns   INTEGER NOT NULL,
    ts_boot_ns   INTEGER NOT NULL,
    kind         TEXT NOT NULL,
    state        TEXT NOT NULL,
    late_of      INTEGER,
    namespace    TEXT,
    pod          TEXT,
    container    TEXT,
    container_id TEXT,
    rule         TEXT,
    thread       INTEGER NOT NULL DEFAULT 0,
    json         TEXT NOT NULL
);
-- Container indexes hold container events only (host events have no pod): every query that
-- uses them filters on namespace or pod, which implies NOT NULL. Skipping the host rows makes
-- a host-event flood ~30% cheaper to store. Replaces the full indexes of earlier builds.
DROP INDEX IF EXISTS events_container_ts;
DROP INDEX IF EXISTS events_pod_ts;
CREATE INDEX IF NOT EXISTS events_container_ts_c ON events(namespace, pod, container, ts_unix_ns)
    WHERE namespace IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_pod_ts_c ON events(pod, ts_unix_ns) WHERE pod IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_ts ON events(ts_unix_ns);
CREATE INDEX IF NOT EXISTS events_late ON events(run_id, late_of) WHERE late_of IS NOT NULL;
";

/// One event as stored (built by the writer thread from an `Event`).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub seq: u64,
    pub ts_unix_ns: i64,
    pub ts_boot_ns: u64,
    pub kind: String,
    /// `metadata.state`.
    pub state: String,
    pub late_of: Option<u64>,
    /// The container the event is about: `metadata`, or a setns's target.
    pub namespace: Option<String>,
    pub pod: Option<String>,
    pub container: Option<String>,
    pub container_id: Option<String>,
    /// Anomaly rule.
    pub rule: Option<String>,
    /// A thread's fork or exit (not a process's).
    pub thread: bool,
    /// The `--output json` line.
    pub json: std::sync::Arc<str>,
}

pub struct Store {
    conn: Connection,
    path: PathBuf,
    run_id: String,
    boot_id: String,
}

/// What opening found.
pub struct Opened {
    pub store: Store,
    /// The corrupt file was renamed to this, with the reason.
    pub moved_aside: Option<(PathBuf, String)>,
    /// How long the integrity check took.
    pub check_took: Duration,
}

/// Why `try_open` failed: a corrupt file is moved aside, anything else is an error.
enum OpenFailure {
    Corrupt(String),
    Other(TimelineError),
}

/// Retention pass results.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Retained {
    pub by_age: u64,
    pub by_size: u64,
}

impl Store {
    /// Opens (creating it and its directory if needed) the store at `path` for writing.
    /// A file that is not a database or fails `PRAGMA quick_check` is renamed to
    /// `<path>.corrupt-<unix time>` and a new store is created in its place.
    pub fn open(path: &Path, run_id: &str, boot_id: &str) -> Result<Opened, TimelineError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| TimelineError::Dir { path: dir.to_path_buf(), source })?;
        }
        create_private(path)?;
        let t = Instant::now();
        let (conn, moved_aside) = match try_open(path) {
            Ok(conn) => (conn, None),
            Err(OpenFailure::Corrupt(reason)) => {
                let aside = move_aside(path)?;
                tracing::warn!(
                    "timeline store {} is corrupt ({reason}): moved to {}; starting a new store",
                    path.display(),
                    aside.display()
                );
                create_private(path)?;
                match try_open(path) {
                    Ok(conn) => (conn, Some((aside, reason))),
                    Err(OpenFailure::Corrupt(reason)) => {
                        return Err(TimelineError::Corrupt { path: path.to_path_buf(), reason });
                    }
                    Err(OpenFailure::Other(e)) => return Err(e),
                }
            }
            Err(OpenFailure::Other(e)) => return Err(e),
        };
        let store = Store { conn, path: path.to_path_buf(), run_id: run_id.into(), boot_id: boot_id.into() };
        Ok(Opened { store, moved_aside, check_took: t.elapsed() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `rows` in one transaction: all of them or none.
    pub fn insert(&mut self, rows: &[Row]) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut st = tx.prepare_cached(
                "INSERT INTO events (run_id, boot_id, seq, ts_unix_ns, ts_boot_ns, kind, state, late_of, \
                 namespace, pod, container, container_id, rule, thread, json) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
            )?;
            for r in rows {
                st.execute(params![
                    self.run_id,
                    self.boot_id,
                    r.seq as i64,
                    r.ts_unix_ns,
                    r.ts_boot_ns as i64,
                    r.kind,
                    r.state,
                    r.late_of.map(|s| s as i64),
                    r.namespace,
                    r.pod,
                    r.container,
                    r.container_id,
                    r.rule,
                    r.thread,
                    r.json,
                ])?;
            }
        }
        tx.commit()
    }

    /// Bytes of the database file in use (pages not on the free list).
    pub fn used_bytes(&self) -> rusqlite::Result<u64> {
        let get = |p: &str| self.conn.pragma_query_value(None, p, |r| r.get::<_, i64>(0));
        let (pages, free, size) = (get("page_count")?, get("freelist_count")?, get("page_size")?);
        Ok(((pages - free).max(0) * size) as u64)
    }

    pub fn file_bytes(&self) -> rusqlite::Result<u64> {
        let get = |p: &str| self.conn.pragma_query_value(None, p, |r| r.get::<_, i64>(0));
        Ok((get("page_count")? * get("page_size")?) as u64)
    }

    /// Deletes events older than `max_age` (by wall clock), then the oldest events until the
    /// pages in use are under `max_bytes` (down to 90% of it, so that this does not run on
    /// every batch), and gives free pages back to the file system once they are a quarter
    /// of `max_bytes`.
    pub fn retain(&mut self, now_unix_ns: i64, max_age: Option<Duration>, max_bytes: u64) -> rusqlite::Result<Retained> {
        let mut out = Retained::default();
        if let Some(age) = max_age {
            let cutoff = now_unix_ns.saturating_sub(age.as_nanos().min(i64::MAX as u128) as i64);
            out.by_age = self.conn.execute("DELETE FROM events WHERE ts_unix_ns < ?1", [cutoff])? as u64;
        }
        let target = max_bytes / 10 * 9;
        for _ in 0..32 {
            let used = self.used_bytes()?;
            if used <= max_bytes && out.by_size == 0 || used <= target {
                break;
            }
            let rows: i64 = self.conn.query_row("SELECT count(*) FROM events", [], |r| r.get(0))?;
            if rows == 0 {
                break;
            }
            let per_row = (used as f64 / rows as f64).max(1.0);
            let n = (((used - target) as f64 / per_row).ceil() as i64).clamp(1, rows);
            out.by_size += self
                .conn
                .execute("DELETE FROM events WHERE id IN (SELECT id FROM events ORDER BY id LIMIT ?1)", [n])?
                as u64;
        }
        let free = self.file_bytes()?.saturating_sub(self.used_bytes()?);
        if free > max_bytes / 4 {
            // It frees one page per step: step it to the end.
            let mut st = self.conn.prepare("PRAGMA incremental_vacuum")?;
            let mut rows = st.query([])?;
            while rows.next()?.is_some() {}
        }
        Ok(out)
    }
}

/// Opens `path` read-only for queries (no integrity check, no creation).
pub fn open_for_query(path: &Path) -> Result<Connection, TimelineError> {
    if !path.exists() {
        return Err(TimelineError::Missing { path: path.to_path_buf() });
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    let sql = |source| TimelineError::Sql { path: path.to_path_buf(), source };
    let conn = Connection::open_with_flags(path, flags).map_err(sql)?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(sql)?;
    let id: i64 = conn.pragma_query_value(None, "application_id", |r| r.get(0)).map_err(|e| {
        if is_corruption(&e) {
            TimelineError::Corrupt { path: path.to_path_buf(), reason: e.to_string() }
        } else {
            sql(e)
        }
    })?;
    if id != APPLICATION_ID {
        return Err(TimelineError::NotTimeline { path: path.to_path_buf() });
    }
    Ok(conn)
}

fn is_corruption(e: &rusqlite::Error) -> bool {
    matches!(e.sqlite_error_code(), Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt))
}

fn try_open(path: &Path) -> Result<Connection, OpenFailure> {
    let other = |source| OpenFailure::Other(TimelineError::Sql { path: path.to_path_buf(), source });
    let classify = |e: rusqlite::Error| if is_corruption(&e) { OpenFailure::Corrupt(e.to_string()) } else { other(e) };
    let conn = Connection::open(path).map_err(classify)?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(other)?;
    // The first read of the header: "file is not a database" shows here.
    let app_id: i64 = conn.pragma_query_value(None, "application_id", |r| r.get(0)).map_err(classify)?;
    let mut problems = Vec::new();
    {
        let mut st = conn.prepare("PRAGMA quick_check").map_err(classify)?;
        let rows = st.query_map([], |r| r.get::<_, String>(0)).map_err(classify)?;
        for row in rows {
            let line = row.map_err(classify)?;
            if line != "ok" {
                problems.push(line);
            }
        }
    }
    if !problems.is_empty() {
        let n = problems.len();
        problems.truncate(3);
        return Err(OpenFailure::Corrupt(format!("quick_check: {}{}", problems.join("; "), if n > 3 { " ..." } else { "" })));
    }
    let tables: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table'", [], |r| r.get(0))
        .map_err(classify)?;
    if tables > 0 && app_id != APPLICATION_ID {
        return Err(OpenFailure::Other(TimelineError::NotTimeline { path: path.to_path_buf() }));
    }
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(classify)?;
    if version > SCHEMA_VERSION {
        return Err(OpenFailure::Other(TimelineError::NewerSchema { path: path.to_path_buf(), version }));
    }
    if tables == 0 {
        // Only takes effect before the first table is created.
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL").map_err(other)?;
        conn.pragma_update(None, "application_id", APPLICATION_ID).map_err(other)?;
    }
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0)).map_err(classify)?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!("timeline store {}: journal_mode is {mode}, not wal", path.display());
    }
    conn.pragma_update(None, "synchronous", "NORMAL").map_err(other)?;
    conn.pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT).map_err(other)?;
    conn.execute_batch(SCHEMA).map_err(classify)?;
    conn.pragma_update(None, "user_version", SCHEMA_VERSION).map_err(other)?;
    Ok(conn)
}

/// Creates a missing store file readable by root only (it holds every command line on the
/// node; SQLite gives its WAL and shared-memory files the same mode). An empty file is an
/// empty database to SQLite.
fn create_private(path: &Path) -> Result<(), TimelineError> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(TimelineError::Create { path: path.to_path_buf(), source }),
    }
}

/// Renames a corrupt store (and its WAL) to `<path>.corrupt-<unix time>[-N]`.
fn move_aside(path: &Path) -> Result<PathBuf, TimelineError> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let base = format!("{}.corrupt-{now}", path.display());
    let mut aside = PathBuf::from(&base);
    let mut n = 1;
    while aside.exists() {
        aside = PathBuf::from(format!("{base}-{n}"));
        n += 1;
    }
    std::fs::rename(path, &aside).map_err(|source| TimelineError::MoveAside { path: path.to_path_buf(), source })?;
    let side = |suffix: &str| PathBuf::from(format!("{}{suffix}", path.display()));
    if side("-wal").exists() {
        let _ = std::fs::rename(side("-wal"), format!("{}-wal", aside.display()));
    }
    let _ = std::fs::remove_file(side("-shm"));
    Ok(aside)
}
