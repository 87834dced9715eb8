//! `podtrail doctor` on this node: every check, the CRI answer from a real containerd, the
//! live self-test, and failures that name their fix.
mod common;

use std::process::Command;

use common::{containerd::Env, *};
use serde_json::Value;

fn doctor(args: &[&str]) -> (bool, Value) {
    let out = Command::new(BIN).args(["doctor", "-o", "json"]).args(args).output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("doctor -o json printed no JSON ({e}): {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)));
    (out.status.success(), v)
}

fn find<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["checks"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap_or_else(|| panic!("no check {name}: {v}"))
}

#[test]
fn healthy_node_with_a_runtime_passes_every_check() {
    if !root_or_skip("healthy_node_with_a_runtime_passes_every_check") {
        return;
    }
    let env = Env::up();
    let (ok, v) = doctor(&["--cri-endpoint", &env.socket]);
    assert!(ok && v["ok"] == true, "{v:#}");
    for c in v["checks"].as_array().unwrap() {
        assert_eq!(c["status"], "ok", "every check passes here: {c}");
    }
    assert!(find(&v, "cri")["detail"].as_str().unwrap().contains("containerd"), "{v:#}");
    assert!(find(&v, "cgroups")["detail"].as_str().unwrap().contains("cgroup2 at"), "{v:#}");
    let tps = v["checks"].as_array().unwrap().iter().filter(|c| c["name"].as_str().unwrap().starts_with("tracepoint ")).count();
    assert_eq!(tps, 21, "one line per tracepoint the daemon attaches to");
    let st = find(&v, "self-test")["detail"].as_str().unwrap().to_string();
    assert!(st.starts_with("saw unshare, exec and exit of pid"), "{st}");
    drop(env);
}

#[test]
fn missing_btf_and_runtime_are_reported_with_fixes() {
    if !root_or_skip("missing_btf_and_runtime_are_reported_with_fixes") {
        return;
    }
    let (ok, v) = doctor(&["--btf", "/nonexistent/vmlinux", "--cri-endpoint", "/tmp/podtrail-no-runtime.sock"]);
    assert!(!ok && v["ok"] == false);
    let btf = find(&v, "btf");
    assert_eq!(btf["status"], "fail");
    assert!(btf["fix"].as_str().unwrap().contains("CONFIG_DEBUG_INFO_BTF"), "{btf}");
    let cri = find(&v, "cri");
    assert_eq!(cri["status"], "warn", "no runtime is a warning: the daemon still runs");
    assert!(cri["detail"].as_str().unwrap().contains("/tmp/podtrail-no-runtime.sock"), "{cri}");
    assert_eq!(find(&v, "self-test")["status"], "fail", "not run on a broken node");
}

#[test]
fn unprivileged_doctor_says_which_capabilities() {
    if !root_or_skip("unprivileged_doctor_says_which_capabilities") {
        return;
    }
    let out = Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups", BIN, "doctor"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let caps = text.lines().find(|l| l.contains("capabilities")).unwrap_or_else(|| panic!("{text}"));
    assert!(caps.starts_with("FAIL"), "{caps}");
    assert!(text.contains("fix: run as root, or grant CAP_BPF, CAP_PERFMON"), "{text}");
}
