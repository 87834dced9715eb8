//! Sinks after the JSON/text output: metrics, OTLP (and later the timeline and tail). Each
//! gets every finished event (including `late` re-emits) on the pipeline thread, so
//! `event` must not block: in-memory updates only, or a bounded `try_send` to a task of
//! its own that counts what it had to drop.
use crate::event::Event;

pub trait EventSink {
    fn event(&mut self, ev: &Event);
    /// Called once when the daemon stops: a line for the stop summary, if any.
    fn finish(&mut self) -> Option<String> {
        None
    }
}
