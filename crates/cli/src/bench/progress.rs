//! Progress on stderr for long runs. Drawn only when stderr is a terminal, so logs of scripted
//! runs stay clean.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::time::Duration;

/// A bar counting towards `total` (or a spinner when `total` is 0), refreshed a few times a
/// second.
pub fn bar(quiet: bool, total: u64, message: &str) -> ProgressBar {
    let bar = if total > 0 {
        ProgressBar::new(total)
    } else {
        ProgressBar::new_spinner()
    };
    if quiet {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    } else {
        bar.set_draw_target(ProgressDrawTarget::stderr_with_hz(4));
    }
    let template = if total > 0 {
        "{msg:>12} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} ({per_sec})"
    } else {
        "{msg:>12} [{elapsed_precise}] {spinner} {human_pos} ({per_sec})"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar.set_message(message.to_owned());
    bar.enable_steady_tick(Duration::from_millis(250));
    bar
}

/// Prints a line on stderr unless quiet, without disturbing a bar being drawn.
pub fn note(quiet: bool, line: &str) {
    if !quiet {
        eprintln!("{line}");
    }
}
