//! `cargo xtask bench`: what does running podtrail cost a process-heavy node?
//!
//! Workload: a serial fork+exec storm of `/bin/true` driven from here, so every exec takes
//! the traced paths (fork, exec, exit tracepoints) exactly once. Each round times one storm
//! with no tracer (baseline) and one with `podtrail run -o json` attached and its output
//! consumed. Rounds alternate their order (AB, BA, AB, ...) so slow drift of the machine
//! (thermal, page cache, noisy neighbours on a VM) hits both configurations equally, and
//! the headline number is the median of per-round (paired) ratios.
//!
//! A full run also times the same storm under bpftrace (the same tracepoints, printing the
//! same fields) and libbpf-tools' execsnoop, in the same rounds, and writes bench/RESULTS.md.
//!
//! Gating (non-zero exit): the daemon fails, misses any storm exec, or drops anything.
//! The overhead target (median ratio <= 1.01) is reported as PASS/MISS but never fails.
use std::{
    fs,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};

mod cache;
mod contenders;
mod fake_cri;
mod latency;
mod podtrail;
mod throughput;

use contenders::{Contender, ContenderRun};
use podtrail::{Daemon, DaemonRun};

/// The issue's target: podtrail may add at most 1% to a fork+exec storm.
const TARGET_RATIO: f64 = 1.01;
const STORM_BIN: &str = "/bin/true";
/// BTF parsing + verifier + attach of all programs; generous for slow CI VMs.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Untimed pause before each timed storm: lets the previous configuration's teardown
/// (daemon exit, RCU-deferred freeing of detached programs and maps) finish first.
const SETTLE: Duration = Duration::from_millis(300);

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Paired rounds (each times one baseline storm and one storm with podtrail attached).
    #[arg(long, default_value_t = 10)]
    rounds: usize,
    /// fork+exec of /bin/true per storm.
    #[arg(long, default_value_t = 2000)]
    iterations: usize,
    /// CI smoke run: 3 rounds x 300 iterations.
    #[arg(long, conflicts_with_all = ["rounds", "iterations"])]
    quick: bool,
    /// Use the existing release binary instead of running `cargo build --release -p podtrail`.
    #[arg(long)]
    no_build: bool,
    /// Skip the other tracers (bpftrace, execsnoop); --quick never runs them.
    #[arg(long)]
    no_contenders: bool,
    /// Run only these scenarios (repeatable). Default: all of them (`--quick`: the storm).
    /// bench/RESULTS.md is rewritten only by a full run of every scenario.
    #[arg(long, value_enum)]
    only: Vec<Scenario>,
    /// Seconds of event generation per throughput step.
    #[arg(long, default_value_t = 2.0)]
    throughput_secs: f64,
    /// Extra `podtrail run` arguments, after `--` (e.g. `-- --ringbuf-size 1048576`).
    #[arg(last = true)]
    daemon_args: Vec<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Scenario {
    /// fork+exec storm: no tracer, podtrail, bpftrace, execsnoop.
    Storm,
    /// Event-to-tail latency and the daemon's idle / storm footprint.
    Latency,
    /// Highest lossless event rate and the loss curve.
    Throughput,
    /// RSS with 1k and 10k containers in the metadata cache.
    Cache,
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "cargo xtask bench must run as root: podtrail loads eBPF programs (try `sudo -E cargo xtask bench`)"
        );
    }
    let (rounds, iterations) = if args.quick { (3, 300) } else { (args.rounds, args.iterations) };
    ensure!(rounds > 0 && iterations > 0, "--rounds and --iterations must be > 0");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().context("workspace root")?;
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    if !args.no_build {
        build(root)?;
    }
    let bin = target.join("release/podtrail");
    ensure!(bin.is_file(), "{} not found (build it or drop --no-build)", bin.display());

    let machine = machine(root);
    let scenarios = if !args.only.is_empty() {
        args.only.clone()
    } else if args.quick {
        vec![Scenario::Storm]
    } else {
        vec![
            Scenario::Storm,
            Scenario::Latency,
            Scenario::Throughput,
            Scenario::Cache,
        ]
    };
    let mut sections = Vec::new();
    for s in &scenarios {
        let md = match s {
            Scenario::Storm => run_storm(&args, &bin, &target, &machine, rounds, iterations)?,
            Scenario::Latency => latency::markdown(
                &latency::run(&bin, &target, iterations).context("tail latency / footprint")?,
            ),
            Scenario::Throughput => throughput::markdown(
                &throughput::run(&bin, &target, args.throughput_secs).context("throughput")?,
            ),
            Scenario::Cache => {
                cache::markdown(&cache::run(&bin, &target).context("metadata cache footprint")?)
            }
        };
        sections.push(md);
    }
    // Only a full run of every scenario rewrites the committed results.
    if !args.quick && args.only.is_empty() {
        let md = root.join("bench/RESULTS.md");
        let text = format!(
            "# Benchmark results\n\nWritten by `cargo xtask bench` (a full run of every scenario; `--quick` and `--only` do not write it).\n\n- machine: {}\n{}",
            describe(&machine),
            sections.concat()
        );
        fs::write(&md, text).with_context(|| format!("writing {}", md.display()))?;
        println!("wrote {}", md.display());
    }
    Ok(())
}

