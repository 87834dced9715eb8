//! Metadata cache footprint: the daemon's RSS and CPU with 0, 1k and 10k containers in its
//! CRI metadata cache, from a **scripted CRI load** (not a synthetic cache fill): the daemon
//! runs unmodified against `fake_cri`, a CRI v1 server in this process that lists N pods
//! with one running container each, so the cache is filled by the daemon's real sync path
//! (ListPodSandbox, ListContainers, a verbose ContainerStatus per container it does not know
//! yet, the cgroup id from a stat of the container's cgroup).
//!
//! That stat needs real cgroups: N empty cgroup2 directories are made under
//! `<cgroup2 mount>/podtrail-bench-cache/` (nothing else is touched) and removed at the end,
//! on error paths too. Per N: start the daemon, wait until its
//! `podtrail_containers_tracked` gauge shows N, then leave it alone for two whole resync
//! periods (the daemon lists everything again 10 s after each listing ends), measured from
//! the end of one listing to the end of the second after it as the CRI server sees them,
//! and read its RSS and CPU time from /proc.
use std::{
    fs,
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};

use super::{
    fake_cri::{self, CALLS, FakeCri, PayloadSizes, RUNTIME_NAME},
    latency::footprint,
    podtrail::Daemon,
};

/// The target: RSS below this with 10k containers tracked.
const TARGET_RSS_MIB: f64 = 64.0;
const TARGET_CONTAINERS: usize = 10_000;
const COUNTS: [usize; 3] = [0, 1_000, TARGET_CONTAINERS];
/// Our cgroups' parent, directly under the cgroup2 mount.
const CGROUP_PARENT: &str = "podtrail-bench-cache";
const SYNC_TIMEOUT: Duration = Duration::from_secs(120);
/// Resync periods measured after the first full sync (about 2 x 10 s at the default period).
const WINDOW_RESYNCS: usize = 2;
/// Bound on the wait for the next complete listing inside the window.
const WINDOW_TIMEOUT: Duration = Duration::from_secs(120);
/// The daemon's default `cri.resync_interval_ms`, set explicitly in the config we pass.
const RESYNC_DEFAULT_S: u64 = 10;

/// The cgroup2 mount point (what the daemon stats `cgroupsPath` under), from /proc/self/mounts.
fn cgroup2_mount() -> anyhow::Result<PathBuf> {
    let mounts = fs::read_to_string("/proc/self/mounts").context("reading /proc/self/mounts")?;
    mounts
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.get(2) == Some(&"cgroup2"))
        .and_then(|f| f.get(1).map(PathBuf::from))
        .context("no cgroup2 mount: the cache scenario needs one (the daemon resolves containers' cgroup2 ids)")
}

/// `<cgroup2>/podtrail-bench-cache/c<i>` for i < `made`; dropping it removes them all.
struct BenchCgroups {
    parent: PathBuf,
    made: usize,
    /// Held while the cgroups exist: cgroups are machine-wide, and a concurrent run of this
    /// scenario would otherwise take ours for leftovers of a crashed run and remove them.
    _lock: fs::File,
}

impl BenchCgroups {
    fn new() -> anyhow::Result<Self> {
        let lock_path = std::env::temp_dir().join("podtrail-bench-cache.lock");
        let lock = fs::File::create(&lock_path)
            .with_context(|| format!("creating {}", lock_path.display()))?;
        if lock.try_lock().is_err() {
            eprintln!(
                "cache: another run of this scenario holds {}; waiting for it",
                lock_path.display()
            );
            lock.lock()
                .with_context(|| format!("locking {}", lock_path.display()))?;
        }
        let parent = cgroup2_mount()?.join(CGROUP_PARENT);
        if parent.exists() {
            eprintln!(
                "cache: removing {} left by an earlier run",
                parent.display()
            );
            remove_cgroups(&parent)?;
        }
        fs::create_dir(&parent).with_context(|| format!("creating cgroup {}", parent.display()))?;
        Ok(BenchCgroups {
            parent,
            made: 0,
            _lock: lock,
        })
    }

