//! The CRI sync task: list sandboxes and containers, map each container to its cgroup2 id,
//! and merge into the cache; on a timer and when a cgroup is created. Every call has a
//! timeout, failures are logged (once per distinct error) and retried with backoff.
use std::{
    collections::{BTreeMap, HashMap},
    os::unix::fs::MetadataExt,
    path::PathBuf,
    sync::{Arc, atomic::Ordering::Relaxed},
    time::Duration,
};

use k8s_cri::v1::{
    ContainerState, ContainerStatusRequest, VersionRequest,
    runtime_service_client::RuntimeServiceClient,
};
use tokio::sync::mpsc;
use tonic::transport::{Channel, Endpoint};

use super::{ContainerMeta, CriError, MetadataCache, lists::Lists};

pub struct SyncOptions {
    pub endpoint: String,
    pub resync: Duration,
    pub call_timeout: Duration,
    /// cgroup2 mount point, to turn cgroup paths into ids.
    pub unified: PathBuf,
    /// Ids of cgroups created since start, by path: for containers already gone.
    pub created: crate::enrich::CreatedCgroups,
    pub stats: Arc<super::CriStats>,
}

/// Largest CRI answer decoded (the kubelet's limit).
const MAX_CRI_MESSAGE: usize = 16 << 20;

