//! A `podtrail tail -o json` client for tests.
use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::Value;

use super::{BIN, Reaped};

/// A `podtrail tail -o json` client whose lines are collected on a thread.
pub struct Tail {
    _child: Reaped,
    lines: Arc<Mutex<Vec<Value>>>,
    /// What the client printed on stderr (notices, errors).
    pub notices: Arc<Mutex<String>>,
}

impl Tail {
    pub fn start(socket: &str, filters: &[&str]) -> Tail {
        let mut child: Child = Command::new(BIN)
            .args(["tail", "--socket", socket, "-o", "json"])
            .args(filters)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let err = child.stderr.take().unwrap();
        let notices = Arc::new(Mutex::new(String::new()));
        let n = notices.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                n.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let out = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let l = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("tail printed non-JSON {line:?}: {e}"));
                l.lock().unwrap().push(v);
            }
        });
        // Connected once the daemon counts a subscriber: give it a moment.
        std::thread::sleep(Duration::from_millis(300));
        Tail { _child: Reaped(child), lines, notices }
    }

    pub fn wait_for(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(v) = self.lines.lock().unwrap().iter().find(|v| pred(v)) {
                return v.clone();
            }
            assert!(Instant::now() < deadline, "tail never showed {what}; its stderr: {}", self.notices.lock().unwrap());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn all(&self) -> Vec<Value> {
        self.lines.lock().unwrap().clone()
    }
}

