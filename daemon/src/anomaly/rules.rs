//! The rules themselves. Each returns (container concerned, detail); the caller wraps them
//! into `anomaly` events.
use std::sync::Arc;

use super::{
    AnomalyDetail,
    state::{Frozen, MAX_EXES_PER_IMAGE, MAX_IMAGES, MAX_INITS, MAX_KEYS, MAX_PROCS, Proc, RuncInit, Session, State, bounded_insert},
};
use crate::{
    config::AnomalyConfig,
    cri::ContainerMeta,
    event::{Detail, Event, Process},
};

/// (name, severity, what it means): also the list `[anomalies] disabled_rules` accepts.
pub const RULES: &[(&str, &str, &str)] = &[
    ("container_entered", "warning", "a host process (nsenter), a runtime exec (kubectl exec) or an ephemeral container entered a container"),
    ("shell_in_container", "warning", "a shell or package manager ran in a container whose image does not run one from its entrypoint"),
    ("oom_kill", "critical", "the kernel OOM-killed a process of a container"),
    ("crash_loop", "critical", "a container stopped repeatedly within the window"),
    ("frozen_too_long", "warning", "a container stayed frozen (paused) past the threshold"),
    ("runc_init_stuck", "warning", "runc init alive past the threshold without exec'ing the entrypoint (created, never started, or stuck)"),
    ("entrypoint_failed", "critical", "the container's entrypoint could not be executed (RunContainerError)"),
    ("userns_in_container", "warning", "a process inside a container created a new user namespace"),
];

fn severity(rule: &str) -> &'static str {
    RULES.iter().find(|r| r.0 == rule).map(|r| r.1).unwrap_or("warning")
}

fn detail(rule: &'static str, summary: String, related_seq: Option<u64>) -> AnomalyDetail {
    AnomalyDetail { rule, severity: severity(rule), summary, related_seq }
}

fn name(m: &ContainerMeta) -> String {
    format!("{}/{}/{}", m.namespace, m.pod, m.container)
}

fn basename(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

/// The program an exec runs, seeing through multi-call binaries (`busybox sh -c ...`).
fn program(filename: &str, args: &crate::event::Argv) -> String {
    let exe = basename(filename);
    let argv0 = args.first().map(basename).unwrap_or(exe);
    match (exe, argv0, args.iter().nth(1)) {
        (_, "busybox", Some(applet)) => basename(applet).to_string(),
        ("busybox", applet, _) => applet.to_string(),
        _ => exe.to_string(),
    }
}

/// "bash(812) <- sshd(640)": the actor's ancestors, from what the events told us or, for
/// processes older than the daemon, from /proc (only when an anomaly is written: rare).
fn parents(s: &State, mut ppid: u32) -> String {
    let mut chain = Vec::new();
    while ppid > 1 && chain.len() < 4 {
        let (next, comm) = match s.procs.get(&ppid) {
            Some(p) => (p.ppid, p.comm),
            None => match proc_stat(ppid) {
                Some(x) => x,
                None => break,
            },
        };
        chain.push(format!("{comm}({ppid})"));
        ppid = next;
    }
    if chain.is_empty() { "unknown".into() } else { chain.join(" <- ") }
}

/// (ppid, comm) from /proc/<pid>/stat; comm may contain spaces and parentheses.
fn proc_stat(pid: u32) -> Option<(u32, crate::event::Comm)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (head, tail) = stat.rsplit_once(')')?;
    let comm = head.split_once('(')?.1.into();
    let ppid = tail.split_whitespace().nth(1)?.parse().ok()?;
    Some((ppid, comm))
}

/// Reports an ended session, or parks it until its target is known.
fn end_session(s: &mut State, session: Session) -> Option<(Process, Option<Arc<ContainerMeta>>, AnomalyDetail)> {
    if session.target.is_some() {
        return Some(entered(session));
    }
    if s.parked.len() >= MAX_KEYS {
        s.parked.clear();
    }
    s.parked.insert(session.seq, session);
    None
}

