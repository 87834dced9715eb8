use std::time::Duration;

use super::*;
use crate::{
    clock::WallClock,
    output::Line,
    testutil::{self, exec},
};

fn meta(container: &str) -> Arc<ContainerMeta> {
    testutil::meta(container, 10)
}

fn ev(m: &Arc<ContainerMeta>, detail: Detail) -> Event {
    testutil::event(1, 10, Some(m), detail)
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
    let e = ev(&m, exec("/bin/true", &[]));
    sink.event(&e, &Line::new(WallClock::new(), &e));
    let ce = crate::event::ContainerExit {
        restart_count: 1,
        attempt: 1,
        since_previous_exit_ns: Some(5),
    };
    let exit = ev(&m, testutil::exit(3, 1, Some(ce)));
    sink.event(&exit, &Line::new(WallClock::new(), &exit));
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
