//! Builders for unit tests: one place that knows how to spell a container, an event and
//! the common details, so each test states only what it is about.
use std::sync::Arc;

use crate::{
    cri::ContainerMeta,
    event::{
        CgroupDetail, ContainerExit, Detail, Event, ExecDetail, ExitDetail, ForkDetail, Metadata, NsChangeDetail, NsInodes,
        Process,
    },
};

/// A container `name` of pod default/web (uid "u1"), init pid `pid`.
pub fn meta(name: &str, pid: u32) -> Arc<ContainerMeta> {
    Arc::new(ContainerMeta {
        namespace: "default".into(),
        pod: "web".into(),
        pod_uid: "u1".into(),
        container: name.into(),
        container_id: format!("id-{name}"),
        image: "img:1".into(),
        runtime: "containerd".into(),
        pid,
        attempt: 0,
        labels: Default::default(),
        ns: NsInodes::default(),
        ephemeral_of: None,
    })
}

/// An event of process `tgid` with `detail`, in container `m` (`complete`) or the host.
pub fn event(seq: u64, tgid: u32, m: Option<&Arc<ContainerMeta>>, detail: Detail) -> Event {
    let kind = match &detail {
        Detail::Exec(_) => "exec",
        Detail::Fork(_) => "fork",
        Detail::Exit(_) => "exit",
        Detail::NsChange(n) => n.op,
        Detail::Oom(_) => "oom_kill",
        Detail::Cgroup(_) => "cgroup_mkdir",
        Detail::Anomaly(_) => "anomaly",
    };
    Event {
        seq,
        ts_boot_ns: seq,
        kind,
        source: "kernel",
        process: Process { pid: tgid, tgid, ppid: 1, comm: "x".into(), ..Default::default() },
        cgroup_id: 7,
        ns: NsInodes::default(),
        metadata: match m {
            Some(c) => Metadata { state: "complete", container: Some(c.clone()), late_of: None },
            None => Metadata::host(),
        },
        entry_path: if m.is_some() { "entrypoint" } else { "host" },
        entry_started: false,
        detail,
    }
}

/// A successful execve of `path` with `args`.
pub fn exec(path: &str, args: &[&str]) -> Detail {
    Detail::Exec(ExecDetail {
        filename: path.into(),
        filename_truncated: false,
        args: args.iter().collect(),
        args_truncated: false,
        args_unreadable: false,
        args_masked: false,
        errno: 0,
        error: None,
        syscall: "execve",
        dirfd: None,
    })
}

/// A fork; `thread`: a new thread of `child_tgid` rather than a new process.
pub fn fork(child_pid: u32, child_tgid: u32, thread: bool) -> Detail {
    Detail::Fork(ForkDetail { child_pid, child_tgid, thread, clone_flags: None, new_namespaces: Default::default() })
}

/// A kernel cgroup event (mkdir, freeze, ...) of cgroup `id` at `path`, level 2.
pub fn cgroup(id: u64, path: &str) -> Detail {
    Detail::Cgroup(CgroupDetail {
        id,
        path: path.into(),
        path_truncated: false,
        level: 2,
        root: 0,
        frozen: None,
        frozen_duration_ns: None,
    })
}

/// A thread-group leader's exit with `code`; `ns_pid` 1 marks a container's init.
pub fn exit(code: u32, ns_pid: u32, container_exit: Option<ContainerExit>) -> Detail {
    Detail::Exit(ExitDetail {
        code: Some(code),
        signal: None,
        signal_name: None,
        core_dumped: false,
        raw: code << 8,
        leader: true,
        group_dead: Some(true),
        ns_pid,
        container_exit,
    })
}

/// A successful setns that changed `changed`, into `target` when known.
pub fn setns(changed: Vec<&'static str>, target: Option<Arc<ContainerMeta>>) -> Detail {
    Detail::NsChange(NsChangeDetail {
        op: "setns",
        flags: 0,
        requested: Default::default(),
        fd: Some(3),
        errno: 0,
        error: None,
        changed: changed.into(),
        before: NsInodes::default(),
        target,
    })
}