/// The container_entered anomaly of a finished entry session (its target is known).
fn entered(mut s: Session) -> (Process, Option<Arc<ContainerMeta>>, AnomalyDetail) {
    // One spelling whatever order the tool joined them in.
    const ORDER: [&str; 8] = ["mnt", "pid", "net", "ipc", "uts", "user", "cgroup", "time"];
    s.changed
        .sort_by_key(|c| ORDER.iter().position(|o| *o == c).unwrap_or(ORDER.len()));
    let how = if s.entry_path == "runtime_exec" {
        "a runtime exec (kubectl/crictl exec)"
    } else {
        "nsenter from the host"
    };
    let what = format!(
        "{} entered {} of {} via {how}; parents: {}",
        actor(&s.process),
        s.changed.join("+"),
        s.target.as_deref().map(name).unwrap_or_default(),
        s.parents
    );
    (s.process, s.target, detail("container_entered", what, Some(s.seq)))
}

fn actor(p: &Process) -> String {
    format!("{}(pid {}, uid {})", p.comm, p.tgid, p.uid)
}

/// Bookkeeping every rule relies on: process ancestry and runc inits.
pub fn track(s: &mut State, ev: &Event) {
    let p = &ev.process;
    if p.comm.starts_with("runc:[2:INIT]") && !s.inits.contains_key(&p.tgid) && s.inits.len() < MAX_INITS {
        let init = RuncInit { since: ev.ts_boot_ns, process: p.clone(), container: None, exec_failed: None, reported: false };
        s.inits.insert(p.tgid, init);
    }
    if let Some(init) = s.inits.get_mut(&p.tgid)
        && ev.metadata.container.is_some()
    {
        init.container = ev.metadata.container.clone();
    }
    match &ev.detail {
        Detail::Fork(f) if !f.thread => {
            bounded_insert(
                &mut s.procs,
                MAX_PROCS,
                f.child_tgid,
                Proc {
                    ppid: p.tgid,
                    comm: p.comm,
                },
            );
        }
        Detail::Exec(x) if x.errno == 0 => {
            let comm = crate::event::Comm::new(basename(&x.filename));
            bounded_insert(&mut s.procs, MAX_PROCS, p.tgid, Proc { ppid: p.ppid, comm });
        }
        _ => {}
    }
}

