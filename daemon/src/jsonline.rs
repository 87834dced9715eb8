//! The `--output json` line, written by hand for the envelope every event has.
//!
//! serde's `#[serde(flatten)]` (used for `ts` + event + detail, and for a container's fields
//! inside `metadata`) routes each field through a map serializer and its writer calls. In a
//! profile at ~300k events/s that made JSON the largest user-space cost per event. Here the
//! keys are byte literals and the numbers go through `itoa`. The details of the kinds that
//! come in floods (exec, fork, exit, setns / unshare) are written the same way (serde was
//! half of the JSON cost of an unshare storm); the rare ones (OOM, cgroup, anomaly) and a
//! container's identity still go through serde. The test below checks that the bytes are
//! identical to the serde form for every kind of event.
use std::io::Write;

use serde::Serialize;

use crate::event::{Detail, Event, ExecDetail, ExitDetail, ForkDetail, NsChangeDetail, NsInodes, NsList};

fn uint(buf: &mut Vec<u8>, n: impl itoa::Integer) {
    buf.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// A JSON string (quoted, escaped exactly as serde_json does).
fn string(buf: &mut Vec<u8>, s: &str) -> serde_json::Result<()> {
    serde_json::to_writer(&mut *buf, s)
}

fn ns_inodes(buf: &mut Vec<u8>, ns: &NsInodes) {
    let fields = [
        (&b"{\"mnt\":"[..], ns.mnt),
        (b",\"pid\":", ns.pid),
        (b",\"net\":", ns.net),
        (b",\"uts\":", ns.uts),
        (b",\"ipc\":", ns.ipc),
        (b",\"user\":", ns.user),
        (b",\"cgroup\":", ns.cgroup),
        (b",\"pid_for_children\":", ns.pid_for_children),
    ];
    for (key, v) in fields {
        buf.extend_from_slice(key);
        uint(buf, v);
    }
    buf.push(b'}');
}

fn int(buf: &mut Vec<u8>, n: i32) {
    buf.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn opt<T>(buf: &mut Vec<u8>, v: Option<T>, write: impl FnOnce(&mut Vec<u8>, T)) {
    match v {
        Some(v) => write(buf, v),
        None => buf.extend_from_slice(b"null"),
    }
}

fn boolean(buf: &mut Vec<u8>, b: bool) {
    buf.extend_from_slice(if b { b"true" } else { b"false" });
}

fn opt_str(buf: &mut Vec<u8>, s: Option<&str>) -> serde_json::Result<()> {
    match s {
        Some(s) => string(buf, s),
        None => {
            buf.extend_from_slice(b"null");
            Ok(())
        }
    }
}

fn ns_list(buf: &mut Vec<u8>, l: &NsList) -> serde_json::Result<()> {
    buf.push(b'[');
    for (i, n) in l.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        string(buf, n)?;
    }
    buf.push(b']');
    Ok(())
}

fn exec_detail(buf: &mut Vec<u8>, d: &ExecDetail) -> serde_json::Result<()> {
    buf.extend_from_slice(b"\"exec\":{\"filename\":");
    string(buf, &d.filename)?;
    buf.extend_from_slice(b",\"filename_truncated\":");
    boolean(buf, d.filename_truncated);
    buf.extend_from_slice(b",\"args\":[");
    for (i, a) in d.args.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        string(buf, a)?;
    }
    buf.extend_from_slice(b"],\"args_truncated\":");
    boolean(buf, d.args_truncated);
    buf.extend_from_slice(b",\"args_unreadable\":");
    boolean(buf, d.args_unreadable);
    buf.extend_from_slice(b",\"args_masked\":");
    boolean(buf, d.args_masked);
    buf.extend_from_slice(b",\"errno\":");
    int(buf, d.errno);
    buf.extend_from_slice(b",\"error\":");
    opt_str(buf, d.error)?;
    buf.extend_from_slice(b",\"syscall\":");
    string(buf, d.syscall)?;
    buf.extend_from_slice(b",\"dirfd\":");
    opt(buf, d.dirfd, int);
    buf.push(b'}');
    Ok(())
}

fn fork_detail(buf: &mut Vec<u8>, d: &ForkDetail) -> serde_json::Result<()> {
    buf.extend_from_slice(b"\"fork\":{\"child_pid\":");
    uint(buf, d.child_pid);
    buf.extend_from_slice(b",\"child_tgid\":");
    uint(buf, d.child_tgid);
    buf.extend_from_slice(b",\"thread\":");
    boolean(buf, d.thread);
    buf.extend_from_slice(b",\"clone_flags\":");
    opt(buf, d.clone_flags, uint);
    buf.extend_from_slice(b",\"new_namespaces\":");
    ns_list(buf, &d.new_namespaces)?;
    buf.push(b'}');
    Ok(())
}

