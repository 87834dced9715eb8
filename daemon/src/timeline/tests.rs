use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, UNIX_EPOCH},
};

use super::*;
use crate::{
    anomaly::AnomalyDetail,
    clock::WallClock,
    cri::ContainerMeta,
    event::{ContainerExit, Detail, Event, Metadata},
    testutil,
};

/// A fresh directory per test (tests run in parallel), removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn dir(name: &str) -> TempDir {
    let d = std::env::temp_dir().join(format!("podtrail-timeline-unit-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    TempDir(d)
}

fn meta(pod: &str, container: &str) -> Arc<ContainerMeta> {
    let mut m = (*testutil::meta(container, 100)).clone();
    m.pod = pod.into();
    m.container_id = format!("{pod}-{container}-id");
    Arc::new(m)
}

fn ev(seq: u64, ts_s: u64, kind: &'static str, m: Option<Arc<ContainerMeta>>, detail: Detail) -> Event {
    let mut e = testutil::event(seq, 100, m.as_ref(), detail);
    e.ts_boot_ns = ts_s * 1_000_000_000;
    e.kind = kind;
    e.process.comm = "sh".into();
    e.entry_path = "entrypoint";
    e
}

fn exec(path: &str) -> Detail {
    testutil::exec(path, &[path, "-c", "work"])
}

fn exit(code: u32, leader: bool, container_exit: Option<ContainerExit>) -> Detail {
    let mut d = testutil::exit(code, 1, container_exit);
    if let Detail::Exit(x) = &mut d {
        x.leader = leader;
        x.group_dead = Some(leader);
    }
    d
}

fn fork(thread: bool) -> Detail {
    crate::testutil::fork(101, if thread { 100 } else { 101 }, thread)
}

fn anomaly(rule: &'static str) -> Detail {
    Detail::Anomaly(AnomalyDetail { rule, severity: "critical", summary: "it broke".into(), related_seq: None })
}

fn open(path: &std::path::Path) -> Store {
    let o = Store::open(path, "run-a", "boot-1").unwrap();
    assert!(o.moved_aside.is_none());
    o.store
}

fn store_events(store: &mut Store, events: &[Event]) -> WallClock {
    let clock = WallClock::new();
    let rows: Vec<Row> = events
        .iter()
        .map(|e| to_row(clock, e, crate::output::json_line(clock, e).unwrap().into()))
        .collect();
    store.insert(&rows).unwrap();
    clock
}

fn seqs(events: &[StoredEvent]) -> Vec<u64> {
    events.iter().map(|e| e.seq).collect()
}

#[test]
fn a_new_store_is_wal_and_ours_and_keeps_events_across_opens() {
    let d = dir("new");
    let path = d.join("sub/dir/t.db");
    let mut s = open(&path);
    let web = meta("web", "app");
    store_events(&mut s, &[ev(1, 10, "exec", Some(web.clone()), exec("/bin/sh"))]);
    drop(s);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
    let av: i64 = conn.pragma_query_value(None, "auto_vacuum", |r| r.get(0)).unwrap();
    assert_eq!(av, 2, "incremental");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    drop(conn);
    // A second run appends.
    let mut s = Store::open(&path, "run-b", "boot-1").unwrap().store;
    store_events(&mut s, &[ev(1, 11, "exec", Some(web), exec("/bin/true"))]);
    let all = query(&path, &Filter::default()).unwrap();
    assert_eq!(all.iter().map(|e| e.run_id.as_str()).collect::<Vec<_>>(), ["run-a", "run-b"]);
    let v: serde_json::Value = serde_json::from_str(&all[0].json).unwrap();
    assert_eq!(v["exec"]["filename"], "/bin/sh");
    assert!(v["ts"].as_str().unwrap().ends_with('Z'), "the stored line has the output's ts: {v}");
}

#[test]
fn filters_select_by_container_kind_anomaly_time_and_threads() {
    let d = dir("filters");
    let path = d.join("t.db");
    let mut s = open(&path);
    let web = meta("web", "app");
    let db = meta("db", "pg");
    let clock = store_events(
        &mut s,
        &[
            ev(1, 10, "exec", Some(web.clone()), exec("/bin/sh")),
            ev(2, 11, "fork", Some(web.clone()), fork(true)),
            ev(3, 12, "fork", Some(web.clone()), fork(false)),
            ev(4, 13, "exec", Some(db.clone()), exec("/usr/bin/postgres")),
            ev(5, 14, "exit", Some(web.clone()), exit(0, false, None)),
            ev(6, 15, "exit", Some(web.clone()), exit(3, true, Some(ContainerExit { restart_count: 0, attempt: 0, since_previous_exit_ns: None }))),
            ev(7, 15, "anomaly", Some(web.clone()), anomaly("crash_loop")),
            ev(8, 16, "exec", None, exec("/usr/bin/host-thing")),
        ],
    );
    let q = |f: Filter| seqs(&query(&path, &f).unwrap());
    assert_eq!(q(Filter::default()), [1, 3, 4, 6, 7, 8], "thread forks/exits hidden by default");
    assert_eq!(q(Filter { threads: true, ..Default::default() }), [1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(q(Filter { pod: Some("web".into()), ..Default::default() }), [1, 3, 6, 7]);
    assert_eq!(q(Filter { namespace: Some("default".into()), pod: Some("db".into()), ..Default::default() }), [4]);
    assert_eq!(q(Filter { container: Some("pg".into()), ..Default::default() }), [4]);
    assert_eq!(q(Filter { namespace: Some("other".into()), ..Default::default() }), Vec::<u64>::new());
    assert_eq!(q(Filter { kinds: vec!["exec".into(), "exit".into()], ..Default::default() }), [1, 4, 6, 8]);
    assert_eq!(q(Filter { anomalies: true, ..Default::default() }), [7]);
    let at = |s: u64| clock.to_system_time(s * 1_000_000_000).duration_since(UNIX_EPOCH).unwrap().as_nanos() as i64;
    assert_eq!(q(Filter { since_unix_ns: Some(at(13)), ..Default::default() }), [4, 6, 7, 8]);
    assert_eq!(q(Filter { since_unix_ns: Some(at(12)), until_unix_ns: Some(at(15)), ..Default::default() }), [3, 4]);
    let err = query(&path, &Filter { kinds: vec!["exce".into()], ..Default::default() }).unwrap_err().to_string();
    assert!(err.contains("unknown event kind \"exce\"") && err.contains("exec_failed") && err.contains("anomaly"), "{err}");
}

#[test]
fn a_pending_event_shows_once_as_its_late_copy_in_time_order() {
    let d = dir("late");
    let path = d.join("t.db");
    let mut s = open(&path);
    let web = meta("web", "app");
    let mut pending = ev(1, 10, "exec", None, exec("/bin/sh"));
    pending.metadata = Metadata { state: "pending", container: None, late_of: None };
    let unresolved = {
        let mut e = ev(2, 11, "exec", None, exec("/bin/never"));
        e.metadata = Metadata { state: "pending", container: None, late_of: None };
        e
    };
    let later = ev(3, 12, "exec", Some(web.clone()), exec("/bin/true"));
    let mut late = pending.clone();
    late.seq = 4;
    late.metadata = Metadata { state: "late", container: Some(web.clone()), late_of: Some(1) };
    store_events(&mut s, &[pending, unresolved, later, late]);
    let all = query(&path, &Filter::default()).unwrap();
    assert_eq!(seqs(&all), [4, 2, 3], "the late copy takes the original's place; an unresolved pending stays");
    assert_eq!(seqs(&query(&path, &Filter { pod: Some("web".into()), ..Default::default() }).unwrap()), [4, 3]);
    // Another run's late_of = 1 does not hide this run's pending seq 1 (and vice versa).
    let mut other = Store::open(&path, "run-b", "boot-1").unwrap().store;
    let mut p = ev(1, 20, "exec", None, exec("/bin/x"));
    p.metadata = Metadata { state: "pending", container: None, late_of: None };
    store_events(&mut other, &[p]);
    assert_eq!(seqs(&query(&path, &Filter::default()).unwrap()), [4, 2, 3, 1]);
}

#[test]
fn garbage_is_moved_aside_and_a_new_store_started() {
    let d = dir("garbage");
    let path = d.join("t.db");
    std::fs::write(&path, vec![0xa5u8; 10_000]).unwrap();
    let o = Store::open(&path, "run-a", "boot-1").unwrap();
    let (aside, reason) = o.moved_aside.clone().expect("moved aside");
    assert!(reason.contains("not a database"), "{reason}");
    assert!(aside.to_string_lossy().starts_with(&format!("{}.corrupt-", path.display())), "{}", aside.display());
    assert_eq!(std::fs::read(&aside).unwrap(), vec![0xa5u8; 10_000], "the old file is kept as it was");
    let mut s = o.store;
    store_events(&mut s, &[ev(1, 10, "exec", None, exec("/bin/sh"))]);
    assert_eq!(query(&path, &Filter::default()).unwrap().len(), 1);
}

#[test]
fn a_damaged_page_fails_the_integrity_check() {
    let d = dir("damaged");
    let path = d.join("t.db");
    {
        let mut s = open(&path);
        let web = meta("web", "app");
        let events: Vec<Event> = (1..=2000).map(|i| ev(i, i, "exec", Some(web.clone()), exec("/bin/sh"))).collect();
        store_events(&mut s, &events);
    }
    // Closed: checkpointed into the main file. Overwrite pages in the middle (not the header).
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 64 << 10, "{}", bytes.len());
    for b in &mut bytes[16 << 10..48 << 10] {
        *b = 0x5a;
    }
    std::fs::write(&path, &bytes).unwrap();
    let o = Store::open(&path, "run-b", "boot-1").unwrap();
    let (aside, reason) = o.moved_aside.expect("moved aside");
    assert!(aside.exists());
    assert!(reason.contains("malformed") || reason.contains("quick_check"), "{reason}");
    assert!(query(&path, &Filter::default()).unwrap().is_empty(), "a new, empty store");
}

#[test]
fn foreign_and_missing_databases_are_errors() {
    let d = dir("foreign");
    let path = d.join("other.db");
    rusqlite::Connection::open(&path).unwrap().execute_batch("CREATE TABLE t (x)").unwrap();
    let e = Store::open(&path, "r", "b").err().expect("not ours").to_string();
    assert!(e.contains("not a podtrail timeline store"), "{e}");
    let e = query(&path, &Filter::default()).unwrap_err().to_string();
    assert!(e.contains("not a podtrail timeline store"), "{e}");
    let missing = d.join("nope.db");
    let e = query(&missing, &Filter::default()).unwrap_err().to_string();
    assert!(e.contains(&missing.display().to_string()) && e.contains("daemon"), "{e}");
    assert!(!missing.exists(), "a query creates nothing");
}

#[test]
fn retention_deletes_by_age_then_oldest_by_size() {
    let d = dir("retention");
    let path = d.join("t.db");
    let mut s = open(&path);
    let web = meta("web", "app");
    let clock = WallClock::new();
    let mut rows = Vec::new();
    for i in 1..=4000u64 {
        let mut e = ev(i, i, "exec", Some(web.clone()), exec("/bin/sh"));
        if let Detail::Exec(x) = &mut e.detail {
            x.args.push(&"x".repeat(1000));
        }
        rows.push(to_row(
            clock,
            &e,
            crate::output::json_line(clock, &e).unwrap().into(),
        ));
    }
    s.insert(&rows).unwrap();
    let used = s.used_bytes().unwrap();
    assert!(used > 4 << 20, "{used}");
    // Age: everything older than (row 1000's time) goes.
    let now = rows[999].ts_unix_ns + 3600 * 1_000_000_000;
    let r = s.retain(now, Some(Duration::from_secs(3600)), 1 << 30).unwrap();
    assert_eq!(r, Retained { by_age: 999, by_size: 0 });
    // Size: down to at most 2 MiB, keeping the newest.
    let r = s.retain(now, None, 2 << 20).unwrap();
    assert!(r.by_size > 0, "{r:?}");
    assert!(s.used_bytes().unwrap() <= 2 << 20, "{}", s.used_bytes().unwrap());
    assert!(s.file_bytes().unwrap() <= 2 << 20, "free pages given back: {}", s.file_bytes().unwrap());
    let left = query(&path, &Filter::default()).unwrap();
    assert_eq!(left.last().unwrap().seq, 4000, "the newest stay");
    assert_eq!(left.len() as u64, 4000 - 999 - r.by_size);
    let s2 = seqs(&left);
    assert!(s2.windows(2).all(|w| w[1] == w[0] + 1), "oldest deleted first");
}

#[test]
fn since_and_until_parse_durations_and_rfc3339() {
    let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    assert_eq!(parse_time("--since", "10m", now).unwrap(), (1_800_000_000 - 600) * 1_000_000_000);
    assert_eq!(parse_time("--since", "1h 30m", now).unwrap(), (1_800_000_000 - 5400) * 1_000_000_000);
    assert_eq!(parse_time("--since", "2027-01-15T08:00:00Z", now).unwrap(), 1_800_000_000 * 1_000_000_000);
    assert_eq!(parse_time("--until", "2027-01-15T08:00:00.5Z", now).unwrap(), 1_800_000_000 * 1_000_000_000 + 500_000_000);
    for bad in ["yesterday", "10 parsecs", "", "2026-13-01T00:00:00Z"] {
        let e = parse_time("--since", bad, now).unwrap_err().to_string();
        assert!(e.contains("--since") && e.contains(&format!("{bad:?}")) && e.contains("10m"), "{e}");
    }
}

#[test]
fn text_lines_tell_the_story() {
    let d = dir("text");
    let path = d.join("t.db");
    let mut s = open(&path);
    let web = meta("web", "app");
    let mut start = ev(1, 10, "exec", Some(web.clone()), exec("/bin/sh"));
    start.process.comm = "sh".into();
    let mut setns = ev(2, 11, "setns", None, testutil::setns(vec!["mnt", "ipc"], Some(web.clone())));
    setns.process.comm = "nsenter".into();
    setns.process.tgid = 555;
    setns.entry_path = "nsenter";
    let stop = ev(3, 12, "exit", Some(web.clone()), exit(3, true, Some(ContainerExit { restart_count: 1, attempt: 1, since_previous_exit_ns: Some(2_500_000_000) })));
    store_events(&mut s, &[start, setns, stop, ev(4, 13, "anomaly", Some(web), anomaly("crash_loop"))]);
    let all = query(&path, &Filter { pod: Some("web".into()), ..Default::default() }).unwrap();
    assert_eq!(all.len(), 4, "the setns from the host is in the pod's story (its target)");
    let lines = text_lines(&all);
    assert!(lines[0].contains("exec") && lines[0].contains("default/web/app") && lines[0].contains("started: /bin/sh -c work (pid 100, attempt 0)"), "{}", lines[0]);
    assert!(lines[1].contains("nsenter(555) entered mnt+ipc via nsenter"), "{}", lines[1]);
    assert!(lines[2].contains("container stopped: exit code 3 (sh(100), restart 1, attempt 1, 2.5 s after the previous stop)"), "{}", lines[2]);
    assert!(lines[3].contains("CRITICAL crash_loop: it broke"), "{}", lines[3]);
    let col = lines[0].find("default/web/app").unwrap();
    assert!(lines.iter().all(|l| l.find("default/web/app") == Some(col)), "aligned: {lines:#?}");
    let mut out = Vec::new();
    let pod = Filter { pod: Some("web".into()), ..Default::default() };
    assert_eq!(print(&path, &pod, crate::output::Format::Text, &mut out).unwrap(), 4);
    assert_eq!(String::from_utf8(out).unwrap().lines().collect::<Vec<_>>(), lines, "streamed text = collected text");
    let mut out = Vec::new();
    assert_eq!(print(&path, &Filter::default(), crate::output::Format::Json, &mut out).unwrap(), 4);
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.lines().count(), 4);
    assert!(text.lines().all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()));
}