/// Runs one call with the configured timeout; failures and timeouts are counted.
pub async fn timed<T>(
    o: &SyncOptions,
    call: &'static str,
    fut: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, CriError> {
    o.stats.calls.fetch_add(1, Relaxed);
    let t = std::time::Instant::now();
    let result = tokio::time::timeout(o.call_timeout, fut).await;
    let failure = match &result {
        Ok(Ok(_)) => None,
        Ok(Err(_)) => Some("error"),
        Err(_) => Some("timeout"),
    };
    o.stats.observe(call, t.elapsed(), failure);
    match result {
        Ok(Ok(r)) => Ok(r.into_inner()),
        Ok(Err(status)) => {
            o.stats.errors.fetch_add(1, Relaxed);
            Err(CriError::Call { endpoint: o.endpoint.clone(), call, status: Box::new(status) })
        }
        Err(_) => {
            o.stats.timeouts.fetch_add(1, Relaxed);
            Err(CriError::Timeout { endpoint: o.endpoint.clone(), call })
        }
    }
}

async fn connect(o: &SyncOptions) -> Result<RuntimeServiceClient<Channel>, CriError> {
    let ch = connect_channel(o).await?;
    // tonic's default 4 MiB limit is below one ListPodSandbox answer for 10k pods (6 MB in the
    // cache benchmark): the kubelet allows 16 MiB; so do we, for listings of many thousands.
    Ok(RuntimeServiceClient::new(ch).max_decoding_message_size(MAX_CRI_MESSAGE))
}

async fn connect_channel(o: &SyncOptions) -> Result<Channel, CriError> {
    let ep = Endpoint::from_shared(o.endpoint.clone())
        .map_err(|_| CriError::BadEndpoint(o.endpoint.clone()))?
        .connect_timeout(o.call_timeout);
    // A socket that accepts but never answers must not hold the sync task either.
    let t = std::time::Instant::now();
    let result = tokio::time::timeout(o.call_timeout, ep.connect()).await;
    // Connection attempts are CRI calls for the metrics too (an absent socket is an error).
    let failure = match &result {
        Ok(Ok(_)) => None,
        Ok(Err(_)) => Some("error"),
        Err(_) => Some("timeout"),
    };
    o.stats.observe("Connect", t.elapsed(), failure);
    let ch = match result {
        Ok(Ok(ch)) => ch,
        Ok(Err(source)) => {
            o.stats.errors.fetch_add(1, Relaxed);
            return Err(CriError::Connect { endpoint: o.endpoint.clone(), source });
        }
        Err(_) => {
            o.stats.timeouts.fetch_add(1, Relaxed);
            return Err(CriError::Timeout { endpoint: o.endpoint.clone(), call: "Connect" });
        }
    };
    o.stats.connects.fetch_add(1, Relaxed);
    Ok(ch)
}

/// The sync task's connection: the generated client for single-container calls, and the
/// lean listings (`lists.rs`) on the same channel.
struct SyncClient {
    rt: RuntimeServiceClient<Channel>,
    lists: Lists,
}

async fn connect_sync(o: &SyncOptions) -> Result<SyncClient, CriError> {
    let ch = connect_channel(o).await?;
    Ok(SyncClient {
        rt: RuntimeServiceClient::new(ch.clone()).max_decoding_message_size(MAX_CRI_MESSAGE),
        lists: Lists::new(ch, MAX_CRI_MESSAGE),
    })
}

/// What podtrail needs of ContainerStatus(verbose)'s `info`: the runtime's whole view of
/// the container (the OCI spec included, kilobytes each). Only these fields are built; the
/// rest is skipped while parsing instead of becoming a JSON tree per container.
#[derive(Default, serde::Deserialize)]
struct VerboseInfo {
    #[serde(default)]
    pid: Option<u64>,
    #[serde(default, rename = "runtimeSpec")]
    runtime_spec: Option<SpecPart>,
}

#[derive(Default, serde::Deserialize)]
struct SpecPart {
    #[serde(default)]
    linux: Option<SpecLinux>,
}

#[derive(Default, serde::Deserialize)]
struct SpecLinux {
    #[serde(default, rename = "cgroupsPath")]
    cgroups_path: Option<String>,
}

impl VerboseInfo {
    fn cgroups_path(&self) -> Option<&str> {
        self.runtime_spec.as_ref()?.linux.as_ref()?.cgroups_path.as_deref()
    }
}

/// Gives the heap pages freed by a listing back to the kernel. A sync of thousands of
/// containers decodes megabytes of transient protobuf and JSON; glibc keeps those pages
/// mapped, so without this the daemon's RSS would stay at the sync's peak.
fn release_freed_heap() {
    // SAFETY: malloc_trim only walks glibc's own free lists and madvises free pages away;
    // it takes the allocator's locks and is safe to call from any thread at any time.
    unsafe { libc::malloc_trim(0) };
}

/// cgroup2 id of a container: from the OCI spec's `cgroupsPath` (cgroupfs driver; the
/// directory if it still exists, else the id its `cgroup_mkdir` event reported) or, for a
/// running container, from `/proc/<pid>/cgroup`.
fn container_cgroup_id(o: &SyncOptions, info: &VerboseInfo, pid: u32) -> Option<u64> {
    let ino = |rel: &str| {
        std::fs::metadata(o.unified.join(rel.trim_start_matches('/')))
            .ok()
            .map(|m| m.ino())
    };
    if let Some(p) = info.cgroups_path()
        && p.starts_with('/')
    {
        if let Some(id) = ino(p) {
            return Some(id);
        }
        if let Some(id) = o.created.lock().ok().and_then(|m| m.get(p).copied()) {
            return Some(id);
        }
    }
    if pid == 0 {
        return None;
    }
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    text.lines().find_map(|l| l.strip_prefix("0::")).and_then(ino)
}

/// What one ContainerStatus call told us about a container, kept while the container stays
/// in the same state: a resync then asks only about new containers and those whose state
/// changed (one call per container per resync is 10k calls a minute on a 10k-container node).
struct Known {
    state: i32,
    cgroup_id: Option<u64>,
    owns_pid_ns: bool,
    /// Shared with the cache while nothing changes: a resync allocates nothing for it.
    meta: Arc<ContainerMeta>,
}

/// Container id -> what its last ContainerStatus said.
type StatusMemo = HashMap<String, Known>;

/// One full listing. Also says whether some container is still settling (created but not
/// running yet, or running without a pid): then the caller resyncs again soon.
async fn sync_once(
    o: &SyncOptions,
    SyncClient { rt: client, lists }: &mut SyncClient,
    memo: &mut StatusMemo,
) -> Result<(HashMap<u64, Arc<ContainerMeta>>, bool), CriError> {
    let version = timed(o, "Version", client.version(VersionRequest { version: "v1".into() })).await?;
    let sandboxes = timed(o, "ListPodSandbox", lists.pods()).await?;
    let pods: HashMap<String, _> = sandboxes
        .items
        .into_iter()
        .filter_map(|s| Some((s.id, s.metadata?)))
        .collect();
    let containers = timed(o, "ListContainers", lists.containers()).await?;
    // (container id, cgroup id, metadata, owns its pid namespace)
    let mut found: Vec<(String, Option<u64>, Arc<ContainerMeta>, bool)> = Vec::new();
    let mut settling = false;
    for c in containers.containers {
        if let Some(k) = memo.get(&c.id).filter(|k| k.state == c.state) {
            found.push((c.id, k.cgroup_id, k.meta.clone(), k.owns_pid_ns));
            continue;
        }
        let status = timed(
            o,
            "ContainerStatus",
            client.container_status(ContainerStatusRequest { container_id: c.id.clone(), verbose: true }),
        )
        .await?;
        let info: VerboseInfo = status
            .info
            .get("info")
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default();
        let pid = info.pid.unwrap_or(0) as u32;
        let state = ContainerState::try_from(c.state).unwrap_or(ContainerState::ContainerUnknown);
        let unsettled = state == ContainerState::ContainerCreated
            || (state == ContainerState::ContainerRunning && pid == 0);
        settling |= unsettled;
        let cgroup_id = container_cgroup_id(o, &info, pid);
        let pod = pods.get(&c.pod_sandbox_id);
        let attempt = c.metadata.as_ref().map(|m| m.attempt).unwrap_or(0);
        let meta = Arc::new(ContainerMeta {
            namespace: pod.map(|p| p.namespace.clone()).unwrap_or_default(),
            pod: pod.map(|p| p.name.clone()).unwrap_or_default(),
            pod_uid: pod.map(|p| p.uid.clone()).unwrap_or_default(),
            container: c.metadata.map(|m| m.name).unwrap_or_default(),
            container_id: c.id.clone(),
            image: c
                .image
                .map(|i| i.image)
                .filter(|i| !i.is_empty())
                .unwrap_or(c.image_ref),
            runtime: version.runtime_name.clone(),
            pid,
            attempt,
            labels: c.labels.into_iter().collect::<BTreeMap<_, _>>(),
            ns: if pid != 0 { super::ns_inodes(pid) } else { Default::default() },
            ephemeral_of: None,
        });
        let owns_pid_ns = pid != 0 && ns_pid_of(pid) == Some(1);
        // A settling container is asked again (its pid and namespaces are still to come).
        if unsettled {
            memo.remove(&c.id);
        } else {
            let known = Known {
                state: c.state,
                cgroup_id,
                owns_pid_ns,
                meta: meta.clone(),
            };
            memo.insert(c.id.clone(), known);
        }
        found.push((c.id, cgroup_id, meta, owns_pid_ns));
    }
    mark_ephemeral(&mut found);
    // Only listed containers stay in the memo, with their final metadata (`ephemeral_of`).
    let mut next = StatusMemo::with_capacity(found.len());
    let mut out = HashMap::with_capacity(found.len());
    for (id, cgroup_id, meta, _) in found {
        if let Some(mut k) = memo.remove(&id) {
            k.meta = meta.clone();
            next.insert(id, k);
        }
        if let Some(cg) = cgroup_id {
            out.insert(cg, meta);
        }
    }
    *memo = next;
    Ok((out, settling))
}

/// The pid of `pid` inside its own (deepest) pid namespace, from `/proc/<pid>/status`.
fn ns_pid_of(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("NSpid:"))?;
    line.split_whitespace().last()?.parse().ok()
}

