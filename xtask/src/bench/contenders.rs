//! The other tracers timed in the same run: bpftrace with the tracepoints podtrail uses for
//! a fork+exec+exit, printing the same fields, and libbpf-tools' BTF-based `execsnoop`
//! (bcc's compiles at run time and needs kernel headers this machine lacks). Both are
//! Debian packages, installed on first use.
use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::mpsc,
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use anyhow::{Context, bail, ensure};

use super::{READY_TIMEOUT, SETTLE, STOP_TIMEOUT, storm};

/// exec / fork / exit with what podtrail's events carry for them (pids, parent, uid,
/// cgroup id, comm, filename, exit code).
const BPFTRACE_SCRIPT: &str = r#"
tracepoint:sched:sched_process_exec {
  printf("exec %d %d %d %llu %s %s\n", pid, curtask->real_parent->tgid, uid, cgroup, comm, str(args->filename));
}
tracepoint:sched:sched_process_fork {
  printf("fork %d %d %d %llu %s\n", args->parent_pid, args->child_pid, uid, cgroup, comm);
}
tracepoint:sched:sched_process_exit {
  printf("exit %d %d %d %llu %s\n", pid, tid, curtask->exit_code, cgroup, comm);
}
"#;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Contender {
    Bpftrace,
    Execsnoop,
}

pub const ALL: [Contender; 2] = [Contender::Bpftrace, Contender::Execsnoop];

/// One timed storm under a contender.
pub struct ContenderRun {
    pub name: &'static str,
    pub took: Duration,
    /// Storm execs the contender printed.
    pub seen: u64,
}

impl Contender {
    pub fn name(self) -> &'static str {
        match self {
            Contender::Bpftrace => "bpftrace",
            Contender::Execsnoop => "execsnoop",
        }
    }

    fn package_and_binary(self) -> (&'static str, &'static str) {
        match self {
            Contender::Bpftrace => ("bpftrace", "/usr/bin/bpftrace"),
            Contender::Execsnoop => ("libbpf-tools", "/usr/sbin/execsnoop"),
        }
    }

    /// apt-get install the contender's package unless its binary is there.
    pub fn ensure_installed(self) -> anyhow::Result<()> {
        let (pkg, bin) = self.package_and_binary();
        if std::path::Path::new(bin).exists() {
            return Ok(());
        }
        eprintln!("bench: installing {pkg} (contender {})", self.name());
        let install = |update: bool| {
            if update {
                let _ = Command::new("apt-get").args(["update", "-qq"]).status();
            }
            Command::new("apt-get")
                .args(["install", "-y", "-qq", "--no-install-recommends", pkg])
                .env("DEBIAN_FRONTEND", "noninteractive")
                .status()
                .is_ok_and(|s| s.success())
        };
        ensure!(install(false) || install(true), "apt-get install {pkg} failed");
        Ok(())
    }

    fn command(self) -> Command {
        match self {
            Contender::Bpftrace => {
                let mut c = Command::new("bpftrace");
                c.args(["-e", BPFTRACE_SCRIPT]);
                c
            }
            // Line-buffered, so the header (our readiness signal) arrives at once.
            Contender::Execsnoop => {
                let mut c = Command::new("stdbuf");
                c.args(["-oL", "/usr/sbin/execsnoop", "-x"]);
                c
            }
        }
    }

    /// True for a stdout line saying the tracer is attached.
    fn is_ready_line(self, line: &str) -> bool {
        match self {
            Contender::Bpftrace => line.starts_with("Attaching "),
            Contender::Execsnoop => line.starts_with("PCOMM"),
        }
    }

    /// True for a line reporting one of our storm's execs.
    fn is_storm_exec(self, line: &str, our_pid: u32) -> bool {
        let f: Vec<&str> = line.split_whitespace().collect();
        match self {
            // exec <pid> <ppid> <uid> <cgroup> <comm> <filename>
            Contender::Bpftrace => f.first() == Some(&"exec") && f.get(2) == Some(&&*our_pid.to_string()) && f.last() == Some(&super::STORM_BIN),
            // PCOMM PID PPID RET ARGS...
            Contender::Execsnoop => f.get(2) == Some(&&*our_pid.to_string()) && f.get(3) == Some(&"0") && f.get(4) == Some(&super::STORM_BIN),
        }
    }
}

/// Starts the contender (untimed), times one storm, stops it and counts what it printed.
pub fn timed_storm(c: Contender, n: usize) -> anyhow::Result<ContenderRun> {
    let mut child = c
        .command()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", c.name()))?;
    let out = child.stdout.take().expect("piped stdout");
    let (ready_tx, ready_rx) = mpsc::channel();
    let our_pid = std::process::id();
    let reader: JoinHandle<u64> = thread::spawn(move || {
        let mut seen = 0;
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if c.is_ready_line(&line) {
                let _ = ready_tx.send(());
            }
            seen += u64::from(c.is_storm_exec(&line, our_pid));
        }
        seen
    });
    let guard = Reap(child);
    if ready_rx.recv_timeout(READY_TIMEOUT).is_err() {
        bail!("{} did not attach within {READY_TIMEOUT:?}", c.name());
    }
    thread::sleep(SETTLE);
    let took = storm(n)?;
    thread::sleep(Duration::from_millis(300)); // let it print the last events
    guard.interrupt()?;
    let seen = reader.join().map_err(|_| anyhow::anyhow!("{} reader panicked", c.name()))?;
    Ok(ContenderRun { name: c.name(), took, seen })
}

/// Kills the contender if anything goes wrong before it is interrupted.
struct Reap(Child);

impl Reap {
    /// SIGINT (both tracers print and exit on it), then wait.
    fn interrupt(mut self) -> anyhow::Result<()> {
        // SAFETY: kill(2) on our own, not yet reaped, child.
        unsafe { libc::kill(self.0.id() as libc::pid_t, libc::SIGINT) };
        let deadline = Instant::now() + STOP_TIMEOUT;
        while self.0.try_wait()?.is_none() {
            if Instant::now() >= deadline {
                // bpftrace 0.17 occasionally hangs in its exit path under load. Its storm
                // was already timed and its lines read; killing it keeps the round.
                eprintln!(
                    "bench: a contender did not exit within {STOP_TIMEOUT:?} of SIGINT; killed"
                );
                let _ = self.0.kill();
                let _ = self.0.wait();
                break;
            }
            thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

impl Drop for Reap {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}
