//! Fuzz harnesses for every decoder a peer reaches (docs/fuzzing.md): engine-port messages and
//! the functions they call, subscriber messages and the joins they make, `stream::update` ops and
//! paths, configuration text with `${VAR}` interpolation, and `/stream/...` URLs.
//!
//! Inputs come from proptest strategies that know the wire formats (so most inputs get past the
//! first decoding step) and from byte-level mutations of those inputs and of real messages (so
//! broken framing, truncations and stray bytes are covered too). A run lasts a time budget, not a
//! number of cases, and reports how many inputs it executed. A failure is shrunk to a minimal
//! input, and its seed is stored by proptest in `tests/fuzz/main.proptest-regressions`, which
//! every later run replays first; fixed crashes also get a named regression test.

pub mod inputs;
pub mod run;
pub mod targets;
