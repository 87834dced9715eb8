use std::sync::Arc;

use super::*;
use crate::{
    config::AnomalyConfig,
    event::ContainerExit,
    testutil::{self, exec},
};

fn meta(image: &str) -> Arc<ContainerMeta> {
    let mut m = (*testutil::meta("app", 100)).clone();
    m.image = image.into();
    Arc::new(m)
}

/// An event at `seq` seconds of process `tgid` (`comm`) on `entry_path`.
fn ev(seq: u64, tgid: u32, comm: &str, m: Option<Arc<ContainerMeta>>, entry_path: &'static str, detail: Detail) -> Event {
    let mut e = testutil::event(seq, tgid, m.as_ref(), detail);
    e.ts_boot_ns = seq * 1_000_000_000;
    e.process.comm = comm.into();
    e.entry_path = entry_path;
    e
}

fn exit(code: u32, container_exit: Option<ContainerExit>) -> Detail {
    testutil::exit(code, 1, container_exit)
}

fn rules(found: &[Event]) -> Vec<&'static str> {
    found
        .iter()
        .map(|e| match &e.detail {
            Detail::Anomaly(a) => a.rule,
            _ => "not an anomaly",
        })
        .collect()
}

#[test]
fn a_shell_is_an_anomaly_only_where_the_entrypoint_never_runs_one() {
    let mut a = Anomalies::new(AnomalyConfig::default());
    let distroless = meta("distroless:1");
    assert!(a.check(&ev(1, 100, "server", Some(distroless.clone()), "entrypoint", exec("/server", &["/server"]))).is_empty());
    // busybox multi-call: `/busybox sh -c ...` is a shell.
    let found = a.check(&ev(2, 200, "runc:[2:INIT]", Some(distroless.clone()), "runtime_exec", exec("/busybox", &["/busybox", "sh", "-c", "id"])));
    assert_eq!(rules(&found), ["shell_in_container"]);
    assert_eq!(found[0].metadata.container.as_ref().unwrap().container, "app");
    // An image whose entrypoint is a shell script: its shells are normal.
    let scripted = meta("scripted:1");
    assert!(a.check(&ev(3, 300, "runc", Some(scripted.clone()), "entrypoint", exec("/bin/sh", &["/bin/sh", "-c", "run"]))).is_empty());
    assert!(a.check(&ev(4, 301, "runc", Some(scripted), "runtime_exec", exec("/bin/sh", &["sh"]))).is_empty());
}

#[test]
fn entering_a_container_names_actor_target_and_parents() {
    let mut a = Anomalies::new(AnomalyConfig::default());
    let m = meta("img");
    a.check(&ev(
        1,
        50,
        "bash",
        None,
        "host",
        exec("/bin/bash", &["bash"]),
    ));
    a.check(&ev(
        2,
        50,
        "bash",
        None,
        "host",
        crate::testutil::fork(60, 60, false),
    ));
    let mut setns = ev(
        3,
        60,
        "nsenter",
        None,
        "nsenter",
        testutil::setns(vec!["mnt", "net"], Some(m)),
    );
    setns.process.ppid = 50;
    setns.entry_started = true;
    assert!(a.check(&setns).is_empty(), "reported once the process joined everything it asked for");
    // The same session's next setns adds its namespaces.
    setns.entry_started = false;
    setns.seq = 4;
    if let Detail::NsChange(n) = &mut setns.detail {
        n.changed = ["uts"].into();
    }
    assert!(a.check(&setns).is_empty());
    let found = a.check(&ev(5, 60, "true", None, "nsenter", exec("/bin/true", &["true"])));
    assert_eq!(rules(&found), ["container_entered"]);
    let Detail::Anomaly(d) = &found[0].detail else { unreachable!() };
    assert!(d.summary.contains("nsenter(pid 60, uid 0) entered mnt+net+uts of default/web/app via nsenter"), "{}", d.summary);
    assert!(d.summary.contains("parents: bash(50)"), "{}", d.summary);
    assert_eq!(d.related_seq, Some(3));
    assert_eq!(found[0].process.comm, "nsenter", "the actor as it entered");
    assert!(a.check(&ev(6, 60, "true", None, "nsenter", exec("/bin/true", &["true"]))).is_empty(), "one per session");
}

#[test]
fn crash_loop_fires_from_the_third_stop_in_the_window() {
    let mut a = Anomalies::new(AnomalyConfig::default());
    let m = meta("img");
    for (i, expect) in [(0u32, 0usize), (1, 0), (2, 1)] {
        let ce = ContainerExit { restart_count: i, attempt: i, since_previous_exit_ns: None };
        let found = a.check(&ev(10 + u64::from(i), 100 + i, "sh", Some(m.clone()), "entrypoint", exit(3, Some(ce))));
        assert_eq!(found.len(), expect, "stop {i}");
    }
}

#[test]
fn runc_init_that_never_execs_is_stuck_then_failed() {
    let cfg = AnomalyConfig { runc_init_stuck_ms: 2_000, ..Default::default() };
    let mut a = Anomalies::new(cfg);
    let m = meta("img");
    a.check(&ev(
        1,
        900,
        "runc:[2:INIT]",
        Some(m.clone()),
        "entrypoint",
        crate::testutil::fork(901, 900, true),
    ));
    assert!(
        a.tick(2_000_000_000).is_empty(),
        "not past the threshold yet"
    );
    let stuck = a.tick(4_000_000_000);
    assert_eq!(rules(&stuck), ["runc_init_stuck"]);
    assert!(a.tick(9_000_000_000).is_empty(), "reported once");
    let failed = a.check(&ev(10, 900, "runc:[2:INIT]", Some(m), "entrypoint", exit(1, None)));
    assert_eq!(rules(&failed), ["entrypoint_failed"]);
    // A runc init that execs its entrypoint is neither.
    a.check(&ev(11, 950, "runc:[2:INIT]", None, "entrypoint", exec("/bin/sleep", &["sleep"])));
    assert!(a.tick(60_000_000_000).is_empty());
}

#[test]
fn a_freeze_past_the_threshold_is_reported_once_by_the_timer_or_at_its_end() {
    let cfg = AnomalyConfig {
        frozen_threshold_ms: 1500,
        ..AnomalyConfig::default()
    };
    let m = meta("img");
    let cgroup = |seq: u64, kind: &'static str| {
        let mut e = ev(
            seq,
            1,
            "ctr",
            Some(m.clone()),
            "host",
            crate::testutil::cgroup(77, "/pod/c"),
        );
        e.kind = kind;
        e.source = "kernel";
        e
    };
    // Ends between two timer checks, past the threshold: reported at the thaw.
    let mut a = Anomalies::new(cfg.clone());
    assert!(a.check(&cgroup(10, "cgroup_freeze")).is_empty());
    assert!(a.tick(11_000_000_000).is_empty());
    assert_eq!(
        rules(&a.check(&cgroup(12, "cgroup_unfreeze"))),
        ["frozen_too_long"]
    );
    // Shorter than the threshold: nothing.
    assert!(a.check(&cgroup(20, "cgroup_freeze")).is_empty());
    assert!(a.check(&cgroup(21, "cgroup_unfreeze")).is_empty());
    // Seen by the timer while still frozen: reported once, not again at the thaw.
    assert!(a.check(&cgroup(30, "cgroup_freeze")).is_empty());
    assert_eq!(rules(&a.tick(32_000_000_000)), ["frozen_too_long"]);
    assert!(a.tick(33_000_000_000).is_empty());
    assert!(a.check(&cgroup(34, "cgroup_unfreeze")).is_empty());
}