    /// Makes children up to `n` (kept across steps: a step with fewer containers ignores the rest).
    fn grow_to(&mut self, n: usize) -> anyhow::Result<()> {
        if n <= self.made {
            return Ok(());
        }
        let started = Instant::now();
        for i in self.made..n {
            let dir = self.parent.join(format!("c{i}"));
            fs::create_dir(&dir).with_context(|| format!("creating cgroup {}", dir.display()))?;
            self.made = i + 1;
            if self.made.is_multiple_of(2000) || self.made == n {
                eprintln!(
                    "cache: {} / {n} cgroups under {} ({:.1} s)",
                    self.made,
                    self.parent.display(),
                    started.elapsed().as_secs_f64()
                );
            }
        }
        Ok(())
    }
}

impl Drop for BenchCgroups {
    fn drop(&mut self) {
        let started = Instant::now();
        match remove_cgroups(&self.parent) {
            Ok(()) => eprintln!(
                "cache: removed {} cgroups ({:.1} s)",
                self.made,
                started.elapsed().as_secs_f64()
            ),
            Err(e) => eprintln!(
                "cache: WARNING: {e:#}; remove it by hand (rmdir the c* children, then it)"
            ),
        }
    }
}

/// rmdir of every child directory (only empty cgroups can go), then of `parent`.
fn remove_cgroups(parent: &Path) -> anyhow::Result<()> {
    for entry in fs::read_dir(parent).with_context(|| format!("listing {}", parent.display()))? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            fs::remove_dir(entry.path())
                .with_context(|| format!("removing cgroup {}", entry.path().display()))?;
        }
    }
    fs::remove_dir(parent).with_context(|| format!("removing cgroup {}", parent.display()))
}

/// A loopback port nothing listens on right now (bound, read, released).
fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// One GET /metrics over HTTP/1.1; returns the body.
fn scrape(port: u16) -> anyhow::Result<String> {
    let addr = ([127, 0, 0, 1], port).into();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )?;
    let mut reply = String::new();
    s.read_to_string(&mut reply)?;
    let (head, body) = reply.split_once("\r\n\r\n").context("no HTTP header end")?;
    ensure!(
        head.starts_with("HTTP/1.1 200"),
        "GET /metrics: {}",
        head.lines().next().unwrap_or("")
    );
    Ok(body.to_string())
}

/// The value of an unlabelled sample `name` in a Prometheus text body.
fn sample(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

fn vm_hwm_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn median(v: &mut [f64]) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    (!v.is_empty()).then(|| v[v.len() / 2])
}