/// The fork+exec storm: baseline, podtrail and the contenders, paired rounds.
fn run_storm(
    args: &BenchArgs,
    bin: &Path,
    target: &Path,
    machine: &Value,
    rounds: usize,
    iterations: usize,
) -> anyhow::Result<String> {
    eprintln!(
        "bench: {rounds} rounds x {iterations} fork+exec of {STORM_BIN}; {}",
        describe(machine)
    );
    storm(iterations.min(200)).context("warm-up storm")?; // page in /bin/true, warm the allocator
    let contenders: Vec<Contender> =
        if args.quick || args.no_contenders { Vec::new() } else { contenders::ALL.to_vec() };
    for c in &contenders {
        c.ensure_installed()?;
    }

    eprintln!("{HEADER}");
    let mut results = Vec::with_capacity(rounds);
    for r in 0..rounds {
        let podtrail_first = r % 2 == 1;
        let (mut baseline, mut traced) = (Duration::ZERO, None);
        for with_podtrail in [podtrail_first, !podtrail_first] {
            if with_podtrail {
                let t = traced_storm(bin, &args.daemon_args, iterations);
                traced = Some(t.with_context(|| format!("round {}", r + 1))?);
            } else {
                thread::sleep(SETTLE);
                baseline = storm(iterations)?;
            }
        }
        // Contenders after the pair, in an order that rotates per round.
        let mut runs = Vec::new();
        for i in 0..contenders.len() {
            let c = contenders[(i + r) % contenders.len()];
            runs.push(contenders::timed_storm(c, iterations).with_context(|| format!("round {}: {}", r + 1, c.name()))?);
        }
        runs.sort_by_key(|c| c.name);
        let (podtrail, daemon) = traced.expect("every round runs both configurations");
        let order = if podtrail_first { "BA" } else { "AB" };
        let round = Round { n: iterations, order, baseline, podtrail, daemon, contenders: runs };
        eprintln!("{}", round.row(r + 1));
        results.push(round);
    }
    report(
        target,
        machine.clone(),
        &args.daemon_args,
        rounds,
        iterations,
        &results,
    )
}

const HEADER: &str =
    "round order baseline us/ex podtrail us/ex   ratio  added us   execs seen  drops";

/// One round's measurements (A = baseline, B = podtrail attached).
struct Round {
    n: usize,
    order: &'static str,
    baseline: Duration,
    podtrail: Duration,
    daemon: DaemonRun,
    /// The other tracers' storms of this round (same iteration count), by name.
    contenders: Vec<ContenderRun>,
}

