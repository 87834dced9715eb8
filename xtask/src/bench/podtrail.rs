//! The podtrail side of the bench: a `podtrail run -o json` we start, whose output is
//! consumed and counted, and whose own loss counters are read at stop.
use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, ChildStdout, Command, Stdio},
    sync::mpsc,
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use anyhow::{Context, bail, ensure};
use serde_json::Value;

use super::{READY_TIMEOUT, STOP_TIMEOUT, STORM_BIN};

/// What one daemon run saw.
#[derive(Default)]
pub struct DaemonRun {
    /// exec events of our storm (`/bin/true` with us as parent).
    pub storm_execs: u64,
    /// All stdout lines (the whole machine's events, not just the storm's).
    pub lines: u64,
    /// `"kind":"drops"` lines that were not valid JSON (only those lines are parsed).
    pub unparsable_lines: u64,
    /// Latest `total` per (reason, event_kind) from `"kind":"drops"` lines.
    pub drop_totals: BTreeMap<(String, String), u64>,
    /// Larger of: summed `drops` line totals, the `dropped` count in the stop summary.
    pub drops: u64,
    /// The daemon's own `podtrail stopped: ...` summary.
    pub summary: String,
    /// Its stderr lines.
    pub log: Vec<String>,
}

/// A `podtrail run` we started; dropping it kills it (by pid) if it is still running.
pub struct Daemon {
    child: Child,
    stdout: Option<JoinHandle<DaemonRun>>,
    stderr: Option<JoinHandle<Vec<String>>>,
}

impl Daemon {
    /// Starts it with its stdout read and counted here (see [`DaemonRun`]).
    pub fn start(bin: &Path, extra: &[String]) -> anyhow::Result<Daemon> {
        Self::spawn(bin, extra, true)
    }

    /// Starts it with its stdout going to /dev/null: the daemon still serializes every
    /// event, but nothing here competes with it for CPU to read the lines. Only the stop
    /// summary is gathered.
    pub fn start_discarding(bin: &Path, extra: &[String]) -> anyhow::Result<Daemon> {
        Self::spawn(bin, extra, false)
    }

    fn spawn(bin: &Path, extra: &[String], count: bool) -> anyhow::Result<Daemon> {
        let mut child = Command::new(bin)
            .args(["--log-level", "info", "run", "-o", "json"])
            .args(extra)
            .env_remove("RUST_LOG") // it would override --log-level and could hide the ready line
            .stdin(Stdio::null())
            .stdout(if count { Stdio::piped() } else { Stdio::null() })
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let err = child.stderr.take().expect("piped stderr");
        let (ready_tx, ready_rx) = mpsc::channel();
        let stdout = child
            .stdout
            .take()
            .map(|out| thread::spawn(move || count_stdout(out)));
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

    pub fn pid(&self) -> u32 {
        self.child.id()
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
    pub fn stop(mut self) -> anyhow::Result<DaemonRun> {
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
        let mut run = match self.stdout.take() {
            Some(reader) => reader.join().expect("stdout reader panicked"),
            None => DaemonRun::default(),
        };
        let log = self
            .stderr
            .take()
            .expect("stderr reader")
            .join()
            .expect("stderr reader panicked");
        ensure!(
            status.success(),
            "podtrail exited with {status}; its stderr:\n{}",
            log.join("\n")
        );
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
        run.log = log;
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

