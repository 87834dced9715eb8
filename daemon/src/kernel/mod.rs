//! Facts about the running kernel, resolved at start-up.
pub mod btf;
pub mod offsets;
pub mod tracefs;
