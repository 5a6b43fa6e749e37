//! Runs a target for a time budget: proptest cases in rounds until the budget is spent, each
//! round with a fresh random seed. A failing input is shrunk, its seed stored in
//! `tests/fuzz/main.proptest-regressions` (replayed by every later run first) and reported.

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};
use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

/// How long each target runs: `FUZZ_SECONDS` (total over every target) divided by `targets`,
/// or `default` per target.
pub fn budget(targets: u32, default: Duration) -> Duration {
    match std::env::var("FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    {
        Some(total) => Duration::from_secs(total) / targets,
        None => default,
    }
}

/// Runs `check` on inputs from `strategy` until `budget` is spent; returns the number executed.
/// Panics with the minimal failing input if any input fails or panics.
pub fn fuzz<S: Strategy>(
    name: &str,
    budget: Duration,
    strategy: S,
    check: impl FnMut(S::Value) -> Result<(), TestCaseError>,
) -> u64 {
    const ROUND: u32 = 256;
    let started = Instant::now();
    let executed = Cell::new(0u64);
    let check = RefCell::new(check);
    loop {
        let config = Config {
            cases: ROUND,
            failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
                "proptest-regressions",
            ))),
            source_file: Some(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fuzz/main.rs")),
            ..Config::default()
        };
        let mut runner = TestRunner::new(config);
        if let Err(failure) = runner.run(&strategy, |input| {
            executed.set(executed.get() + 1);
            (check.borrow_mut())(input)
        }) {
            panic!(
                "fuzz target {name} failed after {} inputs: {failure}",
                executed.get()
            );
        }
        if started.elapsed() >= budget {
            break;
        }
    }
    let executed = executed.get();
    eprintln!(
        "fuzz {name}: {executed} inputs in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    executed
}
