//! The rules themselves. Each returns (container concerned, detail); the caller wraps them
//! into `anomaly` events.
use std::sync::Arc;

use super::{
    AnomalyDetail,
    state::{Frozen, MAX_EXES_PER_IMAGE, MAX_IMAGES, MAX_INITS, MAX_KEYS, MAX_PROCS, Proc, RuncInit, State, bounded_insert},
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
fn program(filename: &str, args: &[String]) -> String {
    let exe = basename(filename);
    let argv0 = args.first().map(|a| basename(a)).unwrap_or(exe);
    match (exe, argv0, args.get(1)) {
        (_, "busybox", Some(applet)) => basename(applet).to_string(),
        ("busybox", applet, _) => applet.to_string(),
        _ => exe.to_string(),
    }
}

/// "bash(812) <- sshd(640)": the actor's ancestors as far as they are known.
fn parents(s: &State, mut ppid: u32) -> String {
    let mut chain = Vec::new();
    while ppid > 1 && chain.len() < 4 {
        let Some(p) = s.procs.get(&ppid) else { break };
        chain.push(format!("{}({ppid})", p.comm));
        ppid = p.ppid;
    }
    if chain.is_empty() { "unknown".into() } else { chain.join(" <- ") }
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
            bounded_insert(&mut s.procs, MAX_PROCS, f.child_tgid, Proc { ppid: p.tgid, comm: p.comm.clone() });
        }
        Detail::Exec(x) if x.errno == 0 => {
            let comm = basename(&x.filename).to_string();
            bounded_insert(&mut s.procs, MAX_PROCS, p.tgid, Proc { ppid: p.ppid, comm });
        }
        _ => {}
    }
}

pub fn on_event(s: &mut State, cfg: &AnomalyConfig, ev: &Event) -> Vec<(Option<Arc<ContainerMeta>>, AnomalyDetail)> {
    let mut out = Vec::new();
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
        out.push((here.clone(), detail("container_entered", what, seq)));
    }
    match &ev.detail {
        Detail::NsChange(n) if n.op == "setns" && ev.entry_started => {
            if let Some(t) = &n.target {
                let how = if ev.entry_path == "runtime_exec" { "a runtime exec (kubectl/crictl exec)" } else { "nsenter from the host" };
                let what = format!(
                    "{} entered {} of {} via {how}; parents: {}",
                    actor(&ev.process),
                    n.changed.join("+"),
                    name(t),
                    parents(s, ev.process.ppid)
                );
                out.push((Some(t.clone()), detail("container_entered", what, seq)));
            }
        }
        Detail::NsChange(n) if n.op == "unshare" && n.errno == 0 && n.requested.contains(&"user") => {
            if let Some(m) = &here {
                let what = format!("{} created a user namespace (unshare) in {}", actor(&ev.process), name(m));
                out.push((here.clone(), detail("userns_in_container", what, seq)));
            }
        }
        Detail::Fork(f) if f.new_namespaces.contains(&"user") => {
            if let Some(m) = &here {
                let what = format!("{} created a user namespace (clone) in {}", actor(&ev.process), name(m));
                out.push((here.clone(), detail("userns_in_container", what, seq)));
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
                    out.push((here.clone(), detail("shell_in_container", what, seq)));
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
                out.push((container, detail("entrypoint_failed", what, seq)));
            }
            if let (Some(ce), Some(m)) = (&x.container_exit, &here) {
                out.extend(crash_loop(s, cfg, ev, m, ce.restart_count));
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
                out.push((here.clone(), detail("oom_kill", what, seq)));
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
                    s.frozen.remove(&subject);
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
