//! `cargo xtask <command>`: project automation that is easier to keep correct in Rust than
//! in shell. Each command lives in its own module; this file only dispatches.
mod bench;
mod test;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", about = "podtrail project tasks (run as `cargo xtask <command>`)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fork+exec storm: per-exec cost with podtrail attached vs. no tracer (needs root).
    Bench(bench::BenchArgs),
    /// The whole test suite, as CI runs it (README: `./dev test`).
    Test(test::TestArgs),
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Bench(args) => bench::run(args),
        Command::Test(args) => test::run(args),
    };
    // Print the error chain ourselves: returning Err from main would also dump a backtrace
    // whenever RUST_BACKTRACE is set, burying the message.
    if let Err(e) = result {
        eprintln!("xtask: error: {e:#}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
