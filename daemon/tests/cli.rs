//! Bad input and bad environment: a clear message naming the problem, a non-zero exit, and
//! never a panic or backtrace.
mod common;

use std::process::{Command, Output};

use common::*;

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).env("RUST_BACKTRACE", "1").output().expect("run podtrail")
}

fn assert_clean_failure(out: &Output, must_contain: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected failure, got success: {stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("stack backtrace"), "panic: {stderr}");
    for s in must_contain {
        assert!(stderr.contains(s), "stderr lacks {s:?}: {stderr}");
    }
}

#[test]
fn unknown_flag_is_rejected() {
    let out = run(&["run", "--no-such-flag"]);
    assert_clean_failure(&out, &["--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn bad_output_format_is_rejected() {
    assert_clean_failure(&run(&["run", "-o", "yaml"]), &["yaml", "json", "text"]);
}

#[test]
fn config_unknown_key_names_key_and_line() {
    let path = std::env::temp_dir().join(format!("podtrail-badcfg-{}.toml", std::process::id()));
    std::fs::write(&path, "[ringbuf]\nsize_bytes = 65536\nwakeup_byte = 10\n").unwrap();
    let out = run(&["run", "--config", path.to_str().unwrap()]);
    std::fs::remove_file(&path).unwrap();
    assert_clean_failure(&out, &["wakeup_byte", "line 3", path.to_str().unwrap()]);
}

#[test]
fn missing_config_file_is_named() {
    let out = run(&["run", "--config", "/nonexistent/podtrail.toml"]);
    assert_clean_failure(&out, &["/nonexistent/podtrail.toml"]);
}

#[test]
fn invalid_ringbuf_size_is_explained() {
    assert_clean_failure(&run(&["run", "--ringbuf-size", "1000"]), &["power of two"]);
}

#[test]
fn missing_btf_is_explained() {
    if !root_or_skip("missing_btf_is_explained") {
        return;
    }
    assert_clean_failure(&run(&["run", "--btf", "/nonexistent/vmlinux"]), &["BTF", "/nonexistent/vmlinux", "CONFIG_DEBUG_INFO_BTF"]);
}

#[test]
fn garbage_btf_is_explained() {
    if !root_or_skip("garbage_btf_is_explained") {
        return;
    }
    let path = std::env::temp_dir().join(format!("podtrail-badbtf-{}", std::process::id()));
    std::fs::write(&path, b"this is not BTF at all, just some bytes").unwrap();
    let out = run(&["run", "--btf", path.to_str().unwrap()]);
    std::fs::remove_file(&path).unwrap();
    assert_clean_failure(&out, &["not BTF"]);
}

#[test]
fn unprivileged_user_is_told_what_is_needed() {
    if !root_or_skip("unprivileged_user_is_told_what_is_needed") {
        return;
    }
    // Drop to nobody with no capabilities, as an operator forgetting sudo would be.
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", BIN, "run"])
        .output()
        .expect("setpriv (util-linux)");
    assert_clean_failure(&out, &["needs root", "CAP_BPF", "uid 65534"]);
}
