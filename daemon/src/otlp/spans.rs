//! The span tree, built from events in timestamp order (the exporter reorders them first):
//!
//! - one trace per container lifetime; its root span runs from the container's first event
//!   (usually its `cgroup_mkdir`) to the exit of its init (`exit.container_exit`);
//! - an exec session span (`runtime_exec` / `nsenter`) for each entry into a container, from
//!   the setns to the exit of the last process that descends from the entering one; a child
//!   of the container span;
//! - a process span for each exec inside a container (or inside a session), to that
//!   process's exit (or its next exec). Its parent is the span of the process that forked
//!   it, else the session span, else the container span.
//!
//! `pending` events are skipped: their `late` copy (same timestamp) carries the container.
//! All maps are bounded; what does not fit is counted in `untracked`. No I/O.
use std::{
    collections::{HashMap, VecDeque, hash_map::RandomState},
    hash::BuildHasher,
    sync::Arc,
};

use opentelemetry_proto::tonic::{
    common::v1::KeyValue,
    trace::v1::{Span, Status, span, status::StatusCode},
};

use super::convert::{self, LogContext, b, s, u};
use crate::{
    clock::WallClock,
    cri::ContainerMeta,
    event::{Detail, Event, ExecDetail, ExitDetail},
};

pub type TraceId = [u8; 16];
pub type SpanId = [u8; 8];

const MAX_CONTAINERS: usize = 16_384;
const MAX_ENDED: usize = 4_096;
const MAX_TASKS: usize = 65_536;
const MAX_SESSIONS: usize = 4_096;
const MAX_SPAN_EVENTS: usize = 128;
/// W3C "sampled" plus "has is_remote" (and is_remote unset): every span here is local.
const SPAN_FLAGS: u32 = 0x1 | 0x100;

/// Random ids: a keyed SipHash of a counter (random keys per process; not a CSPRNG, which
/// trace ids do not need).
struct Ids {
    keys: RandomState,
    n: u64,
}

impl Ids {
    fn next(&mut self) -> u64 {
        self.n += 1;
        self.keys.hash_one(self.n).max(1)
    }

    fn span(&mut self) -> SpanId {
        self.next().to_be_bytes()
    }

    fn trace(&mut self) -> TraceId {
        let mut t = [0u8; 16];
        t[..8].copy_from_slice(&self.next().to_be_bytes());
        t[8..].copy_from_slice(&self.next().to_be_bytes());
        t
    }
}

struct Open {
    trace: TraceId,
    id: SpanId,
    parent: Option<SpanId>,
    name: String,
    start: u64,
    attrs: Vec<KeyValue>,
    events: Vec<span::Event>,
}

impl Open {
    fn ctx(&self) -> LogContext {
        LogContext { trace_id: self.trace, span_id: self.id }
    }
}

struct Container {
    span: Open,
    meta: Arc<ContainerMeta>,
}

/// A container whose span has ended: late processes of it still join its trace.
struct Ended {
    ctx: LogContext,
    meta: Arc<ContainerMeta>,
}

/// A thread group inside a container or a session.
struct Task {
    container: String,
    trace: TraceId,
    session: Option<u64>,
    /// What this process's next exec span (and, without one, its children) hang under.
    parent: SpanId,
    span: Option<Open>,
}

struct Session {
    span: Open,
    container: String,
    /// Live thread groups descending from the entering process.
    members: u32,
    /// Something was exec'd in it: its container is settled.
    used: bool,
}

pub struct Spans {
    clock: WallClock,
    ids: Ids,
    containers: HashMap<String, Container>,
    ended: HashMap<String, Ended>,
    ended_order: VecDeque<String>,
    tasks: HashMap<u32, Task>,
    sessions: HashMap<u64, Session>,
    next_session: u64,
    /// Finished spans, taken by the exporter.
    pub finished: Vec<Span>,
    /// Containers, sessions or processes not tracked because a bound was reached.
    pub untracked: u64,
}

impl Spans {
    pub fn new(clock: WallClock) -> Self {
        Spans {
            clock,
            ids: Ids { keys: RandomState::new(), n: 0 },
            containers: HashMap::new(),
            ended: HashMap::new(),
            ended_order: VecDeque::new(),
            tasks: HashMap::new(),
            sessions: HashMap::new(),
            next_session: 0,
            finished: Vec::new(),
            untracked: 0,
        }
    }

