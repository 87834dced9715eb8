//! The tail gRPC service on a unix socket: mode 0600 (0660 with `tail.group`), and every
//! connection's peer credentials checked (root, or a member of the configured group).
use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    pin::Pin,
    sync::Arc,
};

use tokio::sync::{broadcast, mpsc};
use tokio_stream::{Stream, StreamExt, wrappers::ReceiverStream};
use tonic::{Request, Response, Status};

use super::{
    TailItem,
    proto::{FollowRequest, TailMessage, tail_server},
};

#[derive(Debug, thiserror::Error)]
pub enum TailServerError {
    #[error("cannot create {dir}: {source}")]
    Dir { dir: PathBuf, source: std::io::Error },
    #[error("another podtrail already serves {0}")]
    InUse(PathBuf),
    #[error("cannot listen on {path}: {source}")]
    Bind { path: PathBuf, source: std::io::Error },
    #[error("tail.group {0:?} is not a group in /etc/group")]
    UnknownGroup(String),
}

/// Messages a client may fall behind by before it is told it lagged.
const CLIENT_QUEUE: usize = 256;

pub type Replay = Arc<dyn Fn(&FollowRequest) -> Result<Vec<(u64, String)>, String> + Send + Sync>;

struct TailService {
    tx: broadcast::Sender<Arc<TailItem>>,
    /// Stored events since a time (from the timeline), as (seq in this run or 0, JSON).
    replay: Option<Replay>,
}

type FollowStream = Pin<Box<dyn Stream<Item = Result<TailMessage, Status>> + Send>>;

fn event(json: String) -> TailMessage {
    TailMessage { event_json: json, lagged: 0, notice: String::new() }
}

#[tonic::async_trait]
impl tail_server::Tail for TailService {
    type FollowStream = FollowStream;

    async fn follow(&self, req: Request<FollowRequest>) -> Result<Response<FollowStream>, Status> {
        let f = req.into_inner();
        if let Some(bad) = f.kinds.iter().find(|k| !crate::event::KINDS.contains(&k.as_str())) {
            return Err(Status::invalid_argument(format!("unknown kind {bad:?}")));
        }
        let replay = match (f.since_unix_ns, &self.replay) {
            (0, _) => None,
            (_, Some(r)) => Some(r.clone()),
            (_, None) => {
                return Err(Status::failed_precondition("--since needs the timeline, which is disabled ([timeline] enabled = false)"));
            }
        };
        // Subscribe before reading the store: nothing falls between replay and live.
        let rx = self.tx.subscribe();
        let (out, out_rx) = mpsc::channel(CLIENT_QUEUE);
        tokio::spawn(async move {
            // The replay streams (with backpressure) from this task, after the response
            // stream exists: the client drains it while it is being sent.
            let mut replayed_up_to = 0u64;
            if let Some(replay) = replay {
                let req = f.clone();
                let stored = match tokio::task::spawn_blocking(move || replay(&req)).await {
                    Ok(Ok(rows)) => rows,
                    Ok(Err(e)) => return drop(out.send(Err(Status::unavailable(e))).await),
                    Err(e) => return drop(out.send(Err(Status::internal(e.to_string()))).await),
                };
                let n = stored.len();
                for (seq, json) in stored {
                    replayed_up_to = replayed_up_to.max(seq);
                    if out.send(Ok(event(json))).await.is_err() {
                        return;
                    }
                }
                let notice = format!("replayed {n} stored events; following live");
                let _ = out.send(Ok(TailMessage { event_json: String::new(), lagged: 0, notice })).await;
            }
            forward_live(rx, out, f, replayed_up_to).await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(out_rx))))
    }
}

/// Forwards live events to one client without ever waiting for it: what does not fit its
/// queue (or what it missed by falling behind the broadcast) is counted, and the count is
/// sent as a notice as soon as the queue has room again, not only when another event comes.
async fn forward_live(
    mut rx: broadcast::Receiver<Arc<TailItem>>,
    out: mpsc::Sender<Result<TailMessage, Status>>,
    f: FollowRequest,
    replayed_up_to: u64,
) {
    let mut missed = 0u64;
    loop {
        let next = if missed > 0 {
            tokio::select! {
                biased;
                permit = out.reserve() => {
                    let Ok(permit) = permit else { return };
                    let notice = format!("this client read too slowly and missed {missed} events");
                    permit.send(Ok(TailMessage { event_json: String::new(), lagged: missed, notice }));
                    tracing::warn!("a tail client reads too slowly: it missed {missed} events");
                    missed = 0;
                    continue;
                }
                next = rx.recv() => next,
            }
        } else {
            rx.recv().await
        };
        let item = match next {
            Ok(item) => item,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                missed += n;
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        // Live events the replay already sent (same run, seq <= last replayed).
        if item.seq <= replayed_up_to || !item.matches(&f) {
            continue;
        }
        match out.try_send(Ok(event(item.json.clone()))) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => missed += 1,
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
    }
}

/// gid of a group name, from /etc/group.
fn group_gid(name: &str) -> Option<u32> {
    let text = std::fs::read_to_string("/etc/group").ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == name).then(|| f.nth(1)?.parse().ok())?
    })
}

/// Whether process `pid` (of `gid`) is in group `want`, from its supplementary groups.
fn in_group(pid: Option<i32>, gid: u32, want: u32) -> bool {
    if gid == want {
        return true;
    }
    let Some(pid) = pid else { return false };
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .is_some_and(|g| g.split_whitespace().any(|x| x.parse() == Ok(want)))
}

fn prepare(path: &Path) -> Result<(), TailServerError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| TailServerError::Dir { dir: dir.to_path_buf(), source })?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(TailServerError::InUse(path.to_path_buf()));
        }
        let _ = std::fs::remove_file(path); // stale socket of a daemon that died
    }
    Ok(())
}

/// Binds `path` and serves until the runtime stops.
pub fn serve(
    path: &Path,
    group: &str,
    tx: broadcast::Sender<Arc<TailItem>>,
    replay: Option<Replay>,
) -> Result<(), TailServerError> {
    let gid = match group {
        "" => None,
        g => Some(group_gid(g).ok_or_else(|| TailServerError::UnknownGroup(g.to_string()))?),
    };
    prepare(path)?;
    let listener = tokio::net::UnixListener::bind(path)
        .map_err(|source| TailServerError::Bind { path: path.to_path_buf(), source })?;
    let mode = if gid.is_some() { 0o660 } else { 0o600 };
    let perms = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
    let owner = gid.map(|g| std::os::unix::fs::chown(path, Some(0), Some(g))).transpose();
    if let Err(source) = perms.and(owner.map(|_| ())) {
        return Err(TailServerError::Bind { path: path.to_path_buf(), source });
    }
    tracing::info!("tail on unix://{} (mode {mode:o})", path.display());
    let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener).filter(move |conn| {
        let Ok(stream) = conn else { return true };
        let Ok(cred) = stream.peer_cred() else { return false };
        let ok = cred.uid() == 0 || gid.is_some_and(|g| in_group(cred.pid(), cred.gid(), g));
        if !ok {
            tracing::warn!("tail: refused a client with uid {} (root or tail.group only)", cred.uid());
        }
        ok
    });
    let svc = tail_server::TailServer::new(TailService { tx, replay });
    tokio::spawn(async move {
        if let Err(e) = tonic::transport::Server::builder().add_service(svc).serve_with_incoming(incoming).await {
            tracing::warn!("tail service stopped: {e}");
        }
    });
    Ok(())
}
