//! The deployment files say what the code does: the documented config is the default
//! config, the manifests validate against Kubernetes' schemas (PyPI kubernetes-validate,
//! offline), the systemd unit verifies, and the daemon works with exactly the capabilities
//! they grant.
mod common;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use common::*;
use podtrail::config::Config;

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every key path in a TOML table ("cri.endpoint", ...).
fn keys(t: &toml::Table, prefix: &str, out: &mut Vec<String>) {
    for (k, v) in t {
        let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        match v {
            toml::Value::Table(inner) => keys(inner, &path, out),
            _ => out.push(path),
        }
    }
}

#[test]
fn documented_config_is_the_default_and_lists_every_key() {
    let text = read("deploy/podtrail.toml");
    assert_eq!(Config::parse(&text).unwrap(), Config::default(), "deploy/podtrail.toml must state the defaults");
    let (mut documented, mut all) = (Vec::new(), Vec::new());
    keys(&toml::from_str(&text).unwrap(), "", &mut documented);
    keys(&toml::from_str(&toml::to_string(&Config::default()).unwrap()).unwrap(), "", &mut all);
    documented.sort();
    all.sort();
    assert_eq!(documented, all, "every config key is documented in deploy/podtrail.toml");
}

#[test]
fn configmap_carries_the_documented_config() {
    let cm = read("deploy/kubernetes/configmap.yaml");
    let body: String = cm
        .split("podtrail.toml: |\n")
        .nth(1)
        .expect("podtrail.toml key")
        .lines()
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    let cfg = Config::parse(&body).expect("the ConfigMap's config parses");
    let mut expected = Config::default();
    expected.metrics.listen = "0.0.0.0:9464".into();
    assert_eq!(cfg, expected, "only metrics.listen differs from the defaults");
}

/// A venv with kubernetes-validate, created once (PyPI is reachable; no cluster needed).
fn kubernetes_validate() -> PathBuf {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kubernetes-validate-venv");
    let bin = venv.join("bin/kubernetes-validate");
    if !bin.exists() {
        let ok = Command::new("python3").args(["-m", "venv"]).arg(&venv).status().unwrap();
        assert!(ok.success(), "python3 -m venv (bootstrap installs python3-venv)");
        let ok = Command::new(venv.join("bin/pip")).args(["install", "-q", "kubernetes-validate==1.37.0"]).status().unwrap();
        assert!(ok.success(), "pip install kubernetes-validate");
    }
    bin
}

#[test]
fn manifests_validate_against_kubernetes_schemas() {
    let dir = repo("deploy/kubernetes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(files.len() >= 5, "{files:?}");
    let out = Command::new(kubernetes_validate()).arg("--strict").args(&files).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    assert_eq!(text.matches(" passed for resource ").count(), files.len(), "{text}");
    // The validator is not a rubber stamp: a misspelled field fails.
    let bad = std::env::temp_dir().join(format!("podtrail-bad-{}.yaml", std::process::id()));
    std::fs::write(&bad, read("deploy/kubernetes/daemonset.yaml").replace("readOnlyRootFilesystem", "readOnlyRootFilesytem")).unwrap();
    let out = Command::new(kubernetes_validate()).arg("--strict").arg(&bad).output().unwrap();
    let _ = std::fs::remove_file(&bad);
    assert!(!out.status.success(), "a misspelled field must fail validation");
}

#[test]
fn systemd_unit_verifies() {
    let unit = read("deploy/systemd/podtrail.service");
    let dir = std::env::temp_dir().join(format!("podtrail-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("podtrail.service");
    // verify checks that ExecStart exists: point it at the binary under test.
    std::fs::write(&path, unit.replace("/usr/local/bin/podtrail", BIN)).unwrap();
    let out = Command::new("systemd-analyze").arg("verify").arg(&path).output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

/// The capabilities the DaemonSet adds, which the unit's bounding set must equal.
fn documented_caps() -> Vec<String> {
    let ds = read("deploy/kubernetes/daemonset.yaml");
    let line = ds.lines().find_map(|l| l.trim().strip_prefix("add: [")).expect("capabilities add: [...]");
    let mut caps: Vec<String> = line.trim_end_matches(']').split(',').map(|c| c.trim().to_lowercase()).collect();
    let unit = read("deploy/systemd/podtrail.service");
    let bounding = unit.lines().find_map(|l| l.strip_prefix("CapabilityBoundingSet=")).expect("CapabilityBoundingSet");
    let mut unit_caps: Vec<String> = bounding.split_whitespace().map(|c| c.trim_start_matches("CAP_").to_lowercase()).collect();
    caps.sort();
    unit_caps.sort();
    assert_eq!(caps, unit_caps, "DaemonSet and systemd unit grant the same capabilities");
    caps
}

#[test]
fn the_documented_capabilities_are_enough() {
    if !root_or_skip("the_documented_capabilities_are_enough") {
        return;
    }
    let caps = documented_caps();
    let bounding = format!("-all,{}", caps.iter().map(|c| format!("+{c}")).collect::<Vec<_>>().join(","));
    let env = containerd::Env::up();
    // Everything else dropped: doctor's checks and live self-test, with the runtime answering.
    let out = Command::new("setpriv")
        .args(["--bounding-set", &bounding, "--", BIN, "doctor", "-o", "json", "--cri-endpoint", &env.socket])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert!(out.status.success() && v["ok"] == true, "{v:#}\n{}", String::from_utf8_lossy(&out.stderr));
    let held = v["checks"].as_array().unwrap().iter().find(|c| c["name"] == "capabilities").unwrap()["detail"].to_string();
    assert!(!held.contains("CAP_SYS_ADMIN"), "really without CAP_SYS_ADMIN: {held}");
    drop(env);
}
