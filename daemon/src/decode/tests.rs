//! Decoder tests: records built field by field at the shared structs' offsets, plus
//! property tests that arbitrary bytes never panic and truncation is always detected.
use std::mem::{offset_of, size_of};

use podtrail_common::{
    EventHeader, EventKind, Namespaces,
    cgroup::CgroupEvent,
    exec::{EXEC_ARGS_TRUNCATED, ExecEvent},
    namespace::{NS_NET, NsChangeEvent},
    oom::OomKillEvent,
    process::{ExitEvent, ForkEvent, FORK_FLAGS_KNOWN},
};
use proptest::prelude::*;

use super::*;
use crate::event::Detail;

/// A zeroed record of `size` bytes with a valid header.
fn record(kind: EventKind, size: usize) -> Vec<u8> {
    let mut b = vec![0u8; size];
    put(&mut b, offset_of!(EventHeader, kind), &(kind as u32).to_le_bytes());
    put(&mut b, offset_of!(EventHeader, size), &(size as u32).to_le_bytes());
    put(&mut b, offset_of!(EventHeader, ts_ns), &42u64.to_le_bytes());
    put(&mut b, offset_of!(EventHeader, pid), &100u32.to_le_bytes());
    put(&mut b, offset_of!(EventHeader, tgid), &100u32.to_le_bytes());
    put(&mut b, offset_of!(EventHeader, comm), b"bash\0");
    put(&mut b, offset_of!(EventHeader, ns) + offset_of!(Namespaces, net), &7u32.to_le_bytes());
    b
}

fn put(b: &mut [u8], off: usize, bytes: &[u8]) {
    b[off..off + bytes.len()].copy_from_slice(bytes);
}

#[test]
fn exec_record() {
    let mut b = record(EventKind::Exec, size_of::<ExecEvent>());
    put(&mut b, offset_of!(ExecEvent, filename), b"/bin/ls\0");
    put(&mut b, offset_of!(ExecEvent, filename_len), &7u16.to_le_bytes());
    put(&mut b, offset_of!(ExecEvent, args), b"ls\0-l\0/tmp\0");
    put(&mut b, offset_of!(ExecEvent, args_len), &11u16.to_le_bytes());
    put(&mut b, offset_of!(ExecEvent, flags), &EXEC_ARGS_TRUNCATED.to_le_bytes());
    let ev = decode(&b).unwrap();
    assert_eq!(ev.kind, "exec");
    assert_eq!(ev.process.comm, "bash");
    assert_eq!(ev.ns.net, 7);
    assert_eq!(ev.ts_boot_ns, 42);
    let Detail::Exec(e) = ev.detail else { panic!("not exec") };
    assert_eq!(e.filename, "/bin/ls");
    assert_eq!(e.args.to_vec(), ["ls", "-l", "/tmp"]);
    assert!(e.args_truncated);
    assert_eq!((e.errno, e.error, e.syscall), (0, None, "execve"));
}

#[test]
fn failed_exec_errno() {
    let mut b = record(EventKind::ExecFailed, size_of::<ExecEvent>());
    put(&mut b, offset_of!(ExecEvent, ret), &(-13i32).to_le_bytes());
    let Detail::Exec(e) = decode(&b).unwrap().detail else { panic!() };
    assert_eq!((e.errno, e.error), (13, Some("EACCES")));
}

#[test]
fn fork_and_exit_records() {
    let mut b = record(EventKind::Fork, size_of::<ForkEvent>());
    put(
        &mut b,
        offset_of!(ForkEvent, child_pid),
        &101u32.to_le_bytes(),
    );
    put(
        &mut b,
        offset_of!(ForkEvent, clone_flags),
        &(0x4000_0000u64 | 0x2000_0000).to_le_bytes(),
    );
    put(
        &mut b,
        offset_of!(ForkEvent, flags),
        &FORK_FLAGS_KNOWN.to_le_bytes(),
    );
    let Detail::Fork(f) = decode(&b).unwrap().detail else {
        panic!()
    };
    assert_eq!(f.new_namespaces.to_vec(), ["pid", "net"]);
    assert_eq!(f.child_pid, 101);

    let mut b = record(EventKind::Exit, size_of::<ExitEvent>());
    put(&mut b, offset_of!(ExitEvent, exit_code), &(0x80u32 | 11).to_le_bytes());
    put(&mut b, offset_of!(ExitEvent, group_dead), &[1]);
    let Detail::Exit(x) = decode(&b).unwrap().detail else { panic!() };
    assert_eq!((x.code, x.signal, x.signal_name, x.core_dumped), (None, Some(11), Some("SIGSEGV"), true));
    assert_eq!(x.group_dead, Some(true));
}

