//! A scripted CRI v1 RuntimeService for the cache scenario: N pods with one running
//! container each, answered from memory on a unix socket, on a tokio runtime of its own
//! thread. It serves what the daemon's sync task calls (Version, ListPodSandbox,
//! ListContainers, ContainerStatus verbose); every other RPC is `unimplemented`. Calls are
//! counted per kind, and each full listing the daemon makes (a "round", which starts with
//! its Version call) is timed from the server's side.
//!
//! The payloads are shaped like containerd 1.7's with kubelet-made pods: the labels and
//! annotations kubelet sets, and a verbose `info` holding the container config and OCI
//! runtime spec (a few KiB per container), since the daemon parses that JSON for every
//! container it asks about.
use std::{
    collections::HashMap,
    os::unix::net::UnixListener,
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use anyhow::Context;
use k8s_cri::v1::{
    self as cri,
    runtime_service_server::{RuntimeService, RuntimeServiceServer},
};
use prost::Message;
use serde_json::json;
use tokio::sync::oneshot;
use tonic::{Request, Response, Status};

pub const RUNTIME_NAME: &str = "podtrail-bench-cri";
/// Kinds of calls counted, in report order.
pub const CALLS: [&str; 5] = [
    "Version",
    "ListPodSandbox",
    "ListContainers",
    "ContainerStatus",
    "unimplemented",
];
const NS_BASE: i64 = 1_767_225_600_000_000_000; // 2026-01-01, CRI timestamps are in ns

/// One full listing as the server saw it.
#[derive(Clone, Copy, Debug)]
pub struct Round {
    pub start: Instant,
    /// When its last ListContainers or ContainerStatus was answered.
    pub end: Instant,
    /// ListContainers answered.
    pub listed: bool,
    pub statuses: usize,
    /// Every call of the round, from its Version on.
    pub calls: u64,
}

/// A listing with no call for this long is over: the daemon asks its ContainerStatus calls
/// back to back, and may ask none for containers it already knows.
const QUIET: Duration = Duration::from_millis(500);

impl Round {
    /// Listed, and asked the status of all `n` containers or has been quiet since (`now`).
    pub fn complete(&self, n: usize, now: Instant) -> bool {
        self.listed && (self.statuses >= n || now.saturating_duration_since(self.end) >= QUIET)
    }
}

#[derive(Default)]
struct Stats {
    calls: [AtomicU64; CALLS.len()],
    /// Time spent building ContainerStatus replies (to tell the server's cost from the daemon's).
    status_ns: AtomicU64,
    rounds: Mutex<Vec<Round>>,
}

impl Stats {
    fn count(&self, call: usize) {
        self.calls[call].fetch_add(1, Relaxed);
        let now = Instant::now();
        let Ok(mut rounds) = self.rounds.lock() else {
            return;
        };
        if call == 0 {
            rounds.push(Round {
                start: now,
                end: now,
                listed: false,
                statuses: 0,
                calls: 0,
            });
        }
        if let Some(r) = rounds.last_mut() {
            r.calls += 1;
            if call == 2 || call == 3 {
                r.end = now;
                r.listed |= call == 2;
                r.statuses += usize::from(call == 3);
            }
        }
    }
}

/// The scripted node: N sandboxes and containers, built once.
struct Script {
    pods: cri::ListPodSandboxResponse,
    containers: cri::ListContainersResponse,
    by_id: HashMap<String, usize>,
    /// `info["info"]` of each container's verbose status, serialized once up front (xtask's
    /// dependencies are unoptimized in the dev profile: serde_json would make the server,
    /// not the daemon, the slow side of every resync).
    infos: Vec<String>,
    stats: Arc<Stats>,
}

/// Sizes of what the daemon receives, for the report (protobuf-encoded bytes).
#[derive(Clone, Copy, Debug)]
pub struct PayloadSizes {
    pub list_pod_sandbox: usize,
    pub list_containers: usize,
    pub container_status: usize,
    pub info_json: usize,
}

/// The server; dropping it shuts it down.
pub struct FakeCri {
    stats: Arc<Stats>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    pub sizes: PayloadSizes,
}

impl FakeCri {
    /// Serves `n` containers on `socket`. Container i's OCI `cgroupsPath` is
    /// `/<cgroup_parent>/c<i>` (relative to the cgroup2 mount), and its init pid is `pid`:
    /// a live process, since a RUNNING container with pid 0 keeps the daemon in its
    /// quick "settling" resync mode, which no real runtime causes.
    pub fn start(
        socket: &Path,
        n: usize,
        cgroup_parent: &str,
        pid: u32,
    ) -> anyhow::Result<FakeCri> {
        let _ = std::fs::remove_file(socket);
        let listener =
            UnixListener::bind(socket).with_context(|| format!("binding {}", socket.display()))?;
        listener.set_nonblocking(true)?;
        let stats = Arc::new(Stats::default());
        let script = Script::new(n, cgroup_parent, pid, stats.clone());
        let sizes = script.sizes();
        let (tx, rx) = oneshot::channel();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = thread::Builder::new()
            .name("bench-cri".into())
            .spawn(move || {
                rt.block_on(async move {
                    let listener = match tokio::net::UnixListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => return eprintln!("bench CRI server: {e}"),
                    };
                    let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
                    let served = tonic::transport::Server::builder()
                        .add_service(RuntimeServiceServer::new(script))
                        .serve_with_incoming_shutdown(incoming, async {
                            let _ = rx.await;
                        })
                        .await;
                    if let Err(e) = served {
                        eprintln!("bench CRI server: {e}");
                    }
                });
            })?;
        Ok(FakeCri {
            stats,
            shutdown: Some(tx),
            thread: Some(thread),
            sizes,
        })
    }

    /// Calls so far, per kind of [`CALLS`].
    pub fn counts(&self) -> [u64; CALLS.len()] {
        std::array::from_fn(|i| self.stats.calls[i].load(Relaxed))
    }

    /// Total time spent building ContainerStatus replies so far.
    pub fn status_busy(&self) -> Duration {
        Duration::from_nanos(self.stats.status_ns.load(Relaxed))
    }

    pub fn rounds(&self) -> Vec<Round> {
        self.stats
            .rounds
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }
}

