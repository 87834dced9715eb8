//! Throughput: the highest rate of cheap kernel events podtrail drains with zero loss on
//! this machine, and the loss curve beyond it.
//!
//! Generator: two threads (this machine has two CPUs) call `unshare(0)` in a loop. The call
//! changes nothing and costs well under a microsecond. podtrail's
//! `sys_enter_unshare`/`sys_exit_unshare` probes still run, so each call is exactly one
//! `unshare` event. Each thread is paced to its share of the target rate; `max` runs unpaced.
//!
//! Every step starts a fresh daemon (stdout to /dev/null, so nothing here competes with it
//! for CPU by reading its lines), generates for a fixed time, then stops the daemon. The
//! stop drains what is left in the ring buffer. Loss comes from the daemon's own counters:
//! the kernel-side `ringbuf_full` count and every sink's queue-full count, from the stop
//! summary. "Seen" is the summary's `unshare=` count. A step is lossless when seen equals
//! generated and every counter is 0. seen + counted drops must equal generated, so nothing
//! is lost silently (the bench fails if the numbers disagree).
use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, ensure};
use serde_json::{Value, json};

use super::{SETTLE, latency::footprint, podtrail::Daemon};

/// The target, events per second drained without loss.
pub const TARGET_EVENTS_PER_S: f64 = 500_000.0;
const THREADS: usize = 2;
/// Paced rates tried, in events per second; `None` is the unpaced maximum.
const RATES: &[Option<u64>] = &[
    Some(100_000),
    Some(200_000),
    Some(300_000),
    Some(400_000),
    Some(500_000),
    Some(550_000),
    Some(600_000),
    Some(700_000),
    Some(800_000),
    None,
];

/// One daemon configuration the steps run under.
struct Config {
    name: &'static str,
    /// What it turns off, for the report.
    what: &'static str,
    args: fn(&Path) -> Vec<String>,
}

fn private_paths(dir: &Path) -> Vec<String> {
    vec![
        "--tail-socket".into(),
        dir.join("throughput-tail.sock").display().to_string(),
        "--timeline-path".into(),
        dir.join("throughput-timeline.db").display().to_string(),
        "--metrics-addr".into(),
        "127.0.0.1:0".into(),
    ]
}

const CONFIGS: &[Config] = &[
    Config {
        name: "all sinks",
        what: "defaults: JSON to stdout, Prometheus, tail socket, SQLite timeline, anomaly rules, CRI auto-detect",
        args: private_paths,
    },
    Config {
        name: "no timeline",
        what: "defaults without the SQLite timeline",
        args: |dir| {
            let mut a = private_paths(dir);
            a.push("--no-timeline".into());
            a
        },
    },
];

/// Calls `unshare(0)` from `THREADS` threads for `dur`, paced to `rate` in total.
/// Returns (calls made, seconds taken).
fn generate(rate: Option<u64>, dur: Duration) -> anyhow::Result<(u64, f64)> {
    let failed = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let workers: Vec<_> = (0..THREADS)
        .map(|_| {
            let failed = failed.clone();
            thread::spawn(move || {
                // Paced 0.2% fast: thread start and join make a step land just under its
                // pace, and a "500k" step should generate at least 500k/s.
                let share = rate.map(|r| r as f64 * 1.002 / THREADS as f64);
                let mut done = 0u64;
                loop {
                    let elapsed = start.elapsed();
                    if elapsed >= dur {
                        break;
                    }
                    let batch = match share {
                        None => 256,
                        Some(s) => ((elapsed.as_secs_f64() * s) as u64)
                            .saturating_sub(done)
                            .min(256),
                    };
                    if batch == 0 {
                        thread::sleep(Duration::from_micros(50));
                        continue;
                    }
                    for _ in 0..batch {
                        // SAFETY: unshare(0) asks for no change; it has no memory arguments.
                        if unsafe { libc::unshare(0) } != 0 {
                            failed.store(true, Ordering::Relaxed);
                            return done;
                        }
                    }
                    done += batch;
                }
                done
            })
        })
        .collect();
    let calls = workers
        .into_iter()
        .map(|w| w.join().expect("generator thread panicked"))
        .sum();
    let took = start.elapsed().as_secs_f64();
    ensure!(
        !failed.load(Ordering::Relaxed),
        "unshare(0) failed: {}",
        std::io::Error::last_os_error()
    );
    Ok((calls, took))
}

