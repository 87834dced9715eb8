//! Events and container facts as OTLP attributes (semantic-convention names where one
//! exists, `podtrail.*` otherwise), log records, and the resource every export carries.
use std::sync::Arc;

use opentelemetry_proto::tonic::{
    common::v1::{AnyValue, ArrayValue, InstrumentationScope, KeyValue, any_value::Value},
    logs::v1::{LogRecord, SeverityNumber},
    resource::v1::Resource,
};

use crate::{
    clock::WallClock,
    cri::ContainerMeta,
    event::{Detail, Event, NsInodes, Process},
    output,
};

/// Unix nanoseconds of a CLOCK_BOOTTIME stamp, through the same offset as the JSON `ts`.
pub fn unix_nanos(clock: WallClock, ts_boot_ns: u64) -> u64 {
    clock
        .to_system_time(ts_boot_ns)
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

pub fn val(v: Value) -> Option<AnyValue> {
    Some(AnyValue { value: Some(v) })
}

pub fn s(key: &str, v: impl Into<String>) -> KeyValue {
    KeyValue { key: key.into(), value: val(Value::StringValue(v.into())), ..Default::default() }
}

pub fn i(key: &str, v: impl Into<i64>) -> KeyValue {
    KeyValue { key: key.into(), value: val(Value::IntValue(v.into())), ..Default::default() }
}

/// u64 counters and ids do not fit i64 in theory; saturate rather than wrap.
pub fn u(key: &str, v: u64) -> KeyValue {
    i(key, i64::try_from(v).unwrap_or(i64::MAX))
}

pub fn b(key: &str, v: bool) -> KeyValue {
    KeyValue { key: key.into(), value: val(Value::BoolValue(v)), ..Default::default() }
}

pub fn strs<S: AsRef<str>>(key: &str, v: &[S]) -> KeyValue {
    let values = v.iter().map(|x| AnyValue { value: Some(Value::StringValue(x.as_ref().to_string())) }).collect();
    KeyValue { key: key.into(), value: val(Value::ArrayValue(ArrayValue { values })), ..Default::default() }
}

/// Pod and container identity (k8s.* / container.* semantic conventions).
pub fn container_attrs(m: &ContainerMeta, out: &mut Vec<KeyValue>) {
    out.extend([
        s("k8s.namespace.name", &m.namespace),
        s("k8s.pod.name", &m.pod),
        s("k8s.pod.uid", &m.pod_uid),
        s("k8s.container.name", &m.container),
        i("k8s.container.restart_count", m.attempt),
        s("container.id", &m.container_id),
        s("container.name", &m.container),
        s("container.image.name", &m.image),
        s("container.runtime", &m.runtime),
    ]);
    if m.pid != 0 {
        out.push(i("podtrail.container.init_pid", m.pid));
    }
    if let Some(t) = &m.ephemeral_of {
        out.push(s("podtrail.container.ephemeral_of", t));
    }
    out.extend(m.labels.iter().map(|(k, v)| s(&format!("container.label.{k}"), v)));
}

pub fn process_attrs(p: &Process, out: &mut Vec<KeyValue>) {
    out.extend([
        i("process.pid", p.tgid),
        i("process.parent_pid", p.ppid),
        i("process.user.id", p.uid),
        i("process.group.id", p.gid),
        s("podtrail.process.comm", p.comm.as_str()),
    ]);
    if p.pid != p.tgid {
        out.push(i("thread.id", p.pid));
    }
}

/// `process.executable.*` and `process.command*` of an exec.
pub fn exec_attrs(filename: &str, args: &crate::event::Argv, out: &mut Vec<KeyValue>) {
    out.push(s("process.executable.path", filename));
    out.push(s("process.executable.name", basename(filename)));
    if let Some(a0) = args.first() {
        out.push(s("process.command", a0));
        out.push(strs("process.command_args", &args.to_vec()));
    }
}

/// `process.exit.code` and how it ended.
pub fn exit_attrs(x: &crate::event::ExitDetail, out: &mut Vec<KeyValue>) {
    if let Some(c) = x.code {
        out.push(i("process.exit.code", c));
    }
    if let Some(sig) = x.signal {
        out.push(i("podtrail.exit.signal", sig));
    }
    if let Some(n) = x.signal_name {
        out.push(s("podtrail.exit.signal_name", n));
    }
    if x.core_dumped {
        out.push(b("podtrail.exit.core_dumped", true));
    }
    if let Some(c) = &x.container_exit {
        out.push(i("podtrail.container_exit.restart_count", c.restart_count));
        if let Some(ns) = c.since_previous_exit_ns {
            out.push(u("podtrail.container_exit.since_previous_exit_ns", ns));
        }
    }
}

/// A low-cardinality span name for an exec: the binary's name, or argv[0]'s when the
/// path says nothing (`/proc/self/exe`, `/dev/fd/N`: busybox applets, fexecve).
pub fn exec_name<'a>(filename: &'a str, args: &'a crate::event::Argv) -> &'a str {
    match args.first() {
        Some(a0) if filename.starts_with("/proc/") || filename.starts_with("/dev/fd/") => basename(a0),
        _ => basename(filename),
    }
}

pub fn basename(path: &str) -> &str {
    path.rsplit('/').next().filter(|b| !b.is_empty()).unwrap_or(path)
}

fn ns_attrs(ns: &NsInodes, out: &mut Vec<KeyValue>) {
    for (k, v) in [
        ("mnt", ns.mnt),
        ("pid", ns.pid),
        ("net", ns.net),
        ("uts", ns.uts),
        ("ipc", ns.ipc),
        ("user", ns.user),
        ("cgroup", ns.cgroup),
    ] {
        out.push(i(&format!("podtrail.ns.{k}"), v));
    }
}

fn target_attrs(t: &Arc<ContainerMeta>, out: &mut Vec<KeyValue>) {
    out.extend([
        s("podtrail.ns_change.target.k8s.namespace.name", &t.namespace),
        s("podtrail.ns_change.target.k8s.pod.name", &t.pod),
        s("podtrail.ns_change.target.k8s.container.name", &t.container),
        s("podtrail.ns_change.target.container.id", &t.container_id),
    ]);
}

/// The event's detail object, flattened.
fn detail_attrs(ev: &Event, out: &mut Vec<KeyValue>) {
    match &ev.detail {
        Detail::Exec(e) => {
            exec_attrs(&e.filename, &e.args, out);
            out.push(s("podtrail.exec.syscall", e.syscall));
            if e.args_truncated {
                out.push(b("podtrail.exec.args_truncated", true));
            }
            if e.errno != 0 {
                out.push(i("podtrail.exec.errno", e.errno));
                out.push(s("podtrail.exec.error", e.error.unwrap_or("unknown")));
            }
        }
        Detail::Fork(f) => {
            out.push(i("podtrail.fork.child_pid", f.child_pid));
            out.push(i("podtrail.fork.child_tgid", f.child_tgid));
            out.push(b("podtrail.fork.thread", f.thread));
            if !f.new_namespaces.is_empty() {
                out.push(strs(
                    "podtrail.fork.new_namespaces",
                    &f.new_namespaces.to_vec(),
                ));
            }
        }
        Detail::Exit(x) => {
            exit_attrs(x, out);
            out.push(b("podtrail.exit.leader", x.leader));
            out.push(i("podtrail.exit.ns_pid", x.ns_pid));
        }
        Detail::NsChange(n) => {
            out.push(s("podtrail.ns_change.op", n.op));
            out.push(strs("podtrail.ns_change.requested", &n.requested.to_vec()));
            out.push(strs("podtrail.ns_change.changed", &n.changed.to_vec()));
            if n.errno != 0 {
                out.push(i("podtrail.ns_change.errno", n.errno));
                out.push(s("podtrail.ns_change.error", n.error.unwrap_or("unknown")));
            }
            if let Some(t) = &n.target {
                target_attrs(t, out);
            }
        }
        Detail::Oom(o) => {
            out.push(i("podtrail.oom.victim_pid", o.victim_tgid));
            out.push(s("podtrail.oom.victim_comm", o.victim_comm.as_str()));
            out.push(u("podtrail.oom.victim_cgroup_id", o.victim_cgroup_id));
            if let Some(v) = o.victim_is_init {
                out.push(b("podtrail.oom.victim_is_init", v));
            }
            if let Some(v) = o.memory_usage_bytes {
                out.push(u("podtrail.oom.memory_usage_bytes", v));
            }
            if let Some(v) = o.memory_limit_bytes {
                out.push(u("podtrail.oom.memory_limit_bytes", v));
            }
        }
        Detail::Cgroup(c) => {
            out.push(u("podtrail.cgroup.id", c.id));
            out.push(s("podtrail.cgroup.path", &c.path));
            out.push(i("podtrail.cgroup.level", c.level));
            if let Some(f) = c.frozen {
                out.push(b("podtrail.cgroup.frozen", f));
            }
            if let Some(d) = c.frozen_duration_ns {
                out.push(u("podtrail.cgroup.frozen_duration_ns", d));
            }
        }
        Detail::Anomaly(a) => {
            out.push(s("podtrail.anomaly.rule", a.rule));
            out.push(s("podtrail.anomaly.severity", a.severity));
            out.push(s("podtrail.anomaly.summary", &a.summary));
            if let Some(seq) = a.related_seq {
                out.push(u("podtrail.anomaly.related_seq", seq));
            }
        }
    }
}

/// Span context a log record is correlated with (the process, session or container span).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogContext {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
}

