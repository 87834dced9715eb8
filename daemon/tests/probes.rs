//! Process and namespace probes against the real kernel: spawn real processes and check the
//! decoded events field by field.
mod common;

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use common::*;
use serde_json::Value;

fn our_ns(ns: &str) -> u64 {
    ns_inode(std::process::id(), ns)
}

/// Header fields every event of a direct child of the test carries.
fn assert_child_header(v: &Value, pid: u32) {
    let p = &v["process"];
    assert_eq!(p["tgid"], pid, "tgid in {v}");
    assert_eq!(p["pid"], pid, "pid in {v}");
    assert_eq!(p["ppid"], std::process::id(), "ppid in {v}");
    assert_eq!(p["uid"], 0, "uid in {v}");
    assert_eq!(p["gid"], 0, "gid in {v}");
    assert_eq!(v["cgroup_id"], inode(&cgroup2_dir(std::process::id())), "cgroup_id in {v}");
    for ns in ["mnt", "pid", "net", "uts", "ipc", "user", "cgroup"] {
        assert_eq!(v["ns"][ns], our_ns(ns), "ns.{ns} in {v}");
    }
    assert!(v["ts_boot_ns"].as_u64().unwrap() > 0);
    assert!(v["ts"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn exec_with_args() {
    if !root_or_skip("exec_with_args") {
        return;
    }
    let d = Daemon::start(&[]);
    let child = Command::new("/bin/echo").args(["podtrail-exec", "a b", "c"]).stdout(Stdio::null()).spawn().unwrap();
    let pid = child.id();
    let _guard = Reaped(child);
    let ev = d.wait_for("exec of /bin/echo", 10, |v| is_kind(v, "exec") && tgid(v) == pid as u64);
    assert_child_header(&ev, pid);
    assert_eq!(ev["process"]["comm"], "echo");
    let e = &ev["exec"];
    assert_eq!(e["filename"], "/bin/echo");
    assert_eq!(e["args"], serde_json::json!(["/bin/echo", "podtrail-exec", "a b", "c"]));
    assert_eq!(e["args_truncated"], false);
    assert_eq!(e["errno"], 0);
    assert_eq!(e["error"], Value::Null);
    assert_eq!(e["syscall"], "execve");
    assert_eq!(ev["entry_path"], "host");
    assert_eq!(e["args_masked"], false);
    d.stop();
}

#[test]
fn secret_arguments_are_masked() {
    if !root_or_skip("secret_arguments_are_masked") {
        return;
    }
    let d = Daemon::start(&[]);
    let secret = format!("hunter2-{}", std::process::id());
    let child = Command::new("/bin/echo")
        .args(["--password", &secret, &format!("DB_TOKEN={secret}"), "--user=app"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let _guard = Reaped(child);
    let ev = d.wait_for("exec with secrets", 10, |v| is_kind(v, "exec") && tgid(v) == pid as u64);
    assert_eq!(ev["exec"]["args"], serde_json::json!(["/bin/echo", "--password", "***", "DB_TOKEN=***", "--user=app"]));
    assert_eq!(ev["exec"]["args_masked"], true);
    let leaks = d.all(|v| v.to_string().contains(&secret));
    assert!(leaks.is_empty(), "the secret appears in the output: {leaks:?}");
    d.stop();
}

#[test]
fn exec_args_truncation_is_flagged() {
    if !root_or_skip("exec_args_truncation_is_flagged") {
        return;
    }
    let d = Daemon::start(&[]);
    let long = "x".repeat(300);
    let child = Command::new("/bin/true").args([&long, &long]).spawn().unwrap();
    let pid = child.id();
    let _guard = Reaped(child);
    let ev = d.wait_for("exec with long args", 10, |v| is_kind(v, "exec") && tgid(v) == pid as u64);
    let e = &ev["exec"];
    assert_eq!(e["args_truncated"], true, "{ev}");
    let args = e["args"].as_array().unwrap();
    assert_eq!(args[0], "/bin/true");
    assert_eq!(args[1], long.as_str());
    // 512 bytes kept: "/bin/true\0" (10) + 301 + 201 of the second argument.
    assert_eq!(args[2].as_str().unwrap().len(), 512 - 10 - 301, "{ev}");
    d.stop();
}

#[test]
fn failed_exec_reports_errno_and_path() {
    if !root_or_skip("failed_exec_reports_errno_and_path") {
        return;
    }
    let d = Daemon::start(&[]);
    let path = format!("/nonexistent/podtrail-missing-{}", std::process::id());
    let err = Command::new(&path).spawn().expect_err("exec must fail");
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    let ev = d.wait_for("exec_failed", 10, |v| is_kind(v, "exec_failed") && v["exec"]["filename"] == path.as_str());
    assert_eq!(ev["exec"]["errno"], 2);
    assert_eq!(ev["exec"]["error"], "ENOENT");
    assert_eq!(ev["process"]["ppid"], std::process::id(), "{ev}");
    // A directory is not executable: EACCES.
    let err = Command::new("/tmp").spawn().expect_err("exec of a dir must fail");
    assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
    let ev = d.wait_for("EACCES", 10, |v| is_kind(v, "exec_failed") && v["exec"]["filename"] == "/tmp");
    assert_eq!(ev["exec"]["error"], "EACCES");
    d.stop();
}

#[test]
fn clone_with_namespace_flags() {
    if !root_or_skip("clone_with_namespace_flags") {
        return;
    }
    let d = Daemon::start(&[]);
    const FLAGS: libc::c_long = (libc::CLONE_NEWUTS | libc::CLONE_NEWNET | libc::CLONE_NEWIPC | libc::SIGCHLD) as libc::c_long;
    // SAFETY: raw clone without CLONE_VM behaves like fork; the child only calls _exit.
    let pid = unsafe { libc::syscall(libc::SYS_clone, FLAGS, 0, 0, 0, 0) };
    if pid == 0 {
        // SAFETY: async-signal-safe exit in the child.
        unsafe { libc::_exit(0) };
    }
    assert!(pid > 0, "clone failed: {}", std::io::Error::last_os_error());
    let mut status = 0;
    // SAFETY: reaping our own child.
    unsafe { libc::waitpid(pid as i32, &mut status, 0) };
    let ev = d.wait_for("fork with CLONE_NEW*", 10, |v| is_kind(v, "fork") && v["fork"]["child_pid"] == pid);
    assert_eq!(tgid(&ev), std::process::id() as u64);
    let f = &ev["fork"];
    assert_eq!(f["clone_flags"], FLAGS as u64, "{ev}");
    assert_eq!(f["new_namespaces"], serde_json::json!(["uts", "ipc", "net"]));
    assert_eq!(f["thread"], false);
    assert_eq!(f["child_tgid"], pid);
    // The child's exit shows it really lived in new namespaces.
    let exit = d.wait_for("child exit", 10, |v| is_kind(v, "exit") && tgid(v) == pid as u64);
    assert_ne!(exit["ns"]["net"], our_ns("net"));
    assert_ne!(exit["ns"]["uts"], our_ns("uts"));
    assert_eq!(exit["ns"]["mnt"], our_ns("mnt"));
    assert_eq!(exit["exit"]["code"], 0);

    // std's spawn goes through posix_spawn -> clone3 (CLONE_VM|CLONE_VFORK): flags via clone3.
    let child = Command::new("/bin/true").spawn().unwrap();
    let cpid = child.id();
    let _guard = Reaped(child);
    let ev = d.wait_for("clone3 fork", 10, |v| is_kind(v, "fork") && v["fork"]["child_pid"] == cpid);
    let flags = ev["fork"]["clone_flags"].as_u64().expect("clone flags known");
    assert_ne!(flags & libc::CLONE_VFORK as u64, 0, "{ev}");
    d.stop();
}

#[test]
fn threads_are_marked() {
    if !root_or_skip("threads_are_marked") {
        return;
    }
    let d = Daemon::start(&[]);
    let t = std::thread::spawn(|| unsafe { libc::gettid() });
    let tid = t.join().unwrap();
    let ev = d.wait_for("thread clone", 10, |v| is_kind(v, "fork") && v["fork"]["child_pid"] == tid);
    assert_eq!(ev["fork"]["thread"], true);
    assert_eq!(ev["fork"]["child_tgid"], std::process::id());
    let exit = d.wait_for("thread exit", 10, |v| is_kind(v, "exit") && v["process"]["pid"] == tid);
    assert_eq!(exit["exit"]["leader"], false);
    d.stop();
}

#[test]
fn unshare_reports_flags_and_new_inodes() {
    if !root_or_skip("unshare_reports_flags_and_new_inodes") {
        return;
    }
    let d = Daemon::start(&[]);
    let child = Command::new("unshare").args(["-n", "-u", "/bin/true"]).spawn().unwrap();
    let pid = child.id();
    let _guard = Reaped(child);
    let ev = d.wait_for("unshare", 10, |v| is_kind(v, "unshare") && tgid(v) == pid as u64);
    let n = &ev["ns_change"];
    assert_eq!(n["op"], "unshare");
    assert_eq!(n["requested"], serde_json::json!(["uts", "net"]));
    assert_eq!(n["changed"], serde_json::json!(["net", "uts"]));
    assert_eq!(n["errno"], 0);
    assert_eq!(n["before"]["net"], our_ns("net"));
    assert_ne!(ev["ns"]["net"], our_ns("net"));
    // The program it then runs carries the same new inodes.
    let exec = d.wait_for("exec after unshare", 10, |v| is_kind(v, "exec") && tgid(v) == pid as u64 && v["exec"]["filename"] == "/bin/true");
    assert_eq!(exec["ns"]["net"], ev["ns"]["net"]);
    assert_eq!(exec["ns"]["uts"], ev["ns"]["uts"]);
    d.stop();
}

#[test]
fn exit_by_code_and_by_signal() {
    if !root_or_skip("exit_by_code_and_by_signal") {
        return;
    }
    let d = Daemon::start(&[]);
    let mut c = Command::new("/bin/sh").args(["-c", "exit 7"]).spawn().unwrap();
    let pid = c.id();
    assert_eq!(c.wait().unwrap().code(), Some(7));
    let ev = d.wait_for("exit 7", 10, |v| is_kind(v, "exit") && tgid(v) == pid as u64);
    let x = &ev["exit"];
    assert_eq!((x["code"].clone(), x["signal"].clone()), (serde_json::json!(7), Value::Null));
    assert_eq!(x["leader"], true);
    assert_eq!(x["group_dead"], true);

    let mut c = Command::new("/bin/sleep").arg("30").spawn().unwrap();
    let pid = c.id();
    d.wait_for("sleep exec", 10, |v| is_kind(v, "exec") && tgid(v) == pid as u64);
    c.kill().unwrap();
    c.wait().unwrap();
    let ev = d.wait_for("killed", 10, |v| is_kind(v, "exit") && tgid(v) == pid as u64);
    let x = &ev["exit"];
    assert_eq!(x["signal"], 9);
    assert_eq!(x["signal_name"], "SIGKILL");
    assert_eq!(x["code"], Value::Null);
    d.stop();
}

#[test]
fn nsenter_reports_target_inodes() {
    if !root_or_skip("nsenter_reports_target_inodes") {
        return;
    }
    let d = Daemon::start(&[]);
    // A target in its own mnt/uts/ipc/net namespaces (unshare execs sleep in place).
    let target = Command::new("unshare").args(["-m", "-u", "-i", "-n", "/bin/sleep", "30"]).spawn().unwrap();
    let tpid = target.id();
    let _target = Reaped(target);
    d.wait_for("target sleeping", 10, |v| is_kind(v, "exec") && tgid(v) == tpid as u64 && v["exec"]["filename"] == "/bin/sleep");
    let want: Vec<(&str, u64)> = ["mnt", "uts", "ipc", "net"].iter().map(|n| (*n, ns_inode(tpid, n))).collect();
    for (n, ino) in &want {
        assert_ne!(*ino, our_ns(n), "target not in its own {n} namespace");
    }
    let mut enter = Command::new("nsenter")
        .args(["-t", &tpid.to_string(), "-m", "-u", "-i", "-n", "/bin/true"])
        .spawn()
        .unwrap();
    let epid = enter.id();
    assert!(enter.wait().unwrap().success());
    let exec = d.wait_for("exec inside target", 10, |v| is_kind(v, "exec") && tgid(v) == epid as u64 && v["exec"]["filename"] == "/bin/true");
    let setns = d.all(|v| is_kind(v, "setns") && tgid(v) == epid as u64);
    assert!(!setns.is_empty(), "no setns events from nsenter");
    let mut changed = std::collections::BTreeSet::new();
    for ev in &setns {
        assert_eq!(ev["ns_change"]["errno"], 0, "{ev}");
        for c in ev["ns_change"]["changed"].as_array().unwrap() {
            changed.insert(c.as_str().unwrap().to_string());
        }
    }
    for n in ["mnt", "uts", "ipc", "net"] {
        assert!(changed.contains(n), "setns events never changed {n}: {setns:?}");
    }
    // The last setns carries every target inode: what attributes the entry to the target.
    let last = setns.last().unwrap();
    for (n, ino) in &want {
        assert_eq!(last["ns"][*n], *ino, "last setns ns.{n}: {last}");
        assert_eq!(exec["ns"][*n], *ino, "exec ns.{n}: {exec}");
    }
    // Entering a non-host mount namespace from a non-runtime process is an nsenter entry.
    assert_eq!(last["entry_path"], "nsenter", "{last}");
    assert_eq!(exec["entry_path"], "nsenter", "{exec}");
    d.stop();
}

#[test]
fn text_output_is_one_line_per_event() {
    if !root_or_skip("text_output_is_one_line_per_event") {
        return;
    }
    let child = Command::new(BIN)
        .args(["run", "-o", "text", "--drain-interval-ms", "10", "--no-timeline"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let c = Command::new("/bin/echo").arg("podtrail-text-marker").stdout(Stdio::null()).spawn().unwrap();
    let _guard = Reaped(c);
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.contains("podtrail-text-marker")).expect("marker exec line");
    assert!(line.contains(" exec ") && line.contains("/bin/echo [/bin/echo podtrail-text-marker]"), "{line}");
}
