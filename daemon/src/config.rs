//! Typed configuration (TOML). Unknown keys are rejected with their name and line.
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const DEFAULT_PATH: &str = "/etc/podtrail/podtrail.toml";
pub const DEFAULT_TIMELINE_PATH: &str = "/var/lib/podtrail/timeline.db";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid config: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub ringbuf: RingbufConfig,
    pub freezer_v1: FreezerV1Config,
    pub cri: CriConfig,
    pub metrics: MetricsConfig,
    pub otlp: OtlpConfig,
    pub secrets: SecretsConfig,
    pub anomalies: AnomalyConfig,
    pub tail: TailConfig,
    pub timeline: TimelineConfig,
}

/// The node-local event store (`podtrail timeline` reads it).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TimelineConfig {
    pub enabled: bool,
    /// SQLite file; `--timeline-path` overrides it.
    pub path: PathBuf,
    /// Bound on the database file: the oldest events are deleted beyond it.
    pub max_bytes: u64,
    /// Events older than this are deleted.
    pub max_age_hours: u64,
    /// Events per write transaction (at most).
    pub batch_size: usize,
    /// An event waits at most this long before its batch is written: what a crash can lose.
    pub flush_interval_ms: u64,
    /// Events waiting for the writer thread; beyond it they are dropped (counted).
    pub queue_size: usize,
}

impl Default for TimelineConfig {
    fn default() -> Self {
        TimelineConfig {
            enabled: true,
            path: PathBuf::from(DEFAULT_TIMELINE_PATH),
            max_bytes: 256 << 20,
            max_age_hours: 72,
            batch_size: 1024,
            flush_interval_ms: 500,
            queue_size: 16_384,
        }
    }
}

/// The local socket `podtrail tail` connects to.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TailConfig {
    pub enabled: bool,
    pub socket: PathBuf,
    /// Besides root, members of this group may tail (socket mode 0660); empty: root only.
    pub group: String,
    /// Events a slow client may fall behind by before it is told it missed some.
    pub buffer: usize,
}

impl Default for TailConfig {
    fn default() -> Self {
        TailConfig { enabled: true, socket: PathBuf::from(DEFAULT_TAIL_SOCKET), group: String::new(), buffer: 4096 }
    }
}

pub const DEFAULT_TAIL_SOCKET: &str = "/run/podtrail/podtrail.sock";

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AnomalyConfig {
    pub enabled: bool,
    /// Rules to switch off, by name (`podtrail` lists them in the README).
    pub disabled_rules: Vec<String>,
    /// Program names the shell rule watches for.
    pub shells: Vec<String>,
    pub package_managers: Vec<String>,
    /// crash_loop: this many stops of one pod/container name within the window.
    pub crash_loop_stops: u32,
    pub crash_loop_window_ms: u64,
    pub frozen_threshold_ms: u64,
    pub runc_init_stuck_ms: u64,
}

impl Default for AnomalyConfig {
    fn default() -> Self {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect();
        AnomalyConfig {
            enabled: true,
            disabled_rules: Vec::new(),
            shells: s(&["sh", "bash", "ash", "dash", "zsh", "ksh", "csh", "tcsh", "fish", "busybox"]),
            package_managers: s(&["apt", "apt-get", "dpkg", "apk", "yum", "dnf", "rpm", "microdnf", "zypper", "pip", "pip3", "npm"]),
            crash_loop_stops: 3,
            crash_loop_window_ms: 600_000,
            frozen_threshold_ms: 60_000,
            runc_init_stuck_ms: 30_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    pub enabled: bool,
    /// Address of the `/metrics` HTTP listener.
    pub listen: String,
    /// Series of a removed container are deleted this long after it went away.
    pub container_series_ttl_ms: u64,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig { enabled: true, listen: "127.0.0.1:9464".into(), container_series_ttl_ms: 300_000 }
    }
}

/// OpenTelemetry export over OTLP/gRPC; off while `endpoint` is empty.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpConfig {
    /// `http://host:4317`; empty = off. `--otlp-endpoint` and `OTEL_EXPORTER_OTLP_ENDPOINT`
    /// override it.
    pub endpoint: String,
    /// Events waiting for export; beyond it events are dropped and counted.
    pub queue_size: usize,
    /// Records per export request.
    pub batch_size: usize,
    /// Per export request.
    pub timeout_ms: u64,
}