impl Round {
    fn baseline_us(&self) -> f64 {
        self.baseline.as_secs_f64() * 1e6 / self.n as f64
    }
    fn podtrail_us(&self) -> f64 {
        self.podtrail.as_secs_f64() * 1e6 / self.n as f64
    }
    fn ratio(&self) -> f64 {
        self.podtrail.as_secs_f64() / self.baseline.as_secs_f64()
    }
    fn added_us(&self) -> f64 {
        self.podtrail_us() - self.baseline_us()
    }
    /// A line under [`HEADER`] (also the per-round progress line).
    fn row(&self, i: usize) -> String {
        let seen = format!("{}/{}", self.daemon.storm_execs, self.n);
        format!(
            "{i:>5} {:>5} {:>14.1} {:>14.1} {:>7.3} {:>9.1} {seen:>12} {:>6}",
            self.order,
            self.baseline_us(),
            self.podtrail_us(),
            self.ratio(),
            self.added_us(),
            self.daemon.drops
        )
    }
    /// The gating checks: podtrail must see every storm exec and lose nothing.
    fn failures(&self, i: usize) -> Vec<String> {
        let d = &self.daemon;
        let mut f = Vec::new();
        if d.storm_execs < self.n as u64 {
            f.push(format!("round {i}: podtrail saw {} of {} storm execs", d.storm_execs, self.n));
        }
        if d.drops > 0 {
            f.push(format!("round {i}: {} events dropped ({})", d.drops, d.summary));
        }
        if d.unparsable_lines > 0 {
            f.push(format!("round {i}: {} unparsable `drops` lines on stdout", d.unparsable_lines));
        }
        f
    }
    fn to_json(&self, i: usize) -> Value {
        let contenders: Vec<Value> = self
            .contenders
            .iter()
            .map(|c| {
                let us = c.took.as_secs_f64() * 1e6 / self.n as f64;
                json!({"name": c.name, "us_per_exec": us, "ratio": c.took.as_secs_f64() / self.baseline.as_secs_f64(), "execs_seen": c.seen})
            })
            .collect();
        json!({
            "contenders": contenders,
            "round": i, "order": self.order,
            "baseline_s": self.baseline.as_secs_f64(), "podtrail_s": self.podtrail.as_secs_f64(),
            "baseline_us_per_exec": self.baseline_us(), "podtrail_us_per_exec": self.podtrail_us(),
            "ratio": self.ratio(), "added_us_per_exec": self.added_us(),
            "storm_execs_seen": self.daemon.storm_execs, "daemon_lines": self.daemon.lines,
            "drops": self.daemon.drops, "daemon_summary": self.daemon.summary,
        })
    }
}

/// Serial fork+exec+wait of /bin/true, `n` times; returns the wall time.
fn storm(n: usize) -> anyhow::Result<Duration> {
    let start = Instant::now();
    for _ in 0..n {
        let status = Command::new(STORM_BIN).status().context("spawning /bin/true")?;
        ensure!(status.success(), "{STORM_BIN} failed: {status}");
    }
    Ok(start.elapsed())
}

/// Starts the daemon (not timed), times a storm, stops the daemon and collects its counts.
fn traced_storm(bin: &Path, extra: &[String], n: usize) -> anyhow::Result<(Duration, DaemonRun)> {
    let daemon = Daemon::start(bin, extra)?;
    thread::sleep(SETTLE);
    let took = storm(n)?; // on error `daemon` is dropped, which kills it
    Ok((took, daemon.stop()?))
}

/// `cargo build --release -p podtrail`, hiding build.rs's relayed `warning: podtrail@` noise.
fn build(root: &Path) -> anyhow::Result<()> {
    eprintln!("bench: cargo build --release -p podtrail");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut child = Command::new(cargo)
        .args(["build", "--release", "-p", "podtrail"])
        .current_dir(root)
        .stderr(Stdio::piped())
        .spawn()
        .context("running cargo build")?;
    for line in
        BufReader::new(child.stderr.take().expect("piped stderr")).lines().map_while(Result::ok)
    {
        if !line.starts_with("warning: podtrail@") {
            eprintln!("{line}");
        }
    }
    let status = child.wait()?;
    ensure!(status.success(), "cargo build --release -p podtrail failed ({status})");
    Ok(())
}

fn machine(root: &Path) -> Value {
    let cmd = |prog: &str, args: &[&str]| {
        Command::new(prog)
            .args(args)
            .current_dir(root)
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let cpu_model = fs::read_to_string("/proc/cpuinfo").ok().and_then(|s| {
        s.lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, m)| m.trim().to_string())
    });
    json!({
        "nproc": thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "kernel": cmd("uname", &["-r"]),
        "cpu_model": cpu_model,
        "git": cmd("git", &["describe", "--always", "--dirty"]),
    })
}

