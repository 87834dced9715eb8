//! Built-in anomaly rules. Each rule watches finished events (and a 1 s tick for "too long"
//! rules) and produces `anomaly` events: a rule name, a severity, a one-line explanation in
//! the operator's words, the triggering event's `seq`, the actor as `process` and the
//! container concerned as `metadata`. All state is bounded.
mod rules;
mod state;

use std::sync::Arc;

use serde::Serialize;

pub use rules::RULES;
use state::State;

use crate::{
    config::AnomalyConfig,
    cri::{ContainerMeta, Metadata},
    event::{Detail, Event, NsInodes, Process},
};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnomalyDetail {
    /// Rule name (see `RULES`).
    pub rule: &'static str,
    /// `info`, `warning` or `critical`.
    pub severity: &'static str,
    /// One line for a human.
    pub summary: String,
    /// `seq` of the event that triggered it (null for timer-based rules).
    pub related_seq: Option<u64>,
}

pub struct Anomalies {
    cfg: AnomalyConfig,
    state: State,
}

/// A new anomaly event; the pipeline numbers it.
fn anomaly(
    ts_boot_ns: u64,
    process: Process,
    container: Option<Arc<ContainerMeta>>,
    detail: AnomalyDetail,
) -> Event {
    Event {
        seq: 0,
        ts_boot_ns,
        kind: "anomaly",
        source: "rule",
        process,
        cgroup_id: 0,
        ns: NsInodes::default(),
        metadata: match container {
            Some(c) => Metadata { state: "complete", container: Some(c), late_of: None },
            None => Metadata::host(),
        },
        entry_path: "host",
        entry_started: false,
        detail: Detail::Anomaly(detail),
    }
}

impl Anomalies {
    pub fn new(cfg: AnomalyConfig) -> Self {
        Anomalies { cfg, state: State::default() }
    }

    fn enabled(&self, rule: &str) -> bool {
        self.cfg.enabled && !self.cfg.disabled_rules.iter().any(|r| r == rule)
    }

    /// Anomalies triggered by `ev`. Rules that need the container run once per event: on the
    /// event itself when its metadata is known, else on its `late` copy.
    pub fn check(&mut self, ev: &Event) -> Vec<Event> {
        if !self.cfg.enabled || ev.kind == "anomaly" {
            return Vec::new();
        }
        let mut out = Vec::new();
        rules::track(&mut self.state, ev);
        let found = rules::on_event(&mut self.state, &self.cfg, ev);
        for (actor, container, detail) in found {
            if self.enabled(detail.rule) {
                out.push(anomaly(ev.ts_boot_ns, actor, container, detail));
            }
        }
        out
    }

    /// Timer rules (frozen too long, runc init stuck), with the current boot-time clock.
    pub fn tick(&mut self, now_boot_ns: u64) -> Vec<Event> {
        if !self.cfg.enabled {
            return Vec::new();
        }
        rules::on_tick(&mut self.state, &self.cfg, now_boot_ns)
            .into_iter()
            .filter(|(_, _, d)| self.enabled(d.rule))
            .map(|(process, container, detail)| anomaly(now_boot_ns, process, container, detail))
            .collect()
    }
}

#[cfg(test)]
mod tests;
