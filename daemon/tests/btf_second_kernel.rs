//! Our BTF parser + offset resolution, checked on a SECOND kernel (Debian bookworm 6.1, fetched
//! by `scripts/fetch-kernel-btf.sh`) and on the running kernel, against an independent reader.
//!
//! Independent reader: `pahole -F btf -C <struct,...> <raw BTF file>` (Debian `dwarves` /
//! `pahole`, installed by the script). It loads BTF through libbpf -- no code shared with
//! `kernel::btf` -- and prints each member's byte offset, flattening anonymous struct/union
//! members to offsets from the outer struct (so `mm_struct.arg_start`, which sits in an
//! unnamed struct on 6.x, is read directly), plus `/* size: N */` and enum values.
//! Chosen over `bpftool btf dump format raw` because that prints each anonymous struct as a
//! separate type, and walking them would re-implement the logic under test.
//! pahole 1.24 warns "Unknown kind 17/18" (decl/type tags) on newer kernels; those kinds carry
//! no layout, so its stderr is ignored.
use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

use podtrail::kernel::{btf::Btf, offsets};

const RUNNING: &str = "/sys/kernel/btf/vmlinux";
/// Enumerators we resolve -> the enum pahole must be asked for.
const ENUMS: &[(&str, &str)] = &[("memory_cgrp_id", "cgroup_subsys_id")];

/// Runs the fetch script once per test binary; None = skip (not root).
fn btf_6_1() -> Option<&'static PathBuf> {
    static PATH: OnceLock<Option<PathBuf>> = OnceLock::new();
    PATH.get_or_init(|| {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIP btf_second_kernel: needs root (the fetch script uses apt-get)");
            return None;
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/fetch-kernel-btf.sh");
        let out = Command::new("bash").arg(&script).output().expect("run fetch-kernel-btf.sh");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{} failed: {stderr}", script.display());
        let stdout = String::from_utf8_lossy(&out.stdout);
        let path = PathBuf::from(stdout.lines().last().expect("script printed no path").trim());
        assert!(path.is_file(), "script printed {path:?}, which is not a file; stderr: {stderr}");
        Some(path)
    })
    .as_ref()
}

/// One struct as pahole prints it: members reachable by name (anonymous struct/union members
/// flattened, as C allows) -> (byte offset, declared type), and sizeof.
#[derive(Debug, Default)]
struct Layout {
    members: HashMap<String, (u32, String)>,
    size: Option<u32>,
}

#[derive(Default)]
struct Pahole {
    file: PathBuf,
    structs: HashMap<String, Layout>,
    enumerators: HashMap<String, i64>,
}

impl Pahole {
    fn new(file: &Path) -> Self {
        Pahole { file: file.to_path_buf(), ..Default::default() }
    }

    /// Asks pahole for several types at once and parses its C-like output.
    fn load(&mut self, names: &[&str]) {
        let out = Command::new("pahole")
            .args(["-F", "btf", "-C", &names.join(",")])
            .arg(&self.file)
            .output()
            .expect("run pahole (should have been installed by fetch-kernel-btf.sh)");
        let text = String::from_utf8_lossy(&out.stdout);
        let mut current: Option<String> = None; // struct being read
        let mut in_enum = false;
        // One frame per open `{`; an anonymous block's members merge into its parent.
        let mut stack: Vec<Vec<(String, u32, String)>> = Vec::new();
        let mut size = None;
        for line in text.lines() {
            if in_enum {
                if let Some((name, value)) = line.trim().trim_end_matches(',').split_once(" = ")
                    && let Ok(value) = value.trim().parse()
                {
                    self.enumerators.insert(name.trim().into(), value);
                }
                in_enum = line != "};";
                continue;
            }
            let Some(name) = current.clone() else {
                if let Some(n) = line.strip_prefix("struct ").and_then(|l| l.strip_suffix(" {")) {
                    current = Some(n.to_string());
                    stack = vec![Vec::new()];
                    size = None;
                }
                in_enum = line.starts_with("enum ") && line.ends_with(" {");
                continue;
            };
            let (code, comment) = match line.split_once("/*") {
                Some((c, m)) => (c.trim(), m.trim_end_matches("*/").trim()),
                None => (line.trim(), ""),
            };
            // `} __attribute__((__aligned__(64)));` closes an anonymous block on 6.18; the
            // attribute says nothing about names or offsets.
            let code = match code.split_once(" __attribute__") {
                Some((c, _)) if code.ends_with(';') => format!("{};", c.trim()),
                _ => code.to_string(),
            };
            let code = code.as_str();
            if let Some(s) = comment.strip_prefix("size: ") {
                size = s.split(',').next().and_then(|n| n.trim().parse().ok());
            }
            // `  408    24` or, for bitfields, `1264: 0  4`: the first number is the offset.
            let offset = comment
                .split_whitespace()
                .next()
                .and_then(|t| t.trim_end_matches(':').parse().ok());
            if code.ends_with('{') {
                stack.push(Vec::new());
            } else if let Some(rest) = code.strip_prefix('}') {
                let frame = stack.pop().expect("unbalanced pahole output");
                let member = rest.trim_end_matches(';').trim();
                match stack.last_mut() {
                    None => {
                        let members = frame.into_iter().map(|(n, o, t)| (n, (o, t))).collect();
                        // First definition wins, as in kernel::btf (duplicates are rare).
                        self.structs.entry(name).or_insert(Layout { members, size });
                        current = None;
                    }
                    Some(parent) if member.is_empty() => parent.extend(frame),
                    Some(parent) => parent.push((member.into(), offset.unwrap(), "<anon>".into())),
                }
            } else if let (Some(decl), Some(off)) = (code.strip_suffix(';'), offset) {
                let (ty, member) = split_decl(decl);
                stack.last_mut().unwrap().push((member, off, ty));
            }
        }
    }