impl Default for OtlpConfig {
    fn default() -> Self {
        OtlpConfig { endpoint: String::new(), queue_size: 8192, batch_size: 512, timeout_ms: 5_000 }
    }
}

/// Masking of secrets in exec arguments, in every sink.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SecretsConfig {
    /// Flags whose value (the next argument, or after `=`) is masked.
    pub flags: Vec<String>,
    /// `KEY=VALUE` arguments whose KEY contains one of these (case-insensitive) are masked.
    pub key_patterns: Vec<String>,
    /// What a masked value is replaced with.
    pub mask: String,
}

impl Default for SecretsConfig {
    fn default() -> Self {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect();
        SecretsConfig {
            flags: s(&[
                "--password", "--passwd", "--pass", "--token", "--secret", "--api-key", "--apikey",
                "--access-key", "--secret-key", "--client-secret", "--auth", "--authorization",
                "--private-key", "--credentials",
            ]),
            key_patterns: s(&["password", "passwd", "secret", "token", "apikey", "api_key", "private_key", "credential", "auth"]),
            mask: "***".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CriConfig {
    pub enabled: bool,
    /// Runtime socket (path or `unix://` URL); empty = auto-detect containerd, CRI-O,
    /// cri-dockerd.
    pub endpoint: String,
    pub resync_interval_ms: u64,
    pub call_timeout_ms: u64,
    /// How long a removed container's metadata is kept (`metadata.state = tombstone`).
    pub tombstone_ttl_ms: u64,
}

impl Default for CriConfig {
    fn default() -> Self {
        CriConfig { enabled: true, endpoint: String::new(), resync_interval_ms: 10_000, call_timeout_ms: 2_000, tombstone_ttl_ms: 300_000 }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RingbufConfig {
    /// Ring buffer size in bytes: a power of two, at least one page.
    pub size_bytes: u32,
    /// Wake the reader early once this many bytes are waiting.
    pub wakeup_bytes: u64,
    /// Timer drain period in milliseconds (events are submitted without wake-ups).
    pub drain_interval_ms: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FreezerV1Config {
    pub enabled: bool,
    pub poll_interval_ms: u64,
    /// Upper bound on cgroups scanned per poll (bounded work and memory).
    pub max_cgroups: usize,
}

impl Default for RingbufConfig {
    fn default() -> Self {
        RingbufConfig { size_bytes: 8 << 20, wakeup_bytes: 2 << 20, drain_interval_ms: 20 }
    }
}

impl Default for FreezerV1Config {
    fn default() -> Self {
        FreezerV1Config { enabled: true, poll_interval_ms: 250, max_cgroups: 20_000 }
    }
}

impl Config {
    /// Loads `path`, or the default path when it exists, or the built-in defaults.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let (path, required) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from(DEFAULT_PATH), false),
        };
        if !required && !path.exists() {
            return Ok(Config::default());
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|source| ConfigError::Read { path: path.clone(), source })?;
        Self::parse(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse { path, message },
            other => other,
        })
    }

    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::from("<config>"),
            message: describe_toml_error(text, &e),
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let size = self.ringbuf.size_bytes;
        if !size.is_power_of_two() || size < 4096 {
            return Err(ConfigError::Invalid(format!(
                "ringbuf.size_bytes = {size}: must be a power of two and at least 4096"
            )));
        }
        if self.ringbuf.wakeup_bytes == 0 || self.ringbuf.wakeup_bytes > size as u64 {
            return Err(ConfigError::Invalid(format!(
                "ringbuf.wakeup_bytes = {}: must be between 1 and ringbuf.size_bytes ({size})",
                self.ringbuf.wakeup_bytes
            )));
        }
        if !(1..=10_000).contains(&self.ringbuf.drain_interval_ms) {
            return Err(ConfigError::Invalid(format!(
                "ringbuf.drain_interval_ms = {}: must be 1..=10000",
                self.ringbuf.drain_interval_ms
            )));
        }
        if !(100..=3_600_000).contains(&self.cri.resync_interval_ms)
            || !(10..=60_000).contains(&self.cri.call_timeout_ms)
        {
            return Err(ConfigError::Invalid(format!(
                "cri.resync_interval_ms = {} (100..=3600000) / cri.call_timeout_ms = {} (10..=60000) out of range",
                self.cri.resync_interval_ms, self.cri.call_timeout_ms
            )));
        }
        if !self.metrics.listen.is_empty() && self.metrics.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(ConfigError::Invalid(format!(
                "metrics.listen = {:?}: not an address such as 127.0.0.1:9464",
                self.metrics.listen
            )));
        }
        if self.otlp.queue_size == 0 || self.otlp.batch_size == 0 {
            return Err(ConfigError::Invalid("otlp.queue_size and otlp.batch_size must be > 0".into()));
        }
        if let Some(bad) =
            self.anomalies.disabled_rules.iter().find(|r| !crate::anomaly::RULES.iter().any(|k| k.0 == r.as_str()))
        {
            let known: Vec<&str> = crate::anomaly::RULES.iter().map(|r| r.0).collect();
            return Err(ConfigError::Invalid(format!(
                "anomalies.disabled_rules: unknown rule {bad:?} (known: {})",
                known.join(", ")
            )));
        }
        if self.anomalies.crash_loop_stops < 2 {
            return Err(ConfigError::Invalid("anomalies.crash_loop_stops must be at least 2".into()));
        }
        if !(10..=60_000).contains(&self.freezer_v1.poll_interval_ms) {
            return Err(ConfigError::Invalid(format!(
                "freezer_v1.poll_interval_ms = {}: must be 10..=60000",
                self.freezer_v1.poll_interval_ms
            )));
        }
        self.validate_timeline()
    }

    fn validate_timeline(&self) -> Result<(), ConfigError> {
        let t = &self.timeline;
        let bad = |what: String| Err(ConfigError::Invalid(format!("timeline.{what}")));
        if t.path.as_os_str().is_empty() {
            return bad("path is empty".into());
        }
        if t.max_bytes < 1 << 20 {
            return bad(format!("max_bytes = {}: must be at least 1048576 (1 MiB)", t.max_bytes));
        }
        if !(1..=87_600).contains(&t.max_age_hours) {
            return bad(format!("max_age_hours = {}: must be 1..=87600", t.max_age_hours));
        }
        if !(1..=100_000).contains(&t.batch_size) {
            return bad(format!("batch_size = {}: must be 1..=100000", t.batch_size));
        }
        if !(10..=60_000).contains(&t.flush_interval_ms) {
            return bad(format!("flush_interval_ms = {}: must be 10..=60000", t.flush_interval_ms));
        }
        if t.queue_size < t.batch_size {
            return bad(format!("queue_size = {}: must be at least batch_size ({})", t.queue_size, t.batch_size));
        }
        Ok(())
    }
}

/// toml's message plus the 1-based line, so "unknown field `foo`" says where.
fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    let msg = e.message().to_string();
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}: {msg}")
        }
        None => msg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_defaults() {
        assert_eq!(Config::parse("").unwrap(), Config::default());
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let err = Config::parse("[ringbuf]\nsize_bytes = 65536\nsize_byte = 1\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("size_byte") && msg.contains("line 3"), "{msg}");
    }

    #[test]
    fn unknown_section_is_rejected() {
        let msg = Config::parse("[ringbuff]\n").unwrap_err().to_string();
        assert!(msg.contains("ringbuff") && msg.contains("line 1"), "{msg}");
    }

    #[test]
    fn ringbuf_size_must_be_power_of_two() {
        let msg = Config::parse("[ringbuf]\nsize_bytes = 100000\n").unwrap_err().to_string();
        assert!(msg.contains("power of two"), "{msg}");
    }

    #[test]
    fn timeline_section() {
        let cfg = Config::parse("[timeline]\npath = \"/tmp/t.db\"\nmax_age_hours = 1\n").unwrap();
        assert_eq!(cfg.timeline.path, PathBuf::from("/tmp/t.db"));
        assert_eq!(cfg.timeline.max_bytes, 256 << 20);
        let msg = Config::parse("[timeline]\nmax_bytes = 10\n").unwrap_err().to_string();
        assert!(msg.contains("timeline.max_bytes = 10"), "{msg}");
        let msg = Config::parse("[timeline]\nflush_interval = 10\n").unwrap_err().to_string();
        assert!(msg.contains("flush_interval") && msg.contains("line 2"), "{msg}");
    }

    #[test]
    fn wrong_type_is_reported() {
        let msg = Config::parse("[freezer_v1]\nenabled = \"yes\"\n").unwrap_err().to_string();
        assert!(msg.contains("line 2"), "{msg}");
    }
}