impl Drop for FakeCri {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        // Graceful shutdown waits for open connections; the daemon is stopped before this,
        // but never hang the bench on it.
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.thread.as_ref().is_some_and(|t| !t.is_finished()) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        if let Some(t) = self.thread.take().filter(|t| t.is_finished()) {
            let _ = t.join();
        }
    }
}

/// Deterministic pseudo-random bits (splitmix64), so every run serves the same node.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// 64 hex digits, like a containerd id or an image digest.
fn hex64(kind: u64, i: usize) -> String {
    (0..4u64)
        .map(|k| format!("{:016x}", mix((kind << 56) ^ ((i as u64) << 2) ^ k)))
        .collect()
}

fn uuid(i: usize) -> String {
    let h = hex64(3, i);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// `n` lowercase alphanumerics, like a ReplicaSet hash or a pod name suffix.
fn alnum(seed: u64, n: usize) -> String {
    const A: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..n)
        .map(|k| A[(mix(seed.wrapping_add(k as u64)) % A.len() as u64) as usize] as char)
        .collect()
}

fn map(pairs: &[(&str, String)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

impl Script {
    /// Pods come in Deployments of 10 replicas spread over 25 namespaces.
    fn new(n: usize, cgroup_parent: &str, pid: u32, stats: Arc<Stats>) -> Script {
        let mut pods = Vec::with_capacity(n);
        let mut containers = Vec::with_capacity(n);
        for i in 0..n {
            let deploy = i / 10;
            let app = format!("svc-{deploy:04}");
            let namespace = format!("team-{:02}", deploy % 25);
            let template = alnum(deploy as u64, 10);
            let pod = format!("{app}-{template}-{}", alnum(1 << 40 | i as u64, 5));
            let uid = uuid(i);
            let (pod_id, id) = (hex64(1, i), hex64(2, i));
            let created = NS_BASE + i as i64 * 1_000_000;
            let kubelet = [
                ("io.kubernetes.pod.name", pod.clone()),
                ("io.kubernetes.pod.namespace", namespace.clone()),
                ("io.kubernetes.pod.uid", uid.clone()),
            ];
            let mut pod_labels = map(&[
                ("app", app.clone()),
                ("app.kubernetes.io/name", app.clone()),
                ("app.kubernetes.io/part-of", namespace.clone()),
                ("app.kubernetes.io/version", "1.4.2".into()),
                ("pod-template-hash", template),
                ("io.cri-containerd.kind", "sandbox".into()),
            ]);
            pod_labels.extend(map(&kubelet));
            pods.push(cri::PodSandbox {
                id: pod_id.clone(),
                metadata: Some(cri::PodSandboxMetadata {
                    name: pod.clone(),
                    uid,
                    namespace: namespace.clone(),
                    attempt: 0,
                }),
                state: cri::PodSandboxState::SandboxReady as i32,
                created_at: created,
                labels: pod_labels,
                annotations: map(&[
                    (
                        "kubernetes.io/config.seen",
                        "2026-01-01T00:00:00.000000000Z".into(),
                    ),
                    ("kubernetes.io/config.source", "api".into()),
                ]),
                runtime_handler: String::new(),
            });
            let mut labels = map(&kubelet);
            labels.insert("io.kubernetes.container.name".into(), "app".into());
            containers.push(cri::Container {
                id,
                pod_sandbox_id: pod_id,
                metadata: Some(cri::ContainerMetadata {
                    name: "app".into(),
                    attempt: 0,
                }),
                image: Some(cri::ImageSpec {
                    image: format!("registry.example.com/{namespace}/{app}:1.4.2"),
                    ..Default::default()
                }),
                image_ref: format!("sha256:{}", hex64(4, deploy)),
                state: cri::ContainerState::ContainerRunning as i32,
                created_at: created + 500_000_000,
                labels,
                annotations: map(&[
                    (
                        "io.kubernetes.container.hash",
                        format!("{:08x}", mix(deploy as u64) as u32),
                    ),
                    ("io.kubernetes.container.restartCount", "0".into()),
                    (
                        "io.kubernetes.container.terminationMessagePath",
                        "/dev/termination-log".into(),
                    ),
                    (
                        "io.kubernetes.container.terminationMessagePolicy",
                        "File".into(),
                    ),
                    ("io.kubernetes.pod.terminationGracePeriod", "30".into()),
                ]),
                image_id: String::new(),
            });
        }
        let by_id = containers
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id.clone(), i))
            .collect();
        let parent = cgroup_parent.trim_matches('/');
        let infos = containers
            .iter()
            .enumerate()
            .map(|(i, c)| verbose_info(c, i, pid, parent))
            .collect();
        Script {
            pods: cri::ListPodSandboxResponse { items: pods },
            containers: cri::ListContainersResponse { containers },
            by_id,
            infos,
            stats,
        }
    }

    fn sizes(&self) -> PayloadSizes {
        let status = (!self.containers.containers.is_empty()).then(|| self.status(0));
        PayloadSizes {
            list_pod_sandbox: self.pods.encoded_len(),
            list_containers: self.containers.encoded_len(),
            container_status: status.as_ref().map_or(0, |s| s.encoded_len()),
            info_json: status
                .as_ref()
                .and_then(|s| s.info.get("info"))
                .map_or(0, String::len),
        }
    }

    /// Container `i`'s verbose status.
    fn status(&self, i: usize) -> cri::ContainerStatusResponse {
        let c = &self.containers.containers[i];
        let l = |k: &str| c.labels.get(k).map_or("", String::as_str);
        let log_path = format!(
            "/var/log/pods/{}_{}_{}/app/0.log",
            l("io.kubernetes.pod.namespace"),
            l("io.kubernetes.pod.name"),
            l("io.kubernetes.pod.uid")
        );
        let status = cri::ContainerStatus {
            id: c.id.clone(),
            metadata: c.metadata.clone(),
            state: c.state,
            created_at: c.created_at,
            started_at: c.created_at + 200_000_000,
            image: c.image.clone(),
            image_ref: c.image_ref.clone(),
            labels: c.labels.clone(),
            annotations: c.annotations.clone(),
            log_path,
            ..Default::default()
        };
        cri::ContainerStatusResponse {
            status: Some(status),
            info: HashMap::from([("info".to_string(), self.infos[i].clone())]),
        }
    }
}