/// One daemon with `n` containers served; the JSON of that step.
fn step(bin: &Path, dir: &Path, n: usize) -> anyhow::Result<Value> {
    let socket = dir.join("cache-cri.sock");
    for f in [
        "cache-timeline.db",
        "cache-timeline.db-wal",
        "cache-timeline.db-shm",
    ] {
        let _ = fs::remove_file(dir.join(f));
    }
    // Every container reports our own pid as its init: a live process (see FakeCri::start).
    let cri = FakeCri::start(&socket, n, CGROUP_PARENT, std::process::id())?;
    let port = free_port()?;
    // A config of our own: the resync period is the one we report, whatever /etc/podtrail says.
    let config = dir.join("cache.toml");
    fs::write(
        &config,
        format!("[cri]\nresync_interval_ms = {}\n", RESYNC_DEFAULT_S * 1000),
    )?;
    let args: Vec<String> = [
        "--config".to_string(),
        config.display().to_string(),
        "--cri-endpoint".into(),
        format!("unix://{}", socket.display()),
        "--tail-socket".into(),
        dir.join("cache-tail.sock").display().to_string(),
        "--timeline-path".into(),
        dir.join("cache-timeline.db").display().to_string(),
        "--metrics-addr".into(),
        format!("127.0.0.1:{port}"),
    ]
    .into();
    let spawned = Instant::now();
    let daemon = Daemon::start_discarding(bin, &args)?;
    let pid = daemon.pid();
    let ready_s = spawned.elapsed().as_secs_f64();

    // Until the gauge shows all n (it is refreshed on the daemon's 1 s tick) after a listing.
    let mut last;
    let tracked_s = loop {
        let listed = cri.counts()[2] > 0;
        match scrape(port) {
            Ok(body) => match sample(&body, "podtrail_containers_tracked") {
                Some(v) if listed && v == n as f64 => break spawned.elapsed().as_secs_f64(),
                Some(v) => last = format!("podtrail_containers_tracked {v}"),
                None => last = "no podtrail_containers_tracked sample in /metrics".into(),
            },
            Err(e) => last = format!("scrape failed: {e:#}"),
        }
        if spawned.elapsed() > SYNC_TIMEOUT {
            let c = cri.counts();
            let calls: Vec<String> = CALLS
                .iter()
                .zip(c)
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let log = daemon
                .stop()
                .map(|r| r.log)
                .unwrap_or_else(|e| vec![format!("{e:#}")]);
            let cri_log: Vec<&String> = log.iter().filter(|l| l.contains("CRI")).collect();
            bail!(
                "the daemon did not track all {n} within {SYNC_TIMEOUT:?} (last: {last}); CRI calls served: {}; the daemon's CRI log lines:\n{}",
                calls.join(" "),
                cri_log
                    .iter()
                    .map(|l| l.as_str())
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        thread::sleep(Duration::from_millis(250));
    };
    eprintln!(
        "cache: {n} containers tracked {tracked_s:.1} s after start (ready after {ready_s:.1} s); measuring {WINDOW_RESYNCS} resync periods"
    );

    // The window runs from the end of one full listing to the end of the `WINDOW_RESYNCS`th
    // after it, so it holds whole resync periods (idle wait + listing) whatever their length.
    // No scrapes in it (they would cost the daemon CPU); RSS is sampled every second.
    let done = |cri: &FakeCri| {
        let now = Instant::now();
        cri.rounds().iter().filter(|r| r.complete(n, now)).count()
    };
    let wait_rounds = |target: usize, rss_max: &mut u64| -> anyhow::Result<()> {
        let (mut seen, mut since) = (done(&cri), Instant::now());
        let mut sampled = Instant::now();
        while seen < target {
            let now_done = done(&cri);
            if now_done > seen {
                (seen, since) = (now_done, Instant::now());
                continue;
            }
            ensure!(
                since.elapsed() < WINDOW_TIMEOUT,
                "no complete listing for {WINDOW_TIMEOUT:?} ({seen} of {target} done)"
            );
            if sampled.elapsed() >= Duration::from_secs(1) {
                sampled = Instant::now();
                *rss_max = (*rss_max).max(footprint(pid).0);
            }
            thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    };
    // Start at the end of the next listing (polled every 20 ms), so the window is aligned.
    let mut ignored = 0;
    let first = done(&cri) + 1;
    wait_rounds(first, &mut ignored)?;
    let (calls0, busy0) = (cri.counts(), cri.status_busy());
    let (rss0, cpu0) = footprint(pid);
    let window_start = Instant::now();
    let mut rss_max = rss0;
    wait_rounds(first + WINDOW_RESYNCS, &mut rss_max)?;
    let (rss_end, cpu1) = footprint(pid);
    let window_s = window_start.elapsed().as_secs_f64();
    let (calls1, busy1) = (cri.counts(), cri.status_busy());
    rss_max = rss_max.max(rss_end);
    let hwm = vm_hwm_kib(pid);
    let bpf_maps = bpf_map_rss_kib(pid);
    let still = scrape(port)
        .ok()
        .and_then(|b| sample(&b, "podtrail_containers_tracked"));
    let run = daemon.stop()?;
    let sizes = cri.sizes;
    let rounds = cri.rounds();
    drop(cri);
    ensure!(
        still == Some(n as f64),
        "after the window the daemon tracks {still:?} containers, not {n}"
    );

    let window_calls: Vec<u64> = calls1.iter().zip(calls0).map(|(a, b)| a - b).collect();
    let stopped = Instant::now();
    let complete: Vec<&fake_cri::Round> =
        rounds.iter().filter(|r| r.complete(n, stopped)).collect();
    let secs = |r: &&fake_cri::Round| (r.end - r.start).as_secs_f64();
    let first_sync_s = rounds
        .first()
        .filter(|r| r.complete(n, stopped))
        .map(|r| (r.end - r.start).as_secs_f64());
    let mut resync_s: Vec<f64> = complete.iter().skip(1).map(secs).collect();
    let mut calls: Vec<f64> = complete.iter().map(|r| r.calls as f64).collect();
    // Listings that began sooner than the period after the previous one: the daemon also
    // resyncs 100 ms after any cgroup_mkdir on the machine (other activity, not the bench).
    let early = rounds
        .windows(2)
        .filter(|w| {
            w[1].start >= window_start
                && (w[1].start - w[0].end).as_secs_f64() < RESYNC_DEFAULT_S as f64 - 0.5
        })
        .count();
    let cpu_s = cpu1 - cpu0;
    let result = json!({
        "containers": n,
        "ready_s": ready_s,
        "start_to_tracked_s": tracked_s,
        "first_sync_s": first_sync_s,
        "resync_s_median": median(&mut resync_s),
        "window_s": window_s,
        "resyncs_in_window": window_calls[0],
        "early_resyncs_in_window": early,
        "rss_kib_window_start": rss0,
        "rss_kib_window_max": rss_max,
        "rss_kib_window_end": rss_end,
        "rss_hwm_kib": hwm,
        "rss_kib_bpf_maps": bpf_maps,
        "cpu_fraction": cpu_s / window_s,
        "daemon_cpu_s_per_resync_period": cpu_s / WINDOW_RESYNCS as f64,
        "cri_calls_in_window": CALLS.iter().zip(&window_calls).map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "cri_calls_per_resync": median(&mut calls),
        "server_us_per_container_status": (window_calls[3] > 0).then(|| (busy1 - busy0).as_secs_f64() * 1e6 / window_calls[3] as f64),
        "payload_bytes": payload_json(&sizes),
        "daemon_summary": run.summary,
    });
    Ok(result)
}

fn payload_json(s: &PayloadSizes) -> Value {
    json!({
        "list_pod_sandbox": s.list_pod_sandbox, "list_containers": s.list_containers,
        "container_status": s.container_status, "info_json": s.info_json,
    })
}

const HEADER: &str =
    "containers  first sync s  start->tracked s  resync s  RSS MiB (max)  peak MiB  BPF maps MiB  CPU % of 1 core  CRI calls/resync";

/// RSS of the daemon's BPF map mappings (`anon_inode:bpf-map` in smaps), KiB: the ring
/// buffer's data pages are mapped twice (for wrap-around reads) and all resident, so an
/// 8 MiB ring shows as 16 MiB of RSS whatever the container count.
fn bpf_map_rss_kib(pid: u32) -> u64 {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let mut in_map = false;
    let mut kib = 0;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && first.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            in_map = line.ends_with("anon_inode:bpf-map");
        } else if in_map && let Some(v) = line.strip_prefix("Rss:") {
            kib += v.split_whitespace().next().and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
        }
    }
    kib
}

fn row(p: &Value) -> String {
    let f = |k: &str| p[k].as_f64();
    let s = |v: Option<f64>, prec: usize| v.map_or("-".to_string(), |v| format!("{v:.prec$}"));
    format!(
        "{:>10} {:>12} {:>17} {:>9} {:>14} {:>9} {:>13} {:>16} {:>17}",
        p["containers"].as_u64().unwrap_or(0),
        s(f("first_sync_s"), 2),
        s(f("start_to_tracked_s"), 1),
        s(f("resync_s_median"), 2),
        s(f("rss_kib_window_max").map(|k| k / 1024.0), 1),
        s(f("rss_hwm_kib").map(|k| k / 1024.0), 1),
        s(f("rss_kib_bpf_maps").map(|k| k / 1024.0), 1),
        s(f("cpu_fraction").map(|c| c * 100.0), 2),
        s(f("cri_calls_per_resync"), 0),
    )
}

/// RSS < 64 MiB with 10k containers (the window's largest sample).
fn verdict(points: &[Value]) -> &'static str {
    let rss = points
        .iter()
        .find(|p| p["containers"] == TARGET_CONTAINERS)
        .and_then(|p| p["rss_kib_window_max"].as_f64());
    match rss {
        Some(kib) if kib / 1024.0 < TARGET_RSS_MIB => "PASS",
        _ => "MISS",
    }
}

