//! `cargo xtask bench`: what does running podtrail cost a process-heavy node?
//!
//! Workload: a serial fork+exec storm of `/bin/true` driven from here, so every exec takes
//! the traced paths (fork, exec, exit tracepoints) exactly once. Each round times one storm
//! with no tracer (baseline) and one with `podtrail run -o json` attached and its output
//! consumed. Rounds alternate their order (AB, BA, AB, ...) so slow drift of the machine
//! (thermal, page cache, noisy neighbours on a VM) hits both configurations equally, and
//! the headline number is the median of per-round (paired) ratios.
//!
//! Gating (non-zero exit): the daemon fails, misses any storm exec, or drops anything.
//! The overhead target (median ratio <= 1.05) is reported as PASS/MISS but never fails.
use std::{
    collections::BTreeMap,
    fs,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, ChildStdout, Command, Stdio},
    sync::mpsc,
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};

/// The issue's target: podtrail may add at most 5% to a fork+exec storm.
const TARGET_RATIO: f64 = 1.05;
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
    /// Extra `podtrail run` arguments, after `--` (e.g. `-- --ringbuf-size 1048576`).
    #[arg(last = true)]
    daemon_args: Vec<String>,
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
    eprintln!(
        "bench: {rounds} rounds x {iterations} fork+exec of {STORM_BIN}; {}",
        describe(&machine)
    );
    storm(iterations.min(200)).context("warm-up storm")?; // page in /bin/true, warm the allocator

    eprintln!("{HEADER}");
    let mut results = Vec::with_capacity(rounds);
    for r in 0..rounds {
        let podtrail_first = r % 2 == 1;
        let (mut baseline, mut traced) = (Duration::ZERO, None);
        for with_podtrail in [podtrail_first, !podtrail_first] {
            if with_podtrail {
                let t = traced_storm(&bin, &args.daemon_args, iterations);
                traced = Some(t.with_context(|| format!("round {}", r + 1))?);
            } else {
                thread::sleep(SETTLE);
                baseline = storm(iterations)?;
            }
        }
        let (podtrail, daemon) = traced.expect("every round runs both configurations");
        let order = if podtrail_first { "BA" } else { "AB" };
        let round = Round { n: iterations, order, baseline, podtrail, daemon };
        eprintln!("{}", round.row(r + 1));
        results.push(round);
    }
    report(&target, machine, &args.daemon_args, rounds, iterations, &results)
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
        json!({
            "round": i, "order": self.order,
            "baseline_s": self.baseline.as_secs_f64(), "podtrail_s": self.podtrail.as_secs_f64(),
            "baseline_us_per_exec": self.baseline_us(), "podtrail_us_per_exec": self.podtrail_us(),
            "ratio": self.ratio(), "added_us_per_exec": self.added_us(),
            "storm_execs_seen": self.daemon.storm_execs, "daemon_lines": self.daemon.lines,
            "drops": self.daemon.drops, "daemon_summary": self.daemon.summary,
        })
    }
}

/// What one daemon run saw.
#[derive(Default)]
struct DaemonRun {
    /// exec events of our storm (`/bin/true` with us as parent).
    storm_execs: u64,
    /// All stdout lines (the whole machine's events, not just the storm's).
    lines: u64,
    /// `"kind":"drops"` lines that were not valid JSON (only those lines are parsed).
    unparsable_lines: u64,
    /// Latest `total` per (reason, event_kind) from `"kind":"drops"` lines.
    drop_totals: BTreeMap<(String, String), u64>,
    /// Larger of: summed `drops` line totals, the `dropped` count in the stop summary.
    drops: u64,
    /// The daemon's own `podtrail stopped: ...` summary.
    summary: String,
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

/// A `podtrail run` we started; dropping it kills it (by pid) if it is still running.
struct Daemon {
    child: Child,
    stdout: Option<JoinHandle<DaemonRun>>,
    stderr: Option<JoinHandle<Vec<String>>>,
}

impl Daemon {
    fn start(bin: &Path, extra: &[String]) -> anyhow::Result<Daemon> {
        let mut child = Command::new(bin)
            .args(["--log-level", "info", "run", "-o", "json"])
            .args(extra)
            .env_remove("RUST_LOG") // it would override --log-level and could hide the ready line
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let out = child.stdout.take().expect("piped stdout");
        let err = child.stderr.take().expect("piped stderr");
        let (ready_tx, ready_rx) = mpsc::channel();
        let stdout = Some(thread::spawn(move || count_stdout(out)));
        let stderr = Some(thread::spawn(move || {
            let mut log = Vec::new();
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if line.contains("podtrail ready:") {
                    let _ = ready_tx.send(());
                }
                log.push(line);
            }
            log // the sender drops here: an exit before "ready" wakes the waiter at once
        }));
        let mut d = Daemon { child, stdout, stderr };
        if let Err(e) = ready_rx.recv_timeout(READY_TIMEOUT) {
            let why = match e {
                mpsc::RecvTimeoutError::Timeout => {
                    format!("no `podtrail ready:` within {READY_TIMEOUT:?}")
                }
                mpsc::RecvTimeoutError::Disconnected => "it exited".to_string(),
            };
            d.kill();
            let log = d.stderr.take().map(|h| h.join().unwrap_or_default()).unwrap_or_default();
            bail!("podtrail failed to start ({why}); its stderr:\n{}", log.join("\n"));
        }
        Ok(d)
    }

