//! Sinks after the JSON/text output: metrics, OTLP (and later the timeline and tail). Each
//! gets every finished event (including `late` re-emits) on the pipeline thread, so
//! `event` must not block: in-memory updates only, or a bounded `try_send` to a task of
//! its own that counts what it had to drop.
use crate::{
    event::Event,
    output::{DropReport, Line},
};

pub trait EventSink {
    /// `line` is the event's JSON line, built on first use and shared by every sink.
    fn event(&mut self, ev: &Event, line: &Line);
    /// One ring-buffer drain read `bytes`.
    fn drained(&mut self, _bytes: u64) {}
    /// Events were lost (the same report the output prints).
    fn drops(&mut self, _report: &DropReport) {}
    /// Once a second, from the pipeline.
    fn tick(&mut self) {}
    /// Called once when the daemon stops: a line for the stop summary, if any.
    fn finish(&mut self) -> Option<String> {
        None
    }
}
