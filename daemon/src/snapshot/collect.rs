//! What a snapshot collects: CRI status and pod status (verbose), the OCI config, cgroup
//! files, namespaces and the process tree of each container, and recent timeline events.
use std::{collections::BTreeMap, path::Path, time::Duration};

use k8s_cri::v1::{
    ContainerStatusRequest, ListContainersRequest, ListPodSandboxRequest, PodSandboxStatusRequest,
};
use serde_json::{Value, json};

use super::{SnapshotError, redact::Redactor};
use crate::cri::{OneShot, timed};

pub struct Target {
    pub name: String,
    pub id: String,
    pub pod: String,
    pub namespace: String,
    pub pid: u32,
}

pub struct Found {
    pub containers: Vec<Target>,
    /// (path in the bundle, redacted JSON)
    pub files: Vec<(String, Value)>,
}

fn info_json(info: &std::collections::HashMap<String, String>) -> Value {
    info.get("info").and_then(|s| serde_json::from_str(s).ok()).unwrap_or(Value::Null)
}

fn map(m: &std::collections::HashMap<String, String>) -> BTreeMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

pub async fn cri(
    endpoint: &str,
    timeout: Duration,
    target: &str,
    namespace: Option<&str>,
    r: &mut Redactor,
) -> Result<Found, SnapshotError> {
    let mut c = OneShot::connect(endpoint, timeout).await?;
    let pods = timed(&c.o, "ListPodSandbox", c.client.list_pod_sandbox(ListPodSandboxRequest::default())).await?.items;
    let containers = timed(&c.o, "ListContainers", c.client.list_containers(ListContainersRequest::default())).await?.containers;
    let pod_of = |sandbox: &str| pods.iter().find(|p| p.id == sandbox).and_then(|p| p.metadata.clone()).unwrap_or_default();
    let matched: Vec<_> = containers
        .iter()
        .filter(|x| {
            let p = pod_of(&x.pod_sandbox_id);
            let name = x.metadata.as_ref().map(|m| m.name.as_str()).unwrap_or("");
            let hit = name == target || p.name == target || (target.len() >= 6 && x.id.starts_with(target));
            hit && namespace.is_none_or(|ns| ns == p.namespace)
        })
        .collect();
    if matched.is_empty() {
        let names: Vec<String> = containers.iter().filter_map(|x| x.metadata.as_ref().map(|m| m.name.clone())).collect();
        return Err(SnapshotError::NotFound(target.to_string(), names.join(", ")));
    }
    let mut where_: Vec<String> = matched.iter().map(|x| pod_of(&x.pod_sandbox_id).namespace).collect();
    where_.sort();
    where_.dedup();
    if where_.len() > 1 {
        return Err(SnapshotError::Ambiguous(target.to_string(), where_.join(", ")));
    }
    let mut found = Found { containers: Vec::new(), files: Vec::new() };
    let mut sandboxes = Vec::new();
    for x in matched {
        let st = timed(&c.o, "ContainerStatus", c.client.container_status(ContainerStatusRequest { container_id: x.id.clone(), verbose: true })).await?;
        let info = info_json(&st.info);
        let s = st.status.unwrap_or_default();
        let name = s.metadata.as_ref().map(|m| m.name.clone()).unwrap_or_default();
        let p = pod_of(&x.pod_sandbox_id);
        let mut status = json!({
            "id": s.id, "name": name, "attempt": s.metadata.as_ref().map(|m| m.attempt),
            "state": s.state, "created_at": s.created_at, "started_at": s.started_at, "finished_at": s.finished_at,
            "exit_code": s.exit_code, "reason": s.reason, "message": s.message,
            "image": s.image.map(|i| i.image), "image_ref": s.image_ref,
            "labels": map(&s.labels), "annotations": map(&s.annotations),
            "mounts": s.mounts.iter().map(|m| json!({"container_path": m.container_path, "host_path": m.host_path, "readonly": m.readonly})).collect::<Vec<_>>(),
            "log_path": s.log_path,
        });
        let mut oci = info.get("runtimeSpec").cloned().unwrap_or(Value::Null);
        let mut rest = info.clone();
        if let Some(o) = rest.as_object_mut() {
            o.remove("runtimeSpec");
        }
        for v in [&mut status, &mut oci, &mut rest] {
            r.json(v);
        }
        let dir = format!("containers/{name}");
        found.files.push((format!("{dir}/cri-status.json"), json!({ "status": status, "info": rest })));
        found.files.push((format!("{dir}/oci-config.json"), oci));
        found.containers.push(Target {
            name,
            id: x.id.clone(),
            pod: p.name.clone(),
            namespace: p.namespace.clone(),
            pid: info["pid"].as_u64().unwrap_or(0) as u32,
        });
        if !sandboxes.contains(&x.pod_sandbox_id) {
            sandboxes.push(x.pod_sandbox_id.clone());
        }
    }
    for id in sandboxes {
        let st = timed(&c.o, "PodSandboxStatus", c.client.pod_sandbox_status(PodSandboxStatusRequest { pod_sandbox_id: id.clone(), verbose: true })).await?;
        let s = st.status.unwrap_or_default();
        let md = s.metadata.clone().unwrap_or_default();
        let mut pod = json!({
            "id": s.id, "name": md.name, "namespace": md.namespace, "uid": md.uid, "attempt": md.attempt,
            "state": s.state, "created_at": s.created_at, "ip": s.network.map(|n| n.ip),
            "labels": map(&s.labels), "annotations": map(&s.annotations),
            "runtime_handler": s.runtime_handler,
        });
        let mut info = info_json(&st.info);
        r.json(&mut pod);
        r.json(&mut info);
        found.files.push((format!("pods/{}/cri-status.json", md.name), json!({ "status": pod, "info": info })));
    }
    Ok(found)
}

