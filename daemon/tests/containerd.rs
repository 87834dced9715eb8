//! A real container: a private containerd + runc (scripts/containerd-test-env.sh) driven
//! through CRI. The container's entrypoint exec must carry the container's cgroup2 id and
//! namespace inodes, and a `runc exec`-style entry (CRI ExecSync) must show setns into them.
mod common;

use std::{path::PathBuf, process::Command};

use common::*;
use k8s_cri::v1::{runtime_service_client::RuntimeServiceClient, *};
use tonic::transport::{Channel, Endpoint};

fn env_script() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/containerd-test-env.sh"))
}

/// Tests here share one private containerd: run them one at a time.
static ENV_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

struct Env {
    socket: String,
    _lock: std::sync::MutexGuard<'static, ()>,
}

impl Env {
    fn up() -> Env {
        let lock = ENV_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let out = Command::new("bash").arg(env_script()).arg("up").output().expect("run env script");
        assert!(out.status.success(), "containerd-test-env.sh up failed: {}", String::from_utf8_lossy(&out.stderr));
        let socket = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().trim().to_string();
        assert!(socket.ends_with(".sock"), "no socket path printed: {socket:?}");
        Env { socket, _lock: lock }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = Command::new("bash").arg(env_script()).arg("down").status();
    }
}

/// `ev` itself when `done(ev)`, else its `late` re-emit (the metadata or setns target was
/// not known yet when it happened: the issue allows either, never neither).
fn resolved(d: &Daemon, ev: &serde_json::Value, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    if done(ev) {
        return ev.clone();
    }
    let seq = ev["seq"].clone();
    let late = d.wait_for("late re-emit", 15, |v| v["metadata"]["state"] == "late" && v["metadata"]["late_of"] == seq);
    assert!(done(&late), "late re-emit still incomplete: {late}");
    late
}

async fn client(socket: &str) -> RuntimeServiceClient<Channel> {
    let ch = Endpoint::from_shared(format!("unix://{socket}")).unwrap().connect().await.expect("connect CRI");
    RuntimeServiceClient::new(ch)
}

