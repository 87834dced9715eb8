//! Event-to-`tail` latency and the daemon's footprint (full run only): a `podtrail tail -o
//! json` client follows the daemon while a storm runs; each storm exec's latency is the
//! time the client read its line minus the event's own `ts` (both from this machine's
//! clock). The daemon's RSS and CPU come from /proc at idle and after the storm.
use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    thread,
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context, ensure};
use serde_json::{Value, json};

use super::{SETTLE, STORM_BIN, podtrail::Daemon, storm};

/// (RSS KiB, CPU seconds) of a process, from /proc.
pub(super) fn footprint(pid: u32) -> (u64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, t)| t.split_whitespace().collect()).unwrap_or_default();
    // utime and stime are fields 14 and 15 of stat, i.e. 11 and 12 after the comm.
    let ticks: u64 = [11, 12].iter().filter_map(|i| fields.get(*i)?.parse::<u64>().ok()).sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    (rss, ticks as f64 / hz)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// (run time ns, runs) summed over the BPF programs process `pid` holds, from the
/// `run_time_ns` / `run_cnt` lines the kernel adds to a program fd's fdinfo while
/// `kernel.bpf_stats_enabled` is 1: CPU cost measured in the kernel, immune to the
/// wall-clock noise of a shared VM.
fn bpf_prog_stats(pid: u32) -> (u64, u64) {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else { return (0, 0) };
    let mut total = (0, 0);
    for fd in fds.flatten() {
        let info = std::fs::read_to_string(fd.path()).unwrap_or_default();
        if !info.contains("prog_type:") {
            continue;
        }
        let field = |k: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(k))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        total.0 += field("run_time_ns:");
        total.1 += field("run_cnt:");
    }
    total
}

/// Turns `kernel.bpf_stats_enabled` on for its lifetime, then restores what it was.
struct BpfStats(Option<String>);

impl BpfStats {
    const KNOB: &str = "/proc/sys/kernel/bpf_stats_enabled";

    fn enable() -> Self {
        let before = std::fs::read_to_string(Self::KNOB).ok();
        if std::fs::write(Self::KNOB, "1").is_err() {
            eprintln!("bench: cannot enable {} (BPF run times will read 0)", Self::KNOB);
        }
        BpfStats(before)
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        if let Some(v) = &self.0 {
            let _ = std::fs::write(Self::KNOB, v.trim());
        }
    }
}