fn describe(machine: &Value) -> String {
    let s = |k: &str| machine[k].as_str().unwrap_or("?").to_string();
    format!("{} CPUs, kernel {}, {}", machine["nproc"], s("kernel"), s("cpu_model"))
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 { s[n / 2] } else { (s[n / 2 - 1] + s[n / 2]) / 2.0 }
}

/// Prints the table, writes `target/bench/storm.json`, and turns gating failures into Err.
fn report(
    target: &Path,
    machine: Value,
    daemon_args: &[String],
    rounds: usize,
    n: usize,
    results: &[Round],
) -> anyhow::Result<String> {
    let col = |f: fn(&Round) -> f64| results.iter().map(f).collect::<Vec<f64>>();
    let (base, traced, ratios, added) =
        (col(Round::baseline_us), col(Round::podtrail_us), col(Round::ratio), col(Round::added_us));
    let ratio_min = ratios.iter().copied().fold(f64::INFINITY, f64::min);
    let ratio_max = ratios.iter().copied().fold(0.0, f64::max);
    let seen: u64 = results.iter().map(|r| r.daemon.storm_execs).sum();
    let drops: u64 = results.iter().map(|r| r.daemon.drops).sum();
    let failures: Vec<String> =
        results.iter().enumerate().flat_map(|(i, r)| r.failures(i + 1)).collect();
    let verdict = if median(&ratios) <= TARGET_RATIO && drops == 0 { "PASS" } else { "MISS" };

    let machine_line = describe(&machine);
    println!("fork+exec storm: {rounds} rounds x {n} serial execs of {STORM_BIN}, AB/BA order");
    println!("machine: {machine_line}");
    println!("{HEADER}");
    for (i, r) in results.iter().enumerate() {
        println!("{}", r.row(i + 1));
    }
    println!(
        "median per exec: baseline {:.1} us, podtrail {:.1} us",
        median(&base),
        median(&traced)
    );
    println!(
        "ratio podtrail/baseline (paired rounds): median {:.4}, min {ratio_min:.4}, max {ratio_max:.4}",
        median(&ratios)
    );
    println!("added per exec: median {:.1} us", median(&added));
    println!("storm execs seen: {seen}/{}; drops: {drops}", n * rounds);
    println!("target: median ratio <= {TARGET_RATIO} with 0 drops: {verdict}");
    let table = comparison(results);
    if results.iter().any(|r| !r.contenders.is_empty()) {
        println!("\nsame run, same storm, each tracer's ratio to the baseline of its round:");
        for row in &table {
            println!(
                "{:<10} median {:>8.1} us/exec  ratio median {:.4} (min {:.4}, max {:.4})  added {:>6.1} us  execs seen {}",
                row.name, row.us, row.ratio, row.ratio_min, row.ratio_max, row.added_us, row.seen
            );
        }
    }

    let json = json!({
        "benchmark": "fork_exec_storm",
        "machine": machine,
        "params": {
            "rounds": rounds,
            "iterations": n,
            "workload": format!("serial std::process::Command spawn+wait of {STORM_BIN}"),
            "order": "round r (1-based): odd r runs baseline then podtrail (AB), even r the reverse",
            "daemon_cmd": ["podtrail", "run", "-o", "json"],
            "daemon_args": daemon_args,
            "settle_ms": SETTLE.as_millis() as u64,
            "target_ratio": TARGET_RATIO,
        },
        "rounds": results.iter().enumerate().map(|(i, r)| r.to_json(i + 1)).collect::<Vec<_>>(),
        "comparison": table.iter().map(|r| json!({
            "tracer": r.name, "us_per_exec_median": r.us, "ratio_median": r.ratio, "ratio_min": r.ratio_min,
            "ratio_max": r.ratio_max, "added_us_per_exec_median": r.added_us, "execs_seen": r.seen,
        })).collect::<Vec<_>>(),
        "summary": {
            "baseline_us_per_exec_median": median(&base),
            "podtrail_us_per_exec_median": median(&traced),
            "ratio_median": median(&ratios),
            "ratio_min": ratio_min,
            "ratio_max": ratio_max,
            "added_us_per_exec_median": median(&added),
            "storm_execs_spawned": n * rounds,
            "storm_execs_seen": seen,
            "drops": drops,
            "verdict": verdict,
            "failures": failures,
        },
    });
    let dir = target.join("bench");
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("storm.json");
    fs::write(&path, serde_json::to_string_pretty(&json)? + "\n")
        .with_context(|| format!("writing {}", path.display()))?;
    println!("wrote {}", path.display());
    let cri = results
        .first()
        .is_some_and(|r| r.daemon.summary.contains("CRI:"));
    let md = results_markdown(rounds, n, &table, drops, seen, cri);
    if !failures.is_empty() {
        bail!(
            "bench FAILED (podtrail must see every storm exec and drop nothing):\n  {}",
            failures.join("\n  ")
        );
    }
    Ok(md)
}

