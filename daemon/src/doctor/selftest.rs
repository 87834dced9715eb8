//! The live self-test: load and attach every probe, start `/bin/true` in a new UTS
//! namespace, and find its unshare, exec and exit in the ring buffer.
use std::{
    os::unix::process::CommandExt,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use aya::maps::RingBuf;

use super::{Check, Status, check};
use crate::{config::Config, decode, event::Detail, loader};

/// Makes `cmd`'s child unshare its UTS namespace before it execs: inside a new user
/// namespace first, so the test needs no CAP_SYS_ADMIN (the daemon's documented capability
/// set lacks it), else directly (nodes that disable user namespaces, running as root).
fn in_new_uts_namespace(cmd: &mut Command) -> &mut Command {
    // SAFETY: the closure runs in the forked child before exec and only calls unshare(2),
    // which is async-signal-safe; it touches no memory shared with the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWUTS) == 0 || libc::unshare(libc::CLONE_NEWUTS) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        })
    }
}

pub fn run(cfg: &Config, btf: &Path) -> Vec<Check> {
    let mut out = Vec::new();
    let (tfs, mut load) = match crate::run::prepare_load(cfg, btf) {
        Ok(x) => x,
        Err(e) => return vec![check("self-test", Status::Fail, format!("{e:#}"), None)],
    };
    load.ringbuf_bytes = 1 << 20;
    load.probe.wakeup_bytes = 1;
    let (mut ebpf, links) = match loader::load_and_attach(&tfs, &load) {
        Ok(x) => x,
        Err(e) => {
            let fix = "a kernel that allows tracepoint and raw tracepoint programs (see the error)";
            return vec![check("probes", Status::Fail, e.to_string(), Some(fix))];
        }
    };
    out.push(check("probes", Status::Ok, format!("{links} hooks attached (verifier accepted every program)"), None));
    let mut ring = match ebpf.take_map("EVENTS").map(RingBuf::try_from) {
        Some(Ok(r)) => r,
        _ => {
            out.push(check("ring buffer", Status::Fail, "EVENTS ring buffer unavailable", None));
            return out;
        }
    };
    out.push(check("ring buffer", Status::Ok, "1 MiB ring buffer created and mapped", None));

    let host_uts = crate::cri::ns_inodes(std::process::id()).uts;
    let started = Instant::now();
    let child = in_new_uts_namespace(&mut Command::new("/bin/true")).spawn();
    let pid = match child.and_then(|mut c| c.wait().map(|_| c.id())) {
        Ok(pid) => pid,
        Err(e) => {
            out.push(check("self-test", Status::Fail, format!("cannot start /bin/true in a new UTS namespace: {e}"), None));
            return out;
        }
    };
    let (mut unshared, mut exec_uts, mut exited) = (false, 0u32, false);
    while started.elapsed() < Duration::from_secs(3) && !(unshared && exec_uts != 0 && exited) {
        let Some(item) = ring.next() else {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        let Ok(ev) = decode::decode(&item) else { continue };
        if ev.process.tgid != pid {
            continue;
        }
        match &ev.detail {
            Detail::NsChange(n) if n.op == "unshare" && n.changed.contains("uts") => {
                unshared = true
            }
            Detail::Exec(x) if x.errno == 0 => exec_uts = ev.ns.uts,
            Detail::Exit(x) if x.leader => exited = true,
            _ => {}
        }
    }
    let took = started.elapsed();
    if unshared && exec_uts != 0 && exec_uts != host_uts && exited {
        let detail = format!("saw unshare, exec and exit of pid {pid} in a new UTS namespace (uts {exec_uts}) in {} ms", took.as_millis());
        out.push(check("self-test", Status::Ok, detail, None));
    } else {
        let detail = format!("pid {pid}: unshare seen {unshared}, exec seen {}, exit seen {exited} after {} ms", exec_uts != 0, took.as_millis());
        out.push(check("self-test", Status::Fail, detail, Some("run `podtrail run -o text` and look for warnings")));
    }
    out
}
