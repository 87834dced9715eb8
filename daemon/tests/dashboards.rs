//! The Grafana dashboards in `dashboards/`: valid, provisionable JSON, and every PromQL
//! expression in them (panel targets, annotations, `label_values` variables) returns data
//! from a real Prometheus that scraped the daemon during a scripted container workload.
mod common;
#[path = "dashboards/grafana.rs"]
mod grafana;
#[path = "dashboards/workload.rs"]
mod workload;

use std::{
    process::Command,
    time::{Duration, Instant},
};

use common::{containerd::*, prometheus::*, *};
use grafana::*;
use serde_json::Value;

/// What Grafana would put in for its variables: windows as on a dashboard a few hours wide
/// (the workload's rare events stay inside them while the queries run), and the workload's
/// pods; `$instance` is "All".
const VALUES: [(&str, &str); 6] = [
    ("__rate_interval", "2m"),
    ("__interval", "30s"),
    ("__range", "15m"),
    ("instance", ".+"),
    ("namespace", "podtrail"),
    ("pod", "dash-.+"),
];

#[test]
fn dashboards_are_provisionable_grafana_json() {
    let dashboards = load_all();
    let mut bad: Vec<String> = dashboards.iter().flat_map(Dashboard::problems).collect();
    let mut uids = std::collections::HashSet::new();
    for d in &dashboards {
        if !uids.insert(d.json["uid"].to_string()) {
            bad.push(format!("{}: uid {} used twice", d.file, d.json["uid"]));
        }
        for e in d.exprs() {
            if let Err(why) = substitute(&e.expr, &VALUES) {
                bad.push(format!("{}: {why}", e.place));
            }
        }
    }
    for (file, needles) in [
        ("provisioning/dashboards.yaml", ["apiVersion: 1", "type: file", "path: /var/lib/grafana/dashboards/podtrail"]),
        ("provisioning/datasources.yaml", ["apiVersion: 1", "type: prometheus", "url: "]),
    ] {
        let text = std::fs::read_to_string(format!("{DIR}/{file}")).unwrap_or_else(|e| panic!("{file}: {e}"));
        bad.extend(needles.iter().filter(|n| !text.contains(**n)).map(|n| format!("{file}: no {n:?}")));
    }
    assert!(bad.is_empty(), "dashboard problems:\n{}", bad.join("\n"));
}

/// At least one series with a finite, non-zero value: a panel that shows only zeros (or
/// NaN) after a workload that exercised it shows nothing.
fn has_data(prom: &Prometheus, promql: &str) -> Result<usize, String> {
    let data = prom.try_query(promql)?;
    let result = data["result"].as_array().cloned().unwrap_or_default();
    let value = |s: &Value| s["value"][1].as_str().and_then(|v| v.parse::<f64>().ok()).filter(|v| v.is_finite() && *v != 0.0);
    match data["resultType"].as_str() {
        Some("vector") if result.is_empty() => Err("empty result".into()),
        Some("vector") if !result.iter().any(|s| value(s).is_some()) => Err(format!("only zero or NaN values: {result:?}")),
        Some("vector") => Ok(result.len()),
        other => Err(format!("result type {other:?}, not an instant vector: {data}")),
    }
}

/// `selector` narrowed to `label=~"value"`: does the variable offer the value we substitute?
fn with_matcher(selector: &str, label: &str, value: &str) -> String {
    match selector.strip_suffix('}') {
        Some(open) if open.ends_with('{') => format!("{open}{label}=~\"{value}\"}}"),
        Some(open) => format!("{open}, {label}=~\"{value}\"}}"),
        None => format!("{selector}{{{label}=~\"{value}\"}}"),
    }
}

#[test]
fn every_dashboard_query_returns_data_after_a_container_workload() {
    if !root_or_skip("every_dashboard_query_returns_data_after_a_container_workload") {
        return;
    }
    let dashboards = load_all();
    let mut checks: Vec<(String, String)> = Vec::new();
    for d in &dashboards {
        for e in d.exprs() {
            checks.push((e.place, substitute(&e.expr, &VALUES).unwrap()));
        }
        for lv in d.label_values() {
            let value = VALUES.iter().find(|(n, _)| *n == lv.name).map(|(_, v)| *v).unwrap_or(".+");
            let sel = with_matcher(&substitute(&lv.selector, &VALUES).unwrap(), &lv.label, value);
            checks.push((lv.place, format!("count by ({}) ({sel})", lv.label)));
        }
    }

    let env = Env::up();
    let d = Daemon::start(&["--cri-endpoint", &env.socket, "--freezer-poll-ms", "50"]);
    // A second, unhealthy node: no runtime to ask (CRI errors) and a 4 KiB ring drained
    // every 1.5 s (drops), so that the node overview's error panels have data too.
    let no_cri = format!("/tmp/podtrail-dash-no-cri-{}.sock", std::process::id());
    let sick = Daemon::start(&["--cri-endpoint", &no_cri, "--ringbuf-size", "4096", "--drain-interval-ms", "1500"]);
    let prom = Prometheus::start_many(&[&d.metrics_addr(), &sick.metrics_addr()]);
    prom.wait_value(r#"count(up{job="podtrail"} == 1)"#, |v| v == 2.0);
    for _ in 0..60 {
        Command::new("/bin/true").status().unwrap();
    }
    sick.wait_for("drops on the small ring", 10, |v| is_kind(v, "drops"));
    let work = workload::Workload::run(&env, &d);

    // Data arrives with the next scrapes: retry every check until one shared deadline.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut failures = Vec::new();
    for (place, promql) in &checks {
        let outcome = loop {
            let r = has_data(&prom, promql);
            if r.is_ok() || Instant::now() > deadline {
                break r;
            }
            std::thread::sleep(Duration::from_millis(500));
        };
        match outcome {
            Ok(n) => eprintln!("ok ({n} series) {place}"),
            Err(why) => failures.push(format!("{place}\n  query: {promql}\n  {why}")),
        }
    }
    work.remove();
    d.stop();
    let (_, drops) = sick.stop_with_drops();
    assert!(!drops.is_empty(), "the small ring reported drops");
    drop(env);
    assert!(
        failures.is_empty(),
        "{} of {} dashboard queries failed (no data or an error):\n{}\nprometheus log tail:\n{}",
        failures.len(),
        checks.len(),
        failures.join("\n"),
        prom.log_tail()
    );
    eprintln!("{} dashboard queries in {} dashboards returned data", checks.len(), dashboards.len());
}
