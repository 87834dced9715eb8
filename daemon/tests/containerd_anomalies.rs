//! Anomaly rules driven by real containers (private containerd + runc): entering a
//! container, a shell in an image without one, a container created but never started, and
//! a missing entrypoint binary. (OOM, crash loop and frozen-too-long are asserted in
//! containerd_lifecycle.rs, next to the scenarios that cause them.)
mod common;

use std::process::{Command, Stdio};

use common::{containerd::*, tail::Tail, *};
use k8s_cri::v1::*;
use serde_json::Value;

fn anomaly<'a>(rule: &'a str) -> impl Fn(&Value) -> bool + 'a {
    move |v: &Value| is_kind(v, "anomaly") && v["anomaly"]["rule"] == rule
}

fn own_comm() -> String {
    std::fs::read_to_string("/proc/self/comm").unwrap().trim().to_string()
}

#[test]
fn entering_a_container_and_a_shell_in_a_distroless_image() {
    if !root_or_skip("entering_a_container_and_a_shell_in_a_distroless_image") {
        return;
    }
    let env = Env::up();
    let d = Daemon::start(&["--cri-endpoint", &env.socket]);
    // What an SRE would run: `podtrail tail --anomalies -o json`, filtered to the pod.
    let tail = Tail::start(&d.tail_socket, &["--anomalies", "--pod", "shop"]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let uid = format!("dl-{}", std::process::id());
    let (sandbox, cid, pid) = rt.block_on(async {
        let mut c = client(&env.socket).await;
        let sandbox = run_sandbox(&mut c, "shop", &uid).await;
        let mut cc = busybox("api", 0, &[]);
        cc.image = Some(ImageSpec { image: "podtrail.local/distroless:1".into(), ..Default::default() });
        let cid = start_container(&mut c, &sandbox, "shop", &uid, cc).await;
        let pid = container_pid(&mut c, &cid).await;
        (sandbox, cid, pid)
    });
    d.wait_for("distroless entrypoint", 15, |v| is_kind(v, "exec") && tgid(v) == pid as u64 && v["exec"]["args"][1] == "sleep");
    assert!(d.all(anomaly("shell_in_container")).is_empty(), "its own entrypoint is not an anomaly");

    // kubectl exec -- /busybox sh -c ...: a shell in an image that has none on its paths.
    rt.block_on(async {
        let mut c = client(&env.socket).await;
        let cmd = ["/busybox", "sh", "-c", "/busybox true"].map(String::from).to_vec();
        let r = c.exec_sync(ExecSyncRequest { container_id: cid.clone(), cmd, timeout: 10 }).await.expect("ExecSync");
        assert_eq!(r.into_inner().exit_code, 0);
    });
    let shell = d.wait_for("shell anomaly", 15, anomaly("shell_in_container"));
    assert_eq!(shell["anomaly"]["severity"], "warning");
    assert_eq!(shell["metadata"]["container"], "api", "{shell}");
    assert_eq!(shell["metadata"]["image"], "podtrail.local/distroless:1");
    let summary = shell["anomaly"]["summary"].as_str().unwrap();
    assert!(summary.starts_with("sh ran in podtrail/shop/api"), "{summary}");
    assert!(summary.contains("[runtime_exec]"), "{summary}");
    let related = d.wait_for("the exec it points at", 5, |v| v["seq"] == shell["anomaly"]["related_seq"]);
    assert_eq!(related["exec"]["args"][1], "sh");
    // The same ExecSync also entered the container: a runtime exec.
    let entered = d.wait_for("runtime exec entry", 15, |v| anomaly("container_entered")(v) && v["anomaly"]["summary"].as_str().unwrap().contains("runtime exec"));
    assert_eq!(entered["metadata"]["container"], "api", "{entered}");

    // nsenter from the host: who, into what, from which parent.
    // -i: the pod has its own IPC namespace (a host-network pod shares the host UTS one).
    let mut ns = Command::new("nsenter").args(["-t", &pid.to_string(), "-m", "-i", "/busybox", "true"]).spawn().unwrap();
    let npid = ns.id();
    assert!(ns.wait().unwrap().success());
    let entry = d.wait_for("nsenter entry", 15, |v| anomaly("container_entered")(v) && tgid(v) == npid as u64);
    assert_eq!(entry["metadata"]["container"], "api", "{entry}");
    assert_eq!(entry["process"]["comm"], "nsenter");
    let summary = entry["anomaly"]["summary"].as_str().unwrap();
    assert!(summary.contains(&format!("nsenter(pid {npid}, uid 0) entered mnt+ipc of podtrail/shop/api via nsenter from the host")), "{summary}");
    // The test process started nsenter: its parent chain comes from /proc.
    assert!(summary.contains(&format!("parents: {}(", own_comm())), "{summary}");
    assert_eq!(d.all(|v| anomaly("container_entered")(v) && tgid(v) == npid as u64).len(), 1, "one anomaly per session, not per setns");
    // The tail client showed the same anomalies, and nothing else.
    for a in [&shell, &entered, &entry] {
        let seen = tail.wait_for("the anomaly through tail", |v| v["seq"] == a["seq"]);
        assert_eq!(&seen, a);
    }
    assert!(tail.all().iter().all(|v| is_kind(v, "anomaly") && v["metadata"]["pod"] == "shop"), "{:?}", tail.all());

    rt.block_on(remove_pod(&env.socket, sandbox));
    d.stop();
    drop(env);
}

#[test]
fn created_never_started_and_missing_entrypoint() {
    if !root_or_skip("created_never_started_and_missing_entrypoint") {
        return;
    }
    let env = Env::up();
    let cfg = TempConfig::new("[anomalies]\nrunc_init_stuck_ms = 1500\n");
    let d = Daemon::start(&["--cri-endpoint", &env.socket, "--config", cfg.arg()]);
    let tail = Tail::start(&d.tail_socket, &["--anomalies"]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let uid = format!("stuck-{}", std::process::id());
    let sandbox = rt.block_on(async {
        let mut c = client(&env.socket).await;
        run_sandbox(&mut c, "limbo", &uid).await
    });
    // CRI's CreateContainer makes no runc process; `runc create` does: its init waits on
    // the exec FIFO until `runc start`, which never comes here.
    let bundle = RuncBundle::create(&format!("limbo-{}", std::process::id()));
    let stuck = d.wait_for("runc init stuck", 20, anomaly("runc_init_stuck"));
    assert!(stuck["process"]["comm"].as_str().unwrap().starts_with("runc:[2:INIT]"), "{stuck}");
    assert_eq!(stuck["process"]["tgid"], bundle.init_pid(), "{stuck}");
    let summary = stuck["anomaly"]["summary"].as_str().unwrap();
    assert!(summary.contains("without exec'ing the entrypoint"), "{summary}");
    assert_eq!(d.all(anomaly("runc_init_stuck")).len(), 1, "reported once");
    drop(bundle);

    // A container whose entrypoint does not exist: StartContainer fails (RunContainerError).
    let failed_start = rt.block_on(async {
        let mut c = client(&env.socket).await;
        let cc = busybox("broken", 0, &["/no/such/binary"]);
        let cid = c
            .create_container(CreateContainerRequest { pod_sandbox_id: sandbox.clone(), config: Some(cc), sandbox_config: Some(sandbox_config("limbo", &uid)) })
            .await
            .expect("CreateContainer")
            .into_inner()
            .container_id;
        c.start_container(StartContainerRequest { container_id: cid }).await.err()
    });
    let err = failed_start.expect("StartContainer of a missing binary must fail");
    eprintln!("StartContainer error, as the kubelet sees it: {}", err.message());
    let failed = d.wait_for("entrypoint failed", 20, anomaly("entrypoint_failed"));
    assert_eq!(failed["anomaly"]["severity"], "critical");
    let summary = failed["anomaly"]["summary"].as_str().unwrap();
    assert!(summary.contains("entrypoint of"), "{summary}");
    for a in [&stuck, &failed] {
        assert_eq!(&tail.wait_for("the anomaly through tail", |v| v["seq"] == a["seq"]), a);
    }
    rt.block_on(remove_pod(&env.socket, sandbox));
    d.stop();
    drop(env);
}

/// A container made with `runc create` only (own runc root and cgroup), deleted on drop.
struct RuncBundle {
    dir: std::path::PathBuf,
    id: String,
}

impl RuncBundle {
    fn create(id: &str) -> RuncBundle {
        let dir = std::env::temp_dir().join(format!("podtrail-bundle-{id}"));
        let _ = std::fs::remove_dir_all(&dir);
        let rootfs = dir.join("rootfs");
        for sub in ["bin", "proc", "sys", "dev", "tmp"] {
            std::fs::create_dir_all(rootfs.join(sub)).unwrap();
        }
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).expect("busybox-static (installed by the env script)");
        let ok = Command::new("runc").arg("spec").current_dir(&dir).status().unwrap();
        assert!(ok.success(), "runc spec");
        let path = dir.join("config.json");
        let mut spec: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        spec["process"]["terminal"] = Value::Bool(false);
        spec["process"]["args"] = serde_json::json!(["/bin/busybox", "sleep", "60"]);
        spec["linux"]["cgroupsPath"] = Value::String(format!("/podtrail-test/{id}"));
        std::fs::write(&path, serde_json::to_string(&spec).unwrap()).unwrap();
        let b = RuncBundle { dir, id: id.to_string() };
        let ok = b.runc(&["create", "--bundle", b.dir.to_str().unwrap(), "--pid-file", b.dir.join("pid").to_str().unwrap(), id]);
        let log = std::fs::read_to_string(b.dir.join("runc.log")).unwrap_or_default();
        assert!(ok, "runc create: {log}");
        b
    }

    /// The init `runc create` leaves behind inherits stdio: a log file, never a pipe that
    /// would stay open while it waits.
    fn runc(&self, args: &[&str]) -> bool {
        let log = std::fs::File::create(self.dir.join("runc.log")).unwrap();
        Command::new("runc")
            .arg("--root")
            .arg(self.dir.join("state"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .status()
            .is_ok_and(|s| s.success())
    }

    fn init_pid(&self) -> u64 {
        std::fs::read_to_string(self.dir.join("pid")).unwrap().trim().parse().unwrap()
    }
}

impl Drop for RuncBundle {
    fn drop(&mut self) {
        let _ = self.runc(&["delete", "--force", &self.id]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
