//! Test harness: runs the real `podtrail run -o json` binary against the real kernel and
//! collects its JSON lines. Root-only tests call [`root_or_skip`] first.
#![allow(dead_code)]

pub mod containerd;
pub mod tail;
pub mod prometheus;

use std::{
    io::{BufRead, BufReader},
    os::unix::fs::MetadataExt,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_podtrail");

/// Root-only tests skip (loudly) when not root; CI runs as root.
pub fn root_or_skip(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    eprintln!("SKIP {test}: needs root (loads eBPF programs); run the suite as root");
    false
}

pub struct Daemon {
    child: Child,
    events: Arc<Mutex<Vec<Value>>>,
    stderr: Arc<Mutex<String>>,
    /// The `--tail-socket` the harness chose (empty when the test passed its own).
    pub tail_socket: String,
    /// The timeline store the harness chose (removed on drop); None when the test set one.
    own_timeline: Option<std::path::PathBuf>,
}

fn next_tail_socket() -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("/tmp/podtrail-test-{}-{n}.sock", std::process::id())
}

/// A timeline store path no other daemon of this test process uses.
pub fn temp_timeline(name: &str) -> std::path::PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("podtrail-test-{name}-{}-{n}.db", std::process::id()))
}

/// Removes a store and its WAL / shared-memory files.
pub fn remove_store(path: &std::path::Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

impl Daemon {
    pub fn start(extra: &[&str]) -> Daemon {
        // Drain often so tests see events quickly, unless the test sets its own interval.
        let drain: &[&str] =
            if extra.contains(&"--drain-interval-ms") { &[] } else { &["--drain-interval-ms", "10"] };
        // Tests run daemons in parallel: each gets its own ephemeral metrics port.
        let metrics: &[&str] = if extra.iter().any(|a| a.starts_with("--metrics-addr") || *a == "--no-metrics") {
            &[]
        } else {
            &["--metrics-addr", "127.0.0.1:0"]
        };
        // ... and its own tail socket (never the node's /run/podtrail one).
        let tail_socket = next_tail_socket();
        let tail: Vec<&str> =
            if extra.contains(&"--tail-socket") { vec![] } else { vec!["--tail-socket", &tail_socket] };
        // Tests run daemons in parallel: each gets its own timeline store.
        let own_timeline = if extra.iter().any(|a| *a == "--timeline-path" || *a == "--no-timeline") {
            None
        } else {
            Some(temp_timeline("timeline"))
        };
        let timeline: Vec<&str> = match &own_timeline {
            Some(p) => vec!["--timeline-path", p.to_str().unwrap()],
            None => vec![],
        };
        let mut child = Command::new(BIN)
            .args(["run", "-o", "json"])
            .args(drain)
            .args(metrics)
            .args(&tail)
            .args(&timeline)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn podtrail");
        let events = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let out = child.stdout.take().unwrap();
        let ev = events.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let v: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("podtrail printed non-JSON line {line:?}: {e}"));
                ev.lock().unwrap().push(v);
            }
        });
        let err = child.stderr.take().unwrap();
        let se = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut s = se.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let tail_socket = if tail.is_empty() { String::new() } else { tail_socket };
        let mut d = Daemon { child, events, stderr, tail_socket, own_timeline };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !d.stderr.lock().unwrap().contains("podtrail ready") {
            if let Ok(Some(status)) = d.child.try_wait() {
                std::thread::sleep(Duration::from_millis(50));
                panic!("podtrail exited early ({status}): {}", d.stderr());
            }
            assert!(Instant::now() < deadline, "podtrail not ready after 30s: {}", d.stderr());
            std::thread::sleep(Duration::from_millis(20));
        }
        d
    }

    /// `host:port` of the daemon's /metrics listener (from its start-up log).
    pub fn metrics_addr(&self) -> String {
        let err = self.stderr();
        let rest = err.split("metrics on http://").nth(1).unwrap_or_else(|| panic!("no metrics listener logged: {err}"));
        rest.split('/').next().unwrap().to_string()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn events(&self) -> Vec<Value> {
        self.events.lock().unwrap().clone()
    }

    /// Waits until `pred` matches an event; panics with context after `secs`.
    pub fn wait_for(&self, what: &str, secs: u64, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(v) = self.events.lock().unwrap().iter().find(|v| pred(v)) {
                return v.clone();
            }
            if Instant::now() > deadline {
                let evs = self.events();
                let tail: Vec<String> =
                    evs.iter().rev().take(15).map(|v| v.to_string()).collect();
                panic!("no event for {what} within {secs}s ({} events seen); last ones:\n{}", evs.len(), tail.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the daemon's stderr (its log) contains `text`; panics after `secs`.
    pub fn wait_stderr(&self, text: &str, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !self.stderr().contains(text) {
            assert!(Instant::now() < deadline, "no {text:?} in the daemon's log within {secs}s:\n{}", self.stderr());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn all(&self, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        self.events.lock().unwrap().iter().filter(|v| pred(v)).cloned().collect()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL (no chance to flush anything) and reap; returns stderr.
    pub fn kill9(&mut self) -> String {
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGKILL) };
        let _ = self.child.wait();
        std::thread::sleep(Duration::from_millis(50));
        self.stderr()
    }

    /// SIGTERM, wait, and return stderr; asserts a clean exit and no drops.
    pub fn stop(self) -> String {
        let (stderr, drops) = self.stop_with_drops();
        assert!(drops.is_empty(), "events were dropped: {drops:?}");
        stderr
    }

    /// SIGTERM, wait; returns stderr and the `drops` lines (asserts a clean exit).
    pub fn stop_with_drops(mut self) -> (String, Vec<Value>) {
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait().expect("wait podtrail");
        std::thread::sleep(Duration::from_millis(50));
        let stderr = self.stderr();
        assert!(status.success(), "podtrail exited with {status}: {stderr}");
        assert!(stderr.contains("podtrail stopped"), "no stop summary: {stderr}");
        let drops = self.all(|v| v["kind"] == "drops");
        (stderr, drops)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if let Some(p) = &self.own_timeline {
            remove_store(p);
        }
    }
}

pub fn is_kind(v: &Value, kind: &str) -> bool {
    v["kind"] == kind
}

pub fn tgid(v: &Value) -> u64 {
    v["process"]["tgid"].as_u64().unwrap_or(0)
}

/// Inode numbers of /proc/<pid>/ns/*.
pub fn ns_inode(pid: u32, ns: &str) -> u64 {
    std::fs::metadata(format!("/proc/{pid}/ns/{ns}")).map(|m| m.ino()).unwrap_or_else(|e| panic!("stat /proc/{pid}/ns/{ns}: {e}"))
}

pub fn inode(path: &str) -> u64 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("stat {path}: {e}")).ino()
}

/// The cgroup2 directory of a process on this hybrid host.
pub fn cgroup2_dir(pid: u32) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let rel = text.lines().find_map(|l| l.strip_prefix("0::")).expect("no cgroup2 line");
    format!("{}{}", unified_root(), rel)
}

pub fn unified_root() -> &'static str {
    if std::path::Path::new("/sys/fs/cgroup/unified/cgroup.procs").exists() {
        "/sys/fs/cgroup/unified"
    } else {
        "/sys/fs/cgroup"
    }
}

