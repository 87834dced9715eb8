//! The timeline store end to end: a crash-looping pod's story through a real containerd,
//! `kill -9` of the daemon (what is lost), a corrupt store at start, and CLI errors.
mod common;

use std::{
    path::Path,
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use common::{containerd::*, *};
use podtrail::timeline::{self, Filter};
use serde_json::Value;

/// Removes a store (and its WAL) when dropped, also when the test fails.
struct Cleanup(Vec<std::path::PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for p in &self.0 {
            remove_store(p);
        }
    }
}

fn timeline_cli(db: &Path, args: &[&str]) -> Output {
    Command::new(BIN).arg("timeline").arg("--db").arg(db).args(args).output().expect("run podtrail timeline")
}

/// `podtrail timeline --db DB ARGS -o json`, parsed.
fn story(db: &Path, args: &[&str]) -> Vec<Value> {
    let out = timeline_cli(db, &[args, &["-o", "json"]].concat());
    assert!(out.status.success(), "timeline {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect()
}

/// Runs `/bin/echo <marker> <i>` for each i and waits for each.
fn echo_burst(marker: &str, range: std::ops::Range<u32>) {
    for i in range {
        let st = Command::new("/bin/echo").arg(marker).arg(i.to_string()).stdout(Stdio::null()).status().unwrap();
        assert!(st.success());
    }
}

/// The `i`s of the marker execs among `events` (JSON values).
fn marker_ids(events: &[Value], marker: &str) -> Vec<u32> {
    let mut ids: Vec<u32> = events
        .iter()
        .filter(|v| is_kind(v, "exec") && v["exec"]["args"][1] == marker)
        .filter_map(|v| v["exec"]["args"][2].as_str()?.parse().ok())
        .collect();
    ids.sort_unstable();
    ids
}

fn stored(db: &Path) -> Vec<(timeline::StoredEvent, Value)> {
    timeline::query(db, &Filter { threads: true, ..Default::default() })
        .unwrap()
        .into_iter()
        .map(|e| {
            let v = serde_json::from_str(&e.json).unwrap();
            (e, v)
        })
        .collect()
}

/// A crash-looping pod `web` (attempts 0, 1, 2, each running two commands then `exit 3`):
/// `podtrail timeline --pod web` tells its story in order, and the filters work.
#[test]
fn a_crash_looping_pods_story_in_order() {
    if !root_or_skip("a_crash_looping_pods_story_in_order") {
        return;
    }
    let db = temp_timeline("story");
    let _cleanup = Cleanup(vec![db.clone()]);
    let env = Env::up();
    let d = Daemon::start(&["--cri-endpoint", &env.socket, "--timeline-path", db.to_str().unwrap()]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let uid = format!("web-{}", std::process::id());
    let mut c = rt.block_on(client(&env.socket));
    let sandbox = rt.block_on(run_sandbox(&mut c, "web", &uid));
    let script = format!("/bin/true; /bin/cat /etc/hostname >/dev/null; exit 3 # {}", std::process::id());
    let mut pids = Vec::new();
    for attempt in 0..3u32 {
        rt.block_on(start_container(&mut c, &sandbox, "web", &uid, busybox("app", attempt, &["/bin/sh", "-c", &script])));
        let exec = d.wait_for("entrypoint exec", 15, |v| {
            is_kind(v, "exec") && v["exec"]["args"][2] == script.as_str() && !pids.contains(&v["process"]["pid"])
        });
        let pid = exec["process"]["pid"].clone();
        let exit = d.wait_for("init exit", 15, |v| is_kind(v, "exit") && v["process"]["pid"] == pid);
        resolved(&d, &exit, |v| !v["exit"]["container_exit"].is_null());
        pids.push(pid);
        std::thread::sleep(Duration::from_millis(200));
    }
    d.wait_for("crash loop", 10, |v| is_kind(v, "anomaly") && v["anomaly"]["rule"] == "crash_loop");
    rt.block_on(remove_pod(&env.socket, sandbox));
    let printed = d.events();
    d.stop();
    drop(env);

    let all = story(&db, &["--pod", "web"]);
    assert!(!all.is_empty());
    let mut seqs: Vec<u64> = all.iter().map(|v| v["seq"].as_u64().unwrap()).collect();
    for v in &all {
        let m = if v["metadata"]["pod"].is_string() { &v["metadata"] } else { &v["ns_change"]["target"] };
        assert_eq!(m["pod"], "web", "only the pod's events: {v}");
        assert_ne!(v["metadata"]["state"], "pending", "a pending event shows as its late copy: {v}");
    }
    let boot: Vec<u64> = all.iter().map(|v| v["ts_boot_ns"].as_u64().unwrap()).collect();
    assert!(boot.windows(2).all(|w| w[0] <= w[1]), "in time order");
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), all.len(), "each event once");
    // Every event the daemon printed about the pod (threads aside) is in the store.
    let printed_web = printed
        .iter()
        .filter(|v| v["metadata"]["pod"] == "web" && v["fork"]["thread"] != true && v["exit"]["leader"] != false)
        .count();
    let late_dups = printed.iter().filter(|v| v["metadata"]["state"] == "late" && v["metadata"]["pod"] == "web").count();
    assert!(all.len() + late_dups >= printed_web, "{} stored, {printed_web} printed ({late_dups} late copies)", all.len());

    // The story: start, the two commands, stop, three times; then the crash loop.
    let step = |v: &Value| -> Option<String> {
        match v["kind"].as_str()? {
            "exec" if v["exec"]["args"][2] == script.as_str() => Some(format!("start{}", v["metadata"]["attempt"])),
            "exec" if v["exec"]["filename"] == "/bin/true" => Some("true".into()),
            "exec" if v["exec"]["filename"] == "/bin/cat" => Some("cat".into()),
            "exit" if v["exit"]["container_exit"].is_object() => {
                let ce = &v["exit"]["container_exit"];
                assert_eq!(v["exit"]["code"], 3, "{v}");
                Some(format!("stop{}/restart{}", ce["attempt"], ce["restart_count"]))
            }
            "anomaly" => Some(v["anomaly"]["rule"].as_str()?.to_string()),
            _ => None,
        }
    };
    let steps: Vec<String> = all.iter().filter_map(step).collect();
    let expected = [
        "start0", "true", "cat", "stop0/restart0", "start1", "true", "cat", "stop1/restart1", "start2", "true", "cat",
        "stop2/restart2", "crash_loop",
    ];
    assert_eq!(steps, expected, "the pod's story");

    // Filters.
    let exits = story(&db, &["--pod", "web", "--kind", "exit"]);
    assert!(exits.iter().all(|v| v["kind"] == "exit"));
    assert_eq!(exits.iter().filter(|v| v["exit"]["container_exit"].is_object()).count(), 3);
    let two = story(&db, &["--pod", "web", "--kind", "exit", "--kind", "anomaly"]);
    assert_eq!(two.len(), exits.len() + all.iter().filter(|v| v["kind"] == "anomaly").count());
    let anomalies = story(&db, &["--anomalies", "--namespace", "podtrail"]);
    assert!(anomalies.iter().all(|v| v["kind"] == "anomaly"));
    assert!(anomalies.iter().any(|v| v["anomaly"]["rule"] == "crash_loop"));
    assert_eq!(story(&db, &["--namespace", "podtrail", "--pod", "web", "--container", "app"]).len(), all.len());
    assert!(story(&db, &["--pod", "web", "--container", "nope"]).is_empty());
    assert!(story(&db, &["--namespace", "elsewhere", "--pod", "web"]).is_empty());
    assert_eq!(story(&db, &["--pod", "web", "--since", "1h"]).len(), all.len());
    // --since / --until at the second start: the first attempt is before it.
    let start1 = all.iter().find(|v| step(v).as_deref() == Some("start1")).unwrap();
    let at = start1["ts"].as_str().unwrap();
    let after: Vec<String> = story(&db, &["--pod", "web", "--since", at]).iter().filter_map(step).collect();
    assert_eq!(after, expected[4..], "--since {at}");
    let before: Vec<String> = story(&db, &["--pod", "web", "--until", at]).iter().filter_map(step).collect();
    assert_eq!(before, expected[..4], "--until {at}");
    // Text: aligned lines in the operator's words.
    let out = timeline_cli(&db, &["--pod", "web"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert_eq!(text.lines().count(), all.len());
    for needle in ["podtrail/web/app", "started: /bin/sh -c /bin/true", "container stopped: exit code 3", "restart 2, attempt 2", "CRITICAL crash_loop"] {
        assert!(text.contains(needle), "text lacks {needle:?}:\n{text}");
    }
    eprintln!("{text}");
}

/// `kill -9` of the daemon: everything older than one flush interval is in the store, the
/// store is a gap-free prefix of the run, and the next start uses it as is. Prints how many
/// events of a burst were lost when the kill came right after it.
#[test]
fn kill_9_loses_at_most_the_last_batch() {
    if !root_or_skip("kill_9_loses_at_most_the_last_batch") {
        return;
    }
    let db = temp_timeline("kill9");
    let _cleanup = Cleanup(vec![db.clone()]);
    let path = db.to_str().unwrap();
    let marker = format!("podtrail-kill9-{}", std::process::id());
    let mut d = Daemon::start(&["--no-cri", "--timeline-path", path]);
    // Known events, then more than one flush interval (500 ms by default) of quiet.
    echo_burst(&marker, 0..50);
    d.wait_for("the 50th exec", 15, |v| is_kind(v, "exec") && v["exec"]["args"][1] == marker.as_str() && v["exec"]["args"][2] == "49");
    std::thread::sleep(Duration::from_millis(1200));
    // A burst, and the kill right after it.
    let t = Instant::now();
    echo_burst(&marker, 50..450);
    let burst_took = t.elapsed();
    let kill_boot_ns = podtrail::clock::boot_ns();
    let stderr = d.kill9();
    let printed_events = d.events();
    let printed = marker_ids(&printed_events, &marker).iter().filter(|i| **i >= 50).count();
    drop(d);
    let rows = stored(&db);
    let values: Vec<Value> = rows.iter().map(|(_, v)| v.clone()).collect();
    let ids = marker_ids(&values, &marker);
    let early: Vec<u32> = ids.iter().copied().filter(|i| *i < 50).collect();
    assert_eq!(early, (0..50).collect::<Vec<u32>>(), "events older than one flush interval are all stored");
    // Batches commit whole and in order: the run's seqs are 1..=N without a gap.
    let run = rows[0].0.run_id.clone();
    let mut seqs: Vec<u64> = rows.iter().filter(|(e, _)| e.run_id == run).map(|(e, _)| e.seq).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<u64>>(), "a gap-free prefix of the run");
    let burst_stored = ids.iter().filter(|i| **i >= 50).count();
    // Lost: printed (so through the pipeline) but not stored. None may be older than one
    // flush interval (500 ms) plus slack for the drain and the write (200 ms).
    let stored_seqs: std::collections::HashSet<u64> = seqs.iter().copied().collect();
    let lost_ages_ms: Vec<u64> = printed_events
        .iter()
        .filter(|v| !stored_seqs.contains(&v["seq"].as_u64().unwrap_or(0)))
        .map(|v| kill_boot_ns.saturating_sub(v["ts_boot_ns"].as_u64().unwrap()) / 1_000_000)
        .collect();
    let oldest_lost = lost_ages_ms.iter().max().copied().unwrap_or(0);
    eprintln!(
        "kill -9 right after a burst of 400 execs ({burst_took:?}): {printed} printed, {burst_stored} stored, {} of the printed lost; \
         {} events of the run stored, {} printed events lost in all, the oldest {oldest_lost} ms before the kill",
        printed.saturating_sub(burst_stored),
        seqs.len(),
        lost_ages_ms.len(),
    );
    assert!(oldest_lost <= 700, "only the last flush interval is lost: the oldest lost event was {oldest_lost} ms old");
    assert!(burst_stored <= printed, "stored only what went through the pipeline");
    assert!(!stderr.contains("panicked"), "{stderr}");

    // The next start takes the store as it is (no corruption) and appends a new run.
    let d = Daemon::start(&["--no-cri", "--timeline-path", path]);
    assert!(!d.stderr().contains("corrupt"), "{}", d.stderr());
    echo_burst(&marker, 1000..1001);
    d.wait_for("exec after restart", 15, |v| is_kind(v, "exec") && v["exec"]["args"][2] == "1000");
    d.stop();
    let rows = stored(&db);
    let runs: std::collections::BTreeSet<&str> = rows.iter().map(|(e, _)| e.run_id.as_str()).collect();
    assert_eq!(runs.len(), 2, "two runs");
    let values: Vec<Value> = rows.iter().map(|(_, v)| v.clone()).collect();
    assert!(marker_ids(&values, &marker).contains(&1000));
}

/// Garbage where the store should be: detected at start, moved aside, reported, and a new
/// store is used.
#[test]
fn a_corrupt_store_is_moved_aside_at_start() {
    if !root_or_skip("a_corrupt_store_is_moved_aside_at_start") {
        return;
    }
    let db = temp_timeline("corrupt");
    let mut cleanup = Cleanup(vec![db.clone()]);
    let garbage: Vec<u8> = (0..64 * 1024u32).map(|i| (i * 7919 % 251) as u8).collect();
    std::fs::write(&db, &garbage).unwrap();
    let marker = format!("podtrail-corrupt-{}", std::process::id());
    let d = Daemon::start(&["--no-cri", "--timeline-path", db.to_str().unwrap()]);
    let err = d.stderr();
    let warning = err.lines().find(|l| l.contains("is corrupt")).unwrap_or_else(|| panic!("no corruption warning: {err}"));
    assert!(warning.contains(&db.display().to_string()) && warning.contains("not a database"), "{warning}");
    let aside = warning.split("moved to ").nth(1).and_then(|r| r.split(';').next()).expect("aside path in the warning");
    cleanup.0.push(aside.into());
    assert!(aside.starts_with(&format!("{}.corrupt-", db.display())), "{warning}");
    assert_eq!(std::fs::read(aside).unwrap(), garbage, "the corrupt file is kept, unchanged");
    echo_burst(&marker, 0..1);
    d.wait_for("marker exec", 15, |v| is_kind(v, "exec") && v["exec"]["args"][1] == marker.as_str());
    d.stop();
    let values: Vec<Value> = stored(&db).into_iter().map(|(_, v)| v).collect();
    assert_eq!(marker_ids(&values, &marker), [0], "the new store works");
}

/// Bad input to `podtrail timeline`: clear errors, no panic, nothing created.
#[test]
fn timeline_cli_errors_are_clear() {
    let dir = std::env::temp_dir();
    let missing = dir.join(format!("podtrail-no-such-store-{}.db", std::process::id()));
    let fail = |args: &[&str], db: &Path, needles: &[&str]| {
        let out = timeline_cli(db, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(!err.contains("panicked"), "{err}");
        for n in needles {
            assert!(err.contains(n), "{args:?}: stderr lacks {n:?}: {err}");
        }
    };
    fail(&[], &missing, &["no timeline store at", &missing.display().to_string(), "podtrail run"]);
    assert!(!missing.exists(), "reading creates no store");
    fail(&["--since", "yesterday"], &missing, &["invalid --since \"yesterday\"", "10m", "RFC 3339"]);
    fail(&["--until", "5 parsecs"], &missing, &["invalid --until"]);
    fail(&["--kind", "exce"], &missing, &["unknown event kind \"exce\"", "exec_failed", "anomaly"]);
    fail(&["-o", "yaml"], &missing, &["yaml"]);
    let garbage = dir.join(format!("podtrail-garbage-store-{}.db", std::process::id()));
    std::fs::write(&garbage, b"definitely not sqlite, just some words to fill the header..........................................").unwrap();
    fail(&[], &garbage, &["corrupt", &garbage.display().to_string()]);
    std::fs::remove_file(&garbage).unwrap();
}
