//! BTF parser tests on a hand-built blob (the live-kernel and second-kernel checks are in
//! tests/btf_second_kernel.rs).
use proptest::prelude::*;

use super::*;

/// Builds raw BTF from (name, info, size_or_type, trailer words).
struct Builder {
    types: Vec<u8>,
    strings: Vec<u8>,
}

impl Builder {
    fn new() -> Self {
        Builder { types: Vec::new(), strings: vec![0] }
    }
    fn s(&mut self, name: &str) -> u32 {
        if name.is_empty() {
            return 0;
        }
        let off = self.strings.len() as u32;
        self.strings.extend_from_slice(name.as_bytes());
        self.strings.push(0);
        off
    }
    fn ty(&mut self, name: &str, kind: u32, vlen: u32, kflag: bool, sot: u32, trailer: &[u32]) {
        let n = self.s(name);
        let info = (kind << 24) | vlen | if kflag { 1 << 31 } else { 0 };
        for w in [n, info, sot].iter().chain(trailer) {
            self.types.extend_from_slice(&w.to_le_bytes());
        }
    }
    fn member(&mut self, name: &str, ty: u32, bit_off: u32) -> [u32; 3] {
        [self.s(name), ty, bit_off]
    }
    fn finish(self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&0xeb9fu16.to_le_bytes());
        out.extend_from_slice(&[1, 0]);
        for w in [24u32, 0, self.types.len() as u32, self.types.len() as u32, self.strings.len() as u32] {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.extend(self.types);
        out.extend(self.strings);
        out
    }
}

/// 1: int; 2: struct ns_common { int pad; unsigned inum@32 }; 3: struct outer { int a;
/// struct { int b; struct ns_common ns@64 } (anon)@64 }; 4: the anon struct; 5: typedef;
/// 6: enum e { memory_cgrp_id = 4 }; 7: struct bf with a bitfield.
fn sample() -> Vec<u8> {
    let mut b = Builder::new();
    b.ty("int", KIND_INT, 0, false, 4, &[32]); // 1
    let m1 = b.member("pad", 1, 0);
    let m2 = b.member("inum", 1, 32);
    b.ty("ns_common", KIND_STRUCT, 2, false, 8, &[m1, m2].concat()); // 2
    let a = b.member("a", 1, 0);
    let anon = b.member("", 4, 64);
    b.ty("outer", KIND_STRUCT, 2, false, 24, &[a, anon].concat()); // 3
    let bm = b.member("b", 1, 0);
    let ns = b.member("ns", 5, 64);
    b.ty("", KIND_STRUCT, 2, false, 16, &[bm, ns].concat()); // 4
    b.ty("ns_common_t", KIND_TYPEDEF, 0, false, 2, &[]); // 5
    let e = b.s("memory_cgrp_id");
    b.ty("cgroup_subsys_id", KIND_ENUM, 1, false, 4, &[e, 4]); // 6
    let f = b.member("flag", 1, (3 << 24) | 5);
    b.ty("bf", KIND_STRUCT, 1, true, 4, &f); // 7
    b.finish()
}

#[test]
fn offsets_through_anonymous_members_and_typedefs() {
    let btf = Btf::parse(&sample()).unwrap();
    assert_eq!(btf.type_count(), 7);
    assert_eq!(btf.offset_of("ns_common", "inum").unwrap(), 4);
    assert_eq!(btf.offset_of("outer", "b").unwrap(), 8);
    assert_eq!(btf.offset_of("outer", "ns.inum").unwrap(), 8 + 8 + 4);
    assert_eq!(btf.struct_size("outer").unwrap(), 24);
    assert_eq!(btf.enum_value("memory_cgrp_id"), Some(4));
}

#[test]
fn errors_name_what_is_missing() {
    let btf = Btf::parse(&sample()).unwrap();
    let e = btf.offset_of("outer", "nope").unwrap_err().to_string();
    assert!(e.contains("outer") && e.contains("nope"), "{e}");
    let e = btf.offset_of("missing", "x").unwrap_err().to_string();
    assert!(e.contains("missing"), "{e}");
    let e = btf.offset_of("bf", "flag").unwrap_err().to_string();
    assert!(e.contains("bitfield"), "{e}");
    let e = btf.offset_of("outer", "a.x").unwrap_err().to_string();
    assert!(e.contains("not a struct"), "{e}");
}

#[test]
fn bad_magic_and_truncation() {
    assert!(matches!(Btf::parse(&[0u8; 30]), Err(BtfError::BadMagic(0))));
    let blob = sample();
    for cut in [10, 30, blob.len() - 1] {
        assert!(Btf::parse(&blob[..cut]).is_err(), "cut at {cut}");
    }
}

#[test]
fn live_kernel_btf_resolves() {
    let path = std::path::Path::new("/sys/kernel/btf/vmlinux");
    if !path.exists() {
        eprintln!("SKIP live_kernel_btf_resolves: no /sys/kernel/btf/vmlinux");
        return;
    }
    let btf = Btf::from_file(path).unwrap();
    let o = crate::kernel::offsets::resolve(&btf).unwrap();
    assert!(o.task_pid > 0 && o.task_tgid == o.task_pid + 4, "{o:?}");
    assert!(o.memory_cgrp_id != u32::MAX);
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(mut data in proptest::collection::vec(any::<u8>(), 0..400)) {
        if data.len() >= 2 && data[0] % 2 == 0 {
            data[0] = 0x9f;
            data[1] = 0xeb;
        }
        let _ = Btf::parse(&data);
    }

    #[test]
    fn mutated_sample_never_panics(idx in 0usize..200, byte in any::<u8>()) {
        let mut blob = sample();
        let i = idx % blob.len();
        blob[i] = byte;
        if let Ok(btf) = Btf::parse(&blob) {
            let _ = btf.offset_of("outer", "ns.inum");
            let _ = btf.enum_value("memory_cgrp_id");
        }
    }
}
