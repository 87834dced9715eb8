//! `podtrail`: container-aware eBPF tracing daemon.
use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use podtrail::{
    config::Config,
    kernel::{btf::Btf, offsets},
    output::Format,
    run::{RunOptions, run},
    timeline,
};

#[derive(Parser)]
#[command(name = "podtrail", version, about = "Container-aware eBPF tracing for Kubernetes nodes")]
struct Cli {
    /// Log level filter (error, warn, info, debug, trace); RUST_LOG overrides it.
    #[arg(long, global = true, default_value = "info")]
    log_level: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Attach the probes and stream events to stdout until SIGINT/SIGTERM.
    Run(RunArgs),
    /// Check this node for podtrail (kernel, BTF, tracepoints, cgroups, CRI, capabilities)
    /// and run a live self-test; exit code 1 on any failure.
    Doctor {
        #[arg(long, short = 'o', value_enum, default_value = "text")]
        output: Format,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Write a redacted diagnostic bundle (.tar.gz) of a container, or of every container of
    /// a pod: CRI and OCI state, cgroup files, namespaces, processes, timeline, node facts.
    Snapshot {
        /// Container name, container id (prefix of 6+), or pod name.
        target: String,
        #[arg(long)]
        namespace: Option<String>,
        /// Where to write the bundle (default: podtrail-snapshot-<target>-<time>.tar.gz).
        #[arg(long = "out", short = 'o')]
        out: Option<PathBuf>,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Follow the running daemon's events (filtered) from its unix socket.
    Tail(TailCli),
    /// Print a container's story from the node-local timeline store (no daemon needed).
    Timeline(TimelineArgs),
    /// Print the kernel struct offsets resolved from BTF (a diagnostic).
    Offsets {
        /// BTF file (default: the running kernel's).
        #[arg(long, default_value = "/sys/kernel/btf/vmlinux")]
        btf: PathBuf,
    },
}

/// What `doctor` and `snapshot` need to know about the node: config, runtime socket, BTF.
#[derive(clap::Args)]
struct NodeArgs {
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    #[arg(long)]
    cri_endpoint: Option<String>,
    #[arg(long, default_value = "/sys/kernel/btf/vmlinux")]
    btf: PathBuf,
}

impl NodeArgs {
    /// The config file (or defaults) with `--cri-endpoint` applied.
    fn config(&self) -> anyhow::Result<Config> {
        let mut config = Config::load(self.config.as_deref())?;
        if let Some(v) = &self.cri_endpoint {
            config.cri.endpoint = v.clone();
        }
        Ok(config)
    }
}

/// The event filters `tail` and `timeline` share.
#[derive(clap::Args)]
struct EventFilter {
    /// Only this Kubernetes namespace.
    #[arg(long)]
    namespace: Option<String>,
    /// Only this pod.
    #[arg(long)]
    pod: Option<String>,
    /// Only this container (name).
    #[arg(long)]
    container: Option<String>,
    /// Only these event kinds (repeatable: --kind exec --kind anomaly).
    #[arg(long = "kind")]
    kinds: Vec<String>,
    /// Only anomalies.
    #[arg(long)]
    anomalies: bool,
    /// From this long ago (10m, 1h, 2h30m) or this time (RFC 3339 UTC); `tail` replays the
    /// timeline from there, then follows live.
    #[arg(long)]
    since: Option<String>,
}

#[derive(clap::Args)]
struct TailCli {
    /// The daemon's socket (tail.socket in its config).
    #[arg(long, default_value = podtrail::config::DEFAULT_TAIL_SOCKET)]
    socket: PathBuf,
    #[command(flatten)]
    filter: EventFilter,
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    output: Format,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value = "json")]
    output: Format,
    /// Config file (TOML). Default: /etc/podtrail/podtrail.toml when it exists.
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    /// Kernel BTF to resolve struct layouts from.
    #[arg(long, default_value = "/sys/kernel/btf/vmlinux")]
    btf: PathBuf,
    /// Override ringbuf.size_bytes.
    #[arg(long)]
    ringbuf_size: Option<u32>,
    /// Override ringbuf.drain_interval_ms.
    #[arg(long)]
    drain_interval_ms: Option<u64>,
    /// Override freezer_v1.poll_interval_ms.
    #[arg(long)]
    freezer_poll_ms: Option<u64>,
    /// CRI runtime socket (path or unix:// URL); default: auto-detect.
    #[arg(long)]
    cri_endpoint: Option<String>,
    /// Do not query the container runtime (every event gets metadata.state=host).
    #[arg(long)]
    no_cri: bool,
    /// Prometheus `/metrics` listen address (overrides metrics.listen).
    #[arg(long)]
    metrics_addr: Option<String>,
    /// Do not serve Prometheus metrics.
    #[arg(long)]
    no_metrics: bool,
    /// Unix socket for `podtrail tail` (overrides tail.socket).
    #[arg(long)]
    tail_socket: Option<PathBuf>,
    /// OTLP/gRPC collector, e.g. http://127.0.0.1:4317 (overrides OTEL_EXPORTER_OTLP_ENDPOINT
    /// and otlp.endpoint).
    #[arg(long)]
    otlp_endpoint: Option<String>,
    /// Timeline store (SQLite) path (overrides timeline.path).
    #[arg(long)]
    timeline_path: Option<PathBuf>,
    /// Do not store events in the timeline.
    #[arg(long)]
    no_timeline: bool,
}