/// cgroup files worth reading, by hierarchy.
const CGROUP2_FILES: &[&str] = &[
    "memory.max", "memory.current", "memory.peak", "memory.events", "memory.stat", "cgroup.freeze", "cgroup.events",
    "cgroup.procs", "pids.max", "pids.current", "cpu.max", "cpu.stat",
];
const V1_FILES: &[(&str, &[&str])] = &[
    ("memory", &["memory.limit_in_bytes", "memory.usage_in_bytes", "memory.max_usage_in_bytes", "memory.failcnt", "memory.oom_control", "memory.stat"]),
    ("freezer", &["freezer.state"]),
    ("pids", &["pids.max", "pids.current"]),
];

fn cgroup_paths(pid: u32) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (_, ctrls, path) = (f.next(), f.next().unwrap_or(""), f.next().unwrap_or(""));
        let key = if ctrls.is_empty() { "unified".to_string() } else { ctrls.to_string() };
        out.insert(key, path.to_string());
    }
    out
}

/// Host-side facts of a running container: cgroup files, namespaces, process tree.
pub fn host_side(c: &Target, r: &mut Redactor, files: &mut Vec<(String, Vec<u8>)>) {
    let dir = format!("containers/{}", c.name);
    if c.pid == 0 {
        files.push((format!("{dir}/NOT-RUNNING"), b"no init pid: the container is not running\n".to_vec()));
        return;
    }
    let paths = cgroup_paths(c.pid);
    let unified = crate::cgroupfs::CgroupMounts::detect().unified;
    if let (Some(root), Some(rel)) = (unified, paths.get("unified")) {
        for f in CGROUP2_FILES {
            if let Ok(text) = std::fs::read(root.join(rel.trim_start_matches('/')).join(f)) {
                files.push((format!("{dir}/cgroup2/{f}"), text));
            }
        }
    }
    for (ctrl, names) in V1_FILES {
        let Some(rel) = paths.iter().find(|(k, _)| k.split(',').any(|x| x == *ctrl)).map(|(_, v)| v) else { continue };
        let base = Path::new("/sys/fs/cgroup").join(ctrl).join(rel.trim_start_matches('/'));
        for f in *names {
            if let Ok(text) = std::fs::read(base.join(f)) {
                files.push((format!("{dir}/cgroup-v1/{ctrl}/{f}"), text));
            }
        }
    }
    let ns = crate::cri::ns_inodes(c.pid);
    let ns = serde_json::to_value(ns).unwrap_or(Value::Null);
    files.push((format!("{dir}/namespaces.json"), serde_json::to_vec_pretty(&ns).unwrap_or_default()));
    let procs = process_tree(paths.get("unified").map(String::as_str).unwrap_or(""), r);
    files.push((format!("{dir}/processes.json"), serde_json::to_vec_pretty(&procs).unwrap_or_default()));
}

/// Every process in the container's cgroup2 directory: pid, ppid, comm, exe, masked argv.
fn process_tree(cgroup: &str, r: &mut Redactor) -> Value {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else { return Value::Null };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        if cgroup.is_empty() || cgroup_paths(pid).get("unified").map(String::as_str) != Some(cgroup) {
            continue;
        }
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let comm = stat.split_once('(').and_then(|(_, r)| r.rsplit_once(')')).map(|(c, _)| c.to_string()).unwrap_or_default();
        let ppid = stat.rsplit_once(')').and_then(|(_, t)| t.split_whitespace().nth(1)).unwrap_or("0").to_string();
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).map(|p| p.display().to_string()).unwrap_or_default();
        let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let mut argv: Vec<String> = raw.split(|b| *b == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        r.args(&mut argv);
        out.push(json!({"pid": pid, "ppid": ppid.parse::<u32>().unwrap_or(0), "comm": comm, "exe": exe, "args": argv, "cgroup": cgroup}));
    }
    Value::Array(out)
}

/// How far back a snapshot looks in the timeline.
const TIMELINE_WINDOW: Duration = Duration::from_secs(3600);

/// The last hour of stored events (anomalies included) of the target's pods, as JSON lines
/// (already masked when stored), when this node keeps a timeline.
pub fn timeline(cfg: &crate::config::Config, found: &Found) -> Option<String> {
    if !cfg.timeline.enabled || !cfg.timeline.path.exists() {
        return None;
    }
    let since = std::time::SystemTime::now().checked_sub(TIMELINE_WINDOW)?.duration_since(std::time::UNIX_EPOCH).ok()?;
    let mut pods: Vec<(&str, &str)> = found.containers.iter().map(|c| (c.namespace.as_str(), c.pod.as_str())).collect();
    pods.sort();
    pods.dedup();
    let mut out = String::new();
    for (namespace, pod) in pods {
        let filter = crate::timeline::Filter {
            namespace: Some(namespace.to_string()),
            pod: Some(pod.to_string()),
            since_unix_ns: i64::try_from(since.as_nanos()).ok(),
            ..Default::default()
        };
        for row in crate::timeline::query(&cfg.timeline.path, &filter).ok()? {
            out.push_str(&row.json);
            out.push('\n');
        }
    }
    Some(out)
}