/// One event as a log record: a readable body (the `--output text` line) and the event's
/// facts as attributes.
pub fn log_record(ev: &Event, clock: WallClock, ctx: Option<LogContext>, observed: u64) -> LogRecord {
    let mut attrs = Vec::with_capacity(32);
    attrs.extend([
        s("podtrail.event.kind", ev.kind),
        s("podtrail.event.source", ev.source),
        u("podtrail.seq", ev.seq),
        s("podtrail.entry_path", ev.entry_path),
        s("podtrail.metadata.state", ev.metadata.state),
        u("podtrail.cgroup_id", ev.cgroup_id),
        u("podtrail.ts_boot_ns", ev.ts_boot_ns),
    ]);
    if let Some(l) = ev.metadata.late_of {
        attrs.push(u("podtrail.late_of", l));
    }
    process_attrs(&ev.process, &mut attrs);
    if let Some(m) = &ev.metadata.container {
        container_attrs(m, &mut attrs);
    }
    ns_attrs(&ev.ns, &mut attrs);
    detail_attrs(ev, &mut attrs);
    let warn = matches!(ev.kind, "oom_kill" | "exec_failed")
        || matches!(&ev.detail, Detail::Exit(x) if x.core_dumped)
        || matches!(&ev.detail, Detail::Anomaly(a) if a.severity == "warning");
    let (severity, text) = match &ev.detail {
        Detail::Anomaly(a) if a.severity == "critical" => (SeverityNumber::Error, "ERROR"),
        _ if warn => (SeverityNumber::Warn, "WARN"),
        _ => (SeverityNumber::Info, "INFO"),
    };
    let body = output::text_line("", ev);
    LogRecord {
        time_unix_nano: unix_nanos(clock, ev.ts_boot_ns),
        observed_time_unix_nano: observed,
        severity_number: severity as i32,
        severity_text: text.into(),
        body: val(Value::StringValue(body.trim_start().to_string())),
        attributes: attrs,
        trace_id: ctx.map(|c| c.trace_id.to_vec()).unwrap_or_default(),
        span_id: ctx.map(|c| c.span_id.to_vec()).unwrap_or_default(),
        event_name: format!("podtrail.{}", ev.kind),
        ..Default::default()
    }
}

