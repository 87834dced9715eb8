//! A real Prometheus (Debian's `prometheus`, installed by bootstrap) on loopback scraping
//! daemons every second, queried over its HTTP API; plus plain-HTTP helpers.
use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

use super::Reaped;

/// GET over plain HTTP/1.0; returns the body.
pub fn http_get(addr: &str, path: &str, accept: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\nAccept: {accept}\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    assert!(head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"), "GET {path}: {head}");
    body.to_string()
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub struct Prometheus {
    addr: String,
    _proc: Reaped,
    dir: std::path::PathBuf,
}

impl Prometheus {
    /// Scrapes `target` (host:port) every second.
    pub fn start(target: &str) -> Prometheus {
        Self::start_many(&[target])
    }

    /// Scrapes every target in one job, `podtrail`, every second.
    pub fn start_many(targets: &[&str]) -> Prometheus {
        let dir = std::env::temp_dir().join(format!("podtrail-prom-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = dir.join("prometheus.yml");
        let targets = targets.iter().map(|t| format!("'{t}'")).collect::<Vec<_>>().join(", ");
        std::fs::write(
            &cfg,
            format!("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: podtrail\n    static_configs:\n      - targets: [{targets}]\n"),
        )
        .unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
            .spawn()
            .expect("start prometheus (bootstrap installs Debian's package)");
        Prometheus { addr, _proc: Reaped(child), dir }
    }

    /// An instant query's result vector; empty on any error (see [`Prometheus::try_query`]).
    pub fn query(&self, q: &str) -> Vec<Value> {
        self.try_query(q).ok().and_then(|v| v["result"].as_array().cloned()).unwrap_or_default()
    }

    /// An instant query's `data` (`resultType`, `result`), or what went wrong: Prometheus'
    /// own error (`bad_data: parse error ...`) or the transport's.
    pub fn try_query(&self, q: &str) -> Result<Value, String> {
        let mut s = TcpStream::connect(&self.addr).map_err(|e| format!("connect {}: {e}", self.addr))?;
        write!(s, "GET /api/v1/query?query={} HTTP/1.0\r\nHost: {}\r\n\r\n", urlencode(q), self.addr).map_err(|e| e.to_string())?;
        let mut out = String::new();
        s.read_to_string(&mut out).map_err(|e| e.to_string())?;
        let body = out.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        let v: Value = serde_json::from_str(body).map_err(|e| format!("not JSON ({e}): {body:.200}"))?;
        if v["status"] != "success" {
            return Err(format!("{}: {}", v["errorType"].as_str().unwrap_or("?"), v["error"].as_str().unwrap_or(body)));
        }
        Ok(v["data"].clone())
    }

    /// The last lines of Prometheus' own log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default();
        log.lines().rev().take(10).collect::<Vec<_>>().join("\n")
    }

    /// Waits until `q` returns a single sample satisfying `ok`; returns its value.
    pub fn wait_value(&self, q: &str, ok: impl Fn(f64) -> bool) -> f64 {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = Vec::new();
        while Instant::now() < deadline {
            last = self.query(q);
            if let [one] = last.as_slice()
                && let Some(v) = one["value"][1].as_str().and_then(|s| s.parse::<f64>().ok())
                && ok(v)
            {
                return v;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!("Prometheus query {q} never satisfied; last result {last:?}\nprometheus log tail:\n{}", self.log_tail());
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
