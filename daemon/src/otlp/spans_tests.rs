use opentelemetry_proto::tonic::common::v1::any_value::Value;

use super::*;
use crate::{
    event::{ContainerExit, Metadata, NsInodes},
    testutil,
};

fn meta(id: &str, name: &str) -> Arc<ContainerMeta> {
    Arc::new(ContainerMeta {
        namespace: "ns".into(),
        pod: "web".into(),
        pod_uid: "uid-1".into(),
        container: name.into(),
        container_id: id.into(),
        image: "busybox".into(),
        runtime: "containerd".into(),
        pid: 500,
        attempt: 0,
        labels: Default::default(),
        ns: NsInodes::default(),
        ephemeral_of: None,
    })
}

fn ev(ts: u64, tgid: u32, m: Option<&Arc<ContainerMeta>>, entry: &'static str, kind: &'static str, detail: Detail) -> Event {
    let mut e = testutil::event(ts, tgid, m, detail);
    e.kind = kind;
    e.entry_path = entry;
    e
}

fn exec(ts: u64, tgid: u32, m: Option<&Arc<ContainerMeta>>, entry: &'static str, file: &str) -> Event {
    ev(ts, tgid, m, entry, "exec", testutil::exec(file, &[file, "-x"]))
}

fn fork(
    ts: u64,
    tgid: u32,
    m: Option<&Arc<ContainerMeta>>,
    entry: &'static str,
    child: u32,
) -> Event {
    ev(
        ts,
        tgid,
        m,
        entry,
        "fork",
        testutil::fork(child, child, false),
    )
}

fn exit(ts: u64, tgid: u32, m: Option<&Arc<ContainerMeta>>, entry: &'static str, code: u32, init: bool) -> Event {
    let stop = init.then_some(ContainerExit { restart_count: 0, attempt: 0, since_previous_exit_ns: None });
    ev(ts, tgid, m, entry, "exit", testutil::exit(code, if init { 1 } else { 9 }, stop))
}

fn setns(ts: u64, tgid: u32, entry: &'static str, changed: Vec<&'static str>, target: &Arc<ContainerMeta>) -> Event {
    ev(ts, tgid, None, entry, "setns", testutil::setns(changed, Some(target.clone())))
}

fn mkdir(ts: u64, m: &Arc<ContainerMeta>) -> Event {
    let mut e = ev(ts, 1, Some(m), "host", "cgroup_mkdir", testutil::cgroup(7, "/pod/c"));
    e.metadata.state = "late";
    e.metadata.late_of = Some(1);
    e
}

fn attr<'a>(s: &'a Span, key: &str) -> Option<&'a Value> {
    s.attributes.iter().find(|kv| kv.key == key).and_then(|kv| kv.value.as_ref()).and_then(|v| v.value.as_ref())
}

fn by_name<'a>(spans: &'a [Span], name: &str) -> Vec<&'a Span> {
    spans.iter().filter(|s| s.name == name).collect()
}

fn dur(s: &Span) -> u64 {
    s.end_time_unix_nano - s.start_time_unix_nano
}

/// A container whose shell runs /bin/true, a runtime exec (runc's setns in one process,
/// the exec in its child), then the init's exit.
#[test]
fn container_session_and_process_tree() {
    let c = meta("cid", "app");
    let mut sp = Spans::new(WallClock::new());
    let events = vec![
        mkdir(100, &c),
        exec(200, 500, Some(&c), "entrypoint", "/bin/sh"),
        fork(300, 500, Some(&c), "entrypoint", 501),
        exec(310, 501, Some(&c), "entrypoint", "/bin/true"),
        exit(320, 501, Some(&c), "entrypoint", 0, false),
        setns(400, 600, "host", vec!["ipc"], &c), // before the mnt setns: not an entry yet
        setns(401, 600, "runtime_exec", vec!["mnt"], &c),
        setns(402, 600, "runtime_exec", vec!["pid"], &c),
        fork(410, 600, None, "runtime_exec", 601),
        exit(420, 600, None, "runtime_exec", 0, false),
        exec(430, 601, Some(&c), "runtime_exec", "/bin/cat"),
        exit(440, 601, Some(&c), "runtime_exec", 3, false),
        exit(1_000, 500, Some(&c), "entrypoint", 0, true),
    ];
    let mut ctxs = Vec::new();
    for e in &events {
        ctxs.push(sp.on_event(e));
    }
    assert_eq!(sp.open_counts(), (0, 0, 0), "everything ended");
    let spans = std::mem::take(&mut sp.finished);
    assert_eq!(spans.len(), 5, "{:?}", spans.iter().map(|s| &s.name).collect::<Vec<_>>());
    let root = by_name(&spans, "container app")[0];
    let sh = by_name(&spans, "sh")[0];
    let tru = by_name(&spans, "true")[0];
    let session = by_name(&spans, "runtime_exec session")[0];
    let cat = by_name(&spans, "cat")[0];
    assert!(root.parent_span_id.is_empty());
    assert!(spans.iter().all(|s| s.trace_id == root.trace_id && s.trace_id.len() == 16 && s.span_id.len() == 8));
    assert_eq!(sh.parent_span_id, root.span_id);
    assert_eq!(tru.parent_span_id, sh.span_id, "forked by the shell");
    assert_eq!(session.parent_span_id, root.span_id);
    assert_eq!(cat.parent_span_id, session.span_id);
    assert_eq!(dur(root), 900, "from cgroup_mkdir to the init's exit");
    assert_eq!(dur(session), 39, "from the first entering setns to its last process's exit");
    assert_eq!((dur(sh), dur(tru), dur(cat)), (800, 10, 10));
    assert_eq!(attr(root, "k8s.container.name"), Some(&Value::StringValue("app".into())));
    assert_eq!(attr(root, "k8s.pod.uid"), Some(&Value::StringValue("uid-1".into())));
    assert_eq!(attr(cat, "process.exit.code"), Some(&Value::IntValue(3)));
    assert_eq!(cat.status.as_ref().map(|s| s.code), Some(StatusCode::Error as i32));
    assert_eq!(attr(cat, "process.executable.path"), Some(&Value::StringValue("/bin/cat".into())));
    assert_eq!(attr(cat, "process.pid"), Some(&Value::IntValue(601)));
    assert!(matches!(attr(cat, "process.command_args"), Some(Value::ArrayValue(a)) if a.values.len() == 2));
    assert_eq!(attr(session, "podtrail.entry_path"), Some(&Value::StringValue("runtime_exec".into())));
    // Log records point at the span of their process (or container).
    let id = |s: &Span| Some(LogContext { trace_id: s.trace_id.clone().try_into().unwrap(), span_id: s.span_id.clone().try_into().unwrap() });
    assert_eq!(ctxs[0], id(root));
    assert_eq!(ctxs[3], id(tru));
    assert_eq!(ctxs[4], id(tru), "an exit belongs to the span it ends");
    assert_eq!(ctxs[5], None, "a host process before its entry");
    assert_eq!(ctxs[6], id(session));
}