fn exit_detail(buf: &mut Vec<u8>, d: &ExitDetail) -> serde_json::Result<()> {
    buf.extend_from_slice(b"\"exit\":{\"code\":");
    opt(buf, d.code, uint);
    buf.extend_from_slice(b",\"signal\":");
    opt(buf, d.signal, uint);
    buf.extend_from_slice(b",\"signal_name\":");
    opt_str(buf, d.signal_name)?;
    buf.extend_from_slice(b",\"core_dumped\":");
    boolean(buf, d.core_dumped);
    buf.extend_from_slice(b",\"raw\":");
    uint(buf, d.raw);
    buf.extend_from_slice(b",\"leader\":");
    boolean(buf, d.leader);
    buf.extend_from_slice(b",\"group_dead\":");
    opt(buf, d.group_dead, boolean);
    buf.extend_from_slice(b",\"ns_pid\":");
    uint(buf, d.ns_pid);
    buf.extend_from_slice(b",\"container_exit\":");
    match &d.container_exit {
        Some(c) => {
            buf.extend_from_slice(b"{\"restart_count\":");
            uint(buf, c.restart_count);
            buf.extend_from_slice(b",\"attempt\":");
            uint(buf, c.attempt);
            buf.extend_from_slice(b",\"since_previous_exit_ns\":");
            opt(buf, c.since_previous_exit_ns, uint);
            buf.push(b'}');
        }
        None => buf.extend_from_slice(b"null"),
    }
    buf.push(b'}');
    Ok(())
}

fn ns_change_detail(buf: &mut Vec<u8>, d: &NsChangeDetail) -> serde_json::Result<()> {
    buf.extend_from_slice(b"\"ns_change\":{\"op\":");
    string(buf, d.op)?;
    buf.extend_from_slice(b",\"flags\":");
    uint(buf, d.flags);
    buf.extend_from_slice(b",\"requested\":");
    ns_list(buf, &d.requested)?;
    buf.extend_from_slice(b",\"fd\":");
    opt(buf, d.fd, int);
    buf.extend_from_slice(b",\"errno\":");
    int(buf, d.errno);
    buf.extend_from_slice(b",\"error\":");
    opt_str(buf, d.error)?;
    buf.extend_from_slice(b",\"changed\":");
    ns_list(buf, &d.changed)?;
    buf.extend_from_slice(b",\"before\":");
    ns_inodes(buf, &d.before);
    buf.extend_from_slice(b",\"target\":");
    match &d.target {
        Some(t) => serde_json::to_writer(&mut *buf, &**t)?,
        None => buf.extend_from_slice(b"null"),
    }
    buf.push(b'}');
    Ok(())
}

/// `"<name>":<serde JSON of value>`
fn detail<T: Serialize>(buf: &mut Vec<u8>, name: &[u8], value: &T) -> serde_json::Result<()> {
    buf.push(b'"');
    buf.extend_from_slice(name);
    buf.extend_from_slice(b"\":");
    serde_json::to_writer(&mut *buf, value)
}

