//! Tracepoint record layouts, parsed from tracefs `events/<category>/<name>/format` files,
//! so that layout changes between kernels (e.g. `sched_process_fork` in 6.18) need no
//! rebuild.
use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use podtrail_common::offsets::{ABSENT, TracepointOffsets};

#[derive(Debug, thiserror::Error)]
pub enum TracefsError {
    #[error(
        "tracefs is not mounted (looked in /sys/kernel/tracing and /sys/kernel/debug/tracing); \
         mount it with `mount -t tracefs tracefs /sys/kernel/tracing`"
    )]
    NotMounted,
    #[error("tracepoint {0} does not exist on this kernel ({1} missing)")]
    MissingTracepoint(String, PathBuf),
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("tracepoint {tp}: field `{field}` not found in its format file")]
    MissingField { tp: String, field: String },
    #[error("tracepoint {tp}: malformed format line: {line}")]
    Malformed { tp: String, line: String },
    #[error("tracepoints {a} and {b} disagree on the offset of `{field}`")]
    Inconsistent { a: String, b: String, field: String },
}

/// One field of a record: `field:<decl>; offset:N; size:N; signed:N;`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub decl: String,
    pub offset: u32,
    pub size: u32,
}

/// Parses a format file into a name -> field map.
pub fn parse_format(tp: &str, text: &str) -> Result<HashMap<String, Field>, TracefsError> {
    let mut fields = HashMap::new();
    for line in text.lines().map(str::trim).filter(|l| l.starts_with("field:")) {
        let malformed = || TracefsError::Malformed { tp: tp.into(), line: line.into() };
        let mut decl = None;
        let mut offset = None;
        let mut size = None;
        for part in line.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part.split_once(':').ok_or_else(malformed)?;
            match key {
                "field" => decl = Some(value.trim().to_string()),
                "offset" => offset = value.trim().parse().ok(),
                "size" => size = value.trim().parse().ok(),
                _ => {}
            }
        }
        let (decl, offset, size) = match (decl, offset, size) {
            (Some(d), Some(o), Some(s)) => (d, o, s),
            _ => return Err(malformed()),
        };
        // The name is the last identifier of the declaration, before any `[N]`.
        let name = decl
            .split(|c: char| c.is_whitespace() || c == '*')
            .next_back()
            .map(|n| n.split('[').next().unwrap_or(n))
            .filter(|n| !n.is_empty())
            .ok_or_else(malformed)?
            .to_string();
        fields.insert(name, Field { decl, offset, size });
    }
    Ok(fields)
}

pub struct Tracefs {
    root: PathBuf,
}