    fn signal(&self, sig: libc::c_int) {
        // SAFETY: plain kill(2) on the pid of our own, not yet reaped, child.
        unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
    }

    fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.signal(libc::SIGKILL);
            let _ = self.child.wait();
        }
    }

    /// SIGTERM, wait for the drain and exit, then gather what it reported.
    fn stop(mut self) -> anyhow::Result<DaemonRun> {
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + STOP_TIMEOUT;
        let status = loop {
            if let Some(status) = self.child.try_wait()? {
                break status;
            }
            ensure!(
                Instant::now() < deadline,
                "podtrail did not exit within {STOP_TIMEOUT:?} of SIGTERM (killed)"
            );
            thread::sleep(Duration::from_millis(20));
        };
        // Both pipes hit EOF once the daemon is gone, so these joins end.
        let mut run =
            self.stdout.take().expect("stdout reader").join().expect("stdout reader panicked");
        let log =
            self.stderr.take().expect("stderr reader").join().expect("stderr reader panicked");
        ensure!(status.success(), "podtrail exited with {status}; its stderr:\n{}", log.join("\n"));
        let summary = log
            .iter()
            .find_map(|l| l.split_once("podtrail stopped: ").map(|(_, s)| s.to_string()))
            .with_context(|| {
                format!("no `podtrail stopped:` summary; stderr:\n{}", log.join("\n"))
            })?;
        let summary_dropped = summary
            .find(" dropped")
            .and_then(|i| summary[..i].rsplit(' ').next()?.parse::<u64>().ok())
            .with_context(|| format!("cannot read the dropped count in {summary:?}"))?;
        run.drops = summary_dropped.max(run.drop_totals.values().sum());
        run.summary = summary;
        Ok(run)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Consumes the daemon's stdout (so it never blocks on a full pipe) and counts.
fn count_stdout(out: ChildStdout) -> DaemonRun {
    // Match storm execs by substring instead of parsing JSON: this thread shares the two
    // CPUs with the storm, and xtask is an unoptimized (dev profile) build, so parsing every
    // line would inflate the overhead we measure. Field order is fixed by serde (struct order).
    let storm_exec = format!(r#""filename":"{STORM_BIN}","#);
    let our_child = format!(r#""ppid":{},"#, std::process::id());
    let mut c = DaemonRun::default();
    for line in BufReader::new(out).lines().map_while(Result::ok) {
        c.lines += 1;
        if line.contains(r#""kind":"exec","#) {
            c.storm_execs += u64::from(line.contains(&storm_exec) && line.contains(&our_child));
        } else if line.contains(r#""kind":"drops","#) {
            let Ok(v) = serde_json::from_str::<Value>(&line) else {
                c.unparsable_lines += 1;
                continue;
            };
            let d = &v["drops"];
            let key = |k: &str| d[k].as_str().unwrap_or("?").to_string();
            let total = c.drop_totals.entry((key("reason"), key("event_kind"))).or_default();
            *total = (*total).max(d["total"].as_u64().unwrap_or(0));
        }
    }
    c
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
) -> anyhow::Result<()> {
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

    println!("fork+exec storm: {rounds} rounds x {n} serial execs of {STORM_BIN}, AB/BA order");
    println!("machine: {}", describe(&machine));
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

    if !failures.is_empty() {
        bail!(
            "bench FAILED (podtrail must see every storm exec and drop nothing):\n  {}",
            failures.join("\n  ")
        );
    }
    Ok(())
}