/// Appends the JSON line of `ev` (without the newline) to `buf`.
pub fn write(buf: &mut Vec<u8>, ts: &str, ev: &Event) -> serde_json::Result<()> {
    buf.extend_from_slice(b"{\"ts\":");
    string(buf, ts)?;
    buf.extend_from_slice(b",\"seq\":");
    uint(buf, ev.seq);
    buf.extend_from_slice(b",\"ts_boot_ns\":");
    uint(buf, ev.ts_boot_ns);
    buf.extend_from_slice(b",\"kind\":");
    string(buf, ev.kind)?;
    buf.extend_from_slice(b",\"source\":");
    string(buf, ev.source)?;
    let p = &ev.process;
    buf.extend_from_slice(b",\"process\":{\"pid\":");
    uint(buf, p.pid);
    buf.extend_from_slice(b",\"tgid\":");
    uint(buf, p.tgid);
    buf.extend_from_slice(b",\"ppid\":");
    uint(buf, p.ppid);
    buf.extend_from_slice(b",\"uid\":");
    uint(buf, p.uid);
    buf.extend_from_slice(b",\"gid\":");
    uint(buf, p.gid);
    buf.extend_from_slice(b",\"comm\":");
    string(buf, &p.comm)?;
    buf.extend_from_slice(b"},\"cgroup_id\":");
    uint(buf, ev.cgroup_id);
    buf.extend_from_slice(b",\"ns\":");
    ns_inodes(buf, &ev.ns);
    buf.extend_from_slice(b",\"metadata\":{\"state\":");
    let m = &ev.metadata;
    string(buf, m.state)?;
    if let Some(c) = &m.container {
        // The container's fields sit beside `state` (flattened): its object minus the braces.
        let start = buf.len();
        serde_json::to_writer(&mut *buf, &**c)?;
        if buf.len() - start > 2 {
            buf[start] = b',';
            buf.pop();
        } else {
            buf.truncate(start);
        }
    }
    if let Some(seq) = m.late_of {
        buf.extend_from_slice(b",\"late_of\":");
        uint(buf, seq);
    }
    buf.extend_from_slice(b"},\"entry_path\":");
    string(buf, ev.entry_path)?;
    buf.push(b',');
    match &ev.detail {
        Detail::Exec(d) => exec_detail(buf, d)?,
        Detail::Fork(d) => fork_detail(buf, d)?,
        Detail::Exit(d) => exit_detail(buf, d)?,
        Detail::NsChange(d) => ns_change_detail(buf, d)?,
        Detail::Oom(d) => detail(buf, b"oom", d)?,
        Detail::Cgroup(d) => detail(buf, b"cgroup", d)?,
        Detail::Anomaly(d) => detail(buf, b"anomaly", d)?,
    }
    buf.write_all(b"}").map_err(serde_json::Error::io)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{
        anomaly::AnomalyDetail,
        event::{CgroupDetail, ForkDetail, OomDetail},
        testutil::{self, exec, exit, meta, setns},
    };

    #[derive(Serialize)]
    struct SerdeLine<'a> {
        ts: &'a str,
        #[serde(flatten)]
        event: &'a Event,
    }

    fn events() -> Vec<Event> {
        let mut labeled = (*meta("app", 7)).clone();
        labeled.labels.insert(
            "io.kubernetes.pod.name".into(),
            "web \"quoted\" \u{1}".into(),
        );
        labeled.ephemeral_of = Some("main".into());
        let labeled = Arc::new(labeled);
        let plain = meta("side", 8);
        let details = vec![
            exec("/bin/sh", &["sh", "-c", "echo \"hi\"\n\ttab \\ ü"]),
            exit(3, 1, None),
            exit(
                0,
                1,
                Some(crate::event::ContainerExit {
                    restart_count: 2,
                    attempt: 2,
                    since_previous_exit_ns: Some(9),
                }),
            ),
            setns(vec!["mnt", "uts"], Some(plain.clone())),
            setns(vec![], None),
            {
                let mut failed = exec("/no/such", &[]);
                if let Detail::Exec(x) = &mut failed {
                    (x.errno, x.error, x.syscall, x.dirfd) = (2, Some("ENOENT"), "execveat", Some(-100));
                    (x.filename_truncated, x.args_masked) = (true, true);
                }
                failed
            },
            {
                let mut unshare = setns(vec!["net"], None);
                if let Detail::NsChange(n) = &mut unshare {
                    (n.op, n.fd, n.errno, n.error, n.flags) = ("unshare", None, 1, Some("EPERM"), 0x4000_0000);
                    n.requested = ["net"].into();
                    n.before.net = 7;
                }
                unshare
            },
            {
                let mut killed = exit(0, 1, None);
                if let Detail::Exit(x) = &mut killed {
                    (x.code, x.signal, x.signal_name, x.core_dumped, x.group_dead) = (None, Some(9), Some("SIGKILL"), true, None);
                }
                killed
            },
            Detail::Fork(ForkDetail {
                child_pid: 6,
                child_tgid: 5,
                thread: true,
                clone_flags: None,
                new_namespaces: Default::default(),
            }),
            Detail::Fork(ForkDetail {
                child_pid: 5,
                child_tgid: 5,
                thread: false,
                clone_flags: Some(0x2000_0000),
                new_namespaces: ["uts", "pid"].into(),
            }),
            Detail::Oom(OomDetail {
                victim_pid: 9,
                victim_tgid: 9,
                victim_comm: "dd".into(),
                victim_cgroup_id: 77,
                victim_memcg_id: 78,
                victim_ns_pid: 1,
                victim_is_init: Some(true),
                memory_usage_bytes: Some(1 << 25),
                memory_limit_bytes: None,
            }),
            Detail::Cgroup(CgroupDetail {
                id: 3,
                path: "/kubepods/x".into(),
                path_truncated: false,
                level: 2,
                root: 0,
                frozen: Some(true),
                frozen_duration_ns: None,
            }),
            Detail::Anomaly(AnomalyDetail {
                rule: "oom_kill",
                severity: "critical",
                summary: "a \"b\"".into(),
                related_seq: Some(4),
            }),
        ];
        let mut out = Vec::new();
        for (i, d) in details.into_iter().enumerate() {
            for m in [None, Some(&labeled), Some(&plain)] {
                let mut e = testutil::event(i as u64 + 1, 40 + i as u32, m, d.clone());
                e.process.comm = "we\"ird\u{7f}".into();
                e.ns.uts = 4026531838;
                out.push(e.clone());
                e.metadata.state = "late";
                e.metadata.late_of = Some(3);
                out.push(e);
            }
        }
        out
    }

    #[test]
    fn hand_written_line_is_byte_identical_to_serde() {
        for e in events() {
            let ts = "2026-11-26T11:13:52.412035766Z";
            let mut ours = Vec::new();
            write(&mut ours, ts, &e).unwrap();
            let serde = serde_json::to_vec(&SerdeLine { ts, event: &e }).unwrap();
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                String::from_utf8(serde).unwrap()
            );
        }
    }
}