/// The number after `key=` in the stop summary (a token of its own, so `unshare=` does not
/// match `ringbuf_full/unshare=`).
fn summary_count(summary: &str, key: &str) -> u64 {
    summary
        .split(|c: char| c.is_whitespace() || "();,".contains(c))
        .filter_map(|t| t.strip_prefix(key)?.strip_prefix('=')?.parse::<u64>().ok())
        .sum()
}

struct Step {
    config: &'static str,
    target: Option<u64>,
    generated: u64,
    secs: f64,
    seen: u64,
    kernel_drops: u64,
    sink_drops: u64,
    daemon_cpu: f64,
}

impl Step {
    fn rate(&self) -> f64 {
        self.generated as f64 / self.secs
    }
    fn lossless(&self) -> bool {
        self.seen == self.generated && self.kernel_drops == 0 && self.sink_drops == 0
    }
    fn loss_fraction(&self) -> f64 {
        (self.kernel_drops + self.sink_drops) as f64 / self.generated.max(1) as f64
    }
    fn row(&self) -> String {
        let target = self
            .target
            .map_or("max".to_string(), |t| format!("{}k", t / 1000));
        format!(
            "{:<12} {:>6} {:>10.0} {:>10} {:>10} {:>11} {:>10} {:>8.1}% {:>7.0}%",
            self.config,
            target,
            self.rate(),
            self.generated,
            self.seen,
            self.kernel_drops,
            self.sink_drops,
            self.loss_fraction() * 100.0,
            self.daemon_cpu * 100.0
        )
    }
    fn to_json(&self) -> Value {
        json!({
            "config": self.config, "target_per_s": self.target, "achieved_per_s": self.rate(),
            "generated": self.generated, "seen": self.seen, "ringbuf_full": self.kernel_drops,
            "sink_queue_full": self.sink_drops, "loss_fraction": self.loss_fraction(),
            "lossless": self.lossless(), "daemon_cpu_fraction": self.daemon_cpu,
        })
    }
}

const HEADER: &str = "config        target  achieved/s  generated       seen ringbuf_full sink_drops     loss  daemon CPU";

fn step(
    bin: &Path,
    dir: &Path,
    config: &Config,
    target: Option<u64>,
    dur: Duration,
) -> anyhow::Result<Step> {
    let _ = std::fs::remove_file(dir.join("throughput-timeline.db"));
    let daemon = Daemon::start_discarding(bin, &(config.args)(dir))?;
    thread::sleep(SETTLE);
    let (_, cpu0) = footprint(daemon.pid());
    let (generated, secs) = generate(target, dur)?;
    let (_, cpu1) = footprint(daemon.pid());
    let run = daemon.stop()?;
    let s = &run.summary;
    let step = Step {
        config: config.name,
        target,
        generated,
        secs,
        seen: summary_count(s, "unshare"),
        kernel_drops: summary_count(s, "ringbuf_full/unshare")
            + summary_count(s, "stash_full/unshare"),
        sink_drops: summary_count(s, "queue_full"),
        daemon_cpu: (cpu1 - cpu0) / secs,
    };
    // Nothing lost silently: every generated event is either seen or counted by the kernel.
    // (Other processes' unshare calls can only add to `seen`.)
    ensure!(
        step.seen + step.kernel_drops >= generated,
        "{} at {:?}/s: generated {generated}, the daemon saw {} and counted {} ringbuf drops: {} went missing uncounted\nsummary: {s}",
        config.name,
        target,
        step.seen,
        step.kernel_drops,
        generated - step.seen - step.kernel_drops
    );
    Ok(step)
}