#[test]
fn ns_oom_cgroup_records() {
    let mut b = record(EventKind::Setns, size_of::<NsChangeEvent>());
    put(&mut b, offset_of!(NsChangeEvent, changed), &NS_NET.to_le_bytes());
    put(&mut b, offset_of!(NsChangeEvent, flags), &0x4000_0000u64.to_le_bytes());
    put(&mut b, offset_of!(NsChangeEvent, fd), &3i32.to_le_bytes());
    let Detail::NsChange(n) = decode(&b).unwrap().detail else {
        panic!()
    };
    assert_eq!(
        (n.op, n.fd, n.changed.to_vec(), n.requested.to_vec()),
        ("setns", Some(3), vec!["net"], vec!["net"])
    );

    let mut b = record(EventKind::OomKill, size_of::<OomKillEvent>());
    put(&mut b, offset_of!(OomKillEvent, victim_tgid), &555u32.to_le_bytes());
    put(&mut b, offset_of!(OomKillEvent, victim_comm), b"python3\0");
    let Detail::Oom(o) = decode(&b).unwrap().detail else { panic!() };
    assert_eq!((o.victim_tgid, o.victim_comm.as_str()), (555, "python3"));

    let mut b = record(EventKind::CgroupFrozen, size_of::<CgroupEvent>());
    put(&mut b, offset_of!(CgroupEvent, path), b"/a/b");
    put(&mut b, offset_of!(CgroupEvent, path_len), &4u32.to_le_bytes());
    put(&mut b, offset_of!(CgroupEvent, val), &1i32.to_le_bytes());
    let Detail::Cgroup(c) = decode(&b).unwrap().detail else { panic!() };
    assert_eq!((c.path.as_str(), c.frozen), ("/a/b", Some(true)));
}

#[test]
fn unknown_kind_and_bad_size_are_errors() {
    let mut b = record(EventKind::Exit, size_of::<ExitEvent>());
    put(&mut b, 0, &999u32.to_le_bytes());
    assert_eq!(decode(&b), Err(DecodeError::UnknownKind(999)));
    let mut b = record(EventKind::Exit, size_of::<ExitEvent>());
    put(&mut b, 4, &10_000u32.to_le_bytes());
    assert!(matches!(decode(&b), Err(DecodeError::SizeMismatch { .. })));
}

#[test]
fn oversized_length_fields_are_clamped() {
    let mut b = record(EventKind::Exec, size_of::<ExecEvent>());
    put(&mut b, offset_of!(ExecEvent, filename_len), &u16::MAX.to_le_bytes());
    put(&mut b, offset_of!(ExecEvent, args_len), &u16::MAX.to_le_bytes());
    assert!(decode(&b).is_ok());
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..1200)) {
        let _ = decode(&data);
    }

    #[test]
    fn valid_header_with_random_payload(kind in 1u32..=12, payload in proptest::collection::vec(any::<u8>(), 0..1000)) {
        let kind = EventKind::from_u32(kind).unwrap();
        let mut b = record(kind, HEADER_SIZE);
        b.extend_from_slice(&payload);
        let size = b.len() as u32;
        put(&mut b, 4, &size.to_le_bytes());
        let _ = decode(&b);
    }

    #[test]
    fn every_truncation_is_an_error(kind in 1u32..=12, cut in 0usize..900) {
        let kind = EventKind::from_u32(kind).unwrap();
        let full = match kind {
            EventKind::Exec | EventKind::ExecFailed => size_of::<ExecEvent>(),
            EventKind::Fork => size_of::<ForkEvent>(),
            EventKind::Exit => size_of::<ExitEvent>(),
            EventKind::Setns | EventKind::Unshare => size_of::<NsChangeEvent>(),
            EventKind::OomKill => size_of::<OomKillEvent>(),
            _ => size_of::<CgroupEvent>(),
        };
        let b = record(kind, full);
        prop_assert!(decode(&b).is_ok());
        let cut = cut.min(full - 1);
        let mut short = b[..cut].to_vec();
        if short.len() >= 8 {
            // Header claims only what is there: the payload check must still catch it.
            let len = short.len() as u32;
            put(&mut short, 4, &len.to_le_bytes());
        }
        prop_assert!(decode(&short).is_err());
    }
}
