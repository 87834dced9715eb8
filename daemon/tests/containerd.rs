//! A real container: a private containerd + runc (scripts/containerd-test-env.sh) driven
//! through CRI. The container's entrypoint exec must carry the container's cgroup2 id and
//! namespace inodes, and a `runc exec`-style entry (CRI ExecSync) must show setns into them.
mod common;

use std::process::Command;

use common::{containerd::*, *};
use k8s_cri::v1::*;

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
        let pid = container_pid(&mut c, &cid).await;
        (sandbox, cid, pid)
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

    // nsenter into the pod's IPC namespace alone (the mount namespace stays the host's):
    // still an entry into that container.
    let mut nsenter = Command::new("nsenter").args(["-t", &pid.to_string(), "-i", "/bin/true"]).spawn().unwrap();
    let ipid = nsenter.id();
    assert!(nsenter.wait().unwrap().success());
    let ipc = d.wait_for("nsenter -i setns", 15, |v| is_kind(v, "setns") && tgid(v) == ipid as u64);
    assert_eq!(ipc["ns_change"]["changed"], serde_json::json!(["ipc"]), "{ipc}");
    assert_eq!(ipc["ns"]["mnt"], ns_inode(std::process::id(), "mnt"), "mount namespace unchanged");
    assert_eq!(ipc["ns_change"]["target"]["container"], "sleeper", "{ipc}");
    assert_eq!(ipc["entry_path"], "nsenter", "{ipc}");
    let entered = d.wait_for("exec after nsenter -i", 15, |v| is_kind(v, "exec") && tgid(v) == ipid as u64 && v["exec"]["filename"] == "/bin/true");
    assert_eq!(entered["entry_path"], "nsenter", "{entered}");

    // An ephemeral debug container joining the sleeper's pid namespace (kubectl debug
    // --target=sleeper): its processes are `ephemeral`, naming the target container.
    let debug_pid = rt.block_on(async {
        let mut c = client(&env.socket).await;
        let mut cc = busybox("debugger", 0, &["/bin/sleep", "31"]);
        let ns = cc.linux.as_mut().and_then(|l| l.security_context.as_mut()).and_then(|s| s.namespace_options.as_mut()).unwrap();
        ns.pid = NamespaceMode::Target as i32;
        ns.target_id = cid.clone();
        let dcid = start_container(&mut c, &sandbox, "web", &uid, cc).await;
        container_pid(&mut c, &dcid).await
    });
    assert_eq!(ns_inode(debug_pid, "pid"), ns_inode(pid, "pid"), "the debugger shares the sleeper's pid namespace");
    let dexec = d.wait_for("debugger exec", 15, |v| is_kind(v, "exec") && tgid(v) == debug_pid as u64);
    let dexec = resolved(&d, &dexec, |v| v["metadata"]["container"].is_string());
    assert_eq!(dexec["metadata"]["container"], "debugger", "{dexec}");
    assert_eq!(dexec["metadata"]["ephemeral_of"], "sleeper", "{dexec}");
    assert_eq!(dexec["entry_path"], "ephemeral", "{dexec}");

    rt.block_on(remove_pod(&env.socket, sandbox));
    // runc init's Go threads exit at exec with the same tgid: wait for the leader itself.
    let exit = d.wait_for("container exit", 15, |v| is_kind(v, "exit") && v["process"]["pid"] == pid);
    assert_eq!(exit["exit"]["leader"], true);
    assert!(exit["exit"]["signal"].is_u64(), "stopped by a signal: {exit}");
    d.stop();
    drop(env);
}