/// An ephemeral (debug) container joins another container's pid namespace instead of owning
/// one: its init is not pid 1 there, and the pid-1 owner is a container of the same pod (a
/// pod-wide shared pid namespace is owned by the sandbox, which is not a container).
fn mark_ephemeral(found: &mut [(String, Option<u64>, Arc<ContainerMeta>, bool)]) {
    let owners: HashMap<(String, u32), String> = found
        .iter()
        .filter(|(_, _, m, owns)| *owns && m.ns.pid != 0)
        .map(|(_, _, m, _)| ((m.pod_uid.clone(), m.ns.pid), m.container.clone()))
        .collect();
    for (_, _, m, owns) in found.iter_mut() {
        if !*owns && m.pid != 0 && m.ns.pid != 0 {
            let of = owners.get(&(m.pod_uid.clone(), m.ns.pid)).cloned();
            if m.ephemeral_of != of {
                Arc::make_mut(m).ephemeral_of = of;
            }
        }
    }
}

/// A one-off CRI client (doctor, snapshot): every call bounded by `timeout`.
pub struct OneShot {
    pub o: SyncOptions,
    pub client: RuntimeServiceClient<Channel>,
}

impl OneShot {
    pub async fn connect(endpoint: &str, timeout: Duration) -> Result<Self, CriError> {
        let o = SyncOptions {
            endpoint: endpoint.to_string(),
            resync: timeout,
            call_timeout: timeout,
            unified: PathBuf::new(),
            created: Default::default(),
            stats: Default::default(),
        };
        let client = connect(&o).await?;
        Ok(OneShot { o, client })
    }
}