/// Container `i`'s `info["info"]`, mirroring containerd's (sandboxID, pid, snapshotter,
/// runtime, the CRI config and the OCI spec); the daemon reads `pid` and
/// `runtimeSpec.linux.cgroupsPath`.
fn verbose_info(c: &cri::Container, i: usize, pid: u32, cgroup_parent: &str) -> String {
    let l = |k: &str| c.labels.get(k).cloned().unwrap_or_default();
    let (pod, namespace, uid) = (
        l("io.kubernetes.pod.name"),
        l("io.kubernetes.pod.namespace"),
        l("io.kubernetes.pod.uid"),
    );
    let image = c
        .image
        .as_ref()
        .map(|i| i.image.clone())
        .unwrap_or_default();
    let sandbox = format!(
        "/run/containerd/io.containerd.grpc.v1.cri/sandboxes/{}",
        c.pod_sandbox_id
    );
    let ns_path = |t: &str| format!("/proc/{}/ns/{t}", 1000 + i);
    let env: Vec<String> = [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
        format!("HOSTNAME={pod}"),
        "LOG_LEVEL=info".into(),
        "HTTP_PORT=8080".into(),
        "KUBERNETES_SERVICE_HOST=10.96.0.1".into(),
        "KUBERNETES_SERVICE_PORT=443".into(),
        "KUBERNETES_SERVICE_PORT_HTTPS=443".into(),
        "KUBERNETES_PORT=tcp://10.96.0.1:443".into(),
        "KUBERNETES_PORT_443_TCP=tcp://10.96.0.1:443".into(),
        "KUBERNETES_PORT_443_TCP_PROTO=tcp".into(),
        "KUBERNETES_PORT_443_TCP_PORT=443".into(),
        "KUBERNETES_PORT_443_TCP_ADDR=10.96.0.1".into(),
    ]
    .into();
    let caps = [
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_FSETID",
        "CAP_FOWNER",
        "CAP_MKNOD",
        "CAP_NET_RAW",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETFCAP",
        "CAP_SETPCAP",
        "CAP_NET_BIND_SERVICE",
        "CAP_SYS_CHROOT",
        "CAP_KILL",
        "CAP_AUDIT_WRITE",
    ];
    let mount = |dst: &str, typ: &str, src: &str, opts: &[&str]| json!({"destination": dst, "type": typ, "source": src, "options": opts});
    let mounts = [
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        ),
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", "ro"],
        ),
        mount(
            "/etc/hosts",
            "bind",
            &format!("/var/lib/kubelet/pods/{uid}/etc-hosts"),
            &["rbind", "rprivate", "rw"],
        ),
        mount(
            "/dev/termination-log",
            "bind",
            &format!("/var/lib/kubelet/pods/{uid}/containers/app/{:08x}", i),
            &["rbind", "rprivate", "rw"],
        ),
        mount(
            "/etc/hostname",
            "bind",
            &format!("{sandbox}/hostname"),
            &["rbind", "rprivate", "rw"],
        ),
        mount(
            "/etc/resolv.conf",
            "bind",
            &format!("{sandbox}/resolv.conf"),
            &["rbind", "rprivate", "rw"],
        ),
        mount(
            "/dev/shm",
            "bind",
            &format!(
                "/run/containerd/io.containerd.grpc.v1.cri/sandboxes/{}/shm",
                c.pod_sandbox_id
            ),
            &["rbind", "rprivate", "rw"],
        ),
        mount(
            "/var/run/secrets/kubernetes.io/serviceaccount",
            "bind",
            &format!(
                "/var/lib/kubelet/pods/{uid}/volumes/kubernetes.io~projected/kube-api-access-{}",
                alnum(i as u64, 5)
            ),
            &["rbind", "rprivate", "ro"],
        ),
    ];
    let info = json!({
        "sandboxID": c.pod_sandbox_id,
        "pid": pid,
        "removing": false,
        "snapshotKey": c.id,
        "snapshotter": "overlayfs",
        "runtimeType": "io.containerd.runc.v2",
        "runtimeOptions": {"systemd_cgroup": false},
        "config": {
            "metadata": {"name": "app"},
            "image": {"image": c.image_ref},
            "envs": env.iter().skip(2).map(|e| { let (k, v) = e.split_once('=').unwrap_or((e, "")); json!({"key": k, "value": v}) }).collect::<Vec<_>>(),
            "mounts": [
                {"container_path": "/var/run/secrets/kubernetes.io/serviceaccount", "host_path": format!("/var/lib/kubelet/pods/{uid}/volumes/kubernetes.io~projected/kube-api-access"), "readonly": true},
                {"container_path": "/etc/hosts", "host_path": format!("/var/lib/kubelet/pods/{uid}/etc-hosts")},
                {"container_path": "/dev/termination-log", "host_path": format!("/var/lib/kubelet/pods/{uid}/containers/app/{:08x}", i)},
            ],
            "labels": c.labels,
            "annotations": c.annotations,
            "log_path": "app/0.log",
            "linux": {"resources": {"cpu_period": 100000, "cpu_quota": 50000, "cpu_shares": 512, "memory_limit_in_bytes": 268435456, "oom_score_adj": 936},
                      "security_context": {"namespace_options": {"pid": 1}, "run_as_user": {"value": 1000}}},
        },
        "runtimeSpec": {
            "ociVersion": "1.1.0",
            "process": {
                "user": {"uid": 1000, "gid": 0, "additionalGids": [0]},
                "args": ["/app/server", "--port=8080", "--log-format=json"],
                "env": env,
                "cwd": "/app",
                "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
                "apparmorProfile": "cri-containerd.apparmor.d",
                "oomScoreAdj": 936,
            },
            "root": {"path": "rootfs"},
            "mounts": mounts,
            "annotations": {
                "io.kubernetes.cri.container-name": "app",
                "io.kubernetes.cri.container-type": "container",
                "io.kubernetes.cri.image-name": image,
                "io.kubernetes.cri.sandbox-id": c.pod_sandbox_id,
                "io.kubernetes.cri.sandbox-name": pod,
                "io.kubernetes.cri.sandbox-namespace": namespace,
                "io.kubernetes.cri.sandbox-uid": uid,
            },
            "linux": {
                "resources": {
                    "devices": [{"allow": false, "access": "rwm"}],
                    "memory": {"limit": 268435456, "swap": 268435456},
                    "cpu": {"shares": 512, "quota": 50000, "period": 100000},
                },
                "cgroupsPath": format!("/{cgroup_parent}/c{i}"),
                "namespaces": [
                    {"type": "pid"}, {"type": "ipc", "path": ns_path("ipc")}, {"type": "uts", "path": ns_path("uts")},
                    {"type": "mount"}, {"type": "network", "path": ns_path("net")},
                ],
                "maskedPaths": ["/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
                                "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap"],
                "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
            },
        },
    });
    info.to_string()
}