#[test]
fn pending_events_wait_for_their_late_copy_and_stragglers_join_the_ended_trace() {
    let c = meta("cid", "app");
    let mut sp = Spans::new(WallClock::new());
    let mut pending = exec(200, 500, None, "entrypoint", "/bin/sh");
    pending.metadata = Metadata { state: "pending", container: None, late_of: None };
    assert_eq!(sp.on_event(&pending), None);
    assert_eq!(sp.open_counts(), (0, 0, 0));
    let mut late = exec(200, 500, Some(&c), "entrypoint", "/bin/sh");
    late.metadata.state = "late";
    sp.on_event(&late);
    sp.on_event(&fork(250, 500, Some(&c), "entrypoint", 501));
    sp.on_event(&exec(260, 501, Some(&c), "entrypoint", "/bin/sleep"));
    sp.on_event(&exit(300, 500, Some(&c), "entrypoint", 0, true));
    assert_eq!(sp.open_counts(), (0, 0, 1), "the sleeper outlives the init");
    sp.on_event(&exit(310, 501, Some(&c), "entrypoint", 0, false));
    let spans = std::mem::take(&mut sp.finished);
    assert_eq!(spans.len(), 3);
    let root = by_name(&spans, "container app")[0];
    assert_eq!(dur(root), 100);
    let sleep = by_name(&spans, "sleep")[0];
    assert_eq!(sleep.trace_id, root.trace_id);
    assert_eq!(sleep.parent_span_id, by_name(&spans, "sh")[0].span_id);
}

/// nsenter -m -u: its first setns (uts, shared by the pod) may match the sandbox; the mnt
/// one names the container, and the session moves there before anything ran in it.
#[test]
fn nsenter_session_retargets_then_runs_in_the_host_cgroup() {
    let pause = meta("pause-id", "POD");
    let c = meta("cid", "app");
    let mut sp = Spans::new(WallClock::new());
    sp.on_event(&exec(100, 500, Some(&c), "entrypoint", "/bin/sleep"));
    sp.on_event(&setns(200, 700, "nsenter", vec!["uts"], &pause));
    sp.on_event(&setns(201, 700, "nsenter", vec!["mnt"], &c));
    // nsenter execs its command in the same process, still in the host cgroup.
    sp.on_event(&exec(210, 700, None, "nsenter", "/bin/true"));
    sp.on_event(&exit(220, 700, None, "nsenter", 0, false));
    assert_eq!(sp.open_counts(), (2, 0, 1));
    sp.finish_all(400);
    let spans = std::mem::take(&mut sp.finished);
    let root = by_name(&spans, "container app")[0];
    let session = by_name(&spans, "nsenter session")[0];
    let tru = by_name(&spans, "true")[0];
    assert_eq!(session.parent_span_id, root.span_id);
    assert_eq!(session.trace_id, root.trace_id);
    assert_eq!(tru.parent_span_id, session.span_id);
    assert_eq!(attr(tru, "k8s.container.name"), Some(&Value::StringValue("app".into())));
    assert_eq!(dur(session), 20);
    let sleep = by_name(&spans, "sleep")[0];
    assert_eq!(attr(sleep, "podtrail.span.open_at_stop"), Some(&Value::BoolValue(true)));
    assert_eq!(dur(root), 300, "ended at stop");
}

#[test]
fn host_processes_make_no_spans_and_bounds_hold() {
    let mut sp = Spans::new(WallClock::new());
    for pid in 1..100 {
        assert_eq!(sp.on_event(&exec(pid as u64, pid, None, "host", "/bin/ls")), None);
        sp.on_event(&fork(pid as u64, pid, None, "host", pid + 1000));
    }
    assert_eq!(sp.open_counts(), (0, 0, 0));
    assert!(sp.tasks.is_empty());
    assert!(sp.finished.is_empty());
}