/// (actor, container concerned, detail) of each anomaly `ev` triggers.
pub fn on_event(s: &mut State, cfg: &AnomalyConfig, ev: &Event) -> Vec<(Process, Option<Arc<ContainerMeta>>, AnomalyDetail)> {
    let mut out: Vec<(Process, Option<Arc<ContainerMeta>>, AnomalyDetail)> = Vec::new();
    let me = ev.process.clone();
    // An entry session ends when the entering process runs something (or exits).
    let ends_session = matches!(&ev.detail, Detail::Exec(_)) || matches!(&ev.detail, Detail::Exit(x) if x.leader);
    if ends_session && let Some(session) = s.sessions.remove(&ev.process.tgid) {
        out.extend(end_session(s, session));
    }
    let seq = Some(ev.seq);
    let here = ev.metadata.container.clone();
    if let Some(m) = &here
        && let Some(target) = &m.ephemeral_of
        && !s.ephemeral_seen.contains(&m.container_id)
    {
        if s.ephemeral_seen.len() >= MAX_KEYS {
            s.ephemeral_seen.clear();
        }
        s.ephemeral_seen.insert(m.container_id.clone());
        let what = format!(
            "ephemeral container {} joined the pid namespace of {}/{}/{target} (image {})",
            m.container, m.namespace, m.pod, m.image
        );
        out.push((me.clone(), here.clone(), detail("container_entered", what, seq)));
    }
    match &ev.detail {
        // The late copy of a session's first setns: now the entered container is known.
        Detail::NsChange(n) if n.op == "setns" && ev.metadata.state == "late" => {
            let first = ev.metadata.late_of;
            if let (Some(t), Some(seq)) = (&n.target, first) {
                if let Some(mut parked) = s.parked.remove(&seq) {
                    parked.target = Some(t.clone());
                    out.push(entered(parked));
                } else if let Some(open) = s.sessions.values_mut().find(|o| o.seq == seq) {
                    open.target = Some(t.clone());
                }
            }
        }
        Detail::NsChange(n) if n.op == "setns" && n.errno == 0 => {
            if let Some(open) = s.sessions.get_mut(&ev.process.tgid) {
                for c in n.changed.iter() {
                    if !open.changed.contains(c) {
                        open.changed.push(c);
                    }
                }
                if open.target.is_none() {
                    open.target = n.target.clone();
                }
            } else if ev.entry_started && s.sessions.len() < MAX_KEYS {
                let session = Session {
                    seq: ev.seq,
                    process: me.clone(),
                    entry_path: ev.entry_path,
                    target: n.target.clone(),
                    changed: n.changed,
                    parents: parents(s, ev.process.ppid),
                };
                s.sessions.insert(ev.process.tgid, session);
            }
        }
        Detail::NsChange(n)
            if n.op == "unshare" && n.errno == 0 && n.requested.contains("user") =>
        {
            if let Some(m) = &here {
                let what = format!("{} created a user namespace (unshare) in {}", actor(&ev.process), name(m));
                out.push((me.clone(), here.clone(), detail("userns_in_container", what, seq)));
            }
        }
        Detail::Fork(f) if f.new_namespaces.contains("user") => {
            if let Some(m) = &here {
                let what = format!("{} created a user namespace (clone) in {}", actor(&ev.process), name(m));
                out.push((me.clone(), here.clone(), detail("userns_in_container", what, seq)));
            }
        }
        Detail::Exec(x) if x.errno != 0 => {
            if let Some(init) = s.inits.get_mut(&ev.process.tgid) {
                init.exec_failed = Some((x.error.unwrap_or("error"), x.filename.clone()));
            }
        }
        Detail::Exec(x) => {
            s.inits.remove(&ev.process.tgid);
            if let Some(m) = &here {
                let prog = program(&x.filename, &x.args);
                if ev.entry_path == "entrypoint" && (s.baseline.len() < MAX_IMAGES || s.baseline.contains_key(&m.image)) {
                    let seen = s.baseline.entry(m.image.clone()).or_default();
                    if seen.len() < MAX_EXES_PER_IMAGE {
                        seen.insert(prog.clone());
                    }
                }
                let watched = cfg.shells.iter().chain(&cfg.package_managers).any(|w| *w == prog);
                if watched && !s.baseline.get(&m.image).is_some_and(|b| b.contains(&prog)) {
                    let what = format!(
                        "{prog} ran in {} (image {} does not run it from its entrypoint) by {} [{}]; parents: {}",
                        name(m),
                        m.image,
                        actor(&ev.process),
                        ev.entry_path,
                        parents(s, ev.process.ppid)
                    );
                    out.push((me.clone(), here.clone(), detail("shell_in_container", what, seq)));
                }
            }
        }
        Detail::Exit(x) if x.leader => {
            if let Some(init) = s.inits.remove(&ev.process.tgid) {
                let why = match init.exec_failed {
                    Some((err, path)) => format!("exec {path}: {err}"),
                    None => "runc init exited before exec'ing it".into(),
                };
                let status = x.code.map(|c| format!("code {c}")).or(x.signal_name.map(String::from)).unwrap_or_default();
                let container = init.container.or(here.clone());
                let whose = container.as_deref().map(name).unwrap_or_else(|| format!("cgroup {}", ev.cgroup_id));
                let what = format!("entrypoint of {whose} failed: {why} (runc init exit {status})");
                out.push((Process::default(), container, detail("entrypoint_failed", what, seq)));
            }
            if let (Some(ce), Some(m)) = (&x.container_exit, &here) {
                out.extend(crash_loop(s, cfg, ev, m, ce.restart_count).map(|(c, d)| (me.clone(), c, d)));
            }
            s.procs.remove(&ev.process.tgid);
        }
        Detail::Oom(o) => {
            if let Some(m) = &here {
                let mib = |b: Option<u64>| b.map(|b| format!("{} MiB", b >> 20)).unwrap_or_else(|| "unlimited".into());
                let what = format!(
                    "OOM kill of {}(pid {}) in {}: usage {} of limit {}{}",
                    o.victim_comm,
                    o.victim_tgid,
                    name(m),
                    mib(o.memory_usage_bytes),
                    mib(o.memory_limit_bytes),
                    if o.victim_is_init == Some(true) { "; it was the container's init: the container stops" } else { "" }
                );
                out.push((me.clone(), here.clone(), detail("oom_kill", what, seq)));
            }
        }
        Detail::Cgroup(c) => {
            let subject = ev.subject_cgroup_id();
            match (ev.kind, c.frozen) {
                ("cgroup_freeze", _) | ("cgroup_frozen", Some(true)) => {
                    if let Some(m) = &here
                        && !s.frozen.contains_key(&subject)
                        && s.frozen.len() < MAX_KEYS
                    {
                        s.frozen.insert(subject, Frozen { since: ev.ts_boot_ns, container: m.clone(), reported: false });
                    }
                }
                ("cgroup_unfreeze", _) | ("cgroup_frozen", Some(false)) | ("cgroup_rmdir", _) => {
                    // A freeze that ended between two timer checks is reported at its end.
                    if let Some(f) = s.frozen.remove(&subject)
                        && !f.reported
                        && ev.ts_boot_ns.saturating_sub(f.since)
                            > cfg.frozen_threshold_ms * 1_000_000
                    {
                        let held_ms = ev.ts_boot_ns.saturating_sub(f.since) / 1_000_000;
                        let what = format!(
                            "{} was frozen (paused) for {held_ms} ms",
                            name(&f.container)
                        );
                        out.push((
                            Process::default(),
                            Some(f.container.clone()),
                            detail("frozen_too_long", what, None),
                        ));
                    }
                }
                _ => {}
            }
        }
        _ => {}
    }
    out
}