    /// Feeds one event; returns the span its log record belongs to, if any.
    pub fn on_event(&mut self, ev: &Event) -> Option<LogContext> {
        if ev.metadata.state == "pending" {
            return None;
        }
        let ts = ev.ts_boot_ns;
        let tgid = ev.process.tgid;
        if let Some(m) = &ev.metadata.container {
            self.ensure_container(m, ts);
        }
        match &ev.detail {
            Detail::NsChange(n)
                if n.op == "setns" && n.errno == 0 && matches!(ev.entry_path, "runtime_exec" | "nsenter") =>
            {
                if let Some(t) = &n.target {
                    self.enter(ev, t);
                }
            }
            Detail::Fork(f) if !f.thread && f.child_tgid != tgid => self.fork(tgid, f.child_tgid, ts),
            Detail::Exec(e) if e.errno == 0 => self.exec(ev, e),
            Detail::Exit(x) => {
                let ctx = self.context(ev);
                self.exit(ev, x);
                return ctx;
            }
            Detail::Oom(_) | Detail::Cgroup(_) => self.annotate(ev),
            _ => {}
        }
        self.context(ev)
    }

    /// Ends every open span at `ts` (the daemon stops), marked as such.
    pub fn finish_all(&mut self, ts: u64) {
        let open = [b("podtrail.span.open_at_stop", true)];
        for (_, t) in std::mem::take(&mut self.tasks) {
            if let Some(span) = t.span {
                self.finish(span, ts, open.to_vec(), None);
            }
        }
        for (_, s) in std::mem::take(&mut self.sessions) {
            self.finish(s.span, ts, open.to_vec(), None);
        }
        for (_, c) in std::mem::take(&mut self.containers) {
            let mut attrs = open.to_vec();
            convert::container_attrs(&c.meta, &mut attrs);
            self.finish(c.span, ts, attrs, None);
        }
    }

    /// Open spans (containers, sessions, processes).
    #[cfg(test)]
    fn open_counts(&self) -> (usize, usize, usize) {
        let procs = self.tasks.values().filter(|t| t.span.is_some()).count();
        (self.containers.len(), self.sessions.len(), procs)
    }

    /// The span of `ev`'s process, else of its container.
    fn context(&self, ev: &Event) -> Option<LogContext> {
        if let Some(t) = self.tasks.get(&ev.process.tgid) {
            let span_id = t.span.as_ref().map(|s| s.id).unwrap_or(t.parent);
            return Some(LogContext { trace_id: t.trace, span_id });
        }
        let id = &ev.metadata.container.as_ref()?.container_id;
        self.container_ctx(id)
    }

    fn container_ctx(&self, id: &str) -> Option<LogContext> {
        match self.containers.get(id) {
            Some(c) => Some(c.span.ctx()),
            None => self.ended.get(id).map(|e| e.ctx),
        }
    }

    fn meta_of(&self, id: &str) -> Option<Arc<ContainerMeta>> {
        match self.containers.get(id) {
            Some(c) => Some(c.meta.clone()),
            None => self.ended.get(id).map(|e| e.meta.clone()),
        }
    }

    /// The container's span context, opening its span at `ts` when it is new.
    fn ensure_container(&mut self, m: &Arc<ContainerMeta>, ts: u64) -> Option<LogContext> {
        if let Some(c) = self.containers.get_mut(&m.container_id) {
            // A `late` copy can be older than what opened the span.
            c.span.start = c.span.start.min(ts);
            if m.pid != 0 && c.meta.pid == 0 {
                c.meta = m.clone();
            }
            return Some(c.span.ctx());
        }
        if let Some(e) = self.ended.get(&m.container_id) {
            return Some(e.ctx);
        }
        if self.containers.len() >= MAX_CONTAINERS {
            self.untracked += 1;
            return None;
        }
        let span = Open {
            trace: self.ids.trace(),
            id: self.ids.span(),
            parent: None,
            name: format!("container {}", m.container),
            start: ts,
            attrs: Vec::new(),
            events: Vec::new(),
        };
        let ctx = span.ctx();
        self.containers.insert(m.container_id.clone(), Container { span, meta: m.clone() });
        Some(ctx)
    }

