//! Reading the store: filters (`podtrail timeline`, and `podtrail tail --since` later),
//! in time order, with a `pending` event hidden when its `late` copy (which names the
//! container) was stored too.
use std::{
    path::Path,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use rusqlite::types::Value;

use super::{TimelineError, store};

/// Every event kind the daemon stores.
pub fn kinds() -> Vec<&'static str> {
    let mut k: Vec<&'static str> = podtrail_common::EventKind::ALL.iter().map(|k| k.name()).collect();
    k.push("anomaly");
    k
}

/// Which events to return. Empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub namespace: Option<String>,
    pub pod: Option<String>,
    pub container: Option<String>,
    /// Any of these kinds (empty: all).
    pub kinds: Vec<String>,
    /// Only anomalies (the same as adding `anomaly` to `kinds` alone).
    pub anomalies: bool,
    /// Unix nanoseconds, inclusive.
    pub since_unix_ns: Option<i64>,
    /// Unix nanoseconds, exclusive.
    pub until_unix_ns: Option<i64>,
    /// Include forks and exits of threads (not only of processes).
    pub threads: bool,
}

impl Filter {
    pub fn validate(&self) -> Result<(), TimelineError> {
        let known = kinds();
        if let Some(bad) = self.kinds.iter().find(|k| !known.contains(&k.as_str())) {
            return Err(TimelineError::UnknownKind { kind: bad.clone(), known: known.join(", ") });
        }
        Ok(())
    }

    fn kinds(&self) -> Vec<String> {
        if self.anomalies {
            vec!["anomaly".to_string()]
        } else {
            self.kinds.clone()
        }
    }
}

/// One stored event: enough to dedupe a replay against a live stream by `(run_id, seq)`.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// Random id of the daemon run that stored it ([`super::run_id`]).
    pub run_id: String,
    /// The kernel boot it happened in (`/proc/sys/kernel/random/boot_id`).
    pub boot_id: String,
    pub seq: u64,
    pub ts_unix_ns: i64,
    pub kind: String,
    /// The `--output json` line.
    pub json: String,
}

/// The events matching `filter`, oldest first.
pub fn query(db: &Path, filter: &Filter) -> Result<Vec<StoredEvent>, TimelineError> {
    let mut out = Vec::new();
    query_each(db, filter, |e| {
        out.push(e);
        Ok(())
    })?;
    Ok(out)
}

/// Like [`query`], calling `f` per event instead of collecting them.
pub fn query_each(
    db: &Path,
    filter: &Filter,
    mut f: impl FnMut(StoredEvent) -> Result<(), TimelineError>,
) -> Result<(), TimelineError> {
    filter.validate()?;
    let conn = store::open_for_query(db)?;
    let (sql, args) = build_sql(filter, "run_id, boot_id, seq, ts_unix_ns, kind, json");
    let err = |source| TimelineError::Sql { path: db.to_path_buf(), source };
    let mut st = conn.prepare(&sql).map_err(err)?;
    let mut rows = st.query(rusqlite::params_from_iter(args)).map_err(err)?;
    while let Some(r) = rows.next().map_err(err)? {
        let ev = StoredEvent {
            run_id: r.get(0).map_err(err)?,
            boot_id: r.get(1).map_err(err)?,
            seq: r.get::<_, i64>(2).map_err(err)? as u64,
            ts_unix_ns: r.get(3).map_err(err)?,
            kind: r.get(4).map_err(err)?,
            json: r.get(5).map_err(err)?,
        };
        f(ev)?;
    }
    Ok(())
}

/// The widest `namespace/pod/container` among the matching events (for aligned text),
/// at least as wide as the `pending` shown for events without one.
pub fn container_width(db: &Path, filter: &Filter) -> Result<usize, TimelineError> {
    filter.validate()?;
    let conn = store::open_for_query(db)?;
    let (sql, args) = build_sql(filter, "max(length(namespace) + length(pod) + length(container) + 2)");
    let err = |source| TimelineError::Sql { path: db.to_path_buf(), source };
    let w: Option<i64> = conn.query_row(&sql, rusqlite::params_from_iter(args), |r| r.get(0)).map_err(err)?;
    Ok((w.unwrap_or(0).max(0) as usize).max("pending".len()))
}

pub(super) fn build_sql(filter: &Filter, columns: &str) -> (String, Vec<Value>) {
    let mut sql = format!("SELECT {columns} FROM events e WHERE 1 = 1");
    let mut args: Vec<Value> = Vec::new();
    for (col, v) in [("namespace", &filter.namespace), ("pod", &filter.pod), ("container", &filter.container)] {
        if let Some(v) = v {
            args.push(Value::Text(v.clone()));
            sql += &format!(" AND e.{col} = ?{}", args.len());
        }
    }
    let kinds = filter.kinds();
    if !kinds.is_empty() {
        let mut marks = Vec::new();
        for k in kinds {
            args.push(Value::Text(k));
            marks.push(format!("?{}", args.len()));
        }
        sql += &format!(" AND e.kind IN ({})", marks.join(", "));
    }
    if let Some(t) = filter.since_unix_ns {
        args.push(Value::Integer(t));
        sql += &format!(" AND e.ts_unix_ns >= ?{}", args.len());
    }
    if let Some(t) = filter.until_unix_ns {
        args.push(Value::Integer(t));
        sql += &format!(" AND e.ts_unix_ns < ?{}", args.len());
    }
    if !filter.threads {
        sql += " AND e.thread = 0";
    }
    // A pending event shows once: as its late copy, which names the container.
    sql += " AND NOT (e.state = 'pending' AND EXISTS \
            (SELECT 1 FROM events l WHERE l.run_id = e.run_id AND l.late_of = e.seq))";
    sql += " ORDER BY e.ts_unix_ns, e.id";
    (sql, args)
}

/// `--since` / `--until`: a duration before `now` (`10m`, `1h`, `2h30m`) or an RFC 3339 UTC
/// time (`2026-01-02T15:04:05Z`). Returns Unix nanoseconds.
pub fn parse_time(flag: &str, value: &str, now: SystemTime) -> Result<i64, TimelineError> {
    let bad = || TimelineError::BadTime { flag: flag.to_string(), value: value.to_string() };
    let v = value.trim();
    let at = if let Ok(d) = humantime::parse_duration(v) {
        now.checked_sub(d).unwrap_or(UNIX_EPOCH)
    } else {
        humantime::parse_rfc3339_weak(v).map_err(|_| bad())?
    };
    let ns = at.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_nanos();
    Ok(ns.min(i64::MAX as u128) as i64)
}
