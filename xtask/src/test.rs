//! `cargo xtask test`: the whole suite, as CI runs it.
//! 1. `cargo test` over the default workspace members (unit, property and the root
//!    integration tests against the real kernel; root-only tests skip loudly otherwise);
//! 2. a quick benchmark smoke run (`bench --quick`), whose gate is visibility and zero drops;
//! 3. a final `N passed, N failed` line summing every cargo test binary.
use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
};

use anyhow::{Context, bail};

#[derive(clap::Args)]
pub struct TestArgs {
    /// Skip the benchmark smoke run.
    #[arg(long)]
    pub no_bench: bool,
    /// Extra arguments for `cargo test` (e.g. a test name filter).
    #[arg(last = true)]
    pub cargo_args: Vec<String>,
}

/// Sums `test result: ok. 9 passed; 0 failed; ...` lines.
fn tally(line: &str, passed: &mut u64, failed: &mut u64) {
    let Some(rest) = line.trim().strip_prefix("test result: ") else { return };
    for part in rest.split(';') {
        let mut words = part.split_whitespace().rev();
        let (Some(what), Some(n)) = (words.next(), words.next()) else { continue };
        let n: u64 = n.parse().unwrap_or(0);
        match what {
            "passed" => *passed += n,
            "failed" => *failed += n,
            _ => {}
        }
    }
}

pub fn run(args: TestArgs) -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("xtask test: not root: the kernel integration tests will SKIP (CI runs as root)");
    }
    let mut child = Command::new(env!("CARGO"))
        .arg("test")
        .args(&args.cargo_args)
        .stdout(Stdio::piped())
        .spawn()
        .context("spawning cargo test")?;
    let (mut passed, mut failed) = (0, 0);
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line?;
        println!("{line}");
        tally(&line, &mut passed, &mut failed);
    }
    let status = child.wait()?;
    if status.success() && !args.no_bench {
        eprintln!("xtask test: benchmark smoke run (bench --quick)");
        let bench = Command::new(std::env::current_exe()?).args(["bench", "--quick"]).status()?;
        if bench.success() {
            passed += 1;
        } else {
            failed += 1;
            eprintln!("xtask test: bench --quick failed");
        }
    }
    println!("{passed} passed, {failed} failed");
    if !status.success() || failed > 0 {
        bail!("test suite failed ({failed} failed; cargo test {status})");
    }
    if passed == 0 {
        bail!("no test ran");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::tally;

    #[test]
    fn tallies_cargo_result_lines() {
        let (mut p, mut f) = (0, 0);
        tally(
            "test result: ok. 9 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 8.10s",
            &mut p,
            &mut f,
        );
        tally("test result: FAILED. 6 passed; 3 failed; 0 ignored", &mut p, &mut f);
        tally("running 3 tests", &mut p, &mut f);
        assert_eq!((p, f), (15, 3));
    }
}
