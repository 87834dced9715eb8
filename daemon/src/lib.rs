//! podtrail daemon library: kernel facts, loading, decoding, output. The binary in
//! `main.rs` wires them together; integration tests use both.
pub mod anomaly;
pub mod argv;
pub mod cgroupfs;
pub mod clock;
pub mod config;
pub mod cri;
pub mod decode;
pub mod doctor;
pub mod drops;
pub mod enrich;
pub mod entry;
pub mod event;
pub mod freezer_v1;
pub mod inline;
pub mod jsonline;
pub mod kernel;
pub mod lifecycle;
pub mod loader;
pub mod metrics;
pub mod otlp;
pub mod output;
pub mod pipeline;
pub mod preflight;
pub mod run;
pub mod secrets;
pub mod sink;
pub mod snapshot;
pub mod tail;
#[cfg(test)]
pub mod testutil;
pub mod timeline;
