//! `podtrail tail`: connects to the daemon's socket, asks for a filtered stream (optionally
//! replayed from the timeline first) and prints it.
use std::{
    io::Write,
    path::{Path, PathBuf},
};

use tonic::transport::Endpoint;

use super::proto::{FollowRequest, tail_client::TailClient};

#[derive(Debug, thiserror::Error)]
pub enum TailError {
    #[error(
        "no podtrail socket at {0}: is the daemon running? Start it with `podtrail run` (or `./dev run`), or pass --socket"
    )]
    NoSocket(PathBuf),
    #[error("permission denied on {0}: podtrail tail needs root, or membership of the group set as tail.group in the daemon's config")]
    Denied(PathBuf),
    #[error("cannot connect to {path}: {reason}")]
    Connect { path: PathBuf, reason: String },
    #[error("unknown kind {0:?}; kinds: {kinds}", kinds = crate::event::KINDS.join(", "))]
    BadKind(String),
    #[error("bad --since {0:?}: use a duration such as 10m or 2h, or an RFC 3339 time")]
    BadSince(String),
    #[error("the daemon refused the request: {0}")]
    Refused(String),
    #[error("stream from the daemon ended: {0}")]
    Stream(String),
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),
}

pub struct TailArgs {
    pub socket: PathBuf,
    pub namespace: Option<String>,
    pub pod: Option<String>,
    pub container: Option<String>,
    pub kinds: Vec<String>,
    pub anomalies: bool,
    pub since: Option<String>,
    pub json: bool,
}

/// `10m` / `1h` ago, or an RFC 3339 time, as Unix ns.
pub fn parse_since(s: &str) -> Result<u64, TailError> {
    let bad = || TailError::BadSince(s.to_string());
    let at = match humantime::parse_duration(s) {
        Ok(d) => std::time::SystemTime::now().checked_sub(d).ok_or_else(bad)?,
        Err(_) => humantime::parse_rfc3339_weak(s).map_err(|_| bad())?,
    };
    let ns = at.duration_since(std::time::UNIX_EPOCH).map_err(|_| bad())?.as_nanos();
    u64::try_from(ns).map_err(|_| bad())
}

/// Classifies why the socket cannot be used, before gRPC hides it behind a transport error.
fn check_socket(path: &Path) -> Result<(), TailError> {
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(TailError::NoSocket(path.to_path_buf())),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Err(TailError::Denied(path.to_path_buf())),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Err(TailError::NoSocket(path.to_path_buf())),
        Err(e) => Err(TailError::Connect { path: path.to_path_buf(), reason: e.to_string() }),
    }
}

pub async fn run(args: TailArgs) -> Result<(), TailError> {
    if let Some(bad) = args.kinds.iter().find(|k| !crate::event::KINDS.contains(&k.as_str())) {
        return Err(TailError::BadKind(bad.clone()));
    }
    let since_unix_ns = args.since.as_deref().map(parse_since).transpose()?.unwrap_or(0);
    check_socket(&args.socket)?;
    let url = format!("unix://{}", args.socket.display());
    let connect_err = |reason: String| TailError::Connect { path: args.socket.clone(), reason };
    let channel = Endpoint::from_shared(url).map_err(|e| connect_err(e.to_string()))?.connect().await.map_err(|e| connect_err(e.to_string()))?;
    let req = FollowRequest {
        namespace: args.namespace.unwrap_or_default(),
        pod: args.pod.unwrap_or_default(),
        container: args.container.unwrap_or_default(),
        kinds: args.kinds,
        anomalies: args.anomalies,
        since_unix_ns,
    };
    let mut stream = match TailClient::new(channel).follow(req).await {
        Ok(r) => r.into_inner(),
        // A client the daemon refused (peer credentials) sees its connection dropped.
        Err(s) if s.code() == tonic::Code::Unavailable => return Err(TailError::Denied(args.socket)),
        Err(s) => return Err(TailError::Refused(s.message().to_string())),
    };
    let color = !args.json && std::io::IsTerminal::is_terminal(&std::io::stdout());
    let mut out = std::io::stdout().lock();
    loop {
        match stream.message().await {
            Ok(Some(m)) if !m.event_json.is_empty() => {
                if args.json {
                    writeln!(out, "{}", m.event_json)?;
                } else if let Some(line) = super::format::text_line(&m.event_json, color) {
                    writeln!(out, "{line}")?;
                }
            }
            Ok(Some(m)) => {
                // Notices go to stderr so that `-o json` stays pure JSON.
                eprintln!("podtrail tail: {}", m.notice);
            }
            Ok(None) => return Ok(()),
            Err(s) => return Err(TailError::Stream(s.message().to_string())),
        }
        out.flush()?;
    }
}
