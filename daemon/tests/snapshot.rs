//! `podtrail snapshot` of a real container: the bundle has every layer, and secrets planted
//! in the environment, the command line and a mounted secret never appear anywhere in it.
mod common;

use std::{io::Read, process::Command};

use common::{containerd::*, *};
use k8s_cri::v1::*;

fn untar(path: &std::path::Path) -> Vec<(String, String)> {
    let gz = flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap());
    let mut ar = tar::Archive::new(gz);
    let mut out = Vec::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().display().to_string();
        let mut text = String::new();
        e.read_to_string(&mut text).unwrap();
        out.push((name, text));
    }
    out
}

#[test]
fn snapshot_has_every_layer_and_no_secret() {
    if !root_or_skip("snapshot_has_every_layer_and_no_secret") {
        return;
    }
    let env = Env::up();
    let tag = format!("planted{}", std::process::id());
    let secret_dir = std::env::temp_dir().join(format!("podtrail-secret-{}", std::process::id()));
    std::fs::create_dir_all(&secret_dir).unwrap();
    std::fs::write(secret_dir.join("token"), format!("{tag}-file")).unwrap();
    // A daemon keeps the node's timeline while the container runs.
    let store = temp_timeline("snapshot");
    let d = Daemon::start(&["--cri-endpoint", &env.socket, "--timeline-path", store.to_str().unwrap()]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let uid = format!("snap-{}", std::process::id());
    let (sandbox, cid) = rt.block_on(async {
        let mut c = client(&env.socket).await;
        let sandbox = run_sandbox(&mut c, "vault", &uid).await;
        let script = "sleep 60";
        let mut cc = busybox("keeper", 0, &["/bin/sh", "-c", script, "sh", "--password", &format!("{tag}-arg")]);
        cc.envs = vec![
            KeyValue { key: "DB_PASSWORD".into(), value: format!("{tag}-env") },
            KeyValue { key: "GREETING".into(), value: format!("{tag}-plain") },
        ];
        cc.mounts = vec![Mount {
            container_path: "/var/run/secrets/kubernetes.io/serviceaccount".into(),
            host_path: secret_dir.display().to_string(),
            readonly: true,
            ..Default::default()
        }];
        let cid = start_container(&mut c, &sandbox, "vault", &uid, cc).await;
        (sandbox, cid)
    });
    d.wait_for("keeper's sleep", 15, |v| is_kind(v, "exec") && v["exec"]["args"][0] == "sleep" && v["metadata"]["container"] == "keeper");
    std::thread::sleep(std::time::Duration::from_millis(800)); // one timeline flush
    let cfg = TempConfig::new(&format!("[timeline]\npath = {:?}\n", store.display().to_string()));
    let out = std::env::temp_dir().join(format!("podtrail-snap-{}.tar.gz", std::process::id()));
    let run = Command::new(BIN)
        .args(["snapshot", "keeper", "--cri-endpoint", &env.socket, "--config", cfg.arg(), "-o"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let files = untar(&out);
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    for want in [
        "snapshot/manifest.json",
        "snapshot/containers/keeper/cri-status.json",
        "snapshot/containers/keeper/oci-config.json",
        "snapshot/pods/vault/cri-status.json",
        "snapshot/containers/keeper/cgroup2/cgroup.procs",
        "snapshot/containers/keeper/cgroup-v1/memory/memory.limit_in_bytes",
        "snapshot/containers/keeper/cgroup-v1/freezer/freezer.state",
        "snapshot/containers/keeper/namespaces.json",
        "snapshot/containers/keeper/processes.json",
        "snapshot/node/doctor.json",
        "snapshot/timeline/events.jsonl",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    let get = |n: &str| files.iter().find(|(x, _)| x == n).map(|(_, t)| t.clone()).unwrap();
    let manifest: serde_json::Value = serde_json::from_str(&get("snapshot/manifest.json")).unwrap();
    assert_eq!(manifest["containers"][0]["id"], cid.as_str());
    assert_eq!(manifest["files"].as_array().unwrap().len(), files.len() - 1, "the manifest lists every file");
    let procs: serde_json::Value = serde_json::from_str(&get("snapshot/containers/keeper/processes.json")).unwrap();
    assert!(procs.as_array().unwrap().iter().any(|p| p["comm"] == "sleep"), "{procs}");
    let story = get("snapshot/timeline/events.jsonl");
    assert!(story.lines().any(|l| l.contains("\"container\":\"keeper\"") && l.contains("\"kind\":\"exec\"")), "{story}");
    let oci = get("snapshot/containers/keeper/oci-config.json");
    assert!(oci.contains("DB_PASSWORD=***") && oci.contains("GREETING=***"), "env names kept, values masked");
    // The point: no planted value anywhere, in any file.
    for (name, text) in &files {
        assert!(!text.contains(&tag), "{name} leaks a planted secret:\n{text}");
        assert!(!text.contains(&secret_dir.display().to_string()), "{name} shows the secret mount's source:\n{text}");
    }
    rt.block_on(remove_pod(&env.socket, sandbox));
    d.stop();
    remove_store(&store);
    let _ = std::fs::remove_file(&out);
    let _ = std::fs::remove_dir_all(&secret_dir);
    drop(env);
}

#[test]
fn snapshot_of_nothing_names_what_exists() {
    if !root_or_skip("snapshot_of_nothing_names_what_exists") {
        return;
    }
    let env = Env::up();
    let run = Command::new(BIN).args(["snapshot", "no-such-thing", "--cri-endpoint", &env.socket]).output().unwrap();
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("no container or pod named \"no-such-thing\""), "{err}");
    drop(env);
}
