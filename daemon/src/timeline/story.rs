//! `podtrail timeline -o text`: one aligned line per stored event, in the operator's
//! words (time, kind, the container, what happened).
use serde_json::Value;

use super::query::StoredEvent;

/// `<time> <kind> <namespace/pod/container> <description>`, columns aligned over `events`.
pub fn text_lines(events: &[StoredEvent]) -> Vec<String> {
    let parsed: Vec<Value> = events.iter().map(|e| serde_json::from_str(&e.json).unwrap_or(Value::Null)).collect();
    let width = parsed.iter().map(|v| who(v).chars().count()).max().unwrap_or(0);
    let mut story = Story::new(width);
    events.iter().zip(&parsed).map(|(e, v)| story.line_of(e, v)).collect()
}

/// Text lines one event at a time (the container column padded to `width`), remembering
/// what a line needs from earlier ones (which process is a runc init).
pub struct Story {
    width: usize,
    inits: RuncInits,
}

impl Story {
    pub fn new(width: usize) -> Story {
        Story { width, inits: RuncInits::default() }
    }

    pub fn line(&mut self, e: &StoredEvent) -> String {
        let v = serde_json::from_str(&e.json).unwrap_or(Value::Null);
        self.line_of(e, &v)
    }

    fn line_of(&mut self, e: &StoredEvent, v: &Value) -> String {
        let ts = humantime::format_rfc3339_millis(
            std::time::UNIX_EPOCH + std::time::Duration::from_nanos(e.ts_unix_ns.max(0) as u64),
        );
        let started = self.inits.starts(v);
        let (w, width) = (who(v), self.width);
        format!("{ts}  {:<15} {w:<width$}  {}", e.kind, describe(v, started)).trim_end().to_string()
    }
}

/// runc's container init (`runc:[2:INIT]`, forked by `runc:[1:CHILD]`) until it execs the
/// entrypoint: that exec is the container's start. Bounded: a few live inits at a time.
#[derive(Default)]
struct RuncInits(std::collections::VecDeque<u64>);

impl RuncInits {
    /// Whether `v` is the exec that starts a container.
    fn starts(&mut self, v: &Value) -> bool {
        let tgid = v["process"]["tgid"].as_u64().unwrap_or(0);
        let comm = s(&v["process"], "comm");
        match s(v, "kind") {
            "fork" if comm.starts_with("runc:[1:CHILD]") && v["fork"]["thread"] != true => {
                self.add(v["fork"]["child_tgid"].as_u64().unwrap_or(0));
            }
            _ if comm.starts_with("runc:[2:INIT]") => self.add(tgid),
            "exec" => {
                if let Some(i) = self.0.iter().position(|p| *p == tgid) {
                    self.0.remove(i);
                    return true;
                }
                // Without the fork in view: the runtime's init pid, when it reported it.
                let m = &v["metadata"];
                return s(v, "entry_path") == "entrypoint" && m["pid"].as_u64().is_some_and(|p| p != 0 && p == tgid);
            }
            "exit" => self.0.retain(|p| *p != tgid),
            _ => {}
        }
        false
    }

    fn add(&mut self, tgid: u64) {
        if tgid != 0 && !self.0.contains(&tgid) {
            if self.0.len() >= 256 {
                self.0.pop_front();
            }
            self.0.push_back(tgid);
        }
    }
}

/// `namespace/pod/container` the event is about (the setns target for an entry from the
/// host), else `host`, or `pending` while the runtime had not reported it.
fn who(v: &Value) -> String {
    let m = &v["metadata"];
    let c = if m["container"].is_string() { m } else { &v["ns_change"]["target"] };
    match (c["namespace"].as_str(), c["pod"].as_str(), c["container"].as_str()) {
        (Some(ns), Some(pod), Some(name)) => format!("{ns}/{pod}/{name}"),
        _ => m["state"].as_str().unwrap_or("?").to_string(),
    }
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("")
}

fn proc(v: &Value) -> String {
    format!("{}({})", s(&v["process"], "comm"), v["process"]["tgid"])
}

fn via(v: &Value) -> String {
    match s(v, "entry_path") {
        "" | "entrypoint" | "host" => String::new(),
        p => format!(" via {p}"),
    }
}