#[derive(clap::Args)]
struct TimelineArgs {
    #[command(flatten)]
    filter: EventFilter,
    /// Up to this long ago or this time (same forms as --since).
    #[arg(long)]
    until: Option<String>,
    /// Also forks and exits of threads (not only of processes).
    #[arg(long)]
    threads: bool,
    /// The store (default: timeline.path from the config, /var/lib/podtrail/timeline.db).
    #[arg(long)]
    db: Option<PathBuf>,
    /// Config file to take timeline.path from (default: /etc/podtrail/podtrail.toml if present).
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    /// Output format: aligned text lines, or the stored JSON lines.
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    output: Format,
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Bounds glibc heap growth for a daemon that lives for months:
/// - each allocating thread would get its own arena (up to 8 per CPU); with the tokio,
///   timeline and CRI threads that fragments the heap (~30 MiB of 115 at 10k containers in
///   the cache bench). Two arenas are enough for our few threads.
/// - glibc raises its mmap threshold to the largest block freed (up to 32 MiB), so the
///   multi-megabyte CRI listings of a big node land in the heap, between long-lived cache
///   entries, and their pages never go back. A fixed 64 KiB threshold keeps them in their own
///   mappings (10k containers: 108 -> 68 MiB RSS in the cache bench).
fn tune_malloc() {
    // SAFETY: mallopt only sets allocator tunables; called before any thread is spawned.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 << 10);
    }
}

fn main() -> ExitCode {
    tune_malloc();
    let cli = Cli::parse();
    init_logging(&cli.log_level);
    match real_main(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("podtrail: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(args) => {
            let mut config = Config::load(args.config.as_deref())?;
            if let Some(v) = args.ringbuf_size {
                config.ringbuf.size_bytes = v;
                config.ringbuf.wakeup_bytes = config.ringbuf.wakeup_bytes.min(v as u64);
            }
            if let Some(v) = args.drain_interval_ms {
                config.ringbuf.drain_interval_ms = v;
            }
            if let Some(v) = args.freezer_poll_ms {
                config.freezer_v1.poll_interval_ms = v;
            }
            if let Some(v) = args.cri_endpoint {
                config.cri.endpoint = v;
            }
            if args.no_cri {
                config.cri.enabled = false;
            }
            if let Some(v) = args.metrics_addr {
                config.metrics.listen = v;
            }
            if args.no_metrics {
                config.metrics.enabled = false;
            }
            if let Some(v) = args.tail_socket {
                config.tail.socket = v;
            }
            // Usual precedence: flag, then the standard environment variable, then the file.
            if let Some(v) = args.otlp_endpoint.or_else(|| std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok()) {
                config.otlp.endpoint = v;
            }
            if let Some(v) = args.timeline_path {
                config.timeline.path = v;
            }
            if args.no_timeline {
                config.timeline.enabled = false;
            }
            config.validate()?;
            // Two workers: tail clients, the metrics listener and the CRI sync run beside the
            // pipeline instead of between its drains.
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
            rt.block_on(run(RunOptions { config, format: args.output, btf: args.btf }))
        }
        Command::Doctor { output, node } => {
            let config = node.config()?;
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let checks = rt.block_on(podtrail::doctor::run(&config, &node.btf));
            match output {
                Format::Json => println!("{}", serde_json::json!({ "ok": !podtrail::doctor::failed(&checks), "checks": checks })),
                Format::Text => podtrail::doctor::print_text(&checks),
            }
            if podtrail::doctor::failed(&checks) {
                anyhow::bail!("some checks failed (see above)");
            }
            Ok(())
        }
        Command::Snapshot { target, namespace, out, node } => {
            let config = node.config()?;
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let args = podtrail::snapshot::SnapshotArgs { target, namespace, output: out, btf: node.btf };
            let path = rt.block_on(podtrail::snapshot::run(&config, args))?;
            println!("{}", path.display());
            Ok(())
        }
        Command::Tail(t) => {
            let args = podtrail::tail::client::TailArgs {
                socket: t.socket,
                namespace: t.filter.namespace,
                pod: t.filter.pod,
                container: t.filter.container,
                kinds: t.filter.kinds,
                anomalies: t.filter.anomalies,
                since: t.filter.since,
                json: t.output == Format::Json,
            };
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            Ok(rt.block_on(podtrail::tail::client::run(args))?)
        }
        Command::Timeline(args) => timeline(args),
        Command::Offsets { btf } => {
            let btf = Btf::from_file(&btf)?;
            for (name, value) in offsets::named(&offsets::resolve(&btf)?) {
                println!("{name:<32} {value}");
            }
            Ok(())
        }
    }
}

fn timeline(args: TimelineArgs) -> anyhow::Result<()> {
    let db = match args.db {
        Some(p) => p,
        None => Config::load(args.config.as_deref())?.timeline.path,
    };
    let now = std::time::SystemTime::now();
    let time = |flag: &str, v: Option<String>| v.map(|v| timeline::parse_time(flag, &v, now)).transpose();
    let filter = timeline::Filter {
        namespace: args.filter.namespace,
        pod: args.filter.pod,
        container: args.filter.container,
        kinds: args.filter.kinds,
        anomalies: args.filter.anomalies,
        since_unix_ns: time("--since", args.filter.since)?,
        until_unix_ns: time("--until", args.until)?,
        threads: args.threads,
    };
    let mut out = std::io::stdout().lock();
    match timeline::print(&db, &filter, args.output, &mut out) {
        Ok(0) => {
            eprintln!("podtrail: no events in {} match", db.display());
            Ok(())
        }
        Ok(_) => Ok(()),
        Err(timeline::TimelineError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(e.into()),
    }
}
