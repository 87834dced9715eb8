//! `--output json` (one object per line, schema in `schema/event.schema.json`) and
//! `--output text` (one readable line per event).
use std::{
    cell::OnceCell,
    io::{self, Write},
    sync::Arc,
};

use serde::Serialize;

use crate::{
    clock::WallClock,
    event::{Detail, Event},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Json,
    Text,
}

/// A loss report: emitted whenever a drop counter grows, so nothing is lost silently.
#[derive(Debug, Clone, Serialize)]
pub struct DropReport {
    /// `ringbuf_full`, `stash_full` (kernel side) or `decode_error` (daemon side).
    pub reason: &'static str,
    /// Kind of the events lost.
    pub event_kind: &'static str,
    /// Lost since the previous report.
    pub count: u64,
    /// Lost since start.
    pub total: u64,
}

#[derive(Serialize)]
struct DropLine<'a> {
    ts: String,
    kind: &'static str,
    source: &'static str,
    drops: &'a DropReport,
}

pub struct Output<W: Write> {
    format: Format,
    clock: WallClock,
    out: io::BufWriter<W>,
}

impl<W: Write> Output<W> {
    pub fn new(format: Format, out: W) -> Self {
        Output { format, clock: WallClock::new(), out: io::BufWriter::with_capacity(64 << 10, out) }
    }

    /// The boot-to-wall offset behind `ts`, for sinks that must show the same times.
    pub fn clock(&self) -> WallClock {
        self.clock
    }

    fn ts(&self, boot_ns: u64) -> String {
        rfc3339(self.clock, boot_ns)
    }

    pub fn event(&mut self, ev: &Event, line: &Line) -> io::Result<()> {
        match self.format {
            Format::Json => {
                self.out.write_all(line.json().as_bytes())?;
                self.out.write_all(b"\n")
            }
            Format::Text => {
                let line = text_line(&self.ts(ev.ts_boot_ns), ev);
                self.out.write_all(line.as_bytes())?;
                self.out.write_all(b"\n")
            }
        }
    }

    pub fn drops(&mut self, boot_ns: u64, report: &DropReport) -> io::Result<()> {
        match self.format {
            Format::Json => {
                let ts = self.ts(boot_ns);
                let line = DropLine { ts, kind: "drops", source: "daemon", drops: report };
                serde_json::to_writer(&mut self.out, &line)?;
                self.out.write_all(b"\n")
            }
            Format::Text => writeln!(
                self.out,
                "{} DROPS    {} lost {} {} events ({} since start)",
                self.ts(boot_ns),
                report.reason,
                report.count,
                report.event_kind,
                report.total
            ),
        }
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// The `ts` field: RFC 3339 UTC with nanoseconds.
pub fn rfc3339(clock: WallClock, boot_ns: u64) -> String {
    humantime::format_rfc3339_nanos(clock.to_system_time(boot_ns)).to_string()
}

/// An event's `--output json` line, serialized on first use and then shared: the JSON
/// output, the tail socket and the timeline all need the same bytes, and serializing is
/// the largest per-event cost in user space.
pub struct Line<'a> {
    clock: WallClock,
    ev: &'a Event,
    json: OnceCell<Arc<str>>,
}

impl<'a> Line<'a> {
    pub fn new(clock: WallClock, ev: &'a Event) -> Self {
        Line {
            clock,
            ev,
            json: OnceCell::new(),
        }
    }

    pub fn json(&self) -> &Arc<str> {
        self.json.get_or_init(|| {
            json_line(self.clock, self.ev)
                .unwrap_or_else(|e| format!("{{\"error\":\"unserialisable event: {e}\"}}"))
                .into()
        })
    }
}

/// The `--output json` line of `ev`, without the newline (the timeline stores the same).
pub fn json_line(clock: WallClock, ev: &Event) -> serde_json::Result<String> {
    let mut buf = Vec::with_capacity(768);
    crate::jsonline::write(&mut buf, &rfc3339(clock, ev.ts_boot_ns), ev)?;
    // The encoder writes only UTF-8 (literals, digits and serde_json strings).
    String::from_utf8(buf).map_err(|e| serde_json::Error::io(std::io::Error::other(e)))
}

/// `<time> <KIND> pid=.. ppid=.. uid=.. comm=.. cg=.. <details>`
pub fn text_line(ts: &str, ev: &Event) -> String {
    let p = &ev.process;
    let head = format!(
        "{ts} {:<15} pid={:<7} ppid={:<7} uid={:<5} comm={:<15} cg={}",
        ev.kind, p.tgid, p.ppid, p.uid, p.comm, ev.cgroup_id
    );
    let detail = match &ev.detail {
        Detail::Exec(e) => {
            let err = e.error.map(|n| format!(" -> {n}")).unwrap_or_default();
            let cut = if e.args_truncated { " …" } else { "" };
            format!("{} [{}{}]{}", e.filename, e.args.join(" "), cut, err)
        }
        Detail::Fork(f) => format!(
            "child={}{}{}",
            f.child_pid,
            if f.thread { " thread" } else { "" },
            if f.new_namespaces.is_empty() {
                String::new()
            } else {
                format!(" new_ns={}", f.new_namespaces.join(","))
            }
        ),
        Detail::Exit(x) => match (x.code, x.signal_name) {
            (Some(c), _) => format!("code={c}{}", if x.leader { "" } else { " thread" }),
            (_, Some(s)) => format!("signal={s}{}", if x.core_dumped { " core" } else { "" }),
            _ => format!("raw={}", x.raw),
        },
        Detail::NsChange(n) => format!(
            "{} requested=[{}] changed=[{}]{}",
            n.op,
            n.requested.join(","),
            n.changed.join(","),
            n.error.map(|e| format!(" -> {e}")).unwrap_or_default()
        ),
        Detail::Oom(o) => format!(
            "victim={} ({}) victim_cg={} memcg={}",
            o.victim_tgid, o.victim_comm, o.victim_cgroup_id, o.victim_memcg_id
        ),
        Detail::Cgroup(c) => format!(
            "{} id={}{}{}",
            c.path,
            c.id,
            c.frozen.map(|f| format!(" frozen={f}")).unwrap_or_default(),
            if ev.source == "kernel" { String::new() } else { format!(" via {}", ev.source) }
        ),
        Detail::Anomaly(a) => format!("{} {}: {}", a.severity.to_uppercase(), a.rule, a.summary),
    };
    format!("{head} {detail}")
}