fn sandbox_config(name: &str, uid: &str) -> PodSandboxConfig {
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata { name: name.into(), uid: uid.into(), namespace: "podtrail".into(), attempt: 0 }),
        linux: Some(LinuxPodSandboxConfig {
            cgroup_parent: format!("/podtrail-test/pod-{uid}"),
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(NamespaceOption { network: NamespaceMode::Node as i32, ..Default::default() }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Runs a host-network pod with one busybox container running `cmd`, under
/// /podtrail-test (the env script removes it). Returns (sandbox id, container id).
async fn run_pod(c: &mut RuntimeServiceClient<Channel>, pod: &str, uid: &str, container: &str, cmd: &[&str]) -> (String, String) {
    let cfg = sandbox_config(pod, uid);
    let sandbox = c
        .run_pod_sandbox(RunPodSandboxRequest { config: Some(cfg.clone()), runtime_handler: String::new() })
        .await
        .expect("RunPodSandbox")
        .into_inner()
        .pod_sandbox_id;
    let cc = ContainerConfig {
        metadata: Some(ContainerMetadata { name: container.into(), attempt: 0 }),
        image: Some(ImageSpec { image: "podtrail.local/busybox:1".into(), ..Default::default() }),
        command: cmd.iter().map(|a| a.to_string()).collect(),
        ..Default::default()
    };
    let cid = c
        .create_container(CreateContainerRequest { pod_sandbox_id: sandbox.clone(), config: Some(cc), sandbox_config: Some(cfg) })
        .await
        .expect("CreateContainer")
        .into_inner()
        .container_id;
    c.start_container(StartContainerRequest { container_id: cid.clone() }).await.expect("StartContainer");
    (sandbox, cid)
}

async fn remove_pod(socket: &str, sandbox: String) {
    let mut c = client(socket).await;
    c.stop_pod_sandbox(StopPodSandboxRequest { pod_sandbox_id: sandbox.clone() }).await.expect("StopPodSandbox");
    c.remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: sandbox }).await.expect("RemovePodSandbox");
}

/// Issue scenario 4: a container that lives about 100 ms still ends up with complete
/// metadata, directly or through a `late` re-emit of its `pending` events.
#[test]
fn short_lived_container_gets_metadata() {
    if !root_or_skip("short_lived_container_gets_metadata") {
        return;
    }
    let env = Env::up();
    let d = Daemon::start(&["--cri-endpoint", &env.socket]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let uid = format!("blink-{}", std::process::id());
    let marker = format!("0.1{}", std::process::id() % 10); // unique argv to find our exec
    let (sandbox, _) = rt.block_on(async {
        let mut c = client(&env.socket).await;
        run_pod(&mut c, "blinker", &uid, "blink", &["/bin/sleep", &marker]).await
    });
    let exec = d.wait_for("short-lived exec", 15, |v| is_kind(v, "exec") && v["exec"]["args"][1] == marker.as_str());
    let exit = d.wait_for("short-lived exit", 15, |v| is_kind(v, "exit") && tgid(v) == tgid(&exec) && v["process"]["pid"] == exec["process"]["pid"]);
    assert_eq!(exit["exit"]["code"], 0);
    let seq = exec["seq"].as_u64().unwrap();
    let resolved = if exec["metadata"]["state"] == "complete" {
        exec.clone()
    } else {
        assert_eq!(exec["metadata"]["state"], "pending", "a new container's event is pending, not host: {exec}");
        d.wait_for("late re-emit", 15, |v| v["metadata"]["state"] == "late" && v["metadata"]["late_of"] == seq)
    };
    assert_eq!(resolved["metadata"]["container"], "blink", "{resolved}");
    assert_eq!(resolved["metadata"]["pod"], "blinker");
    assert_eq!(resolved["metadata"]["pod_uid"], uid.as_str());
    assert_eq!(resolved["exec"], exec["exec"], "the late copy is the same event");
    eprintln!("short-lived container exec resolved as {}", exec["metadata"]["state"]);
    rt.block_on(remove_pod(&env.socket, sandbox));
    d.stop();
    drop(env);
}

#[test]
fn container_entrypoint_and_exec_carry_container_identity() {
    if !root_or_skip("container_entrypoint_and_exec_carry_container_identity") {
        return;
    }
    let env = Env::up();
    let d = Daemon::start(&["--cri-endpoint", &env.socket]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let uid = format!("pt-{}", std::process::id());
    let (sandbox, cid, pid) = rt.block_on(async {
        let mut c = client(&env.socket).await;
        let (sandbox, cid) = run_pod(&mut c, "web", &uid, "sleeper", &["/bin/sleep", "30"]).await;
        let st = c
            .container_status(ContainerStatusRequest { container_id: cid.clone(), verbose: true })
            .await
            .expect("ContainerStatus")
            .into_inner();
        let info: serde_json::Value = serde_json::from_str(&st.info["info"]).expect("verbose info JSON");
        (sandbox, cid, info["pid"].as_u64().expect("pid in info") as u32)
    });

    let exec = d.wait_for("entrypoint exec", 15, |v| is_kind(v, "exec") && tgid(v) == pid as u64);
    // busybox applets exec /bin/sleep, which is a symlink to /bin/busybox.
    assert_eq!(exec["exec"]["filename"], "/bin/sleep", "{exec}");
    assert_eq!(exec["exec"]["args"], serde_json::json!(["/bin/sleep", "30"]));
    assert_eq!(exec["entry_path"], "entrypoint", "{exec}");
    let cg_dir = cgroup2_dir(pid);
    assert!(cg_dir.contains(&cid), "container cgroup {cg_dir} should name the container id");
    assert_eq!(exec["cgroup_id"], inode(&cg_dir), "entrypoint exec carries the container's cgroup2 id");
    for ns in ["mnt", "pid", "uts", "ipc"] {
        assert_eq!(exec["ns"][ns], ns_inode(pid, ns), "ns.{ns}: {exec}");
    }
    // Host network: same net ns as us.
    assert_eq!(exec["ns"]["net"], ns_inode(std::process::id(), "net"));

    // CRI ExecSync = runc exec: setns into the container's namespaces, then exec inside.
    rt.block_on(async {
        let mut c = client(&env.socket).await;
        let r = c
            .exec_sync(ExecSyncRequest { container_id: cid.clone(), cmd: vec!["/bin/true".into()], timeout: 10 })
            .await
            .expect("ExecSync")
            .into_inner();
        assert_eq!(r.exit_code, 0);
    });
    let inner = d.wait_for("exec /bin/true in container", 15, |v| {
        is_kind(v, "exec") && v["exec"]["filename"] == "/bin/true" && v["ns"]["mnt"] == ns_inode(pid, "mnt")
    });
    assert_eq!(inner["ns"]["pid"], ns_inode(pid, "pid"), "{inner}");
    // runc exec joins the container's cgroup before exec: CRI metadata names the container.
    let inner = resolved(&d, &inner, |v| v["metadata"]["container"].is_string());
    let m = &inner["metadata"];
    assert!(m["state"] == "complete" || m["state"] == "late", "{inner}");
    assert_eq!(inner["entry_path"], "runtime_exec", "{inner}");
    assert_eq!(m["namespace"], "podtrail");
    assert_eq!(m["pod"], "web");
    assert_eq!(m["pod_uid"], uid.as_str());
    assert_eq!(m["container"], "sleeper");
    assert_eq!(m["container_id"], cid.as_str());
    assert_eq!(m["image"], "podtrail.local/busybox:1");
    assert_eq!(m["runtime"], "containerd");
    // The init pid is known once CRI reports the container running (0 while created).
    assert!(m["pid"] == pid || m["pid"] == 0, "{inner}");
    // Host processes stay `host`.
    let own = d.wait_for("a host exec", 5, |v| is_kind(v, "exec") && v["cgroup_id"] == inode(&cgroup2_dir(std::process::id())));
    assert_eq!(own["metadata"], serde_json::json!({"state": "host"}));
    let entries = d.all(|v| is_kind(v, "setns") && v["ns"]["mnt"] == ns_inode(pid, "mnt") && v["ns_change"]["changed"].as_array().is_some_and(|c| c.iter().any(|x| x == "mnt")));
    assert!(!entries.is_empty(), "no setns into the container's mnt namespace was seen");
    // runc exec calls setns from the host cgroup: the target names the container anyway.
    for e in &entries {
        let e = resolved(&d, e, |v| v["ns_change"]["target"].is_object());
        assert_eq!(e["ns_change"]["target"]["container"], "sleeper", "setns target: {e}");
        assert_eq!(e["ns_change"]["target"]["pod"], "web");
    }

    // Issue scenario 3: nsenter from the host into the container's mnt+uts namespaces.
    let mut nsenter = Command::new("nsenter").args(["-t", &pid.to_string(), "-m", "-u", "/bin/true"]).spawn().unwrap();
    let npid = nsenter.id();
    assert!(nsenter.wait().unwrap().success());
    let entry = d.wait_for("nsenter setns with target", 15, |v| {
        is_kind(v, "setns") && tgid(v) == npid as u64 && v["ns_change"]["changed"].as_array().is_some_and(|c| c.iter().any(|x| x == "mnt"))
    });
    let entry = resolved(&d, &entry, |v| v["ns_change"]["target"].is_object());
    assert!(entry["metadata"]["container"].is_null(), "nsenter itself runs in the host cgroup: {entry}");
    assert_eq!(entry["ns_change"]["target"]["container"], "sleeper", "{entry}");
    assert_eq!(entry["ns_change"]["target"]["container_id"], cid.as_str());
    assert_eq!(entry["ns"]["mnt"], ns_inode(pid, "mnt"));
    assert_eq!(entry["entry_path"], "nsenter", "{entry}");
    let entered = d.wait_for("exec after nsenter", 15, |v| is_kind(v, "exec") && tgid(v) == npid as u64 && v["exec"]["filename"] == "/bin/true");
    assert_eq!(entered["entry_path"], "nsenter", "{entered}");

    rt.block_on(remove_pod(&env.socket, sandbox));
    // runc init's Go threads exit at exec with the same tgid: wait for the leader itself.
    let exit = d.wait_for("container exit", 15, |v| is_kind(v, "exit") && v["process"]["pid"] == pid);
    assert_eq!(exit["exit"]["leader"], true);
    assert!(exit["exit"]["signal"].is_u64(), "stopped by a signal: {exit}");
    d.stop();
    drop(env);
}
