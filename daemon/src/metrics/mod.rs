//! Prometheus metrics: a sink that turns events into container and self metrics, and the
//! `/metrics` listener. Container series are bounded: those of a container gone from the
//! runtime for `metrics.container_series_ttl_ms` are removed.
mod families;
mod server;

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::{Duration, Instant},
};

use families::*;
use prometheus_client::registry::Registry;
pub use server::serve;

use crate::{
    cri::{ContainerMeta, CriStats, MetadataCache},
    event::{Detail, Event},
    output::DropReport,
    sink::EventSink,
};

/// How often gone containers are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(5);

/// Label sets one container name created, to remove them all when it expires.
#[derive(Default)]
struct Series {
    info: HashSet<ContainerInfoLabels>,
    entry_paths: HashSet<&'static str>,
    exec_errors: HashSet<&'static str>,
    exit_causes: HashSet<&'static str>,
    stop_causes: HashSet<&'static str>,
    entries: HashSet<&'static str>,
    gone_since: Option<Instant>,
}

pub struct MetricsSink {
    f: Families,
    series: HashMap<ContainerLabels, Series>,
    cache: Option<MetadataCache>,
    ttl: Duration,
    last_sweep: Instant,
    ringbuf_bytes: u64,
    /// Largest drain since the last tick, in bytes.
    fill_max: u64,
    /// OOM victims whose exit is still to come: that container stop's cause is `oom`.
    oom_killed: HashSet<(u32, ContainerLabels)>,
}

/// Bound on remembered OOM victims (their exits normally follow within milliseconds).
const MAX_OOM_VICTIMS: usize = 4096;

/// Builds the registry and the sink; the registry goes to [`serve`].
pub fn build(cache: Option<MetadataCache>, ttl: Duration, ringbuf_bytes: u64) -> (Arc<Registry>, MetricsSink) {
    let mut registry = Registry::default();
    let f = Families::register(&mut registry);
    if let Some(c) = &cache {
        observe_cri(&c.stats, &f);
    }
    let sink = MetricsSink {
        f,
        series: HashMap::new(),
        cache,
        ttl,
        last_sweep: Instant::now(),
        ringbuf_bytes: ringbuf_bytes.max(1),
        fill_max: 0,
        oom_killed: HashSet::new(),
    };
    (Arc::new(registry), sink)
}

/// Per-call CRI counters and latency, fed by the sync task.
fn observe_cri(stats: &CriStats, f: &Families) {
    let (requests, errors, latency) = (f.cri_requests.clone(), f.cri_errors.clone(), f.cri_latency.clone());
    let _ = stats.observer.set(Box::new(move |call, took, failure| {
        requests.get_or_create(&CallLabels { call }).inc();
        latency.get_or_create(&CallLabels { call }).observe(took.as_secs_f64());
        if let Some(reason) = failure {
            errors.get_or_create(&CallErrorLabels { call, reason }).inc();
        }
    }));
}

fn labels(m: &ContainerMeta) -> ContainerLabels {
    ContainerLabels { namespace: m.namespace.clone(), pod: m.pod.clone(), container: m.container.clone() }
}

fn with<T>(l: &ContainerLabels, extra: T) -> (String, String, String, T) {
    (l.namespace.clone(), l.pod.clone(), l.container.clone(), extra)
}

fn path_labels(l: &ContainerLabels, entry_path: &'static str) -> ContainerPathLabels {
    let (namespace, pod, container, entry_path) = with(l, entry_path);
    ContainerPathLabels { namespace, pod, container, entry_path }
}

fn reason_labels(l: &ContainerLabels, reason: &'static str) -> ContainerReasonLabels {
    let (namespace, pod, container, reason) = with(l, reason);
    ContainerReasonLabels { namespace, pod, container, reason }
}

impl MetricsSink {
    /// The container's labels, registering its info series (and an ephemeral container's
    /// entry into its target) the first time.
    fn track(&mut self, m: &ContainerMeta) -> ContainerLabels {
        let l = labels(m);
        let info = ContainerInfoLabels {
            namespace: m.namespace.clone(),
            pod: m.pod.clone(),
            container: m.container.clone(),
            container_id: m.container_id.clone(),
            image: m.image.clone(),
            runtime: m.runtime.clone(),
        };
        let s = self.series.entry(l.clone()).or_default();
        if !s.info.contains(&info) {
            self.f.info.get_or_create(&info).set(1);
            s.info.insert(info);
            if let Some(target) = &m.ephemeral_of {
                let t = ContainerLabels { container: target.clone(), ..l.clone() };
                self.f.entries.get_or_create(&path_labels(&t, "ephemeral")).inc();
                self.series.entry(t).or_default().entries.insert("ephemeral");
            }
        }
        l
    }

    fn series(&mut self, l: &ContainerLabels) -> &mut Series {
        self.series.entry(l.clone()).or_default()
    }

