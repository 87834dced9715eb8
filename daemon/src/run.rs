//! `podtrail run`: preflight, resolve layouts, load, attach, stream until a signal.
use std::{
    path::PathBuf,
    sync::{Arc, atomic::AtomicBool},
    time::Duration,
};

use anyhow::Context;
use aya::maps::{PerCpuArray, RingBuf};
use podtrail_common::offsets::ProbeConfig;
use tokio::sync::mpsc;

use crate::{
    cgroupfs::CgroupMounts,
    config::Config,
    cri::{self, MetadataCache},
    drops::DropCounters,
    freezer_v1::V1FreezerPoller,
    kernel::{btf::Btf, offsets, tracefs},
    loader::{self, LoadOptions},
    output::{Format, Output},
    enrich::{CreatedCgroups, Enricher},
    pipeline::{self, Pipeline, Sinks},
    preflight,
    anomaly::Anomalies,
    metrics,
    secrets::Masker,
    tail::{self, TailSink},
    sink::EventSink,
};

pub struct RunOptions {
    pub config: Config,
    pub format: Format,
    pub btf: PathBuf,
}

pub async fn run(opts: RunOptions) -> anyhow::Result<()> {
    let cfg = &opts.config;
    let output = Output::new(opts.format, std::io::stdout());
    // Before loading anything: a malformed endpoint is a start-up error.
    let otlp = if cfg.otlp.endpoint.is_empty() {
        None
    } else {
        Some(crate::otlp::OtlpSink::start(&cfg.otlp, output.clock())?)
    };
    preflight::check_privileges()?;
    // Before loading: an unusable store path is a start-up error (a corrupt store is moved
    // aside and replaced).
    let timeline = if cfg.timeline.enabled {
        Some(crate::timeline::TimelineSink::start(&cfg.timeline, output.clock())?)
    } else {
        None
    };
    let (tfs, load) = prepare_load(cfg, &opts.btf)?;
    let (mut ebpf, links) = loader::load_and_attach(&tfs, &load)?;
    let ring = RingBuf::try_from(ebpf.take_map("EVENTS").context("EVENTS map missing")?)?;
    let drops = PerCpuArray::try_from(ebpf.take_map("DROPS").context("DROPS map missing")?)?;

    let (tx, rx) = mpsc::channel(4096);
    let stop_poller = Arc::new(AtomicBool::new(false));
    let mounts = CgroupMounts::detect();
    let poller = match (&mounts.freezer_v1, cfg.freezer_v1.enabled) {
        (Some(root), true) => Some(pipeline::spawn_freezer_poller(
            V1FreezerPoller::new(root.clone(), mounts.unified.clone(), cfg.freezer_v1.max_cgroups),
            Duration::from_millis(cfg.freezer_v1.poll_interval_ms),
            tx,
            stop_poller.clone(),
        )),
        _ => None,
    };

    let enricher = start_cri(cfg, &mounts);
    let mut exporters: Vec<Box<dyn EventSink>> = Vec::new();
    let mut tail_socket = None;
    if cfg.tail.enabled {
        let (sink, tx) = TailSink::new(cfg.tail.buffer);
        // Like a busy metrics port: the event stream and the other sinks keep running.
        // `tail --since` replays from the timeline this daemon writes (when it writes one).
        let flush = Duration::from_millis(cfg.timeline.flush_interval_ms);
        let replay = cfg.timeline.enabled.then(|| tail::timeline_replay(cfg.timeline.path.clone(), flush));
        match tail::serve(&cfg.tail.socket, &cfg.tail.group, tx, replay) {
            Ok(()) => {
                exporters.push(Box::new(sink));
                tail_socket = Some(cfg.tail.socket.clone());
            }
            Err(e) => tracing::warn!("tail: {e}; continuing without `podtrail tail` (set --tail-socket)"),
        }
    }
    exporters.extend(otlp.map(|s| Box::new(s) as Box<dyn EventSink>));
    exporters.extend(timeline.map(|s| Box::new(s) as Box<dyn EventSink>));
    if cfg.metrics.enabled {
        let cache = enricher.as_ref().map(|e| e.cache.clone());
        let ttl = Duration::from_millis(cfg.metrics.container_series_ttl_ms);
        let (registry, sink) = metrics::build(cache, ttl, u64::from(cfg.ringbuf.size_bytes));
        metrics::serve(&cfg.metrics.listen, registry).await;
        exporters.push(Box::new(sink));
    }
    let mut pipeline = Pipeline {
        ring,
        drops: DropCounters::new(drops),
        sinks: Sinks::new(enricher, output, Masker::new(&cfg.secrets), Anomalies::new(cfg.anomalies.clone())),
        drain_interval: Duration::from_millis(cfg.ringbuf.drain_interval_ms),
    };
    pipeline.sinks.exporters = exporters;
    // Last: tests and operators take this line to mean every sink is up.
    tracing::info!(
        links,
        ringbuf_bytes = cfg.ringbuf.size_bytes,
        v1_freezer = poller.is_some(),
        "podtrail ready: {links} tracepoints attached"
    );
    let stats = pipeline.run(rx, shutdown_signal()).await?;
    stop_poller.store(true, std::sync::atomic::Ordering::Relaxed);
    tracing::info!("podtrail stopped: {}", stats.summary());
    if let Some(path) = tail_socket {
        let _ = std::fs::remove_file(path);
    }
    // Links detach when `ebpf` drops (the kernel waits for in-flight programs per link).
    let t = std::time::Instant::now();
    drop(ebpf);
    tracing::debug!("detached in {:?}", t.elapsed());
    Ok(())
}