    /// A setns into `target` by a runtime exec or nsenter: a new exec session, unless the
    /// process is in one already (nsenter and runc call setns once per namespace).
    fn enter(&mut self, ev: &Event, target: &Arc<ContainerMeta>) {
        let ts = ev.ts_boot_ns;
        let tgid = ev.process.tgid;
        let Some(cctx) = self.ensure_container(target, ts) else { return };
        if let Some(sid) = self.tasks.get(&tgid).and_then(|t| t.session) {
            // An earlier setns of this entry matched another container through a namespace
            // they share (a pod's uts/ipc): a later one names the container, until something
            // runs in the session.
            if let Some(s) = self.sessions.get_mut(&sid)
                && !s.used
                && s.container != target.container_id
            {
                s.container = target.container_id.clone();
                s.span.trace = cctx.trace_id;
                s.span.parent = Some(cctx.span_id);
                if let Some(t) = self.tasks.get_mut(&tgid) {
                    t.container = target.container_id.clone();
                    t.trace = cctx.trace_id;
                }
            }
            return;
        }
        if self.sessions.len() >= MAX_SESSIONS || (self.tasks.len() >= MAX_TASKS && !self.tasks.contains_key(&tgid)) {
            self.untracked += 1;
            return;
        }
        let mut attrs = vec![s("podtrail.entry_path", ev.entry_path)];
        convert::process_attrs(&ev.process, &mut attrs);
        if let Detail::NsChange(n) = &ev.detail {
            attrs.push(convert::strs(
                "podtrail.ns_change.changed",
                &n.changed.to_vec(),
            ));
        }
        let span = Open {
            trace: cctx.trace_id,
            id: self.ids.span(),
            parent: Some(cctx.span_id),
            name: format!("{} session", ev.entry_path),
            start: ts,
            attrs,
            events: Vec::new(),
        };
        let sid = self.next_session;
        self.next_session += 1;
        let parent = span.id;
        self.sessions.insert(sid, Session { span, container: target.container_id.clone(), members: 1, used: false });
        let task = self.tasks.entry(tgid).or_insert_with(|| Task {
            container: String::new(),
            trace: cctx.trace_id,
            session: None,
            parent,
            span: None,
        });
        task.container = target.container_id.clone();
        task.trace = cctx.trace_id;
        task.session = Some(sid);
        task.parent = parent;
    }

    fn fork(&mut self, parent: u32, child: u32, ts: u64) {
        let Some(p) = self.tasks.get(&parent) else { return };
        let task = Task {
            container: p.container.clone(),
            trace: p.trace,
            session: p.session,
            parent: p.span.as_ref().map(|s| s.id).unwrap_or(p.parent),
            span: None,
        };
        if self.tasks.len() >= MAX_TASKS && !self.tasks.contains_key(&child) {
            self.untracked += 1;
            return;
        }
        if let Some(s) = task.session.and_then(|sid| self.sessions.get_mut(&sid)) {
            s.members += 1;
        }
        // A record left by a missed exit (pid reuse): close it first.
        if let Some(stale) = self.tasks.remove(&child) {
            self.leave(stale, ts, None);
        }
        self.tasks.insert(child, task);
    }

    fn exec(&mut self, ev: &Event, e: &ExecDetail) {
        let ts = ev.ts_boot_ns;
        let tgid = ev.process.tgid;
        if !self.tasks.contains_key(&tgid) {
            let Some(m) = &ev.metadata.container else { return };
            let Some(cctx) = self.container_ctx(&m.container_id) else { return };
            if self.tasks.len() >= MAX_TASKS {
                self.untracked += 1;
                return;
            }
            let task = Task {
                container: m.container_id.clone(),
                trace: cctx.trace_id,
                session: None,
                parent: cctx.span_id,
                span: None,
            };
            self.tasks.insert(tgid, task);
        }
        let id = self.ids.span();
        let Some(task) = self.tasks.get_mut(&tgid) else { return };
        // A re-exec ends the old image's span; the new one is its sibling.
        let old = task.span.take();
        let (container, trace, parent, session) = (task.container.clone(), task.trace, task.parent, task.session);
        if let Some(old) = old {
            self.finish(old, ts, vec![b("podtrail.process.replaced_by_exec", true)], None);
        }
        if let Some(s) = session.and_then(|sid| self.sessions.get_mut(&sid)) {
            s.used = true;
        }
        let mut attrs = vec![s("podtrail.entry_path", ev.entry_path)];
        convert::process_attrs(&ev.process, &mut attrs);
        convert::exec_attrs(&e.filename, &e.args, &mut attrs);
        if let Some(m) = self.meta_of(&container) {
            convert::container_attrs(&m, &mut attrs);
        }
        let span = Open {
            trace,
            id,
            parent: Some(parent),
            name: convert::exec_name(&e.filename, &e.args).to_string(),
            start: ts,
            attrs,
            events: Vec::new(),
        };
        if let Some(task) = self.tasks.get_mut(&tgid) {
            task.span = Some(span);
        }
    }