/// `service.name = podtrail`, version, and the node (`host.name`, `k8s.node.name` when the
/// DaemonSet passes NODE_NAME).
pub fn resource() -> Resource {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let mut attributes = vec![
        s("service.name", "podtrail"),
        s("service.version", env!("CARGO_PKG_VERSION")),
        s("host.name", host.trim()),
    ];
    if let Ok(node) = std::env::var("NODE_NAME")
        && !node.is_empty()
    {
        attributes.push(s("k8s.node.name", node));
    }
    Resource { attributes, ..Default::default() }
}

pub fn scope() -> InstrumentationScope {
    InstrumentationScope { name: "podtrail".into(), version: env!("CARGO_PKG_VERSION").into(), ..Default::default() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basenames() {
        assert_eq!(basename("/bin/true"), "true");
        assert_eq!(basename("sh"), "sh");
        assert_eq!(basename("/weird/"), "/weird/");
        let args: crate::event::Argv = ["sleep", "30"].into_iter().collect();
        assert_eq!(exec_name("/proc/self/exe", &args), "sleep");
        assert_eq!(exec_name("/bin/sleep", &args), "sleep");
        assert_eq!(exec_name("/proc/self/exe", &Default::default()), "exe");
    }

    #[test]
    fn big_u64_saturates() {
        assert_eq!(u("x", u64::MAX).value, val(Value::IntValue(i64::MAX)));
    }
}
