//! Prometheus metrics against a real Prometheus (Debian's `prometheus`, installed by
//! bootstrap) scraping the daemon while a real container runs, plus `promtool check
//! metrics` on the exposition and a busy metrics port.
mod common;

use std::{
    io::Write,
    net::TcpListener,
    process::{Command, Stdio},
};

use common::{containerd::*, prometheus::*, *};
use k8s_cri::v1::*;

#[test]
fn prometheus_scrapes_container_metrics() {
    if !root_or_skip("prometheus_scrapes_container_metrics") {
        return;
    }
    let env = Env::up();
    let d = Daemon::start(&["--cri-endpoint", &env.socket]);
    let prom = Prometheus::start(&d.metrics_addr());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let uid = format!("metered-{}", std::process::id());
    let script = "for i in 1 2 3 4 5; do /bin/true; done; exec /bin/sleep 60";
    let (sandbox, cid) = rt.block_on(async {
        let mut c = client(&env.socket).await;
        let (sandbox, cid) = run_pod(&mut c, "metered", &uid, "worker", &["/bin/sh", "-c", script]).await;
        (sandbox, cid)
    });
    d.wait_for("worker sleeps", 15, |v| is_kind(v, "exec") && v["exec"]["args"] == serde_json::json!(["/bin/sleep", "60"]));
    rt.block_on(async {
        let mut c = client(&env.socket).await;
        let r = c.exec_sync(ExecSyncRequest { container_id: cid.clone(), cmd: vec!["/bin/true".into()], timeout: 10 }).await.expect("ExecSync");
        assert_eq!(r.into_inner().exit_code, 0);
    });
    d.wait_for("runtime exec inside", 15, |v| is_kind(v, "exec") && v["entry_path"] == "runtime_exec" && v["metadata"]["container"] == "worker");
    // What the JSON stream says, finally resolved (complete, or the late copy of a pending).
    let count = |path: &str| {
        d.all(|v| is_kind(v, "exec") && v["exec"]["errno"] == 0 && v["entry_path"] == path && v["metadata"]["container"] == "worker" && v["metadata"]["pod_uid"] == uid.as_str())
            .len() as f64
    };
    let sel = r#"namespace="podtrail",pod="metered",container="worker""#;
    let execs = prom.wait_value(&format!(r#"podtrail_container_execs_total{{{sel},entry_path="entrypoint"}}"#), |v| v >= 7.0);
    assert_eq!(execs, count("entrypoint"), "Prometheus and the JSON stream agree on entrypoint execs");
    let rexecs = prom.wait_value(&format!(r#"podtrail_container_execs_total{{{sel},entry_path="runtime_exec"}}"#), |v| v >= 1.0);
    assert_eq!(rexecs, count("runtime_exec"));
    prom.wait_value(&format!(r#"podtrail_container_entries_total{{{sel},entry_path="runtime_exec"}}"#), |v| v == 1.0);
    prom.wait_value(&format!(r#"podtrail_container_info{{{sel},container_id="{cid}",image="podtrail.local/busybox:1",runtime="containerd"}}"#), |v| v == 1.0);
    prom.wait_value(&format!(r#"podtrail_container_process_exits_total{{{sel},reason="success"}}"#), |v| v >= 5.0);
    prom.wait_value(r#"podtrail_events_total{kind="exec"}"#, |v| v >= 8.0);
    prom.wait_value(r#"podtrail_cri_requests_total{call="ListContainers"}"#, |v| v >= 1.0);
    prom.wait_value(r#"sum(podtrail_cri_request_duration_seconds_count)"#, |v| v >= 1.0);
    prom.wait_value(r#"podtrail_containers_tracked"#, |v| v >= 1.0);
    prom.wait_value(r#"podtrail_metadata_lookups_total{state="complete"}"#, |v| v >= 1.0);
    prom.wait_value(r#"podtrail_anomalies_total{rule="container_entered",severity="warning"}"#, |v| v >= 1.0);
    prom.wait_value(r#"podtrail_build_info"#, |v| v == 1.0);
    // No id, pid or path ever becomes a label of a container series (ids only in _info).
    for s in prom.query(r#"{__name__=~"podtrail_container_.+", __name__!="podtrail_container_info"}"#) {
        let labels: Vec<&String> = s["metric"].as_object().unwrap().keys().collect();
        for l in &labels {
            assert!(
                ["__name__", "namespace", "pod", "container", "entry_path", "reason", "instance", "job"].contains(&l.as_str()),
                "unexpected label {l} on {s}"
            );
        }
    }
    // Prometheus scraped with OpenMetrics (what it asks for first) without errors, and the
    // classic text format passes promtool's lint (promtool parses only that one).
    prom.wait_value(r#"up{job="podtrail"}"#, |v| v == 1.0);
    let addr = d.metrics_addr();
    assert!(http_get(&addr, "/metrics", "application/openmetrics-text; version=1.0.0").ends_with("# EOF\n"));
    {
        let accept = "text/plain";
        let body = http_get(&addr, "/metrics", accept);
        assert!(!body.contains("# EOF"), "classic text format");
        let mut lint = Command::new("promtool").args(["check", "metrics"]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        lint.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
        let out = lint.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "promtool check metrics ({accept}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    rt.block_on(remove_pod(&env.socket, sandbox));
    d.stop();
    drop(env);
}

#[test]
fn busy_metrics_port_is_a_warning_not_a_failure() {
    if !root_or_skip("busy_metrics_port_is_a_warning_not_a_failure") {
        return;
    }
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let d = Daemon::start(&["--metrics-addr", &addr, "--no-cri"]);
    let mut child = Command::new("/bin/true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    d.wait_for("events still flow", 10, |v| is_kind(v, "exec") && tgid(v) == pid as u64);
    let stderr = d.stop();
    assert!(stderr.contains(&format!("cannot listen on {addr}")), "warning names the address: {stderr}");
}

#[test]
fn bad_metrics_address_is_a_clear_error() {
    let out = Command::new(BIN).args(["run", "--metrics-addr", "localhost:notaport"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("metrics.listen") && err.contains("localhost:notaport"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
