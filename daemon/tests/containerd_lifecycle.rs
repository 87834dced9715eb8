//! Container lifecycle through a real containerd + runc: an OOM kill in a memory-limited
//! container, pause/resume (the v1 freezer on this hybrid host), and a crash loop.
mod common;

use std::time::Duration;

use common::{containerd::*, tail::Tail, *};
use k8s_cri::v1::*;
use serde_json::Value;

/// Issue scenario 5: OOM in a container with a 32 MiB limit. busybox `dd bs=64M` allocates
/// and fills a 64 MiB buffer as the container's init.
#[test]
fn oom_in_container_names_container_limit_and_init() {
    if !root_or_skip("oom_in_container_names_container_limit_and_init") {
        return;
    }
    let env = Env::up();
    let d = Daemon::start(&["--cri-endpoint", &env.socket]);
    let tail = Tail::start(&d.tail_socket, &["--anomalies"]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let uid = format!("oom-{}", std::process::id());
    let sandbox = rt.block_on(async {
        let mut c = client(&env.socket).await;
        let sandbox = run_sandbox(&mut c, "hungry", &uid).await;
        let mut cc = busybox("oomer", 0, &["/bin/dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"]);
        if let Some(l) = cc.linux.as_mut() {
            l.resources = Some(LinuxContainerResources { memory_limit_in_bytes: 32 << 20, ..Default::default() });
        }
        start_container(&mut c, &sandbox, "hungry", &uid, cc).await;
        sandbox
    });
    let oom = d.wait_for("oom_kill", 20, |v| is_kind(v, "oom_kill") && v["oom"]["victim_comm"] == "dd");
    let oom = resolved(&d, &oom, |v| v["metadata"]["container"].is_string());
    let o = &oom["oom"];
    assert_eq!(oom["metadata"]["container"], "oomer", "{oom}");
    assert_eq!(oom["metadata"]["pod"], "hungry");
    assert_eq!(o["memory_limit_bytes"], 32u64 << 20, "{oom}");
    assert!(o["memory_usage_bytes"].as_u64().unwrap() > 28 << 20, "{oom}");
    assert_eq!(o["victim_ns_pid"], 1, "dd is the init of its pid namespace: {oom}");
    assert_eq!(o["victim_is_init"], true, "{oom}");
    // The container stopped: its init died of SIGKILL.
    let tgid = o["victim_tgid"].clone();
    let exit = d.wait_for("oomer exit", 15, |v| is_kind(v, "exit") && v["process"]["pid"] == tgid);
    let exit = resolved(&d, &exit, |v| !v["exit"]["container_exit"].is_null());
    assert_eq!(exit["exit"]["signal_name"], "SIGKILL", "{exit}");
    assert_eq!(exit["exit"]["container_exit"]["restart_count"], 0, "{exit}");
    // The oom_kill anomaly, in the operator's words.
    let a = d.wait_for("oom anomaly", 10, |v| is_kind(v, "anomaly") && v["anomaly"]["rule"] == "oom_kill");
    assert_eq!(a["anomaly"]["severity"], "critical");
    assert_eq!(a["metadata"]["container"], "oomer");
    let summary = a["anomaly"]["summary"].as_str().unwrap();
    assert!(summary.starts_with("OOM kill of dd(pid"), "{summary}");
    assert!(summary.contains("in podtrail/hungry/oomer: usage ") && summary.contains(" of limit 32 MiB; it was the container's init"), "{summary}");
    // What an SRE tailing the node sees.
    assert_eq!(tail.wait_for("the OOM anomaly via tail", |v| v["seq"] == a["seq"]), a);
    rt.block_on(remove_pod(&env.socket, sandbox));
    d.stop();
    drop(env);
}

/// Issue scenario 6: `ctr task pause` / `resume` freeze the container through the v1 freezer
/// (no tracepoint fires for it); the poller reports both with the container and duration.
#[test]
fn pause_and_resume_through_containerd() {
    if !root_or_skip("pause_and_resume_through_containerd") {
        return;
    }
    let env = Env::up();
    let cfg = TempConfig::new("[anomalies]\nfrozen_threshold_ms = 200\n");
    let d = Daemon::start(&["--cri-endpoint", &env.socket, "--freezer-poll-ms", "50", "--config", cfg.arg()]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let uid = format!("pause-{}", std::process::id());
    let (sandbox, cid) = rt.block_on(async {
        let mut c = client(&env.socket).await;
        run_pod(&mut c, "napper", &uid, "sleeper", &["/bin/sleep", "60"]).await
    });
    // Let the poller learn the new freezer cgroup as THAWED first.
    std::thread::sleep(Duration::from_millis(400));
    env.ctr(&["task", "pause", &cid]);
    std::thread::sleep(Duration::from_millis(600));
    env.ctr(&["task", "resume", &cid]);
    let ours = |kind: &'static str| {
        let cid = cid.clone();
        move |v: &Value| is_kind(v, kind) && v["source"] == "v1_freezer_poll" && v["cgroup"]["path"].as_str().is_some_and(|p| p.ends_with(&cid))
    };
    let freeze = d.wait_for("v1 freeze of the container", 10, ours("cgroup_freeze"));
    let thaw = d.wait_for("v1 thaw of the container", 10, ours("cgroup_unfreeze"));
    for ev in [&freeze, &thaw] {
        assert_eq!(ev["metadata"]["container"], "sleeper", "{ev}");
        assert_eq!(ev["metadata"]["pod"], "napper");
        assert_eq!(ev["metadata"]["container_id"], cid.as_str());
    }
    let held = thaw["cgroup"]["frozen_duration_ns"].as_u64().expect("frozen duration on thaw");
    assert!((400_000_000..5_000_000_000).contains(&held), "paused ~600 ms, measured {held} ns: {thaw}");
    // Frozen past the (test-sized) 200 ms threshold: one frozen_too_long anomaly.
    let a = d.wait_for("frozen too long", 10, |v| is_kind(v, "anomaly") && v["anomaly"]["rule"] == "frozen_too_long");
    assert_eq!(a["metadata"]["container"], "sleeper", "{a}");
    assert!(a["anomaly"]["related_seq"].is_null());
    rt.block_on(remove_pod(&env.socket, sandbox));
    d.stop();
    drop(env);
}

/// Issue scenario 7: a container that keeps exiting 3, restarted by "kubelet" (this test)
/// with attempt 0, 1, 2: each stop says its exit code, restart count and time since the last.
#[test]
fn crash_loop_counts_restarts() {
    if !root_or_skip("crash_loop_counts_restarts") {
        return;
    }
    let env = Env::up();
    let d = Daemon::start(&["--cri-endpoint", &env.socket]);
    let tail = Tail::start(&d.tail_socket, &["--anomalies", "--pod", "crashy"]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let uid = format!("crash-{}", std::process::id());
    let mut c = rt.block_on(client(&env.socket));
    let sandbox = rt.block_on(run_sandbox(&mut c, "crashy", &uid));
    let marker = format!("exit 3 # {}", std::process::id());
    let mut stops = Vec::new();
    for attempt in 0..3u32 {
        let cid = rt.block_on(start_container(&mut c, &sandbox, "crashy", &uid, busybox("crasher", attempt, &["/bin/sh", "-c", &marker])));
        // The init's exit: a leader whose exec carried our marker, in this container.
        let exec = d.wait_for("crasher exec", 15, |v| {
            is_kind(v, "exec") && v["exec"]["args"][2] == marker.as_str() && !stops.iter().any(|s: &Value| s["process"]["pid"] == v["process"]["pid"])
        });
        let pid = exec["process"]["pid"].clone();
        let exit = d.wait_for("crasher exit", 15, |v| is_kind(v, "exit") && v["process"]["pid"] == pid);
        let exit = resolved(&d, &exit, |v| !v["exit"]["container_exit"].is_null());
        assert_eq!(exit["metadata"]["container_id"], cid.as_str(), "{exit}");
        assert_eq!(exit["exit"]["code"], 3, "{exit}");
        let ce = &exit["exit"]["container_exit"];
        assert_eq!(ce["restart_count"], attempt, "{exit}");
        assert_eq!(ce["attempt"], attempt, "{exit}");
        if attempt == 0 {
            assert!(ce["since_previous_exit_ns"].is_null(), "{exit}");
        } else {
            let prev = stops.last().unwrap()["ts_boot_ns"].as_u64().unwrap();
            assert_eq!(ce["since_previous_exit_ns"], exit["ts_boot_ns"].as_u64().unwrap() - prev, "{exit}");
        }
        // The third stop within the window is a crash loop.
        let loops = d.all(|v| is_kind(v, "anomaly") && v["anomaly"]["rule"] == "crash_loop");
        if attempt < 2 {
            assert!(loops.is_empty(), "too early for a crash loop: {loops:?}");
        } else {
            let a = d.wait_for("crash loop", 10, |v| is_kind(v, "anomaly") && v["anomaly"]["rule"] == "crash_loop");
            let summary = a["anomaly"]["summary"].as_str().unwrap();
            assert!(summary.starts_with("podtrail/crashy/crasher stopped 3 times within 600 s"), "{summary}");
            assert!(summary.ends_with("last: exit code 3"), "{summary}");
            assert_eq!(a["anomaly"]["related_seq"], exit["seq"]);
            assert_eq!(tail.wait_for("the crash loop via tail", |v| v["seq"] == a["seq"]), a);
        }
        stops.push(exit);
        std::thread::sleep(Duration::from_millis(200)); // a (very short) back-off
    }
    rt.block_on(remove_pod(&env.socket, sandbox));
    d.stop();
    drop(env);
}
