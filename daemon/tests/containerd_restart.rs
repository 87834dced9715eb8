//! Issue scenario 8: containerd stopped and restarted under a running daemon. Containers
//! keep running (their shims survive), the daemon keeps streaming with the metadata it has,
//! warns, reconnects when containerd is back, and re-syncs; nothing is dropped.
mod common;

use std::time::{Duration, Instant};

use common::{containerd::*, *};
use serde_json::Value;

#[test]
fn containerd_restart_keeps_streaming_and_resyncs() {
    if !root_or_skip("containerd_restart_keeps_streaming_and_resyncs") {
        return;
    }
    let env = Env::up();
    let cfg = TempConfig::new("[cri]\nresync_interval_ms = 500\n");
    let d = Daemon::start(&["--config", cfg.arg(), "--cri-endpoint", &env.socket]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let uid = format!("restart-{}", std::process::id());
    let tick = format!("while true; do /bin/true {}; /bin/sleep 0.2; done", std::process::id());
    let sandbox = rt.block_on(async {
        let mut c = client(&env.socket).await;
        let sandbox = run_sandbox(&mut c, "steady", &uid).await;
        start_container(&mut c, &sandbox, "steady", &uid, busybox("ticker", 0, &["/bin/sh", "-c", &tick])).await;
        sandbox
    });
    let marker = std::process::id().to_string();
    let ticks = |v: &Value| is_kind(v, "exec") && v["exec"]["filename"] == "/bin/true" && v["exec"]["args"][1] == marker.as_str();
    let first = d.wait_for("ticker exec", 15, ticks);
    let first = resolved(&d, &first, |v| v["metadata"]["container"] == "ticker");
    assert_eq!(first["metadata"]["pod"], "steady");
    // A second container that exits while containerd is down.
    rt.block_on(async {
        let mut c = client(&env.socket).await;
        start_container(&mut c, &sandbox, "steady", &uid, busybox("quitter", 0, &["/bin/sleep", "1.5"])).await;
    });
    d.wait_for("quitter exec", 15, |v| is_kind(v, "exec") && v["exec"]["args"] == serde_json::json!(["/bin/sleep", "1.5"]));
    std::thread::sleep(Duration::from_millis(700)); // a resync sees it running

    env.stop_daemon();
    let down_at = Instant::now();
    let stderr_before = d.stderr().len();
    // During the outage: the warning names the socket, and events keep coming with the
    // metadata already known.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !d.stderr()[stderr_before..].contains(&env.socket) {
        assert!(Instant::now() < deadline, "no CRI warning after containerd stopped: {}", d.stderr());
        std::thread::sleep(Duration::from_millis(50));
    }
    let n_before = d.all(ticks).len();
    let quit = d.wait_for("quitter exit during the outage", 10, |v| {
        is_kind(v, "exit") && v["metadata"]["container"] == "quitter" && !v["exit"]["container_exit"].is_null()
    });
    assert_eq!(quit["exit"]["code"], 0, "{quit}");
    std::thread::sleep(Duration::from_millis(1500));
    let during: Vec<Value> = d.all(ticks).into_iter().skip(n_before).collect();
    assert!(during.len() >= 4, "events kept streaming while containerd was down: {} ticks", during.len());
    for ev in &during {
        assert_eq!(ev["metadata"]["state"], "complete", "known containers keep their metadata: {ev}");
        assert_eq!(ev["metadata"]["container"], "ticker");
    }
    eprintln!("containerd down {:?}: {} ticker execs, all attributed", down_at.elapsed(), during.len());

    env.start_daemon();
    // Back: the daemon reconnects and re-syncs; a container created now is attributed.
    let (sandbox2, _) = rt.block_on(async {
        let mut c = client(&env.socket).await;
        run_pod(&mut c, "newcomer", &format!("{uid}-b"), "fresh", &["/bin/sleep", "30"]).await
    });
    let fresh = d.wait_for("exec in a container created after the restart", 20, |v| {
        is_kind(v, "exec") && v["exec"]["args"] == serde_json::json!(["/bin/sleep", "30"])
    });
    let fresh = resolved(&d, &fresh, |v| v["metadata"]["container"] == "fresh");
    assert_eq!(fresh["metadata"]["pod"], "newcomer", "{fresh}");
    d.wait_stderr("answering again", 10);
    rt.block_on(remove_pod(&env.socket, sandbox));
    rt.block_on(remove_pod(&env.socket, sandbox2));
    let stderr = d.stop();
    let summary = stderr.lines().find(|l| l.contains("podtrail stopped")).unwrap();
    let connects: u64 = summary
        .split(", ")
        .find_map(|p| p.strip_suffix(" connects").and_then(|n| n.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no connects counter: {summary}"));
    assert!(connects >= 2, "connected, then reconnected: {summary}");
    drop(env);
}