/// One tracer's medians over the rounds (ratios are to the baseline of the same round).
struct Compared {
    name: &'static str,
    us: f64,
    ratio: f64,
    ratio_min: f64,
    ratio_max: f64,
    added_us: f64,
    seen: String,
}

fn comparison(results: &[Round]) -> Vec<Compared> {
    let Some(first) = results.first() else { return Vec::new() };
    let n = first.n as f64;
    let mut names = vec!["baseline", "podtrail"];
    names.extend(first.contenders.iter().map(|c| c.name));
    names
        .into_iter()
        .map(|name| {
            let per_round: Vec<(f64, f64, u64)> = results
                .iter()
                .filter_map(|r| {
                    let base = r.baseline.as_secs_f64();
                    let (took, seen) = match name {
                        "baseline" => (r.baseline, r.n as u64),
                        "podtrail" => (r.podtrail, r.daemon.storm_execs),
                        _ => r.contenders.iter().find(|c| c.name == name).map(|c| (c.took, c.seen))?,
                    };
                    Some((took.as_secs_f64() * 1e6 / n, took.as_secs_f64() / base, seen))
                })
                .collect();
            let us: Vec<f64> = per_round.iter().map(|x| x.0).collect();
            let ratios: Vec<f64> = per_round.iter().map(|x| x.1).collect();
            let base_us: Vec<f64> = results.iter().map(Round::baseline_us).collect();
            let seen: u64 = per_round.iter().map(|x| x.2).sum();
            Compared {
                name,
                us: median(&us),
                ratio: median(&ratios),
                ratio_min: ratios.iter().copied().fold(f64::INFINITY, f64::min),
                ratio_max: ratios.iter().copied().fold(0.0, f64::max),
                added_us: median(&us) - median(&base_us),
                seen: format!("{seen}/{}", results.len() * first.n),
            }
        })
        .collect()
}

fn results_markdown(
    rounds: usize,
    n: usize,
    table: &[Compared],
    drops: u64,
    seen: u64,
    cri: bool,
) -> String {
    let mut s = String::from("\n## fork+exec storm\n\n");
    s += &format!(
        "- workload: {rounds} rounds x {n} serial fork+exec of `{STORM_BIN}`; baseline and podtrail alternate AB/BA, the other tracers follow in a rotating order\n"
    );
    let cri = if cri {
        "CRI attribution on"
    } else {
        "CRI attribution off (no runtime socket on this machine during the run)"
    };
    s += &format!(
        "- podtrail: all probes, {cri}, every other sink on (JSON to a consumed pipe, metrics, tail socket, timeline); {seen} storm execs seen, {drops} drops\n\n"
    );
    s += "| tracer | us per exec (median) | ratio to baseline (median) | min | max | added us | storm execs seen |\n|---|---|---|---|---|---|---|\n";
    for r in table {
        s += &format!(
            "| {} | {:.1} | {:.4} | {:.4} | {:.4} | {:.1} | {} |\n",
            r.name, r.us, r.ratio, r.ratio_min, r.ratio_max, r.added_us, r.seen
        );
    }
    s += "\nbpftrace runs exec/fork/exit tracepoints printing pids, parent, uid, cgroup id, comm and filename (what podtrail's events carry); execsnoop is libbpf-tools' `execsnoop -x`. Both print to a pipe the bench consumes.\n";
    s
}