/// A cgroup directory the test creates and always removes (after killing what is in it).
pub struct TempCgroup {
    pub path: String,
}

impl TempCgroup {
    pub fn new(root: &str, name: &str) -> TempCgroup {
        let path = format!("{root}/podtrail-test-{name}-{}", std::process::id());
        std::fs::create_dir(&path).unwrap_or_else(|e| panic!("mkdir {path}: {e}"));
        TempCgroup { path }
    }

    pub fn file(&self, name: &str) -> String {
        format!("{}/{name}", self.path)
    }

    pub fn write(&self, name: &str, value: &str) {
        std::fs::write(self.file(name), value).unwrap_or_else(|e| panic!("write {}: {e}", self.file(name)));
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.file(name)).unwrap_or_default()
    }
}

impl Drop for TempCgroup {
    fn drop(&mut self) {
        // Thaw first so that killed members can exit, then wait for it to empty.
        let _ = std::fs::write(self.file("cgroup.freeze"), "0");
        let _ = std::fs::write(self.file("freezer.state"), "THAWED");
        for _ in 0..200 {
            if std::fs::remove_dir(&self.path).is_ok() || !std::path::Path::new(&self.path).exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        eprintln!("warning: could not remove {}", self.path);
    }
}

/// A config file for one daemon, removed on drop.
pub struct TempConfig(pub std::path::PathBuf);

impl TempConfig {
    pub fn new(text: &str) -> TempConfig {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("podtrail-test-{}-{n}.toml", std::process::id()));
        std::fs::write(&path, text).unwrap();
        TempConfig(path)
    }

    pub fn arg(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempConfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Kills and reaps a child on drop (tests must not leak processes).
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
