//! The scripted container workload behind the dashboards test: every container series the
//! dashboards read appears, each step waiting for the daemon's own evidence that it happened.
//! Pods are `dash-*` in namespace `podtrail`; all are removed again (also on a panic).
use std::{process::Command, time::Duration};

use k8s_cri::v1::*;
use serde_json::Value;

use crate::common::{containerd::*, *};

pub struct Workload<'a> {
    env: &'a Env,
    rt: tokio::runtime::Runtime,
    sandboxes: Vec<String>,
    /// A container left paused while the dashboards are queried.
    paused: Option<String>,
}

fn anomaly(rule: &'static str) -> impl Fn(&Value) -> bool {
    move |v: &Value| is_kind(v, "anomaly") && v["anomaly"]["rule"] == rule
}

impl<'a> Workload<'a> {
    /// Runs every step against the daemon `d` (which needs `--freezer-poll-ms 50`).
    pub fn run(env: &'a Env, d: &Daemon) -> Workload<'a> {
        let mut w = Workload { env, rt: tokio::runtime::Runtime::new().unwrap(), sandboxes: Vec::new(), paused: None };
        let app = w.execs_entries_and_a_failure(d);
        w.shell_in_distroless(d);
        w.oom_kill(d);
        w.crash_loop(d);
        w.pause_resume_pause(d, &app);
        w
    }

    fn exec_sync(&self, cid: &str, cmd: &[&str]) -> i32 {
        self.rt.block_on(async {
            let mut c = client(&self.env.socket).await;
            let cmd = cmd.iter().map(|a| a.to_string()).collect();
            c.exec_sync(ExecSyncRequest { container_id: cid.into(), cmd, timeout: 10 }).await.expect("ExecSync").into_inner().exit_code
        })
    }

    /// Pod dash-web, container app: entrypoint execs and forks, a kubectl exec (runtime_exec
    /// exec + entry), an exec failure (ENOENT) inside, and an nsenter entry from the host.
    fn execs_entries_and_a_failure(&mut self, d: &Daemon) -> String {
        let uid = format!("dash-web-{}", std::process::id());
        let script = "for i in 1 2 3 4 5; do /bin/true; done; exec /bin/sleep 300";
        let (sandbox, cid, pid) = self.rt.block_on(async {
            let mut c = client(&self.env.socket).await;
            let (sandbox, cid) = run_pod(&mut c, "dash-web", &uid, "app", &["/bin/sh", "-c", script]).await;
            let pid = container_pid(&mut c, &cid).await;
            (sandbox, cid, pid)
        });
        self.sandboxes.push(sandbox);
        d.wait_for("app's entrypoint sleeps", 15, |v| is_kind(v, "exec") && v["exec"]["args"] == serde_json::json!(["/bin/sleep", "300"]));
        assert_eq!(self.exec_sync(&cid, &["/bin/true"]), 0, "kubectl exec /bin/true");
        d.wait_for("runtime exec into app", 15, |v| is_kind(v, "exec") && v["entry_path"] == "runtime_exec" && v["exec"]["filename"] == "/bin/true");
        assert_eq!(self.exec_sync(&cid, &["/bin/sh", "-c", "/nonexistent"]), 127, "sh cannot exec /nonexistent");
        d.wait_for("ENOENT exec in app", 15, |v| is_kind(v, "exec_failed") && v["exec"]["error"] == "ENOENT" && v["exec"]["filename"] == "/nonexistent");
        let mut ns = Command::new("nsenter").args(["-t", &pid.to_string(), "-m", "-i", "/bin/true"]).spawn().expect("nsenter");
        let npid = ns.id();
        assert!(ns.wait().unwrap().success(), "nsenter into app");
        d.wait_for("nsenter entry into app", 15, |v| anomaly("container_entered")(v) && tgid(v) == npid as u64);
        cid
    }

    /// Pod dash-shop, container api (no shell on any path): kubectl exec of a shell.
    fn shell_in_distroless(&mut self, d: &Daemon) {
        let uid = format!("dash-shop-{}", std::process::id());
        let (sandbox, cid, pid) = self.rt.block_on(async {
            let mut c = client(&self.env.socket).await;
            let sandbox = run_sandbox(&mut c, "dash-shop", &uid).await;
            let mut cc = busybox("api", 0, &[]);
            cc.image = Some(ImageSpec { image: "podtrail.local/distroless:1".into(), ..Default::default() });
            let cid = start_container(&mut c, &sandbox, "dash-shop", &uid, cc).await;
            let pid = container_pid(&mut c, &cid).await;
            (sandbox, cid, pid)
        });
        self.sandboxes.push(sandbox);
        d.wait_for("api's entrypoint", 15, |v| is_kind(v, "exec") && tgid(v) == pid as u64 && v["exec"]["args"][1] == "sleep");
        assert_eq!(self.exec_sync(&cid, &["/busybox", "sh", "-c", "/busybox true"]), 0);
        d.wait_for("shell anomaly in api", 15, anomaly("shell_in_container"));
    }

    /// Pod dash-oom, container oomer: `dd bs=64M` under a 32 MiB limit.
    fn oom_kill(&mut self, d: &Daemon) {
        let uid = format!("dash-oom-{}", std::process::id());
        let sandbox = self.rt.block_on(async {
            let mut c = client(&self.env.socket).await;
            let sandbox = run_sandbox(&mut c, "dash-oom", &uid).await;
            let mut cc = busybox("oomer", 0, &["/bin/dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"]);
            if let Some(l) = cc.linux.as_mut() {
                l.resources = Some(LinuxContainerResources { memory_limit_in_bytes: 32 << 20, ..Default::default() });
            }
            start_container(&mut c, &sandbox, "dash-oom", &uid, cc).await;
            sandbox
        });
        self.sandboxes.push(sandbox);
        d.wait_for("oom_kill anomaly", 20, anomaly("oom_kill"));
    }

    /// Pod dash-crash, container crasher: exits 3, "restarted" with attempts 0, 1, 2.
    fn crash_loop(&mut self, d: &Daemon) {
        let uid = format!("dash-crash-{}", std::process::id());
        let mut c = self.rt.block_on(client(&self.env.socket));
        let sandbox = self.rt.block_on(run_sandbox(&mut c, "dash-crash", &uid));
        self.sandboxes.push(sandbox.clone());
        let marker = format!("exit 3 # dash {}", std::process::id());
        for attempt in 0..3u32 {
            let cc = busybox("crasher", attempt, &["/bin/sh", "-c", &marker]);
            let cid = self.rt.block_on(start_container(&mut c, &sandbox, "dash-crash", &uid, cc));
            let stopped = |v: &Value| v["metadata"]["container_id"] == cid.as_str() && !v["exit"]["container_exit"].is_null();
            d.wait_for("crasher stop", 15, |v| is_kind(v, "exit") && stopped(v));
            std::thread::sleep(Duration::from_millis(200));
        }
        d.wait_for("crash_loop anomaly", 10, anomaly("crash_loop"));
    }

    /// Pauses app, resumes it (frozen time is counted at the thaw), pauses it again and
    /// leaves it frozen for the queries.
    fn pause_resume_pause(&mut self, d: &Daemon, cid: &str) {
        let polled = |kind: &'static str| {
            let cid = cid.to_string();
            move |v: &Value| is_kind(v, kind) && v["source"] == "v1_freezer_poll" && v["cgroup"]["path"].as_str().is_some_and(|p| p.ends_with(&cid))
        };
        self.env.ctr(&["task", "pause", cid]);
        self.paused = Some(cid.to_string());
        d.wait_for("app frozen", 10, polled("cgroup_freeze"));
        std::thread::sleep(Duration::from_millis(600));
        self.env.ctr(&["task", "resume", cid]);
        d.wait_for("app thawed", 10, polled("cgroup_unfreeze"));
        self.env.ctr(&["task", "pause", cid]);
        let frozen = |v: &Value| polled("cgroup_freeze")(v);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while d.all(frozen).len() < 2 {
            assert!(std::time::Instant::now() < deadline, "app's second freeze not seen");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Resumes the paused container and removes every pod, asserting each step.
    pub fn remove(mut self) {
        if let Some(cid) = self.paused.take() {
            self.env.ctr(&["task", "resume", &cid]);
        }
        for sandbox in std::mem::take(&mut self.sandboxes) {
            self.rt.block_on(remove_pod(&self.env.socket, sandbox));
        }
    }
}

impl Drop for Workload<'_> {
    /// After a panic: best effort, never panicking again.
    fn drop(&mut self) {
        if let Some(cid) = self.paused.take() {
            let _ = Command::new("ctr").args(["--address", &self.env.socket, "-n", "k8s.io", "task", "resume", &cid]).output();
        }
        for sandbox in std::mem::take(&mut self.sandboxes) {
            self.rt.block_on(async {
                let Ok(ch) = tonic::transport::Endpoint::from_shared(format!("unix://{}", self.env.socket)).unwrap().connect().await else { return };
                let mut c = runtime_service_client::RuntimeServiceClient::new(ch);
                let _ = c.stop_pod_sandbox(StopPodSandboxRequest { pod_sandbox_id: sandbox.clone() }).await;
                let _ = c.remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: sandbox }).await;
            });
        }
    }
}