fn crash_loop(
    s: &mut State,
    cfg: &AnomalyConfig,
    ev: &Event,
    m: &Arc<ContainerMeta>,
    restart_count: u32,
) -> Option<(Option<Arc<ContainerMeta>>, AnomalyDetail)> {
    let key = (m.pod_uid.clone(), m.container.clone());
    if !s.stops.contains_key(&key) && s.stops.len() >= MAX_KEYS {
        return None;
    }
    let window = cfg.crash_loop_window_ms * 1_000_000;
    let stops = s.stops.entry(key).or_default();
    stops.push_back(ev.ts_boot_ns);
    while stops.front().is_some_and(|t| ev.ts_boot_ns.saturating_sub(*t) > window) {
        stops.pop_front();
    }
    if (stops.len() as u32) < cfg.crash_loop_stops {
        return None;
    }
    let Detail::Exit(x) = &ev.detail else { return None };
    let last = match (x.code, x.signal_name) {
        (Some(c), _) => format!("exit code {c}"),
        (_, Some(sig)) => format!("killed by {sig}"),
        _ => "unknown".into(),
    };
    let what = format!(
        "{} stopped {} times within {} s ({} restarts seen); last: {last}",
        name(m),
        stops.len(),
        cfg.crash_loop_window_ms / 1000,
        restart_count
    );
    Some((Some(m.clone()), detail("crash_loop", what, Some(ev.seq))))
}

pub fn on_tick(s: &mut State, cfg: &AnomalyConfig, now: u64) -> Vec<(Process, Option<Arc<ContainerMeta>>, AnomalyDetail)> {
    let mut out = Vec::new();
    let frozen_limit = cfg.frozen_threshold_ms * 1_000_000;
    for f in s.frozen.values_mut().filter(|f| !f.reported && now.saturating_sub(f.since) > frozen_limit) {
        f.reported = true;
        let what = format!("{} frozen (paused) for more than {} s", name(&f.container), now.saturating_sub(f.since) / 1_000_000_000);
        out.push((Process::default(), Some(f.container.clone()), detail("frozen_too_long", what, None)));
    }
    let stuck_limit = cfg.runc_init_stuck_ms * 1_000_000;
    for init in s.inits.values_mut().filter(|i| !i.reported && now.saturating_sub(i.since) > stuck_limit) {
        init.reported = true;
        let whose = init.container.as_deref().map(name).unwrap_or_else(|| "a container".into());
        let what = format!(
            "runc init (pid {}) for {whose} alive {} s without exec'ing the entrypoint: created but never started, or a stuck start",
            init.process.tgid,
            now.saturating_sub(init.since) / 1_000_000_000
        );
        out.push((init.process.clone(), init.container.clone(), detail("runc_init_stuck", what, None)));
    }
    out
}