    fn layout(&mut self, strukt: &str) -> &Layout {
        if !self.structs.contains_key(strukt) {
            self.load(&[strukt]);
        }
        self.structs
            .get(strukt)
            .unwrap_or_else(|| panic!("pahole found no struct {strukt} in {}", self.file.display()))
    }

    /// Independent value for a name from `offsets::named`.
    fn expected(&mut self, field: &str) -> u32 {
        if let Some(s) = field.strip_prefix("sizeof(").and_then(|s| s.strip_suffix(')')) {
            return self.layout(s).size.unwrap_or_else(|| panic!("pahole printed no size for {s}"));
        }
        let Some((strukt, path)) = field.split_once('.') else {
            let v = self.enumerators.get(field);
            return u32::try_from(*v.unwrap_or_else(|| panic!("pahole: no enumerator {field}")))
                .unwrap();
        };
        // `a.b.c`: offset of b in a, plus offset of c in b's struct type.
        let (mut ty, mut total) = (strukt.to_string(), 0);
        for part in path.split('.') {
            let (off, member_ty) =
                self.layout(&ty).members.get(part).cloned().unwrap_or_else(|| {
                    panic!("pahole: {ty} has no member {part} (looking up {field})")
                });
            total += off;
            ty = member_ty.strip_prefix("struct ").unwrap_or(&member_ty).trim().to_string();
        }
        total
    }
}

/// `const struct cred  *  real_cred` -> ("const struct cred  *", "real_cred"); handles arrays,
/// bitfields and function pointers well enough to name the member.
fn split_decl(decl: &str) -> (String, String) {
    if let Some((ty, rest)) = decl.split_once("(*") {
        return (format!("{ty}(*)"), rest.split(')').next().unwrap_or("").trim().to_string());
    }
    let decl = decl.trim();
    let cut = decl.rfind(|c: char| c.is_whitespace() || c == '*').map_or(0, |i| i + 1);
    let name = decl[cut..].split(['[', ':']).next().unwrap_or("").to_string();
    (decl[..cut].trim().to_string(), name)
}

/// Resolves with our parser, compares every field with pahole, returns (name, value) pairs.
fn check_against_pahole(file: &Path, label: &str) -> Vec<(&'static str, u32)> {
    let btf = Btf::from_file(file).unwrap_or_else(|e| panic!("{label}: our parser failed: {e}"));
    let ours = offsets::resolve(&btf).unwrap_or_else(|e| panic!("{label}: resolve failed: {e}"));
    let named = offsets::named(&ours);

    let mut pahole = Pahole::new(file);
    // One batch for every top-level struct and enum; nested types load on demand.
    let mut wanted: Vec<&str> = named
        .iter()
        .filter_map(|(n, _)| {
            n.split_once('.').map(|(s, _)| s).or_else(|| n.strip_prefix("sizeof("))
        })
        .map(|s| s.trim_end_matches(')'))
        .chain(ENUMS.iter().map(|(_, e)| *e))
        .collect();
    wanted.sort();
    wanted.dedup();
    pahole.load(&wanted);

    let mut mismatches = Vec::new();
    // Printed in one piece so parallel tests do not interleave their tables.
    let mut table = format!("{label} ({}): field podtrail pahole\n", file.display());
    for &(field, value) in &named {
        let expected = pahole.expected(field);
        table += &format!("  {field:<30} {value:>6} {expected:>6}\n");
        if value != expected {
            mismatches.push(format!("{field}: podtrail={value} pahole={expected}"));
        }
    }
    eprint!("{table}");
    assert!(
        mismatches.is_empty(),
        "{label}: offsets differ from pahole:\n  {}",
        mismatches.join("\n  ")
    );
    named
}

#[test]
fn debian_6_1_offsets_match_pahole() {
    let Some(btf) = btf_6_1() else { return };
    check_against_pahole(btf, "debian 6.1");
}

#[test]
fn running_kernel_offsets_match_pahole() {
    if btf_6_1().is_none() {
        return; // skipped: pahole is only guaranteed once the script ran
    }
    check_against_pahole(Path::new(RUNNING), "running kernel");
}

/// Guards against the script silently handing back the running kernel's BTF.
#[test]
fn debian_6_1_differs_from_running_kernel() {
    let Some(btf) = btf_6_1() else { return };
    let resolve =
        |p: &Path| offsets::named(&offsets::resolve(&Btf::from_file(p).unwrap()).unwrap());
    let (old, new) = (resolve(btf), resolve(Path::new(RUNNING)));
    let differing: Vec<String> = old
        .iter()
        .zip(&new)
        .filter(|(a, b)| a.1 != b.1)
        .map(|(a, b)| format!("{}: 6.1={} running={}", a.0, a.1, b.1))
        .collect();
    eprintln!(
        "fields that differ between 6.1 and the running kernel:\n  {}",
        differing.join("\n  ")
    );
    assert!(
        !differing.is_empty(),
        "6.1 BTF ({}) resolves to exactly the running kernel's offsets: {old:?}",
        btf.display()
    );
}