    fn exit(&mut self, ev: &Event, x: &ExitDetail) {
        let ts = ev.ts_boot_ns;
        // The process ends with its thread group (a leader may exit before its threads).
        let group_done = x.group_dead == Some(true) || (x.leader && x.group_dead.is_none());
        if group_done && let Some(t) = self.tasks.remove(&ev.process.tgid) {
            self.leave(t, ts, Some(x));
        }
        if x.container_exit.is_some()
            && let Some(m) = &ev.metadata.container
        {
            self.end_container(&m.container_id, ts, x);
        }
    }

    /// A thread group is gone: end its span, and its session when it was the last member.
    fn leave(&mut self, t: Task, ts: u64, x: Option<&ExitDetail>) {
        if let Some(span) = t.span {
            let mut attrs = Vec::new();
            if let Some(x) = x {
                convert::exit_attrs(x, &mut attrs);
            }
            self.finish(span, ts, attrs, x);
        }
        let Some(sid) = t.session else { return };
        let Some(s) = self.sessions.get_mut(&sid) else { return };
        s.members = s.members.saturating_sub(1);
        if s.members == 0
            && let Some(s) = self.sessions.remove(&sid)
        {
            let mut attrs = Vec::new();
            if let Some(m) = self.meta_of(&s.container) {
                convert::container_attrs(&m, &mut attrs);
            }
            self.finish(s.span, ts, attrs, None);
        }
    }

    fn end_container(&mut self, id: &str, ts: u64, x: &ExitDetail) {
        let Some(c) = self.containers.remove(id) else { return };
        let mut attrs = Vec::new();
        convert::container_attrs(&c.meta, &mut attrs);
        convert::exit_attrs(x, &mut attrs);
        let ctx = c.span.ctx();
        self.finish(c.span, ts, attrs, Some(x));
        if self.ended.len() >= MAX_ENDED
            && let Some(old) = self.ended_order.pop_front()
        {
            self.ended.remove(&old);
        }
        self.ended.insert(id.to_string(), Ended { ctx, meta: c.meta });
        self.ended_order.push_back(id.to_string());
    }

    /// OOM kills and freezer transitions as events on the container's span.
    fn annotate(&mut self, ev: &Event) {
        let Some(m) = &ev.metadata.container else { return };
        let Some(c) = self.containers.get_mut(&m.container_id) else { return };
        if c.span.events.len() >= MAX_SPAN_EVENTS {
            return;
        }
        let mut attributes = Vec::new();
        match &ev.detail {
            Detail::Oom(o) => {
                attributes.push(convert::i("podtrail.oom.victim_pid", o.victim_tgid));
                attributes.push(s("podtrail.oom.victim_comm", o.victim_comm.as_str()));
                if let Some(v) = o.memory_limit_bytes {
                    attributes.push(u("podtrail.oom.memory_limit_bytes", v));
                }
            }
            Detail::Cgroup(g) if ev.kind != "cgroup_mkdir" && ev.kind != "cgroup_rmdir" => {
                if let Some(d) = g.frozen_duration_ns {
                    attributes.push(u("podtrail.cgroup.frozen_duration_ns", d));
                }
            }
            _ => return,
        }
        c.span.events.push(span::Event {
            time_unix_nano: convert::unix_nanos(self.clock, ev.ts_boot_ns),
            name: ev.kind.to_string(),
            attributes,
            dropped_attributes_count: 0,
        });
    }

    fn finish(&mut self, o: Open, end: u64, mut attrs: Vec<KeyValue>, x: Option<&ExitDetail>) {
        let mut attributes = o.attrs;
        attributes.append(&mut attrs);
        let status = match x {
            Some(x) if x.code.is_some_and(|c| c != 0) => {
                Some(Status { message: format!("exit code {}", x.code.unwrap_or(0)), code: StatusCode::Error as i32 })
            }
            Some(x) if x.core_dumped => Some(Status {
                message: format!("core dumped ({})", x.signal_name.unwrap_or("signal")),
                code: StatusCode::Error as i32,
            }),
            _ => None,
        };
        self.finished.push(Span {
            trace_id: o.trace.to_vec(),
            span_id: o.id.to_vec(),
            parent_span_id: o.parent.map(|p| p.to_vec()).unwrap_or_default(),
            flags: SPAN_FLAGS,
            name: o.name,
            kind: span::SpanKind::Internal as i32,
            start_time_unix_nano: convert::unix_nanos(self.clock, o.start),
            end_time_unix_nano: convert::unix_nanos(self.clock, end.max(o.start)),
            attributes,
            events: o.events,
            status,
            ..Default::default()
        });
    }
}

#[cfg(test)]
#[path = "spans_tests.rs"]
mod tests;
