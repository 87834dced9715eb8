//! `podtrail doctor`: what this node offers podtrail, one line per check with ok / warn /
//! fail and, when not ok, the fix. Ends with a live self-test: the probes are loaded, a
//! process is started in a throwaway namespace, and its events must come back through the
//! ring buffer. Any `fail` makes the exit code non-zero.
mod selftest;

use std::{path::Path, time::Duration};

use serde::Serialize;

use crate::{
    cgroupfs::CgroupMounts,
    config::Config,
    cri,
    kernel::tracefs::Tracefs,
    loader,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Serialize)]
pub struct Check {
    pub name: String,
    pub status: Status,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

fn check(name: &str, status: Status, detail: impl Into<String>, fix: Option<&str>) -> Check {
    Check { name: name.into(), status, detail: detail.into(), fix: fix.map(String::from) }
}

fn kernel() -> Check {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string();
    let mut parts = release.split(|c: char| !c.is_ascii_digit()).filter_map(|p| p.parse::<u32>().ok());
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if (major, minor) >= (5, 8) {
        check("kernel", Status::Ok, format!("{release} (>= 5.8)"), None)
    } else {
        check("kernel", Status::Fail, format!("{release}: podtrail needs 5.8 or newer (BTF, ring buffer)"), Some("upgrade the node's kernel"))
    }
}

fn capabilities() -> Check {
    let caps = crate::preflight::effective_caps();
    let names = [
        (21, "CAP_SYS_ADMIN"),
        (38, "CAP_PERFMON"),
        (39, "CAP_BPF"),
        (19, "CAP_SYS_PTRACE"),
        (24, "CAP_SYS_RESOURCE"),
        (2, "CAP_DAC_READ_SEARCH"),
    ];
    let held: Vec<&str> = names.iter().filter(|(c, _)| caps & (1u64 << c) != 0).map(|(_, n)| *n).collect();
    match crate::preflight::check_privileges() {
        Ok(()) => check("capabilities", Status::Ok, format!("held: {}", held.join(", ")), None),
        Err(e) => check("capabilities", Status::Fail, e.to_string(), Some("run as root, or grant CAP_BPF, CAP_PERFMON and CAP_SYS_PTRACE")),
    }
}

fn cgroups() -> Check {
    let m = CgroupMounts::detect();
    let v1 = Path::new("/sys/fs/cgroup/memory").is_dir() || Path::new("/sys/fs/cgroup/cpu").is_dir();
    match (&m.unified, v1) {
        (Some(u), false) => check("cgroups", Status::Ok, format!("v2 at {}", u.display()), None),
        (Some(u), true) => check(
            "cgroups",
            Status::Ok,
            format!(
                "hybrid: v1 controllers under /sys/fs/cgroup, cgroup2 at {}{}",
                u.display(),
                if m.freezer_v1.is_some() { "; v1 freezer polled" } else { "" }
            ),
            None,
        ),
        (None, _) => check(
            "cgroups",
            Status::Warn,
            "v1 only: no cgroup2 mount, so events cannot be tied to containers by cgroup id",
            Some("mount cgroup2 (e.g. at /sys/fs/cgroup/unified) or boot with systemd.unified_cgroup_hierarchy=1"),
        ),
    }
}

fn tracepoints(out: &mut Vec<Check>) {
    let tfs = match Tracefs::locate() {
        Ok(t) => {
            out.push(check("tracefs", Status::Ok, t.root().display().to_string(), None));
            t
        }
        Err(e) => {
            out.push(check("tracefs", Status::Fail, e.to_string(), Some("mount -t tracefs nodev /sys/kernel/tracing")));
            return;
        }
    };
    for (category, name, program) in loader::required_tracepoints() {
        let what = format!("tracepoint {category}:{name}");
        if tfs.exists(category, name) {
            out.push(check(&what, Status::Ok, format!("used by {program}"), None));
        } else {
            out.push(check(&what, Status::Fail, format!("missing (needed by {program})"), Some("a kernel with this tracepoint (CONFIG_FTRACE_SYSCALLS for syscalls:*)")));
        }
    }
}

async fn cri_check(cfg: &Config) -> Check {
    let Some(endpoint) = cri::detect_endpoint(Some(cfg.cri.endpoint.as_str())) else {
        return check(
            "cri",
            Status::Warn,
            format!("no runtime socket found (tried {})", cri::KNOWN_ENDPOINTS.join(", ")),
            Some("set --cri-endpoint (or [cri] endpoint); without it events carry no pod/container names"),
        );
    };
    match cri::runtime_version(&endpoint, Duration::from_millis(cfg.cri.call_timeout_ms)).await {
        Ok(v) => check("cri", Status::Ok, format!("{endpoint}: {v}"), None),
        Err(e) => check("cri", Status::Warn, e.to_string(), Some("check that the runtime runs and the socket path is right")),
    }
}

/// Runs every check (the live self-test only when the kernel-side checks passed).
pub async fn run(cfg: &Config, btf: &Path) -> Vec<Check> {
    let mut out = facts(cfg, btf).await;
    let ready = out.iter().all(|c| c.status != Status::Fail);
    out.extend(if ready {
        selftest::run(cfg, btf)
    } else {
        vec![check("self-test", Status::Fail, "skipped: fix the failures above first", None)]
    });
    out
}

/// The checks that load nothing into the kernel (also what `podtrail snapshot` records).
pub async fn facts(cfg: &Config, btf: &Path) -> Vec<Check> {
    let mut out = vec![kernel(), capabilities()];
    match crate::run::prepare_load(cfg, btf) {
        Ok(_) => out.push(check("btf", Status::Ok, format!("{}: every struct offset resolved", btf.display()), None)),
        Err(e) => out.push(check("btf", Status::Fail, format!("{e:#}"), Some("a kernel with CONFIG_DEBUG_INFO_BTF=y, or --btf FILE"))),
    }
    tracepoints(&mut out);
    out.push(cgroups());
    out.push(cri_check(cfg).await);
    out
}

pub fn print_text(checks: &[Check]) {
    for c in checks {
        let tag = match c.status {
            Status::Ok => "ok  ",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        };
        println!("{tag}  {:<38} {}", c.name, c.detail);
        if let Some(fix) = &c.fix {
            println!("      {:<38} fix: {fix}", "");
        }
    }
}

pub fn failed(checks: &[Check]) -> bool {
    checks.iter().any(|c| c.status == Status::Fail)
}
