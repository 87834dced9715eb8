//! Every Prometheus family podtrail exports, registered once. Container series carry only
//! `namespace`, `pod`, `container` (joinable with cAdvisor / kube-state-metrics) plus small
//! fixed enums; ids live only in `podtrail_container_info`.
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram, info::Info},
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ContainerLabels {
    pub namespace: String,
    pub pod: String,
    pub container: String,
}

/// A container plus one small enum label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ContainerPathLabels {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub entry_path: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ContainerReasonLabels {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ContainerInfoLabels {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub container_id: String,
    pub image: String,
    pub runtime: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AnomalyLabels {
    pub rule: &'static str,
    pub severity: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    /// `metadata.state`: complete, host, pending, late, tombstone.
    pub state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DropLabels {
    pub reason: &'static str,
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub call: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallErrorLabels {
    pub call: &'static str,
    /// `error` (the runtime answered with an error) or `timeout`.
    pub reason: &'static str,
}

fn cri_latency() -> Histogram {
    // 1 ms .. ~4 s: a local runtime socket answers in milliseconds; seconds mean trouble.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(0.001, 2.0, 13))
}

pub struct Families {
    pub execs: Family<ContainerPathLabels, Counter>,
    pub exec_failures: Family<ContainerReasonLabels, Counter>,
    pub forks: Family<ContainerLabels, Counter>,
    pub process_exits: Family<ContainerReasonLabels, Counter>,
    pub stops: Family<ContainerReasonLabels, Counter>,
    pub last_exit_code: Family<ContainerLabels, Gauge>,
    pub restarts: Family<ContainerLabels, Counter>,
    pub oom_kills: Family<ContainerLabels, Counter>,
    pub entries: Family<ContainerPathLabels, Counter>,
    pub frozen: Family<ContainerLabels, Gauge>,
    pub frozen_seconds: Family<ContainerLabels, Counter<f64>>,
    pub info: Family<ContainerInfoLabels, Gauge>,
    pub events: Family<KindLabels, Counter>,
    pub anomalies: Family<AnomalyLabels, Counter>,
    pub lookups: Family<StateLabels, Counter>,
    pub late_reemits: Counter,
    pub dropped: Family<DropLabels, Counter>,
    pub ringbuf_fill: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub cri_requests: Family<CallLabels, Counter>,
    pub cri_errors: Family<CallErrorLabels, Counter>,
    pub cri_latency: Family<CallLabels, Histogram, fn() -> Histogram>,
    pub containers_tracked: Gauge,
    pub series_expired: Counter,
}

impl Families {
    pub fn register(registry: &mut Registry) -> Self {
        let f = Families {
            execs: Default::default(),
            exec_failures: Default::default(),
            forks: Default::default(),
            process_exits: Default::default(),
            stops: Default::default(),
            last_exit_code: Default::default(),
            restarts: Default::default(),
            oom_kills: Default::default(),
            entries: Default::default(),
            frozen: Default::default(),
            frozen_seconds: Default::default(),
            info: Default::default(),
            events: Default::default(),
            anomalies: Default::default(),
            lookups: Default::default(),
            late_reemits: Default::default(),
            dropped: Default::default(),
            ringbuf_fill: Default::default(),
            cri_requests: Default::default(),
            cri_errors: Default::default(),
            cri_latency: Family::new_with_constructor(cri_latency),
            containers_tracked: Default::default(),
            series_expired: Default::default(),
        };
        let r = registry.sub_registry_with_prefix("podtrail");
        r.register("container_execs", "Successful execs in a container, by entry path", f.execs.clone());
        r.register("container_exec_failures", "Failed execs in a container, by errno name", f.exec_failures.clone());
        r.register("container_forks", "Processes (not threads) created in a container", f.forks.clone());
        r.register(
            "container_process_exits",
            "Process exits in a container, by cause (success, error: non-zero code, signal)",
            f.process_exits.clone(),
        );
        r.register(
            "container_stops",
            "Container stops (its init exited), by cause (success, error, signal, oom)",
            f.stops.clone(),
        );
        r.register(
            "container_last_exit_code",
            "Exit code of the container's last stop (128 + signal number when killed)",
            f.last_exit_code.clone(),
        );
        r.register(
            "container_restarts",
            "Stops of a pod/container name after its first stop (crash-loop indicator)",
            f.restarts.clone(),
        );
        r.register("container_oom_kills", "OOM kills of processes in a container", f.oom_kills.clone());
        r.register(
            "container_entries",
            "Sessions that entered a container from outside: nsenter, runtime_exec (kubectl exec), ephemeral (debug container)",
            f.entries.clone(),
        );
        r.register("container_frozen", "1 while the container's cgroup is frozen (paused)", f.frozen.clone());
        r.register("container_frozen_seconds", "Time the container spent frozen, counted at each thaw", f.frozen_seconds.clone());
        r.register("container_info", "Identity of a container podtrail saw (value 1)", f.info.clone());
        r.register("events", "Events read from the kernel (and the v1 freezer poller), by kind", f.events.clone());
        r.register("anomalies", "Anomalies raised by the built-in rules, by rule and severity", f.anomalies.clone());
        r.register(
            "metadata_lookups",
            "Metadata cache lookups on the event path, by resulting metadata.state",
            f.lookups.clone(),
        );
        r.register("late_reemits", "Events re-emitted once their container's metadata arrived", f.late_reemits.clone());
        r.register("dropped_events", "Events lost, by reason and kind (never silently)", f.dropped.clone());
        r.register(
            "ringbuf_fill_ratio",
            "Largest fraction of the ring buffer drained at once in the last second",
            f.ringbuf_fill.clone(),
        );
        r.register("cri_requests", "CRI calls made, by call", f.cri_requests.clone());
        r.register("cri_errors", "CRI calls that failed, by call and reason (error, timeout)", f.cri_errors.clone());
        r.register_with_unit(
            "cri_request_duration",
            "CRI call latency",
            prometheus_client::registry::Unit::Seconds,
            f.cri_latency.clone(),
        );
        r.register("containers_tracked", "Containers in the metadata cache (live and tombstones)", f.containers_tracked.clone());
        r.register(
            "container_series_expired",
            "Container label sets removed after their container was gone for metrics.container_series_ttl_ms",
            f.series_expired.clone(),
        );
        r.register(
            "build",
            "podtrail build",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        f
    }
}