pub fn run(bin: &Path, target: &Path, n: usize) -> anyhow::Result<Value> {
    let dir = target.join("bench");
    std::fs::create_dir_all(&dir)?;
    let socket = dir.join("tail.sock");
    let args: Vec<String> = vec![
        "--tail-socket".into(),
        socket.display().to_string(),
        "--timeline-path".into(),
        dir.join("latency-timeline.db").display().to_string(),
        "--metrics-addr".into(),
        "127.0.0.1:0".into(),
    ];
    let daemon = Daemon::start(bin, &args)?;
    let pid = daemon.pid();
    thread::sleep(Duration::from_secs(2));
    let (idle_rss, idle_cpu0) = footprint(pid);
    thread::sleep(Duration::from_secs(3));
    let idle_cpu = (footprint(pid).1 - idle_cpu0) / 3.0;

    let mut client = Command::new(bin)
        .args(["tail", "--socket"])
        .arg(&socket)
        .args(["-o", "json", "--kind", "exec"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting podtrail tail")?;
    let out = client.stdout.take().expect("piped stdout");
    let samples = Arc::new(Mutex::new(Vec::new()));
    let s = samples.clone();
    let storm_exec = format!(r#""filename":"{STORM_BIN}","#);
    let our_child = format!(r#""ppid":{},"#, std::process::id());
    let reader = thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let read_at = SystemTime::now();
            if !(line.contains(&storm_exec) && line.contains(&our_child)) {
                continue;
            }
            let ts = serde_json::from_str::<Value>(&line).ok().and_then(|v| humantime::parse_rfc3339(v["ts"].as_str()?).ok());
            if let Some(ts) = ts {
                let ms = read_at.duration_since(ts).map(|d| d.as_secs_f64() * 1e3).unwrap_or(0.0);
                s.lock().expect("samples").push(ms);
            }
        }
    });
    thread::sleep(SETTLE + Duration::from_millis(500)); // the client subscribes
    let stats = BpfStats::enable();
    let (_, cpu0) = footprint(pid);
    let bpf0 = bpf_prog_stats(pid);
    let started = Instant::now();
    storm(n)?;
    let took = started.elapsed().as_secs_f64();
    thread::sleep(Duration::from_millis(500));
    let (storm_rss, cpu1) = footprint(pid);
    let bpf1 = bpf_prog_stats(pid);
    drop(stats);
    let bpf_us_per_exec = (bpf1.0 - bpf0.0) as f64 / 1e3 / n as f64;
    let daemon_us_per_exec = (cpu1 - cpu0) * 1e6 / n as f64;
    let _ = client.kill();
    let _ = client.wait();
    let _ = reader.join();
    let run = daemon.stop()?;
    let mut lat = samples.lock().expect("samples").clone();
    lat.sort_by(f64::total_cmp);
    ensure!(lat.len() == n, "tail showed {} of {n} storm execs", lat.len());
    let result = json!({
        "tail_latency_ms": {"samples": lat.len(), "p50": percentile(&lat, 0.5), "p99": percentile(&lat, 0.99), "max": lat.last()},
        "footprint": {
            "idle_rss_kib": idle_rss, "idle_cpu_fraction": idle_cpu,
            "storm_rss_kib": storm_rss, "storm_cpu_fraction": (cpu1 - cpu0) / took,
            "storm_execs_per_s": n as f64 / took,
        },
        "cpu_per_exec_us": {
            "bpf_programs": bpf_us_per_exec,
            "bpf_program_runs": (bpf1.1 - bpf0.1) as f64 / n as f64,
            "daemon": daemon_us_per_exec,
        },
        "daemon_summary": run.summary,
    });
    println!(
        "event -> tail latency over {} storm execs: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        lat.len(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "daemon footprint: idle RSS {} KiB, idle CPU {:.2}% ; during the storm RSS {} KiB, CPU {:.1}% of one core",
        idle_rss,
        idle_cpu * 100.0,
        storm_rss,
        (cpu1 - cpu0) / took * 100.0
    );
    println!(
        "CPU per storm exec: BPF programs {bpf_us_per_exec:.2} us ({:.1} program runs), daemon {daemon_us_per_exec:.1} us",
        (bpf1.1 - bpf0.1) as f64 / n as f64
    );
    std::fs::write(dir.join("latency.json"), serde_json::to_string_pretty(&result)? + "\n")?;
    Ok(result)
}

/// The markdown section of bench/RESULTS.md.
pub fn markdown(lat: &Value) -> String {
    let l = &lat["tail_latency_ms"];
    let f = &lat["footprint"];
    let c = &lat["cpu_per_exec_us"];
    format!(
        "\n## Event to `podtrail tail` latency and footprint\n\nOne `podtrail tail -o json --kind exec` client while a {}-exec storm runs ({:.0} execs/s); latency = when the client read the line minus the event's `ts`.\n\n| p50 ms | p99 ms | max ms | idle RSS KiB | idle CPU | storm RSS KiB | storm CPU (of one core) |\n|---|---|---|---|---|---|---|\n| {:.1} | {:.1} | {:.1} | {} | {:.2}% | {} | {:.1}% |\n",
        l["samples"],
        f["storm_execs_per_s"].as_f64().unwrap_or(0.0),
        l["p50"].as_f64().unwrap_or(f64::NAN),
        l["p99"].as_f64().unwrap_or(f64::NAN),
        l["max"].as_f64().unwrap_or(f64::NAN),
        f["idle_rss_kib"],
        f["idle_cpu_fraction"].as_f64().unwrap_or(0.0) * 100.0,
        f["storm_rss_kib"],
        f["storm_cpu_fraction"].as_f64().unwrap_or(0.0) * 100.0,
    ) + &format!(
        "\nCPU each storm exec (fork, exec, exit of `/bin/true`) costs podtrail, from the kernel's own accounting rather than wall time: {:.2} µs in its BPF programs ({:.1} program runs, `kernel.bpf_stats_enabled` run times) and {:.1} µs in the daemon (its /proc CPU time over the storm, with one tail client).\n",
        c["bpf_programs"].as_f64().unwrap_or(f64::NAN),
        c["bpf_program_runs"].as_f64().unwrap_or(f64::NAN),
        c["daemon"].as_f64().unwrap_or(f64::NAN),
    )
}