/// `<runtime> <version> (CRI <api version>)` from one Version call, for `podtrail doctor`.
pub async fn runtime_version(endpoint: &str, timeout: Duration) -> Result<String, CriError> {
    let mut c = OneShot::connect(endpoint, timeout).await?;
    let fut = c.client.version(VersionRequest { version: "v1".into() });
    let v = timed(&c.o, "Version", fut).await?;
    Ok(format!("{} {} (CRI {})", v.runtime_name, v.runtime_version, v.runtime_api_version))
}

/// Runs until the process exits. `created` carries cgroup-creation nudges from the event
/// path (sent with `try_send`, so the pipeline never waits on this task).
pub fn spawn_sync(o: SyncOptions, cache: MetadataCache, mut created: mpsc::Receiver<()>) {
    tokio::spawn(async move {
        let mut client = None;
        let mut last_error = String::new();
        let mut backoff = Duration::from_millis(500);
        // Quick resyncs while a container settles (created -> running), backing off so that
        // a container that never starts costs little.
        let mut settle = Duration::from_millis(200);
        let mut settling = false;
        let mut memo = StatusMemo::new();
        loop {
            if client.is_none() {
                match connect_sync(&o).await {
                    Ok(c) => client = Some(c),
                    Err(e) => report(&mut last_error, &e),
                }
            }
            if let Some(c) = client.as_mut() {
                match sync_once(&o, c, &mut memo).await {
                    Ok((fresh, unsettled)) => {
                        settling = unsettled;
                        if !last_error.is_empty() {
                            tracing::info!("CRI at {} answering again", o.endpoint);
                            last_error.clear();
                        }
                        backoff = Duration::from_millis(500);
                        o.stats.syncs.fetch_add(1, Relaxed);
                        cache.merge(fresh);
                        release_freed_heap();
                    }
                    Err(e) => {
                        report(&mut last_error, &e);
                        client = None;
                        memo.clear(); // a restarted runtime is asked about everything again
                    }
                }
            }
            let wait = match (client.is_some(), settling) {
                (true, true) => {
                    settle = (settle * 2).min(o.resync);
                    settle / 2
                }
                (true, false) => {
                    settle = Duration::from_millis(200);
                    o.resync
                }
                (false, _) => backoff,
            };
            backoff = (backoff * 2).min(Duration::from_secs(30));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                Some(()) = created.recv() => {
                    // A cgroup appeared: its container starts a moment later.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    while created.try_recv().is_ok() {}
                }
            }
        }
    });
}

fn report(last: &mut String, e: &CriError) {
    let msg = e.to_string();
    if *last != msg {
        tracing::warn!("{msg}; retrying with backoff (known containers keep their metadata; new ones stay pending)");
        *last = msg;
    }
}