type Rpc<T> = Result<Response<T>, Status>;

/// Implements RuntimeService: the given methods, plus `unimplemented` for the listed ones
/// (the generated trait has no default bodies). Expanded before `async_trait` sees the impl.
macro_rules! runtime_service {
    ({ $($implemented:tt)* } unimplemented { $($name:ident($req:ident) -> $resp:ident;)* }) => {
        #[tonic::async_trait]
        impl RuntimeService for Script {
            $($implemented)*
            $(async fn $name(&self, _: Request<cri::$req>) -> Rpc<cri::$resp> {
                self.stats.count(4);
                Err(Status::unimplemented(concat!("the bench CRI server does not script ", stringify!($name))))
            })*
        }
    };
}

runtime_service!({
    type GetContainerEventsStream = tokio_stream::Empty<Result<cri::ContainerEventResponse, Status>>;

    async fn version(&self, _: Request<cri::VersionRequest>) -> Rpc<cri::VersionResponse> {
        self.stats.count(0);
        Ok(Response::new(cri::VersionResponse {
            version: "0.1.0".into(),
            runtime_name: RUNTIME_NAME.into(),
            runtime_version: env!("CARGO_PKG_VERSION").into(),
            runtime_api_version: "v1".into(),
        }))
    }

    async fn list_pod_sandbox(&self, _: Request<cri::ListPodSandboxRequest>) -> Rpc<cri::ListPodSandboxResponse> {
        self.stats.count(1);
        Ok(Response::new(self.pods.clone()))
    }

    async fn list_containers(&self, _: Request<cri::ListContainersRequest>) -> Rpc<cri::ListContainersResponse> {
        let r = Response::new(self.containers.clone());
        self.stats.count(2);
        Ok(r)
    }

    async fn container_status(&self, req: Request<cri::ContainerStatusRequest>) -> Rpc<cri::ContainerStatusResponse> {
        let id = req.into_inner().container_id;
        let i = *self.by_id.get(&id).ok_or_else(|| Status::not_found(format!("no container {id}")))?;
        let t = Instant::now();
        let r = Response::new(self.status(i));
        self.stats.status_ns.fetch_add(t.elapsed().as_nanos() as u64, Relaxed);
        self.stats.count(3);
        Ok(r)
    }

    async fn get_container_events(&self, _: Request<cri::GetEventsRequest>) -> Rpc<Self::GetContainerEventsStream> {
        self.stats.count(4);
        Err(Status::unimplemented("the bench CRI server does not script get_container_events"))
    }
} unimplemented {
    run_pod_sandbox(RunPodSandboxRequest) -> RunPodSandboxResponse;
    stop_pod_sandbox(StopPodSandboxRequest) -> StopPodSandboxResponse;
    remove_pod_sandbox(RemovePodSandboxRequest) -> RemovePodSandboxResponse;
    pod_sandbox_status(PodSandboxStatusRequest) -> PodSandboxStatusResponse;
    create_container(CreateContainerRequest) -> CreateContainerResponse;
    start_container(StartContainerRequest) -> StartContainerResponse;
    stop_container(StopContainerRequest) -> StopContainerResponse;
    remove_container(RemoveContainerRequest) -> RemoveContainerResponse;
    update_container_resources(UpdateContainerResourcesRequest) -> UpdateContainerResourcesResponse;
    reopen_container_log(ReopenContainerLogRequest) -> ReopenContainerLogResponse;
    exec_sync(ExecSyncRequest) -> ExecSyncResponse;
    exec(ExecRequest) -> ExecResponse;
    attach(AttachRequest) -> AttachResponse;
    port_forward(PortForwardRequest) -> PortForwardResponse;
    container_stats(ContainerStatsRequest) -> ContainerStatsResponse;
    list_container_stats(ListContainerStatsRequest) -> ListContainerStatsResponse;
    pod_sandbox_stats(PodSandboxStatsRequest) -> PodSandboxStatsResponse;
    list_pod_sandbox_stats(ListPodSandboxStatsRequest) -> ListPodSandboxStatsResponse;
    update_runtime_config(UpdateRuntimeConfigRequest) -> UpdateRuntimeConfigResponse;
    status(StatusRequest) -> StatusResponse;
    checkpoint_container(CheckpointContainerRequest) -> CheckpointContainerResponse;
    list_metric_descriptors(ListMetricDescriptorsRequest) -> ListMetricDescriptorsResponse;
    list_pod_sandbox_metrics(ListPodSandboxMetricsRequest) -> ListPodSandboxMetricsResponse;
    runtime_config(RuntimeConfigRequest) -> RuntimeConfigResponse;
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_container_points_at_its_own_cgroup_and_pod() {
        let s = Script::new(25, "/podtrail-bench-cache/", 42, Default::default());
        let pods: HashMap<_, _> = s.pods.items.iter().map(|p| (p.id.clone(), p)).collect();
        assert_eq!((pods.len(), s.by_id.len()), (25, 25), "ids are unique");
        for (i, c) in s.containers.containers.iter().enumerate() {
            let pod = pods[&c.pod_sandbox_id].metadata.as_ref().unwrap();
            assert_eq!(c.labels["io.kubernetes.pod.name"], pod.name);
            let info: serde_json::Value = serde_json::from_str(&s.status(i).info["info"]).unwrap();
            assert_eq!(info["pid"], 42);
            assert_eq!(
                info["runtimeSpec"]["linux"]["cgroupsPath"],
                format!("/podtrail-bench-cache/c{i}")
            );
        }
        assert!(
            s.sizes().info_json > 3000,
            "a containerd-sized verbose info"
        );
    }
}