fn describe(v: &Value, started: bool) -> String {
    let kind = s(v, "kind");
    match kind {
        "exec" => exec(v, started),
        "exec_failed" => format!("{} failed: {} (by {})", s(&v["exec"], "filename"), s(&v["exec"], "error"), proc(v)),
        "fork" => {
            let f = &v["fork"];
            let ns: Vec<&str> = f["new_namespaces"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            let ns = if ns.is_empty() { String::new() } else { format!(" new namespaces {}", ns.join(",")) };
            format!("{} forked {}{ns}", proc(v), f["child_pid"])
        }
        "exit" => exit(v),
        "setns" | "unshare" => {
            let n = &v["ns_change"];
            let changed: Vec<&str> = n["changed"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            let err = n["error"].as_str().map(|e| format!(" -> {e}")).unwrap_or_default();
            let what = if kind == "setns" && v["metadata"]["container"].is_null() && n["target"].is_object() {
                "entered"
            } else {
                kind
            };
            let changed = if changed.is_empty() { "(nothing changed)".into() } else { changed.join("+") };
            format!("{} {what} {changed}{}{err}", proc(v), via(v))
        }
        "oom_kill" => {
            let o = &v["oom"];
            let mib = |x: &Value| x.as_u64().map(|b| format!("{} MiB", b >> 20)).unwrap_or_else(|| "?".into());
            let init = if o["victim_is_init"] == true { ", the container's init" } else { "" };
            format!(
                "OOM kill of {}({}): usage {} of limit {}{init}",
                s(o, "victim_comm"),
                o["victim_tgid"],
                mib(&o["memory_usage_bytes"]),
                mib(&o["memory_limit_bytes"])
            )
        }
        "cgroup_mkdir" => format!("cgroup created {}", s(&v["cgroup"], "path")),
        "cgroup_rmdir" => format!("cgroup removed {}", s(&v["cgroup"], "path")),
        "cgroup_freeze" | "cgroup_unfreeze" | "cgroup_frozen" => freeze(v),
        "anomaly" => {
            let a = &v["anomaly"];
            format!("{} {}: {}", s(a, "severity").to_uppercase(), s(a, "rule"), s(a, "summary"))
        }
        _ => String::new(),
    }
}

fn exec(v: &Value, started: bool) -> String {
    let e = &v["exec"];
    let args: Vec<&str> = e["args"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    let cmd = if args.is_empty() { s(e, "filename").to_string() } else { args.join(" ") };
    let cut = if e["args_truncated"] == true { " …" } else { "" };
    if started {
        let attempt = v["metadata"]["attempt"].as_u64().map(|a| format!(", attempt {a}")).unwrap_or_default();
        format!("started: {cmd}{cut} (pid {}{attempt})", v["process"]["tgid"])
    } else {
        format!("{cmd}{cut} (pid {}, parent {}){}", v["process"]["tgid"], v["process"]["ppid"], via(v))
    }
}

fn exit(v: &Value) -> String {
    let x = &v["exit"];
    let how = match (x["code"].as_u64(), x["signal_name"].as_str()) {
        (Some(c), _) => format!("exit code {c}"),
        (_, Some(sig)) => format!("killed by {sig}{}", if x["core_dumped"] == true { " (core dumped)" } else { "" }),
        _ => format!("raw status {}", x["raw"]),
    };
    let ce = &x["container_exit"];
    if ce.is_object() {
        let since = ce["since_previous_exit_ns"]
            .as_u64()
            .map(|ns| format!(", {:.1} s after the previous stop", ns as f64 / 1e9))
            .unwrap_or_default();
        format!("container stopped: {how} ({}, restart {}, attempt {}{since})", proc(v), ce["restart_count"], ce["attempt"])
    } else {
        format!("{} {how}", proc(v))
    }
}

fn freeze(v: &Value) -> String {
    let c = &v["cgroup"];
    let what = match (s(v, "kind"), c["frozen"].as_bool()) {
        ("cgroup_freeze", _) | ("cgroup_frozen", Some(true)) => "frozen".to_string(),
        _ => match c["frozen_duration_ns"].as_u64() {
            Some(ns) => format!("thawed after {:.1} s", ns as f64 / 1e9),
            None => "thawed".to_string(),
        },
    };
    let src = if s(v, "source") == "kernel" { String::new() } else { format!(" (via {})", s(v, "source")) };
    format!("{what}{src}")
}