impl Tracefs {
    /// Finds the tracefs mount; as root, mounts it at /sys/kernel/tracing if it is missing.
    pub fn locate() -> Result<Self, TracefsError> {
        for root in ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"] {
            if Path::new(root).join("events").is_dir() {
                return Ok(Tracefs { root: root.into() });
            }
        }
        if try_mount() {
            return Ok(Tracefs { root: "/sys/kernel/tracing".into() });
        }
        Err(TracefsError::NotMounted)
    }

    pub fn at(root: impl Into<PathBuf>) -> Self {
        Tracefs { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn exists(&self, category: &str, name: &str) -> bool {
        self.root.join("events").join(category).join(name).is_dir()
    }

    pub fn format(&self, category: &str, name: &str) -> Result<HashMap<String, Field>, TracefsError> {
        let path = self.root.join("events").join(category).join(name).join("format");
        let tp = format!("{category}:{name}");
        if !path.exists() {
            return Err(TracefsError::MissingTracepoint(tp, path));
        }
        let text =
            std::fs::read_to_string(&path).map_err(|source| TracefsError::Io { path, source })?;
        parse_format(&tp, &text)
    }
}

fn try_mount() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return false;
    }
    std::process::Command::new("mount")
        .args(["-t", "tracefs", "tracefs", "/sys/kernel/tracing"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
        && Path::new("/sys/kernel/tracing/events").is_dir()
}

fn offset(
    fields: &HashMap<String, Field>,
    tp: &str,
    field: &str,
) -> Result<u32, TracefsError> {
    fields
        .get(field)
        .map(|f| f.offset)
        .ok_or_else(|| TracefsError::MissingField { tp: tp.into(), field: field.into() })
}

/// Reads every format the programs need and returns their offsets.
pub fn resolve(tfs: &Tracefs) -> Result<TracepointOffsets, TracefsError> {
    let get = |cat: &str, name: &str, field: &str| -> Result<u32, TracefsError> {
        offset(&tfs.format(cat, name)?, &format!("{cat}:{name}"), field)
    };
    let exit = tfs.format("sched", "sched_process_exit")?;
    let cgroup_fields = ["root", "level", "id", "path"];
    let mkdir = tfs.format("cgroup", "cgroup_mkdir")?;
    // All cgroup events share a template; check rather than assume.
    for other in ["cgroup_rmdir", "cgroup_freeze", "cgroup_unfreeze", "cgroup_notify_frozen"] {
        let f = tfs.format("cgroup", other)?;
        for field in cgroup_fields {
            if offset(&f, other, field)? != offset(&mkdir, "cgroup_mkdir", field)? {
                return Err(TracefsError::Inconsistent {
                    a: "cgroup:cgroup_mkdir".into(),
                    b: format!("cgroup:{other}"),
                    field: field.into(),
                });
            }
        }
    }
    Ok(TracepointOffsets {
        exec_filename: get("sched", "sched_process_exec", "filename")?,
        fork_parent_pid: get("sched", "sched_process_fork", "parent_pid")?,
        fork_child_pid: get("sched", "sched_process_fork", "child_pid")?,
        exit_group_dead: exit.get("group_dead").map(|f| f.offset).unwrap_or(ABSENT),
        execve_filename: get("syscalls", "sys_enter_execve", "filename")?,
        execveat_fd: get("syscalls", "sys_enter_execveat", "fd")?,
        execveat_filename: get("syscalls", "sys_enter_execveat", "filename")?,
        sys_exit_ret: get("syscalls", "sys_exit_execve", "ret")?,
        clone_flags: get("syscalls", "sys_enter_clone", "clone_flags")?,
        clone3_uargs: get("syscalls", "sys_enter_clone3", "uargs")?,
        unshare_flags: get("syscalls", "sys_enter_unshare", "unshare_flags")?,
        setns_fd: get("syscalls", "sys_enter_setns", "fd")?,
        // The kernel names setns's nstype argument `flags`.
        setns_nstype: get("syscalls", "sys_enter_setns", "flags")?,
        cgroup_root: offset(&mkdir, "cgroup:cgroup_mkdir", "root")?,
        cgroup_level: offset(&mkdir, "cgroup:cgroup_mkdir", "level")?,
        cgroup_id: offset(&mkdir, "cgroup:cgroup_mkdir", "id")?,
        cgroup_path: offset(&mkdir, "cgroup:cgroup_mkdir", "path")?,
        cgroup_frozen_val: get("cgroup", "cgroup_notify_frozen", "val")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORK_618: &str = "name: sched_process_fork\nID: 366\nformat:\n\
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\
\tfield:__data_loc char[] parent_comm;\toffset:8;\tsize:4;\tsigned:0;\n\
\tfield:pid_t parent_pid;\toffset:12;\tsize:4;\tsigned:1;\n\
\tfield:__data_loc char[] child_comm;\toffset:16;\tsize:4;\tsigned:0;\n\
\tfield:pid_t child_pid;\toffset:20;\tsize:4;\tsigned:1;\n";

    const FORK_61: &str = "name: sched_process_fork\nformat:\n\
\tfield:char parent_comm[16];\toffset:8;\tsize:16;\tsigned:0;\n\
\tfield:pid_t parent_pid;\toffset:24;\tsize:4;\tsigned:1;\n\
\tfield:char child_comm[16];\toffset:28;\tsize:16;\tsigned:0;\n\
\tfield:pid_t child_pid;\toffset:44;\tsize:4;\tsigned:1;\n";

    #[test]
    fn parses_both_fork_layouts() {
        let new = parse_format("fork", FORK_618).unwrap();
        assert_eq!(new["child_pid"].offset, 20);
        assert_eq!(new["parent_comm"].decl, "__data_loc char[] parent_comm");
        let old = parse_format("fork", FORK_61).unwrap();
        assert_eq!(old["child_pid"].offset, 44);
        assert_eq!(old["child_comm"].size, 16);
    }

    #[test]
    fn pointer_fields_are_named() {
        let f = parse_format(
            "clone3",
            "\tfield:struct clone_args * uargs;\toffset:16;\tsize:8;\tsigned:0;\n",
        )
        .unwrap();
        assert_eq!(f["uargs"].offset, 16);
    }

    #[test]
    fn malformed_lines_are_errors() {
        let err = parse_format("x", "\tfield:int a;\toffset:zz;\tsize:4;\n").unwrap_err();
        assert!(err.to_string().contains("malformed"), "{err}");
    }
}

#[cfg(test)]
mod missing_tests {
    use super::*;

    #[test]
    fn absent_tracepoint_is_named() {
        let dir = std::env::temp_dir().join(format!("podtrail-tfs-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("events/sched")).unwrap();
        let err = resolve(&Tracefs::at(&dir)).expect_err("must fail").to_string();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(err.contains("sched:sched_process_exit") && err.contains("does not exist"), "{err}");
    }
}