/// Everything the loader needs from this kernel: struct offsets from `btf`, tracepoint
/// layouts from tracefs, and the ring-buffer settings.
pub fn prepare_load(cfg: &Config, btf_path: &std::path::Path) -> anyhow::Result<(tracefs::Tracefs, LoadOptions)> {
    preflight::check_btf(btf_path)?;
    let btf = Btf::from_file(btf_path)?;
    let kernel = offsets::resolve(&btf)
        .with_context(|| format!("resolving kernel struct offsets from {}", btf_path.display()))?;
    drop(btf);
    let tfs = tracefs::Tracefs::locate()?;
    let tracepoints = tracefs::resolve(&tfs)?;
    let load = LoadOptions {
        kernel,
        tracepoints,
        probe: ProbeConfig { wakeup_bytes: cfg.ringbuf.wakeup_bytes, cgroup2_hierarchy: 0, _pad: 0 },
        ringbuf_bytes: cfg.ringbuf.size_bytes,
    };
    Ok((tfs, load))
}

/// Starts the CRI sync task when enabled and a runtime socket is configured or found.
fn start_cri(cfg: &Config, mounts: &CgroupMounts) -> Option<Enricher> {
    if !cfg.cri.enabled {
        return None;
    }
    let configured = Some(cfg.cri.endpoint.as_str());
    let Some(endpoint) = cri::detect_endpoint(configured) else {
        tracing::warn!(
            "no CRI socket found (tried {}); events get metadata.state=host. Set --cri-endpoint",
            cri::KNOWN_ENDPOINTS.join(", ")
        );
        return None;
    };
    let Some(unified) = mounts.unified.clone() else {
        tracing::warn!("no cgroup2 mount: cannot map containers to cgroup ids; CRI metadata off");
        return None;
    };
    tracing::info!("CRI metadata from {endpoint}");
    let cache = MetadataCache::new(Duration::from_millis(cfg.cri.tombstone_ttl_ms));
    let created_paths = CreatedCgroups::default();
    let (created, rx) = mpsc::channel(1);
    cri::spawn_sync(
        cri::SyncOptions {
            endpoint,
            resync: Duration::from_millis(cfg.cri.resync_interval_ms),
            call_timeout: Duration::from_millis(cfg.cri.call_timeout_ms),
            unified,
            created: created_paths.clone(),
            stats: cache.stats.clone(),
        },
        cache.clone(),
        rx,
    );
    Some(Enricher::new(cache, created, created_paths))
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: detaching"),
        _ = int.recv() => tracing::info!("SIGINT: detaching"),
    }
}