pub fn run(bin: &Path, target: &Path) -> anyhow::Result<Value> {
    let dir = target.join("bench");
    fs::create_dir_all(&dir)?;
    let mut cgroups = BenchCgroups::new()?;
    eprintln!(
        "cache: scripted CRI load ({RUNTIME_NAME}, one running container per pod) for {COUNTS:?} containers; {WINDOW_RESYNCS} resync periods measured each"
    );
    let mut points = Vec::new();
    let mut failure = None;
    for n in COUNTS {
        let measured = cgroups.grow_to(n).and_then(|()| step(bin, &dir, n));
        match measured {
            Ok(p) => {
                eprintln!("{HEADER}\n{}", row(&p));
                points.push(p);
            }
            Err(e) => {
                failure = Some(e.context(format!("cache scenario with {n} containers")));
                break;
            }
        }
    }
    drop(cgroups);
    let result = json!({
        "load": "scripted CRI load: an in-process CRI v1 server lists N pods with one running container each (containerd-shaped payloads, verbose ContainerStatus); N real empty cgroup2 directories back the containers' cgroupsPath",
        "runtime_name": RUNTIME_NAME,
        "window_resyncs": WINDOW_RESYNCS,
        "resync_interval_s": RESYNC_DEFAULT_S,
        "target": {"containers": TARGET_CONTAINERS, "rss_mib_below": TARGET_RSS_MIB, "verdict": verdict(&points)},
        "points": points,
        "error": failure.as_ref().map(|e| format!("{e:#}")),
    });
    let path = dir.join("cache.json");
    fs::write(&path, serde_json::to_string_pretty(&result)? + "\n")
        .with_context(|| format!("writing {}", path.display()))?;
    if let Some(e) = failure {
        return Err(e.context(format!("partial results in {}", path.display())));
    }
    println!(
        "metadata cache footprint (scripted CRI load; RSS and CPU over {WINDOW_RESYNCS} resync periods, resync {RESYNC_DEFAULT_S} s after each listing)"
    );
    println!("{HEADER}");
    for p in &points {
        println!("{}", row(p));
    }
    println!(
        "target: RSS < {TARGET_RSS_MIB} MiB with {TARGET_CONTAINERS} containers tracked: {}",
        verdict(&points)
    );
    println!("wrote {}", path.display());
    Ok(result)
}

