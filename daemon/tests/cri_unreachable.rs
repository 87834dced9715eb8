//! A CRI socket that is absent or hangs must never stall the event stream: the daemon
//! warns (once per distinct error, naming the endpoint), counts failed and timed-out calls,
//! and keeps streaming with `metadata.state = host`.
mod common;

use std::{
    os::unix::net::UnixListener,
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use common::*;

/// `CRI: <calls> calls, <errors> errors, <timeouts> timeouts, ...` from the stop summary.
fn cri_counter(stderr: &str, name: &str) -> u64 {
    let line = stderr.lines().find(|l| l.contains("podtrail stopped")).expect("stop summary");
    let cri = line.split("CRI: ").nth(1).unwrap_or_else(|| panic!("no CRI counters in {line}"));
    cri.split(", ")
        .find_map(|part| part.strip_suffix(&format!(" {name}")).and_then(|n| n.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no {name} counter in {cri}"))
}

fn host_exec_seen(d: &Daemon) {
    let mut child = Command::new("/bin/true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    let ev = d.wait_for("host exec while CRI is down", 10, |v| is_kind(v, "exec") && tgid(v) == pid as u64);
    assert_eq!(ev["metadata"]["state"], "host", "{ev}");
}

#[test]
fn absent_cri_socket_warns_once_and_streams() {
    if !root_or_skip("absent_cri_socket_warns_once_and_streams") {
        return;
    }
    let sock = format!("/tmp/podtrail-no-such-cri-{}.sock", std::process::id());
    let d = Daemon::start(&["--cri-endpoint", &sock]);
    host_exec_seen(&d);
    // Retries at 0.5 s, 1 s, 2 s: several failed connects, one warning.
    std::thread::sleep(Duration::from_millis(2500));
    host_exec_seen(&d);
    let stderr = d.stop();
    let warnings = stderr.lines().filter(|l| l.contains("WARN") && l.contains(&sock)).count();
    assert_eq!(warnings, 1, "one warning naming the socket, not one per retry:\n{stderr}");
    assert!(cri_counter(&stderr, "errors") >= 2, "failed connects are counted: {stderr}");
    assert_eq!(cri_counter(&stderr, "connects"), 0);
}

#[test]
fn hung_cri_socket_times_out_and_is_counted() {
    if !root_or_skip("hung_cri_socket_times_out_and_is_counted") {
        return;
    }
    // A socket that accepts connections and never answers (a wedged runtime).
    let sock = format!("/tmp/podtrail-hung-cri-{}.sock", std::process::id());
    let _ = std::fs::remove_file(&sock);
    let listener = UnixListener::bind(&sock).unwrap();
    listener.set_nonblocking(true).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let acceptor = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                if let Ok((conn, _)) = listener.accept() {
                    held.push(conn);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            held.len()
        })
    };
    let cfg = TempConfig::new("[cri]\ncall_timeout_ms = 300\n");
    let d = Daemon::start(&["--config", cfg.arg(), "--cri-endpoint", &sock]);
    std::thread::sleep(Duration::from_millis(1500));
    host_exec_seen(&d);
    let stderr = d.stop();
    stop.store(true, Ordering::Relaxed);
    let accepted = acceptor.join().unwrap();
    let _ = std::fs::remove_file(&sock);
    assert!(accepted >= 1, "the daemon never connected");
    assert!(stderr.contains("timed out"), "a timeout warning: {stderr}");
    assert!(stderr.contains(&sock), "the warning names the socket: {stderr}");
    assert!(cri_counter(&stderr, "timeouts") >= 2, "timeouts are counted and retried: {stderr}");
}
