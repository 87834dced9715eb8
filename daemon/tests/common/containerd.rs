//! The private containerd (scripts/containerd-test-env.sh) and CRI helpers shared by the
//! container scenario tests. One environment at a time: a mutex within a test binary and an
//! flock across binaries (and across checkouts on the same machine).
use std::{fs::File, os::fd::AsRawFd, path::PathBuf, process::Command};

use k8s_cri::v1::{runtime_service_client::RuntimeServiceClient, *};
use serde_json::Value;
use tonic::transport::{Channel, Endpoint};

use super::Daemon;

pub fn env_script() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/containerd-test-env.sh"))
}

static ENV_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
const MACHINE_LOCK: &str = "/run/podtrail-test.lock";

pub struct Env {
    pub socket: String,
    _machine_lock: File,
    _lock: std::sync::MutexGuard<'static, ()>,
}

impl Env {
    pub fn up() -> Env {
        let lock = ENV_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let file = File::create(MACHINE_LOCK).expect("create the test env lock file");
        // SAFETY: flock on an fd we own; released when `file` is closed (Env dropped).
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(rc, 0, "flock {MACHINE_LOCK}");
        let socket = run_script("up");
        assert!(socket.ends_with(".sock"), "no socket path printed: {socket:?}");
        Env { socket, _machine_lock: file, _lock: lock }
    }

    /// Stops containerd only (shims and containers keep running), as a node upgrade does.
    pub fn stop_daemon(&self) {
        run_script("stop-daemon");
    }

    /// Starts containerd again and waits until its CRI server has recovered its state
    /// (until then every CRI call fails with "server is not initialized yet").
    pub fn start_daemon(&self) {
        run_script("start-daemon");
        let rt = tokio::runtime::Runtime::new().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        rt.block_on(async {
            loop {
                let mut c = client(&self.socket).await;
                match c.list_pod_sandbox(ListPodSandboxRequest::default()).await {
                    Ok(_) => return,
                    Err(e) if std::time::Instant::now() > deadline => panic!("CRI not ready after restart: {e}"),
                    Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
                }
            }
        });
    }

    /// `ctr` against our containerd, in the CRI namespace.
    pub fn ctr(&self, args: &[&str]) {
        let out = Command::new("ctr").args(["--address", &self.socket, "-n", "k8s.io"]).args(args).output().expect("run ctr");
        assert!(out.status.success(), "ctr {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

fn run_script(cmd: &str) -> String {
    let out = Command::new("bash").arg(env_script()).arg(cmd).output().expect("run env script");
    assert!(out.status.success(), "containerd-test-env.sh {cmd} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().trim().to_string()
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = Command::new("bash").arg(env_script()).arg("down").status();
    }
}

/// `ev` itself when `done(ev)`, else its `late` re-emit (the metadata or setns target was
/// not known yet when it happened: the issue allows either, never neither).
pub fn resolved(d: &Daemon, ev: &Value, done: impl Fn(&Value) -> bool) -> Value {
    if done(ev) {
        return ev.clone();
    }
    let seq = ev["seq"].clone();
    let late = d.wait_for("late re-emit", 15, |v| v["metadata"]["state"] == "late" && v["metadata"]["late_of"] == seq);
    assert!(done(&late), "late re-emit still incomplete: {late}");
    late
}

pub async fn client(socket: &str) -> RuntimeServiceClient<Channel> {
    let ch = Endpoint::from_shared(format!("unix://{socket}")).unwrap().connect().await.expect("connect CRI");
    RuntimeServiceClient::new(ch)
}

pub fn sandbox_config(name: &str, uid: &str) -> PodSandboxConfig {
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata { name: name.into(), uid: uid.into(), namespace: "podtrail".into(), attempt: 0 }),
        linux: Some(LinuxPodSandboxConfig {
            cgroup_parent: format!("/podtrail-test/pod-{uid}"),
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(kubelet_namespaces()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// What the kubelet asks for a pod without shareProcessNamespace: host network, and a pid
/// namespace per container (CRI's default, POD, would share the pause's).
fn kubelet_namespaces() -> NamespaceOption {
    NamespaceOption { network: NamespaceMode::Node as i32, pid: NamespaceMode::Container as i32, ..Default::default() }
}

/// A busybox container config running `cmd`.
pub fn busybox(name: &str, attempt: u32, cmd: &[&str]) -> ContainerConfig {
    ContainerConfig {
        metadata: Some(ContainerMetadata { name: name.into(), attempt }),
        image: Some(ImageSpec { image: "podtrail.local/busybox:1".into(), ..Default::default() }),
        command: cmd.iter().map(|a| a.to_string()).collect(),
        linux: Some(LinuxContainerConfig {
            security_context: Some(LinuxContainerSecurityContext {
                namespace_options: Some(kubelet_namespaces()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A host-network pod sandbox under /podtrail-test (the env script removes it).
pub async fn run_sandbox(c: &mut RuntimeServiceClient<Channel>, pod: &str, uid: &str) -> String {
    c.run_pod_sandbox(RunPodSandboxRequest { config: Some(sandbox_config(pod, uid)), runtime_handler: String::new() })
        .await
        .expect("RunPodSandbox")
        .into_inner()
        .pod_sandbox_id
}

/// Creates and starts a container in `sandbox`; returns its id.
pub async fn start_container(c: &mut RuntimeServiceClient<Channel>, sandbox: &str, pod: &str, uid: &str, cc: ContainerConfig) -> String {
    let cid = c
        .create_container(CreateContainerRequest {
            pod_sandbox_id: sandbox.to_string(),
            config: Some(cc),
            sandbox_config: Some(sandbox_config(pod, uid)),
        })
        .await
        .expect("CreateContainer")
        .into_inner()
        .container_id;
    c.start_container(StartContainerRequest { container_id: cid.clone() }).await.expect("StartContainer");
    cid
}

/// A pod with one busybox container running `cmd`. Returns (sandbox id, container id).
pub async fn run_pod(c: &mut RuntimeServiceClient<Channel>, pod: &str, uid: &str, container: &str, cmd: &[&str]) -> (String, String) {
    let sandbox = run_sandbox(c, pod, uid).await;
    let cid = start_container(c, &sandbox, pod, uid, busybox(container, 0, cmd)).await;
    (sandbox, cid)
}

/// The container's init pid on the host (from ContainerStatus verbose info).
pub async fn container_pid(c: &mut RuntimeServiceClient<Channel>, cid: &str) -> u32 {
    let st = c
        .container_status(ContainerStatusRequest { container_id: cid.to_string(), verbose: true })
        .await
        .expect("ContainerStatus")
        .into_inner();
    let info: Value = serde_json::from_str(&st.info["info"]).expect("verbose info JSON");
    info["pid"].as_u64().expect("pid in info") as u32
}

/// Stops and removes a pod. containerd 1.6 sometimes fails the stop of a container whose
/// shim already went away with it ("ttrpc: closed"); it succeeds once its task state caught
/// up, as the kubelet's own retries rely on: retry a few times before failing the test.
pub async fn remove_pod(socket: &str, sandbox: String) {
    let mut c = client(socket).await;
    let mut last = None;
    for _ in 0..10 {
        let stop = c.stop_pod_sandbox(StopPodSandboxRequest { pod_sandbox_id: sandbox.clone() }).await;
        match stop {
            Ok(_) => {
                c.remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: sandbox }).await.expect("RemovePodSandbox");
                return;
            }
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    panic!("StopPodSandbox failed 10 times: {last:?}");
}