/// The markdown section of bench/RESULTS.md.
pub fn markdown(v: &Value) -> String {
    let points = v["points"].as_array().cloned().unwrap_or_default();
    let big = points
        .iter()
        .find(|p| p["containers"] == TARGET_CONTAINERS)
        .or(points.last());
    let bytes = |k: &str| {
        big.and_then(|p| p["payload_bytes"][k].as_u64())
            .unwrap_or(0)
    };
    let mib = |b: u64| b as f64 / 1048576.0;
    let mut md = format!(
        "\n## Metadata cache footprint\n\n\
         **Scripted CRI load** (not a synthetic cache fill): the unmodified daemon fills its cache through its own CRI sync from an in-process CRI v1 server (`{}`). \
         It lists N pods with one running container each, shaped like containerd's for kubelet-made pods: kubelet's labels and annotations, and a verbose `ContainerStatus` whose `info` holds the container config and OCI spec ({} bytes of JSON). \
         Each container's `cgroupsPath` is a real, empty cgroup2 directory. At {} containers the lists are {:.1} MiB (pods) and {:.1} MiB (containers) of protobuf.\n\n\
         Per N: a fresh daemon; the time until `podtrail_containers_tracked` shows N; then {} whole resync periods left alone (the daemon lists again {} s after each listing: Version, ListPodSandbox, ListContainers, then ContainerStatus for each container it asks about), with RSS sampled every second and CPU time read from /proc.\n\n",
        v["runtime_name"].as_str().unwrap_or(RUNTIME_NAME),
        bytes("info_json"),
        big.map_or(json!(0), |p| p["containers"].clone()),
        mib(bytes("list_pod_sandbox")),
        mib(bytes("list_containers")),
        v["window_resyncs"],
        v["resync_interval_s"],
    );
    md += "| containers | first sync (s) | start to all tracked (s) | resync (s) | RSS MiB (max in window) | peak RSS MiB (VmHWM) | of which BPF maps MiB | CPU, % of one core (idle with resyncs) | CRI calls per resync |\n|---|---|---|---|---|---|---|---|---|\n";
    let f = |p: &Value, k: &str, scale: f64, prec: usize| {
        p[k].as_f64()
            .map_or("-".into(), |x| format!("{:.prec$}", x * scale))
    };
    for p in &points {
        md += &format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            p["containers"],
            f(p, "first_sync_s", 1.0, 2),
            f(p, "start_to_tracked_s", 1.0, 1),
            f(p, "resync_s_median", 1.0, 2),
            f(p, "rss_kib_window_max", 1.0 / 1024.0, 1),
            f(p, "rss_hwm_kib", 1.0 / 1024.0, 1),
            f(p, "rss_kib_bpf_maps", 1.0 / 1024.0, 1),
            f(p, "cpu_fraction", 100.0, 2),
            f(p, "cri_calls_per_resync", 1.0, 0),
        );
    }
    let early: u64 = points
        .iter()
        .filter_map(|p| p["early_resyncs_in_window"].as_u64())
        .sum();
    if early > 0 {
        md += &format!(
            "\n{early} of the measured resyncs started early: the daemon also resyncs 100 ms after any cgroup is created on the machine, and something else created cgroups during the run.\n"
        );
    }
    md += &format!(
        "\nFirst sync and resync are timed by the CRI server (the daemon's Version call to its last ContainerStatus reply); start to all tracked includes loading the eBPF programs. \
         Every container reports the bench process as its init, so the daemon reads real /proc entries but indexes no container namespaces (they are the host's). \
         RSS counts the BPF map mappings: the ring buffer's data pages are mapped twice (for reads across the wrap-around), so the default 8 MiB ring is 16 MiB of RSS at any container count (`ringbuf_bytes` sets it). \
         Target: RSS < {TARGET_RSS_MIB} MiB with {TARGET_CONTAINERS} containers tracked: **{}**.\n",
        v["target"]["verdict"].as_str().unwrap_or("MISS")
    );
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_has_a_row_per_point_and_the_verdict() {
        let point = |n: usize, rss_kib: f64| json!({"containers": n, "first_sync_s": 1.5, "rss_kib_window_max": rss_kib, "cpu_fraction": 0.02, "cri_calls_per_resync": n as f64 + 3.0});
        let points = vec![point(0, 30_000.0), point(TARGET_CONTAINERS, 60_000.0)];
        let v = json!({"window_resyncs": 2, "resync_interval_s": 10, "target": {"verdict": verdict(&points)}, "points": points});
        let md = markdown(&v);
        assert!(
            md.contains("## Metadata cache footprint") && md.contains("**Scripted CRI load**"),
            "{md}"
        );
        assert!(
            md.contains("| 10000 | 1.50 | - | - | 58.6 | - | - | 2.00 | 10003 |"),
            "{md}"
        );
        assert!(md.contains("**PASS**"), "{md}");
        assert_eq!(verdict(&[point(TARGET_CONTAINERS, 70_000.0)]), "MISS");
        assert_eq!(
            verdict(&[point(1000, 1.0)]),
            "MISS",
            "no 10k point is no pass"
        );
    }

    #[test]
    fn reads_unlabelled_samples_only() {
        let body = "# HELP podtrail_containers_tracked x\npodtrail_containers_tracked_total 9\npodtrail_containers_tracked 42\n";
        assert_eq!(sample(body, "podtrail_containers_tracked"), Some(42.0));
        assert_eq!(sample(body, "podtrail_missing"), None);
    }
}
