//! cgroup, freezer and OOM probes against the real kernel, in cgroups the test creates.
mod common;

use std::{process::Command, time::Duration};

use common::*;

/// Starts `/bin/sleep 30` already inside the given cgroup directories (it moves itself
/// before exec, so the exec event is attributed to them).
fn sleeper_in(dirs: &[&str]) -> Reaped {
    let moves: String = dirs.iter().map(|d| format!("echo $$ > {d}/cgroup.procs; ")).collect();
    let child = Command::new("/bin/sh").args(["-c", &format!("{moves}exec /bin/sleep 30")]).spawn().unwrap();
    Reaped(child)
}

#[test]
fn cgroup2_mkdir_freeze_thaw_rmdir() {
    if !root_or_skip("cgroup2_mkdir_freeze_thaw_rmdir") {
        return;
    }
    let d = Daemon::start(&[]);
    let cg = TempCgroup::new(unified_root(), "freeze");
    let id = inode(&cg.path);
    let name = format!("/{}", cg.path.rsplit('/').next().unwrap());
    let mut sleeper = sleeper_in(&[&cg.path]);
    let spid = sleeper.0.id();
    let exec = d.wait_for("sleeper exec", 10, |v| is_kind(v, "exec") && tgid(v) == spid as u64 && v["exec"]["filename"] == "/bin/sleep");
    assert_eq!(exec["cgroup_id"], id, "exec inside the cgroup carries its id");

    cg.write("cgroup.freeze", "1");
    for _ in 0..100 {
        if cg.read("cgroup.events").contains("frozen 1") {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cg.write("cgroup.freeze", "0");
    let _ = sleeper.0.kill();
    let _ = sleeper.0.wait();
    let path = cg.path.clone();
    drop(cg);
    assert!(!std::path::Path::new(&path).exists());

    let ours = |kind: &'static str| {
        let name = name.clone();
        move |v: &serde_json::Value| is_kind(v, kind) && v["cgroup"]["id"] == id && v["cgroup"]["path"] == name.as_str()
    };
    let mk = d.wait_for("cgroup_mkdir", 10, ours("cgroup_mkdir"));
    assert_eq!(mk["cgroup"]["level"], 1);
    assert_eq!(mk["cgroup"]["root"], 0);
    assert_eq!(tgid(&mk), std::process::id() as u64, "mkdir done by the test process");
    let freeze = d.wait_for("cgroup_freeze", 10, ours("cgroup_freeze"));
    let frozen = d.wait_for("frozen", 10, |v| ours("cgroup_frozen")(v) && v["cgroup"]["frozen"] == true);
    assert!(frozen["cgroup"]["frozen_duration_ns"].is_null(), "{frozen}");
    let unfreeze = d.wait_for("cgroup_unfreeze", 10, ours("cgroup_unfreeze"));
    let thawed = d.wait_for("thawed", 10, |v| ours("cgroup_frozen")(v) && v["cgroup"]["frozen"] == false);
    assert!(thawed["ts_boot_ns"].as_u64() > frozen["ts_boot_ns"].as_u64());
    // The frozen duration runs from the freeze request, by the kernel's own timestamps.
    let ts = |v: &serde_json::Value| v["ts_boot_ns"].as_u64().unwrap();
    assert_eq!(unfreeze["cgroup"]["frozen_duration_ns"], ts(&unfreeze) - ts(&freeze), "{unfreeze}");
    assert_eq!(thawed["cgroup"]["frozen_duration_ns"], ts(&thawed) - ts(&freeze), "{thawed}");
    d.wait_for("cgroup_rmdir", 10, ours("cgroup_rmdir"));
    d.stop();
}

#[test]
fn v1_freezer_is_polled() {
    if !root_or_skip("v1_freezer_is_polled") {
        return;
    }
    if !std::path::Path::new("/sys/fs/cgroup/freezer/freezer.state").exists()
        && !std::path::Path::new("/sys/fs/cgroup/freezer/tasks").exists()
    {
        eprintln!("SKIP v1_freezer_is_polled: no cgroup v1 freezer hierarchy on this host");
        return;
    }
    let d = Daemon::start(&["--freezer-poll-ms", "50"]);
    let v1 = TempCgroup::new("/sys/fs/cgroup/freezer", "v1fz");
    let v2 = TempCgroup::new(unified_root(), "v1fz");
    let mut sleeper = sleeper_in(&[&v1.path, &v2.path]);
    std::thread::sleep(Duration::from_millis(300)); // let a poll learn the cgroup as THAWED
    v1.write("freezer.state", "FROZEN");
    for _ in 0..100 {
        if v1.read("freezer.state").trim() == "FROZEN" {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    v1.write("freezer.state", "THAWED");
    let (v1_id, v2_id) = (inode(&v1.path), inode(&v2.path));
    let ours = |kind: &'static str| {
        move |v: &serde_json::Value| is_kind(v, kind) && v["source"] == "v1_freezer_poll" && v["cgroup"]["id"] == v1_id
    };
    let fz = d.wait_for("v1 freeze", 10, ours("cgroup_freeze"));
    assert_eq!(fz["cgroup_id"], v2_id, "mapped to the cgroup2 twin: {fz}");
    assert!(fz["cgroup"]["path"].as_str().unwrap().starts_with("/podtrail-test-v1fz-"));
    let frozen = d.wait_for("v1 frozen", 10, ours("cgroup_frozen"));
    assert_eq!(frozen["cgroup"]["frozen"], true);
    let thaw = d.wait_for("v1 thaw", 10, ours("cgroup_unfreeze"));
    assert_eq!(thaw["cgroup"]["frozen"], false);
    assert!(thaw["ts_boot_ns"].as_u64() > frozen["ts_boot_ns"].as_u64());
    // Frozen for ~300 ms between the writes, seen through 50 ms polls.
    let held = thaw["cgroup"]["frozen_duration_ns"].as_u64().expect("duration on thaw");
    assert_eq!(held, thaw["ts_boot_ns"].as_u64().unwrap() - fz["ts_boot_ns"].as_u64().unwrap());
    assert!((200_000_000..2_000_000_000).contains(&held), "frozen for {held} ns, expected ~300 ms");
    let _ = sleeper.0.kill();
    let _ = sleeper.0.wait();
    drop((v1, v2));
    d.stop();
}

#[test]
fn oom_kill_names_victim_and_cgroups() {
    if !root_or_skip("oom_kill_names_victim_and_cgroups") {
        return;
    }
    let d = Daemon::start(&[]);
    let mem = TempCgroup::new("/sys/fs/cgroup/memory", "oom");
    mem.write("memory.limit_in_bytes", &(32 << 20).to_string());
    let v2 = TempCgroup::new(unified_root(), "oom");
    // The victim allocates (and touches) far more than the limit.
    let script = format!(
        "echo $$ > {}/cgroup.procs; echo $$ > {}/cgroup.procs; exec /usr/bin/python3 -c 'b = bytearray(256 << 20)'",
        mem.path, v2.path
    );
    let mut child = Command::new("/bin/sh").args(["-c", &script]).spawn().unwrap();
    let pid = child.id();
    let status = child.wait().unwrap();
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(9), "victim must be OOM-killed");
    let ev = d.wait_for("oom_kill", 10, |v| is_kind(v, "oom_kill") && v["oom"]["victim_tgid"] == pid);
    let o = &ev["oom"];
    assert_eq!(o["victim_pid"], pid);
    assert_eq!(o["victim_comm"], "python3");
    assert_eq!(o["victim_cgroup_id"], inode(&v2.path), "{ev}");
    assert_eq!(o["victim_memcg_id"], inode(&mem.path), "{ev}");
    // Read in the kernel from the memcg page counter at the kill: the limit we set, and a
    // usage at (within a few pages of) it.
    assert_eq!(o["memory_limit_bytes"], 32u64 << 20, "{ev}");
    let usage = o["memory_usage_bytes"].as_u64().expect("usage read");
    assert!(usage > 30 << 20 && usage <= 32 << 20, "usage {usage} should be near the 32 MiB limit: {ev}");
    assert_eq!(o["victim_ns_pid"], pid, "host pid namespace: ns pid = pid");
    assert!(o["victim_is_init"].is_null(), "not in a container: {ev}");
    let exit = d.wait_for("victim exit", 10, |v| is_kind(v, "exit") && tgid(v) == pid as u64);
    assert_eq!(exit["exit"]["signal_name"], "SIGKILL");
    drop((mem, v2));
    d.stop();
}