#[test]
fn the_run_id_is_random_hex_and_stable() {
    let id = run_id();
    assert_eq!(id.len(), 32, "{id}");
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()), "{id}");
    assert_eq!(run_id(), id);
    assert!(!boot_id().is_empty());
}

/// Throughput of batched writes and the start-up integrity check on a full store. Run with
/// `cargo test -p podtrail --lib -- --ignored measure_ --nocapture` (numbers in the README).
#[test]
#[ignore = "a measurement, not a check"]
fn measure_batch_writes_and_integrity_check() {
    let d = dir("measure");
    let path = d.join("t.db");
    let mut s = open(&path);
    let clock = WallClock::new();
    let web = meta("web", "app");
    let mb: u64 = std::env::var("PODTRAIL_MEASURE_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(256);
    let (mut n, mut batches, mut worst) = (0u64, 0u64, Duration::ZERO);
    let t = std::time::Instant::now();
    while s.file_bytes().unwrap() < mb << 20 {
        let rows: Vec<Row> = (0..1024)
            .map(|i| {
                n += 1;
                let mut e = ev(n, n / 1000, if i % 3 == 0 { "exec" } else { "fork" }, Some(web.clone()), exec("/usr/local/bin/app-worker"));
                e.process.tgid = (n % 30_000) as u32;
                to_row(
                    clock,
                    &e,
                    crate::output::json_line(clock, &e).unwrap().into(),
                )
            })
            .collect();
        let bt = std::time::Instant::now();
        s.insert(&rows).unwrap();
        worst = worst.max(bt.elapsed());
        batches += 1;
    }
    let took = t.elapsed();
    let bytes = s.file_bytes().unwrap();
    drop(s);
    let o = Store::open(&path, "run-b", "boot-1").unwrap();
    let qt = std::time::Instant::now();
    let hits = query(
        &path,
        &Filter {
            pod: Some("web".into()),
            kinds: vec!["exec".into()],
            since_unix_ns: Some(
                {
                    let e = ev(0, n / 1000 - 10, "exec", None, exec("/x"));
                    to_row(clock, &e, "{}".into())
                }
                .ts_unix_ns,
            ),
            ..Default::default()
        },
    )
    .unwrap()
    .len();
    eprintln!(
        "{n} events ({} bytes/event on disk) in {batches} batches of 1024: {:.0} events/s, longest batch {worst:?}; file {} MiB; \
         integrity check at open {:?}; a pod's last 10 s of execs ({hits} events) queried in {:?}",
        bytes / n,
        n as f64 / took.as_secs_f64(),
        bytes >> 20,
        o.check_took,
        qt.elapsed(),
    );
}

/// Container queries use the container-only (partial) indexes, and a store made by an
/// earlier build loses its full indexes on open.
#[test]
fn container_queries_use_the_container_only_indexes() {
    let d = dir("partial-idx");
    let path = d.join("t.db");
    drop(open(&path));
    // What an earlier build had: a full index over every row.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("CREATE INDEX events_pod_ts ON events(pod, ts_unix_ns)").unwrap();
    drop(conn);
    drop(open(&path));
    let conn = rusqlite::Connection::open(&path).unwrap();
    let names: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(!names.contains(&"events_pod_ts".to_string()), "the full index of an earlier build is dropped: {names:?}");
    // Either container-only index serves a namespace + pod query; the planner picks.
    for (filter, index) in [
        (query::Filter { pod: Some("web".into()), ..Default::default() }, "events_pod_ts_c"),
        (query::Filter { namespace: Some("prod".into()), pod: Some("web".into()), ..Default::default() }, "_ts_c "),
        (query::Filter { namespace: Some("prod".into()), ..Default::default() }, "events_container_ts_c"),
    ] {
        let (sql, args) = query::build_sql(&filter, "e.json");
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap()
            .query_map(rusqlite::params_from_iter(args), |r| r.get::<_, String>(3))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert!(plan.iter().any(|l| l.contains(index)), "{filter:?} uses {index}: {plan:?}");
    }
}