    fn container_event(&mut self, ev: &Event, m: &ContainerMeta) {
        let l = self.track(m);
        match &ev.detail {
            Detail::Exec(x) if x.errno == 0 => {
                self.f.execs.get_or_create(&path_labels(&l, ev.entry_path)).inc();
                self.series(&l).entry_paths.insert(ev.entry_path);
            }
            Detail::Exec(x) => {
                let reason = x.error.unwrap_or("other");
                self.f.exec_failures.get_or_create(&reason_labels(&l, reason)).inc();
                self.series(&l).exec_errors.insert(reason);
            }
            Detail::Fork(f) if !f.thread => {
                self.f.forks.get_or_create(&l).inc();
            }
            Detail::Exit(x) if x.leader => {
                let cause = match (x.code, x.signal) {
                    (Some(0), _) => "success",
                    (Some(_), _) => "error",
                    _ => "signal",
                };
                self.f.process_exits.get_or_create(&reason_labels(&l, cause)).inc();
                self.series(&l).exit_causes.insert(cause);
                if let Some(ce) = &x.container_exit {
                    let oom = x.signal == Some(9) && self.oom_killed.remove(&(ev.process.tgid, l.clone()));
                    let cause = if oom { "oom" } else { cause };
                    self.f.stops.get_or_create(&reason_labels(&l, cause)).inc();
                    self.series(&l).stop_causes.insert(cause);
                    let code = x.code.map(i64::from).unwrap_or(128 + x.signal.map(i64::from).unwrap_or(0));
                    self.f.last_exit_code.get_or_create(&l).set(code);
                    if ce.restart_count > 0 {
                        self.f.restarts.get_or_create(&l).inc();
                    }
                }
            }
            Detail::Oom(o) => {
                self.f.oom_kills.get_or_create(&l).inc();
                if self.oom_killed.len() >= MAX_OOM_VICTIMS {
                    self.oom_killed.clear();
                }
                self.oom_killed.insert((o.victim_tgid, l.clone()));
            }
            Detail::Cgroup(c) => match (ev.kind, c.frozen) {
                ("cgroup_frozen", Some(true)) => {
                    self.f.frozen.get_or_create(&l).set(1);
                }
                ("cgroup_unfreeze", _) | ("cgroup_frozen", Some(false)) => {
                    self.f.frozen.get_or_create(&l).set(0);
                    // cgroup2 reports unfreeze then "no longer frozen", both with the
                    // duration: count it once, on the last one (the v1 poller has only one).
                    let last = ev.kind == "cgroup_frozen" || ev.source == "v1_freezer_poll";
                    if let (true, Some(ns)) = (last, c.frozen_duration_ns) {
                        self.f.frozen_seconds.get_or_create(&l).inc_by(ns as f64 / 1e9);
                    }
                }
                _ => {}
            },
            _ => {}
        }
    }

    /// Removes every series of container names gone from the runtime for the TTL.
    fn sweep(&mut self) {
        let Some(cache) = &self.cache else { return };
        let live = cache.live_names();
        let now = Instant::now();
        let mut expired = Vec::new();
        for (l, s) in self.series.iter_mut() {
            if live.contains(&(l.namespace.clone(), l.pod.clone(), l.container.clone())) {
                s.gone_since = None;
            } else if now.duration_since(*s.gone_since.get_or_insert(now)) >= self.ttl {
                expired.push(l.clone());
            }
        }
        for l in expired {
            let Some(s) = self.series.remove(&l) else { continue };
            self.remove_series(&l, &s);
            self.oom_killed.retain(|(_, c)| *c != l);
            self.f.series_expired.inc();
        }
    }

    fn remove_series(&self, l: &ContainerLabels, s: &Series) {
        let f = &self.f;
        for info in &s.info {
            f.info.remove(info);
        }
        for p in &s.entry_paths {
            f.execs.remove(&path_labels(l, p));
        }
        for p in &s.entries {
            f.entries.remove(&path_labels(l, p));
        }
        for r in &s.exec_errors {
            f.exec_failures.remove(&reason_labels(l, r));
        }
        for r in &s.exit_causes {
            f.process_exits.remove(&reason_labels(l, r));
        }
        for r in &s.stop_causes {
            f.stops.remove(&reason_labels(l, r));
        }
        f.forks.remove(l);
        f.last_exit_code.remove(l);
        f.restarts.remove(l);
        f.oom_kills.remove(l);
        f.frozen.remove(l);
        f.frozen_seconds.remove(l);
    }
}

impl EventSink for MetricsSink {
    fn event(&mut self, ev: &Event, _line: &crate::output::Line) {
        self.f
            .lookups
            .get_or_create(&StateLabels {
                state: ev.metadata.state,
            })
            .inc();
        if ev.metadata.state == "late" {
            self.f.late_reemits.inc();
        } else {
            self.f.events.get_or_create(&KindLabels { kind: ev.kind }).inc();
        }
        if let Detail::Anomaly(a) = &ev.detail {
            self.f.anomalies.get_or_create(&AnomalyLabels { rule: a.rule, severity: a.severity }).inc();
            return;
        }
        // An entry into a container from outside is counted on the entered container.
        if let Detail::NsChange(n) = &ev.detail
            && ev.entry_started
            && let Some(t) = &n.target
        {
            let l = self.track(t);
            self.f.entries.get_or_create(&path_labels(&l, ev.entry_path)).inc();
            self.series(&l).entries.insert(ev.entry_path);
        }
        if let Some(m) = ev.metadata.container.clone() {
            self.container_event(ev, &m);
        }
    }

    fn drained(&mut self, bytes: u64) {
        self.fill_max = self.fill_max.max(bytes);
    }

    fn drops(&mut self, report: &DropReport) {
        self.f.dropped.get_or_create(&DropLabels { reason: report.reason, kind: report.event_kind }).inc_by(report.count);
    }

    fn tick(&mut self) {
        self.f.ringbuf_fill.set(self.fill_max as f64 / self.ringbuf_bytes as f64);
        self.fill_max = 0;
        if let Some(c) = &self.cache {
            self.f.containers_tracked.set(c.len() as i64);
        }
        if self.last_sweep.elapsed() >= SWEEP_EVERY.min(self.ttl) {
            self.last_sweep = Instant::now();
            self.sweep();
        }
    }
}

#[cfg(test)]
mod tests;

