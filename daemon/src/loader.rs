//! Loads the eBPF object with this kernel's offsets and attaches every program.
use aya::{
    Ebpf, EbpfLoader,
    programs::{ProgramError, RawTracePoint, TracePoint},
};
use podtrail_common::offsets::{KernelOffsets, ProbeConfig, TracepointOffsets};

use crate::kernel::tracefs::Tracefs;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("tracepoint {category}:{name} (needed by {program}) does not exist on this kernel")]
    MissingTracepoint { category: &'static str, name: &'static str, program: &'static str },
    #[error("loading the eBPF object failed: {0}")]
    Object(#[source] aya::EbpfError),
    #[error("eBPF object has no program `{0}` (build mismatch)")]
    NoProgram(&'static str),
    #[error("the kernel rejected program `{program}`: {source}")]
    Verify { program: &'static str, source: ProgramError },
    #[error("attaching `{program}` to {target} failed: {source}")]
    Attach { program: &'static str, target: String, source: ProgramError },
}

#[derive(Clone, Copy)]
enum Hook {
    /// Classic tracepoints: (category, name) pairs; one program may serve several.
    Tracepoint(&'static [(&'static str, &'static str)]),
    RawTracepoint(&'static str),
}

/// Every program and where it attaches. One row per program in `ebpf/src/probes/`.
const PROGRAMS: &[(&str, Hook)] = &[
    ("sched_process_exec", Hook::Tracepoint(&[("sched", "sched_process_exec")])),
    ("sys_enter_execve", Hook::Tracepoint(&[("syscalls", "sys_enter_execve")])),
    ("sys_enter_execveat", Hook::Tracepoint(&[("syscalls", "sys_enter_execveat")])),
    (
        "sys_exit_exec",
        Hook::Tracepoint(&[("syscalls", "sys_exit_execve"), ("syscalls", "sys_exit_execveat")]),
    ),
    ("sys_enter_clone", Hook::Tracepoint(&[("syscalls", "sys_enter_clone")])),
    ("sys_enter_clone3", Hook::Tracepoint(&[("syscalls", "sys_enter_clone3")])),
    (
        "sys_exit_clone",
        Hook::Tracepoint(&[("syscalls", "sys_exit_clone"), ("syscalls", "sys_exit_clone3")]),
    ),
    ("sched_process_fork", Hook::Tracepoint(&[("sched", "sched_process_fork")])),
    ("sched_process_exit", Hook::Tracepoint(&[("sched", "sched_process_exit")])),
    ("sys_enter_setns", Hook::Tracepoint(&[("syscalls", "sys_enter_setns")])),
    ("sys_enter_unshare", Hook::Tracepoint(&[("syscalls", "sys_enter_unshare")])),
    (
        "sys_exit_ns",
        Hook::Tracepoint(&[("syscalls", "sys_exit_setns"), ("syscalls", "sys_exit_unshare")]),
    ),
    ("mark_victim", Hook::RawTracepoint("mark_victim")),
    ("cgroup_mkdir", Hook::Tracepoint(&[("cgroup", "cgroup_mkdir")])),
    ("cgroup_rmdir", Hook::Tracepoint(&[("cgroup", "cgroup_rmdir")])),
    ("cgroup_freeze", Hook::Tracepoint(&[("cgroup", "cgroup_freeze")])),
    ("cgroup_unfreeze", Hook::Tracepoint(&[("cgroup", "cgroup_unfreeze")])),
    ("cgroup_notify_frozen", Hook::Tracepoint(&[("cgroup", "cgroup_notify_frozen")])),
];

/// The tracepoints `podtrail run` needs, for `preflight` and docs.
pub fn required_tracepoints() -> Vec<(&'static str, &'static str, &'static str)> {
    let mut out = Vec::new();
    for (program, hook) in PROGRAMS {
        match hook {
            Hook::Tracepoint(tps) => out.extend(tps.iter().map(|(c, n)| (*c, *n, *program))),
            // raw tracepoints are named after the plain one (oom:mark_victim).
            Hook::RawTracepoint(name) => out.push(("oom", *name, *program)),
        }
    }
    out
}

pub struct LoadOptions {
    pub kernel: KernelOffsets,
    pub tracepoints: TracepointOffsets,
    pub probe: ProbeConfig,
    pub ringbuf_bytes: u32,
}

static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/podtrail-ebpf"));

/// Loads and attaches everything. Links live as long as the returned [`Ebpf`].
pub fn load_and_attach(tfs: &Tracefs, opts: &LoadOptions) -> Result<(Ebpf, usize), LoadError> {
    for (category, name, program) in required_tracepoints() {
        if !tfs.exists(category, name) {
            return Err(LoadError::MissingTracepoint { category, name, program });
        }
    }
    let mut ebpf = EbpfLoader::new()
        .override_global("KERNEL_OFFSETS", &opts.kernel, true)
        .override_global("TRACEPOINT_OFFSETS", &opts.tracepoints, true)
        .override_global("PROBE_CONFIG", &opts.probe, true)
        .map_max_entries("EVENTS", opts.ringbuf_bytes)
        .load(EBPF_OBJECT)
        .map_err(LoadError::Object)?;
    let mut links = 0;
    for (program, hook) in PROGRAMS {
        let prog = ebpf.program_mut(program).ok_or(LoadError::NoProgram(program))?;
        match hook {
            Hook::Tracepoint(tps) => {
                let tp: &mut TracePoint =
                    prog.try_into().map_err(|source| LoadError::Verify { program, source })?;
                tp.load().map_err(|source| LoadError::Verify { program, source })?;
                for (category, name) in *tps {
                    tp.attach(category, name).map_err(|source| LoadError::Attach {
                        program,
                        target: format!("{category}:{name}"),
                        source,
                    })?;
                    links += 1;
                }
            }
            Hook::RawTracepoint(name) => {
                let tp: &mut RawTracePoint =
                    prog.try_into().map_err(|source| LoadError::Verify { program, source })?;
                tp.load().map_err(|source| LoadError::Verify { program, source })?;
                tp.attach(name).map_err(|source| LoadError::Attach {
                    program,
                    target: format!("raw_tp/{name}"),
                    source,
                })?;
                links += 1;
            }
        }
    }
    Ok((ebpf, links))
}
