//! OTLP export against a real OTLP/gRPC receiver (a tonic server from opentelemetry-proto's
//! stubs) in the test: spans for a container's lifetime, a runtime exec session and the
//! processes in them, every event as a log record; an unreachable collector and a malformed
//! endpoint.
mod common;

use std::{
    collections::HashSet,
    net::SocketAddr,
    process::Command,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use common::{containerd::*, *};
use k8s_cri::v1::ExecSyncRequest;
use opentelemetry_proto::tonic::{
    collector::{
        logs::v1::{
            ExportLogsServiceRequest, ExportLogsServiceResponse,
            logs_service_server::{LogsService, LogsServiceServer},
        },
        trace::v1::{
            ExportTraceServiceRequest, ExportTraceServiceResponse,
            trace_service_server::{TraceService, TraceServiceServer},
        },
    },
    common::v1::{KeyValue, any_value::Value},
    logs::v1::LogRecord,
    trace::v1::Span,
};
use tonic::{Request, Response, Status};

#[derive(Default, Clone)]
struct Collected {
    spans: Arc<Mutex<Vec<Span>>>,
    logs: Arc<Mutex<Vec<LogRecord>>>,
    /// `service.name` of every resource seen.
    services: Arc<Mutex<HashSet<String>>>,
    /// A slow collector: every export waits this long before it answers.
    delay: Duration,
}

fn service_name(r: Option<&opentelemetry_proto::tonic::resource::v1::Resource>) -> String {
    r.and_then(|r| str_attr(&r.attributes, "service.name")).unwrap_or_default()
}

#[tonic::async_trait]
impl TraceService for Collected {
    async fn export(&self, req: Request<ExportTraceServiceRequest>) -> Result<Response<ExportTraceServiceResponse>, Status> {
        tokio::time::sleep(self.delay).await;
        for rs in req.into_inner().resource_spans {
            self.services.lock().unwrap().insert(service_name(rs.resource.as_ref()));
            for ss in rs.scope_spans {
                self.spans.lock().unwrap().extend(ss.spans);
            }
        }
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl LogsService for Collected {
    async fn export(&self, req: Request<ExportLogsServiceRequest>) -> Result<Response<ExportLogsServiceResponse>, Status> {
        tokio::time::sleep(self.delay).await;
        for rl in req.into_inner().resource_logs {
            self.services.lock().unwrap().insert(service_name(rl.resource.as_ref()));
            for sl in rl.scope_logs {
                self.logs.lock().unwrap().extend(sl.log_records);
            }
        }
        Ok(Response::new(ExportLogsServiceResponse::default()))
    }
}

/// An OTLP/gRPC receiver on 127.0.0.1 with an ephemeral port, on its own runtime.
struct Receiver {
    _rt: tokio::runtime::Runtime,
    addr: SocketAddr,
    got: Collected,
}

impl Receiver {
    fn start() -> Receiver {
        Self::with_delay(Duration::ZERO)
    }

    fn with_delay(delay: Duration) -> Receiver {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        let got = Collected { delay, ..Default::default() };
        let server = tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(got.clone()))
            .add_service(LogsServiceServer::new(got.clone()))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener));
        rt.spawn(server);
        Receiver { _rt: rt, addr, got }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn spans(&self) -> Vec<Span> {
        self.got.spans.lock().unwrap().clone()
    }

    fn wait_span(&self, what: &str, secs: u64, pred: impl Fn(&Span) -> bool) -> Span {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(s) = self.spans().into_iter().find(|s| pred(s)) {
                return s;
            }
            let names: Vec<String> = self.spans().iter().map(|s| s.name.clone()).collect();
            assert!(Instant::now() < deadline, "no span for {what} within {secs}s; got {names:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attrs.iter().find(|kv| kv.key == key).and_then(|kv| kv.value.as_ref()).and_then(|v| v.value.as_ref())
}

fn str_attr(attrs: &[KeyValue], key: &str) -> Option<String> {
    match attr(attrs, key) {
        Some(Value::StringValue(s)) => Some(s.clone()),
        _ => None,
    }
}

fn int_attr(attrs: &[KeyValue], key: &str) -> Option<i64> {
    match attr(attrs, key) {
        Some(Value::IntValue(i)) => Some(*i),
        _ => None,
    }
}

fn dur(s: &Span) -> u64 {
    s.end_time_unix_nano.saturating_sub(s.start_time_unix_nano)
}

/// (start, end) of `inner` lie within `outer`'s.
fn within(inner: &Span, outer: &Span) -> bool {
    outer.start_time_unix_nano <= inner.start_time_unix_nano && inner.end_time_unix_nano <= outer.end_time_unix_nano
}

/// The scenario: a pod whose container runs `/bin/true` then sleeps, a CRI
/// ExecSync into it, then the pod is stopped.
#[test]
fn container_spans_and_log_records_reach_the_collector() {
    if !root_or_skip("container_spans_and_log_records_reach_the_collector") {
        return;
    }
    let env = Env::up();
    let rx = Receiver::start();
    let d = Daemon::start(&["--cri-endpoint", &env.socket, "--otlp-endpoint", &rx.url(), "--no-metrics"]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let uid = format!("otel-{}", std::process::id());
    let (sandbox, cid, pid) = rt.block_on(async {
        let mut c = client(&env.socket).await;
        let (sandbox, cid) = run_pod(&mut c, "otel", &uid, "worker", &["/bin/sh", "-c", "/bin/true; sleep 30"]).await;
        let pid = container_pid(&mut c, &cid).await;
        (sandbox, cid, pid)
    });
    d.wait_for("entrypoint /bin/true", 15, |v| is_kind(v, "exec") && v["exec"]["filename"] == "/bin/true" && v["process"]["ppid"] == pid);
    rt.block_on(async {
        let mut c = client(&env.socket).await;
        let req = ExecSyncRequest { container_id: cid.clone(), cmd: vec!["/bin/echo".into(), "otlp-exec".into()], timeout: 10 };
        assert_eq!(c.exec_sync(req).await.expect("ExecSync").into_inner().exit_code, 0);
    });
    let echo_ev = d.wait_for("exec of /bin/echo", 15, |v| is_kind(v, "exec") && v["exec"]["args"][1] == "otlp-exec");
    let echo_ev = resolved(&d, &echo_ev, |v| v["metadata"]["container"].is_string());
    assert_eq!(echo_ev["entry_path"], "runtime_exec", "{echo_ev}");
    // nsenter from the host into the container's mnt+uts namespaces.
    let mut nsenter = Command::new("nsenter").args(["-t", &pid.to_string(), "-m", "-u", "/bin/true"]).spawn().unwrap();
    let npid = nsenter.id();
    assert!(nsenter.wait().unwrap().success());
    d.wait_for("exec after nsenter", 15, |v| is_kind(v, "exec") && tgid(v) == npid as u64 && v["exec"]["filename"] == "/bin/true");
    rt.block_on(remove_pod(&env.socket, sandbox));
    d.wait_for("container init exit", 15, |v| is_kind(v, "exit") && v["process"]["pid"] == pid);

    // Exported while the daemon runs, not only at stop.
    let root = rx.wait_span("the container span", 20, |s| {
        s.name == "container worker" && str_attr(&s.attributes, "container.id").as_deref() == Some(cid.as_str())
    });
    let printed: Vec<i64> = d.all(|v| v["kind"] != "drops").iter().filter_map(|v| v["seq"].as_i64()).collect();
    let stderr = d.stop();
    let summary = stderr.lines().find(|l| l.contains("podtrail stopped")).expect("stop summary");
    assert!(summary.contains(&format!("OTLP to {}:", rx.url())), "{summary}");
    assert!(summary.contains("; 0 dropped"), "nothing dropped: {summary}");

    // The container span: a root, k8s attributes, ended by the init's exit (not at stop).
    let a = &root.attributes;
    assert!(root.parent_span_id.is_empty(), "the container span is a trace root");
    assert_eq!((root.trace_id.len(), root.span_id.len()), (16, 8));
    assert_eq!(str_attr(a, "k8s.namespace.name").as_deref(), Some("podtrail"));
    assert_eq!(str_attr(a, "k8s.pod.name").as_deref(), Some("otel"));
    assert_eq!(str_attr(a, "k8s.pod.uid").as_deref(), Some(uid.as_str()));
    assert_eq!(str_attr(a, "k8s.container.name").as_deref(), Some("worker"));
    assert_eq!(str_attr(a, "container.image.name").as_deref(), Some("podtrail.local/busybox:1"));
    assert_eq!(str_attr(a, "container.runtime").as_deref(), Some("containerd"));
    assert!(attr(a, "podtrail.span.open_at_stop").is_none(), "ended by the init's exit: {root:?}");
    assert!(int_attr(a, "podtrail.exit.signal").is_some(), "the pod stop killed the init: {root:?}");
    assert!(dur(&root) > 0);

    let spans: Vec<Span> = rx.spans().into_iter().filter(|s| s.trace_id == root.trace_id).collect();
    let named = |n: &str| spans.iter().filter(|s| s.name == n).cloned().collect::<Vec<_>>();
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    for s in &spans {
        let parent = spans.iter().find(|p| p.span_id == s.parent_span_id).map(|p| p.name.as_str()).unwrap_or("-");
        let pid = int_attr(&s.attributes, "process.pid").unwrap_or(0);
        eprintln!("span {:<22} parent {:<22} pid {pid:<8} {:>10} us", s.name, parent, dur(s) / 1000);
    }

    // The runtime exec session: child of the container span, the echo inside it.
    let sessions = named("runtime_exec session");
    assert_eq!(sessions.len(), 1, "one ExecSync, one session: {names:?}");
    let session = &sessions[0];
    assert_eq!(session.parent_span_id, root.span_id);
    assert!(dur(session) > 0 && within(session, &root), "{session:?}\nin {root:?}");
    let echo = named("echo").into_iter().find(|s| s.parent_span_id == session.span_id).expect("echo span in the session");
    assert!(dur(&echo) > 0 && within(&echo, session));
    assert_eq!(int_attr(&echo.attributes, "process.pid"), echo_ev["process"]["tgid"].as_i64());
    assert_eq!(int_attr(&echo.attributes, "process.parent_pid"), echo_ev["process"]["ppid"].as_i64());
    assert_eq!(str_attr(&echo.attributes, "process.executable.path").as_deref(), Some("/bin/echo"));
    assert_eq!(int_attr(&echo.attributes, "process.exit.code"), Some(0));
    assert_eq!(str_attr(&echo.attributes, "k8s.container.name").as_deref(), Some("worker"));
    match attr(&echo.attributes, "process.command_args") {
        Some(Value::ArrayValue(args)) => {
            let args: Vec<_> = args.values.iter().filter_map(|v| v.value.clone()).collect();
            assert_eq!(args, vec![Value::StringValue("/bin/echo".into()), Value::StringValue("otlp-exec".into())]);
        }
        other => panic!("process.command_args: {other:?}"),
    }

    // nsenter: a session of its own (in the host cgroup), its exec inside it.
    let ns_session = named("nsenter session").into_iter().find(|s| int_attr(&s.attributes, "process.pid") == Some(npid as i64)).expect("nsenter session span");
    assert_eq!(ns_session.parent_span_id, root.span_id);
    let entered = named("true").into_iter().find(|s| s.parent_span_id == ns_session.span_id).expect("true span in the nsenter session");
    assert_eq!(int_attr(&entered.attributes, "process.pid"), Some(npid as i64));
    assert!(dur(&entered) > 0 && within(&entered, &ns_session) && dur(&ns_session) > 0);
    assert_eq!(str_attr(&entered.attributes, "podtrail.entry_path").as_deref(), Some("nsenter"));

    // The entrypoint: sh (the init, a child of the container span) forked /bin/true.
    let sh = named("sh").into_iter().find(|s| int_attr(&s.attributes, "process.pid") == Some(pid as i64)).expect("sh span of the init");
    assert_eq!(sh.parent_span_id, root.span_id);
    let tru = named("true").into_iter().find(|s| s.parent_span_id == sh.span_id).expect("/bin/true span, child of sh");
    assert!(dur(&tru) > 0 && within(&tru, &root) && tru.start_time_unix_nano >= sh.start_time_unix_nano);
    assert_eq!(int_attr(&tru.attributes, "process.parent_pid"), Some(pid as i64));
    // busybox sh execs its last command (through /proc/self/exe): the init's next span,
    // ended with the container by the same exit.
    let sleep = named("sleep").into_iter().find(|s| int_attr(&s.attributes, "process.pid") == Some(pid as i64)).expect("sleep span of the init");
    assert_eq!(sleep.parent_span_id, root.span_id, "a re-exec is a sibling of the image it replaced");
    assert_eq!(sleep.end_time_unix_nano, root.end_time_unix_nano);
    assert!(sleep.start_time_unix_nano >= sh.end_time_unix_nano);
    for s in &spans {
        assert!(s.end_time_unix_nano >= s.start_time_unix_nano && s.start_time_unix_nano >= root.start_time_unix_nano, "{s:?}");
    }
    assert!(rx.got.services.lock().unwrap().iter().all(|s| s == "podtrail"));

    // Every event is a log record (the JSON stream's seqs), the echo's tied to its span.
    let logs = rx.got.logs.lock().unwrap().clone();
    let seqs: HashSet<i64> = logs.iter().filter_map(|l| int_attr(&l.attributes, "podtrail.seq")).collect();
    let missing: Vec<_> = printed.iter().filter(|s| !seqs.contains(s)).collect();
    assert!(missing.is_empty(), "{} of {} printed events have no log record: {missing:?}", missing.len(), printed.len());
    let echo_log = logs
        .iter()
        .find(|l| {
            str_attr(&l.attributes, "podtrail.event.kind").as_deref() == Some("exec")
                && int_attr(&l.attributes, "podtrail.seq") == echo_ev["seq"].as_i64()
        })
        .expect("log record of the echo exec");
    assert_eq!(str_attr(&echo_log.attributes, "k8s.pod.name").as_deref(), Some("otel"));
    assert_eq!(str_attr(&echo_log.attributes, "process.executable.path").as_deref(), Some("/bin/echo"));
    assert_eq!(str_attr(&echo_log.attributes, "podtrail.entry_path").as_deref(), Some("runtime_exec"));
    assert_eq!(echo_log.event_name, "podtrail.exec");
    assert_eq!((echo_log.trace_id.as_slice(), echo_log.span_id.as_slice()), (root.trace_id.as_slice(), echo.span_id.as_slice()));
    assert!(echo_log.time_unix_nano >= echo.start_time_unix_nano && echo_log.time_unix_nano <= echo.end_time_unix_nano);
    drop(env);
}

/// A collector that is not there (a closed port): a warning naming it, the JSON stream
/// goes on, and the stop summary counts the failed exports.
#[test]
fn unreachable_collector_warns_and_the_json_stream_goes_on() {
    if !root_or_skip("unreachable_collector_warns_and_the_json_stream_goes_on") {
        return;
    }
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let d = Daemon::start(&["--no-cri", "--otlp-endpoint", &url, "--no-metrics"]);
    let deadline = Instant::now() + Duration::from_secs(15);
    while !d.stderr().lines().any(|l| l.contains("WARN") && l.contains(&url)) {
        assert!(Instant::now() < deadline, "no warning naming {url}: {}", d.stderr());
        std::thread::sleep(Duration::from_millis(50));
    }
    // Events keep flowing while exports fail, batch after batch.
    for _ in 0..3 {
        let mut child = Command::new("/bin/true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        d.wait_for("host exec while the collector is down", 10, |v| is_kind(v, "exec") && tgid(v) == pid as u64);
        std::thread::sleep(Duration::from_millis(1_200));
    }
    let stderr = d.stop();
    let warnings = stderr.lines().filter(|l| l.contains("WARN") && l.contains(&url)).count();
    assert!(warnings <= 2, "warned once per distinct error, not per batch ({warnings}):\n{stderr}");
    let summary = stderr.lines().find(|l| l.contains("podtrail stopped")).expect("stop summary");
    let otlp = summary.split(&format!("OTLP to {url}: ")).nth(1).unwrap_or_else(|| panic!("no OTLP summary: {summary}"));
    assert!(otlp.starts_with("0 spans, 0 logs exported; "), "{otlp}");
    let dropped: u64 = otlp.split("exported; ").nth(1).and_then(|r| r.split(' ').next()).and_then(|n| n.parse().ok()).unwrap();
    // Failed, or (on a loaded machine) still queued when the daemon stopped: counted either way.
    assert!(dropped > 0, "failed exports are counted: {otlp}");
}

/// A malformed endpoint (flag or environment) stops the start with an error naming it.
#[test]
fn malformed_endpoint_is_a_clear_error() {
    let run = |flag: Option<&str>, env: Option<&str>| {
        let mut cmd = Command::new(BIN);
        cmd.args(["run", "--no-cri", "--no-metrics"]);
        if let Some(f) = flag {
            cmd.args(["--otlp-endpoint", f]);
        }
        match env {
            Some(e) => cmd.env("OTEL_EXPORTER_OTLP_ENDPOINT", e),
            None => cmd.env_remove("OTEL_EXPORTER_OTLP_ENDPOINT"),
        };
        let out = cmd.output().expect("run podtrail");
        assert!(!out.status.success(), "a bad endpoint must fail the start");
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let e = run(Some("not a url"), None);
    assert!(e.contains("invalid OTLP endpoint \"not a url\""), "{e}");
    let e = run(None, Some("ftp://collector:4317"));
    assert!(e.contains("invalid OTLP endpoint \"ftp://collector:4317\"") && e.contains("http://"), "{e}");
    let e = run(Some("http://collector:4318/v1/traces"), Some("http://ignored:1"));
    assert!(e.contains("\"http://collector:4318/v1/traces\"") && e.contains("no path"), "the flag wins over the environment: {e}");
}

/// A collector that answers slower than `otlp.timeout_ms`: exports time out and are counted,
/// the JSON stream goes on, and the stop is not held up for long.
#[test]
fn slow_collector_times_out_without_holding_the_stream() {
    if !root_or_skip("slow_collector_times_out_without_holding_the_stream") {
        return;
    }
    let rx = Receiver::with_delay(Duration::from_secs(30));
    let cfg = std::env::temp_dir().join(format!("podtrail-otlp-slow-{}.toml", std::process::id()));
    std::fs::write(&cfg, "[otlp]\ntimeout_ms = 300\nbatch_size = 16\n").unwrap();
    let d = Daemon::start(&["--no-cri", "--no-metrics", "--config", cfg.to_str().unwrap(), "--otlp-endpoint", &rx.url()]);
    // Events keep flowing until an export has timed out (and after).
    let deadline = Instant::now() + Duration::from_secs(20);
    let warned = |d: &Daemon| d.stderr().lines().any(|l| l.contains("WARN") && l.contains(&rx.url()) && l.contains("no answer within 300ms"));
    let mut rounds = 0;
    while rounds < 5 || !warned(&d) {
        assert!(Instant::now() < deadline, "no timeout warning naming {}: {}", rx.url(), d.stderr());
        let mut child = Command::new("/bin/true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        d.wait_for("host exec while the collector stalls", 10, |v| is_kind(v, "exec") && tgid(v) == pid as u64);
        std::thread::sleep(Duration::from_millis(100));
        rounds += 1;
    }
    let t = Instant::now();
    let stderr = d.stop();
    let _ = std::fs::remove_file(&cfg);
    assert!(t.elapsed() < Duration::from_secs(5), "stop took {:?}", t.elapsed());
    let summary = stderr.lines().find(|l| l.contains("podtrail stopped")).expect("stop summary");
    assert!(summary.contains(&format!("OTLP to {}: 0 spans, 0 logs exported", rx.url())), "{summary}");
    assert!(!summary.contains("failed=0 "), "timed-out exports are counted: {summary}");
}
