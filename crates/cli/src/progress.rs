//! The progress bar on stderr: drawn only when stderr is a terminal and `--quiet` is off, so redirected
//! output and CI logs stay clean.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A byte-based progress bar for `aegis scan`.
#[derive(Debug)]
pub struct ScanProgress {
    bar: Option<ProgressBar>,
}

impl ScanProgress {
    /// A bar that draws only on a terminal.
    pub fn new(quiet: bool) -> Self {
        if quiet || !std::io::stderr().is_terminal() {
            return ScanProgress { bar: None };
        }
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{spinner} scanning {pos}/{len} files [{wide_bar}] {msg} {elapsed_precise}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style.progress_chars("=> "));
        ScanProgress { bar: Some(bar) }
    }
}

impl aegis_scan::Progress for ScanProgress {
    fn start(&self, files: u64, bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.set_length(files);
            bar.set_message(format!("{}", indicatif::HumanBytes(bytes)));
        }
    }

    fn advance(&self, _bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// A stage bar for long model work (attacks, training epochs): drawn only on a terminal.
#[derive(Debug)]
pub struct StageProgress {
    bar: Option<ProgressBar>,
}

impl StageProgress {
    /// A bar labelled `what` that draws only on a terminal.
    pub fn new(quiet: bool, what: &str) -> Self {
        if quiet || !std::io::stderr().is_terminal() {
            return StageProgress { bar: None };
        }
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        let template = format!(
            "{{spinner}} {what} [{{wide_bar}}] {{pos}}/{{len}} {{msg}} {{elapsed_precise}}"
        );
        let style = ProgressStyle::with_template(&template)
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style.progress_chars("=> "));
        StageProgress { bar: Some(bar) }
    }

    /// Set the position, the total and the message.
    pub fn set(&self, done: usize, total: usize, msg: String) {
        if let Some(bar) = &self.bar {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
            bar.set_message(msg);
        }
    }

    /// Print a line above the bar (or to stderr when there is no bar and not quiet).
    pub fn println(&self, line: &str) {
        if let Some(bar) = &self.bar {
            bar.println(line);
        }
    }

    /// Remove the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl aegis_assess::robustness::Progress for StageProgress {
    fn stage(&self, what: &str, done: usize, total: usize) {
        self.set(done, total, what.to_string());
    }
}
