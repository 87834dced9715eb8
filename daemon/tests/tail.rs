//! `podtrail tail` against a running daemon: filters, several clients at once, a slow
//! client that lags without slowing the daemon, and bad input (no daemon, not root, bad
//! filters).
mod common;

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use common::{tail::Tail, *};

fn run_marker(marker: &str) -> u32 {
    let mut c = Command::new("/bin/echo").arg(marker).stdout(Stdio::null()).spawn().unwrap();
    let pid = c.id();
    c.wait().unwrap();
    pid
}

#[test]
fn two_clients_with_different_filters() {
    if !root_or_skip("two_clients_with_different_filters") {
        return;
    }
    let d = Daemon::start(&["--no-cri"]);
    let execs = Tail::start(&d.tail_socket, &["--kind", "exec"]);
    let exits = Tail::start(&d.tail_socket, &["--kind", "exit", "--kind", "exec"]);
    let marker = format!("tail-marker-{}", std::process::id());
    let pid = run_marker(&marker) as u64;
    let from_daemon = d.wait_for("marker exec", 10, |v| is_kind(v, "exec") && tgid(v) == pid);
    let seen = execs.wait_for("the marker exec", |v| v["exec"]["args"][1] == marker.as_str());
    assert_eq!(seen, from_daemon, "tail shows exactly the daemon's JSON line");
    exits.wait_for("the marker's exit", |v| is_kind(v, "exit") && tgid(v) == pid);
    exits.wait_for("the marker exec", |v| is_kind(v, "exec") && tgid(v) == pid);
    assert!(execs.all().iter().all(|v| is_kind(v, "exec")), "--kind exec shows only execs");
    // Container filters: nothing on this host matches a pod named like this.
    let none = Tail::start(&d.tail_socket, &["--pod", "no-such-pod"]);
    run_marker(&marker);
    std::thread::sleep(Duration::from_millis(500));
    assert!(none.all().is_empty(), "--pod filters server-side: {:?}", none.all());
    d.stop();
}

#[test]
fn a_slow_client_lags_and_never_slows_the_daemon() {
    if !root_or_skip("a_slow_client_lags_and_never_slows_the_daemon") {
        return;
    }
    let cfg = TempConfig::new("[tail]\nbuffer = 64\n");
    let d = Daemon::start(&["--no-cri", "--config", cfg.arg()]);
    // A client whose stdout nobody reads: once the pipe is full it stops reading the stream.
    let err_path = std::env::temp_dir().join(format!("podtrail-stuck-tail-{}.err", std::process::id()));
    let stuck = Reaped(
        Command::new(BIN)
            .args(["tail", "--socket", &d.tail_socket, "-o", "json"])
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&err_path).unwrap())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let mut last = 0;
    for i in 0..3000 {
        last = run_marker(&format!("flood-{i}"));
    }
    let flood = started.elapsed();
    // The daemon's own stream saw everything.
    d.wait_for("the last flood exec", 20, |v| is_kind(v, "exec") && tgid(v) == last as u64);
    // The stuck client starts reading again: it is told how much it missed, and the gap
    // is real (it has fewer events than the daemon printed).
    let mut stuck = stuck;
    let out = stuck.0.stdout.take().unwrap();
    let received = std::thread::spawn(move || BufReader::new(out).lines().map_while(Result::ok).count());
    d.wait_stderr("a tail client reads too slowly", 10);
    let notice = std::fs::read_to_string(&err_path).unwrap_or_default();
    assert!(notice.contains("read too slowly and missed"), "the client was told: {notice:?}");
    drop(stuck);
    let got = received.join().unwrap();
    let printed = d.all(|v| v["kind"] != "drops").len();
    assert!(got < printed, "the slow client lost events ({got} of {printed}) instead of holding the daemon back");
    eprintln!("3000 execs in {flood:?} with a stuck tail client");
    let _ = std::fs::remove_file(&err_path);
    d.stop();
}

#[test]
fn since_replays_the_timeline_then_follows_without_gap_or_duplicate() {
    if !root_or_skip("since_replays_the_timeline_then_follows_without_gap_or_duplicate") {
        return;
    }
    let d = Daemon::start(&["--no-cri"]);
    let tag = std::process::id();
    let before = run_marker(&format!("before-{tag}")) as u64;
    std::thread::sleep(Duration::from_millis(1500));
    let since = humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string();
    let after = run_marker(&format!("after-{tag}")) as u64;
    d.wait_for("the stored marker", 10, |v| is_kind(v, "exec") && tgid(v) == after);
    let tail = Tail::start(&d.tail_socket, &["--kind", "exec", "--since", &since]);
    std::thread::sleep(Duration::from_millis(1500)); // the replay waits for the writer's flush
    let live = run_marker(&format!("live-{tag}")) as u64;
    tail.wait_for("the live marker", |v| tgid(v) == live);
    let count = |pid: u64| tail.all().iter().filter(|v| tgid(v) == pid).count();
    assert_eq!(count(before), 0, "events before --since are not shown");
    assert_eq!(count(after), 1, "the stored event after --since is shown once");
    assert_eq!(count(live), 1, "the live event is shown once");
    let seqs: Vec<u64> = tail.all().iter().map(|v| v["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order, no repeats: {seqs:?}");
    d.stop();
}

#[test]
fn tail_without_a_daemon_names_the_socket() {
    let out = Command::new(BIN).args(["tail", "--socket", "/tmp/podtrail-nothing-here.sock"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/tmp/podtrail-nothing-here.sock") && err.contains("podtrail run"), "{err}");
}

#[test]
fn bad_filters_are_clear_errors() {
    let out = Command::new(BIN).args(["tail", "--kind", "bogus"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown kind \"bogus\"") && err.contains("anomaly"), "{err}");
    let out = Command::new(BIN).args(["tail", "--since", "yesterdayish"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("bad --since"), "{err}");
}

#[test]
fn non_root_tail_is_refused_clearly() {
    if !root_or_skip("non_root_tail_is_refused_clearly") {
        return;
    }
    let d = Daemon::start(&["--no-cri"]);
    let out = Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups", BIN, "tail", "--socket", &d.tail_socket])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("permission denied") && err.contains(&d.tail_socket), "{err}");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&d.tail_socket).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "socket mode");
    d.stop();
}