/// Runs every configuration over every rate; returns the JSON written to `throughput.json`.
pub fn run(bin: &Path, target_dir: &Path, secs_per_step: f64) -> anyhow::Result<Value> {
    let dir = target_dir.join("bench");
    std::fs::create_dir_all(&dir)?;
    let dur = Duration::from_secs_f64(secs_per_step);
    let (bare, bare_secs) = generate(None, dur).context("generator without a tracer")?;
    let bare_rate = bare as f64 / bare_secs;
    eprintln!(
        "throughput: {THREADS} threads of unshare(0), {secs_per_step} s per step; without a tracer the generator makes {bare_rate:.0} calls/s"
    );
    eprintln!("{HEADER}");
    let mut steps = Vec::new();
    for config in CONFIGS {
        for &rate in RATES {
            let s = step(bin, &dir, config, rate, dur)
                .with_context(|| format!("throughput step {} at {rate:?}/s", config.name))?;
            eprintln!("{}", s.row());
            steps.push(s);
        }
    }
    // The highest rate below the first lossy step: a lossless step above a lossy one
    // (noise on a shared machine) does not count.
    let best = |name: &str| {
        steps
            .iter()
            .filter(|s| s.config == name)
            .take_while(|s| s.lossless())
            .map(Step::rate)
            .fold(0.0, f64::max)
    };
    println!(
        "throughput ({THREADS} threads of unshare(0), {secs_per_step} s per step; no tracer: {bare_rate:.0} calls/s)"
    );
    println!("{HEADER}");
    for s in &steps {
        println!("{}", s.row());
    }
    let mut summary = Vec::new();
    for c in CONFIGS {
        let b = best(c.name);
        let verdict = if b >= TARGET_EVENTS_PER_S {
            "PASS"
        } else {
            "MISS"
        };
        println!(
            "{}: lossless up to {b:.0} events/s, every step below it lossless too (target >= {TARGET_EVENTS_PER_S:.0}: {verdict})",
            c.name
        );
        summary.push(
            json!({"config": c.name, "what": c.what, "best_lossless_per_s": b, "verdict": verdict}),
        );
    }
    let result = json!({
        "generator": {"threads": THREADS, "syscall": "unshare(0)", "secs_per_step": secs_per_step, "no_tracer_calls_per_s": bare_rate},
        "configs": summary,
        "steps": steps.iter().map(Step::to_json).collect::<Vec<_>>(),
    });
    std::fs::write(
        dir.join("throughput.json"),
        serde_json::to_string_pretty(&result)? + "\n",
    )?;
    Ok(result)
}

/// The markdown section of bench/RESULTS.md.
pub fn markdown(result: &Value) -> String {
    let g = &result["generator"];
    let mut md = format!(
        "\n## Throughput and loss curve\n\n{} threads call `unshare(0)` (one `unshare` event each), paced to a target rate, {} s per step, a fresh daemon per step. Without a tracer the generator makes {:.0} calls/s. Loss is read from the daemon's own counters (`ringbuf_full` in the kernel, each sink's `queue_full`).\n\n",
        g["threads"],
        g["secs_per_step"],
        g["no_tracer_calls_per_s"].as_f64().unwrap_or(0.0)
    );
    for c in result["configs"].as_array().into_iter().flatten() {
        md += &format!(
            "- **{}** ({}): lossless up to **{:.0} events/s**, every step below it lossless too (target ≥ {TARGET_EVENTS_PER_S:.0}: {})\n",
            c["config"].as_str().unwrap_or("?"),
            c["what"].as_str().unwrap_or(""),
            c["best_lossless_per_s"].as_f64().unwrap_or(0.0),
            c["verdict"].as_str().unwrap_or("?")
        );
    }
    md += "\n| config | target/s | achieved/s | generated | seen | ringbuf_full | sink queue_full | loss | daemon CPU (of one core) |\n|---|---|---|---|---|---|---|---|---|\n";
    for s in result["steps"].as_array().into_iter().flatten() {
        let target = s["target_per_s"]
            .as_u64()
            .map_or("max".to_string(), |t| t.to_string());
        md += &format!(
            "| {} | {target} | {:.0} | {} | {} | {} | {} | {:.2}% | {:.0}% |\n",
            s["config"].as_str().unwrap_or("?"),
            s["achieved_per_s"].as_f64().unwrap_or(0.0),
            s["generated"],
            s["seen"],
            s["ringbuf_full"],
            s["sink_queue_full"],
            s["loss_fraction"].as_f64().unwrap_or(0.0) * 100.0,
            s["daemon_cpu_fraction"].as_f64().unwrap_or(0.0) * 100.0
        );
    }
    md
}
