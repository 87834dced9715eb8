use std::{collections::BTreeMap, time::Duration};

use super::*;
use crate::event::{ExecDetail, ExitDetail, Metadata, NsInodes, Process};

fn meta(container: &str) -> Arc<ContainerMeta> {
    Arc::new(ContainerMeta {
        namespace: "default".into(),
        pod: "web".into(),
        pod_uid: "uid".into(),
        container: container.into(),
        container_id: format!("id-{container}"),
        image: "img:1".into(),
        runtime: "containerd".into(),
        pid: 10,
        attempt: 0,
        labels: BTreeMap::new(),
        ns: NsInodes::default(),
        ephemeral_of: None,
    })
}

fn ev(m: &Arc<ContainerMeta>, detail: Detail) -> Event {
    Event {
        seq: 1,
        ts_boot_ns: 1,
        kind: "exec",
        source: "kernel",
        process: Process { pid: 10, tgid: 10, ..Default::default() },
        cgroup_id: 5,
        ns: NsInodes::default(),
        metadata: Metadata { state: "complete", container: Some(m.clone()), late_of: None },
        entry_path: "entrypoint",
        entry_started: false,
        detail,
    }
}

fn exec() -> Detail {
    Detail::Exec(ExecDetail {
        filename: "/bin/true".into(),
        filename_truncated: false,
        args: vec![],
        args_truncated: false,
        args_unreadable: false,
        args_masked: false,
        errno: 0,
        error: None,
        syscall: "execve",
        dirfd: None,
    })
}

fn scrape(registry: &Registry) -> String {
    let mut s = String::new();
    prometheus_client::encoding::text::encode(&mut s, registry).unwrap();
    s
}

#[test]
fn container_series_carry_names_only_and_expire_after_the_ttl() {
    let cache = MetadataCache::new(Duration::from_secs(60));
    let m = meta("app");
    cache.merge(HashMap::from([(5, m.clone())]));
    let (registry, mut sink) = build(Some(cache.clone()), Duration::from_millis(1), 1 << 20);
    sink.event(&ev(&m, exec()));
    let mut exit = ev(&m, Detail::Exit(ExitDetail {
        code: Some(3),
        signal: None,
        signal_name: None,
        core_dumped: false,
        raw: 3 << 8,
        leader: true,
        group_dead: Some(true),
        ns_pid: 1,
        container_exit: Some(crate::event::ContainerExit { restart_count: 1, attempt: 1, since_previous_exit_ns: Some(5) }),
    }));
    exit.kind = "exit";
    sink.event(&exit);
    let text = scrape(&registry);
    let execs = r#"podtrail_container_execs_total{namespace="default",pod="web",container="app",entry_path="entrypoint"} 1"#;
    assert!(text.contains(execs), "{text}");
    assert!(text.contains(r#"podtrail_container_stops_total{namespace="default",pod="web",container="app",reason="error"} 1"#), "{text}");
    assert!(text.contains(r#"podtrail_container_last_exit_code{namespace="default",pod="web",container="app"} 3"#), "{text}");
    assert!(text.contains(r#"podtrail_container_restarts_total{namespace="default",pod="web",container="app"} 1"#), "{text}");
    assert!(text.contains(r#"container_id="id-app""#), "ids only in the info series: {text}");
    // Still live: a sweep keeps it.
    sink.sweep();
    assert!(scrape(&registry).contains(execs));
    // Removed from the runtime: gone after the TTL.
    cache.merge(HashMap::new());
    sink.sweep();
    std::thread::sleep(Duration::from_millis(5));
    sink.sweep();
    let text = scrape(&registry);
    assert!(!text.contains(r#"container="app""#), "expired series remain: {text}");
    assert!(text.contains("podtrail_container_series_expired_total 1"), "{text}");
}
