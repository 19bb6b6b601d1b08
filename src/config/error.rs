//! Config errors that point at the operator's own text.
//!
//! Every problem carries the file, line and column where it was written, what
//! is wrong and, where we can tell, how to fix it. Problems are collected and
//! reported together, like a compiler, so one run of `meridian check` shows
//! every mistake instead of one per edit.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One mistake in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    /// 1-based line of the offending text.
    pub line: usize,
    /// 1-based column (in characters) of the offending text.
    pub column: usize,
    /// What is wrong, lowercase, without a trailing period.
    pub message: String,
    /// How to fix it, when we know.
    pub hint: Option<String>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: error: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
        )?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {cause}; check the path and its permissions", path.display())]
    Read {
        path: PathBuf,
        /// Named in the message, not exposed as `source()`, so a chain
        /// printer does not repeat it.
        cause: std::io::Error,
    },
    #[error("{}", render(.0))]
    Invalid(Vec<Problem>),
}

impl ConfigError {
    /// The located problems, empty when the file could not be read at all.
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Read { .. } => &[],
            ConfigError::Invalid(problems) => problems,
        }
    }

    pub fn is_invalid(&self) -> bool {
        matches!(self, ConfigError::Invalid(_))
    }
}

/// A warning as `check` prints it and `serve` logs it: like a problem, but
/// the config still loads.
pub fn render_warning(problem: &Problem) -> String {
    problem.to_string().replacen(": error: ", ": warning: ", 1)
}

fn render(problems: &[Problem]) -> String {
    let mut out = String::new();
    for problem in problems {
        out.push_str(&problem.to_string());
        out.push('\n');
    }
    let n = problems.len();
    out.push_str(&format!(
        "{n} error{} in config",
        if n == 1 { "" } else { "s" }
    ));
    out
}

/// Collects problems against one source text, turning byte spans into
/// line and column as they are reported.
pub(crate) struct Problems<'a> {
    file: &'a Path,
    text: &'a str,
    list: Vec<Problem>,
    /// Things that are allowed but probably not meant; they never stop a
    /// config from loading.
    warnings: Vec<Problem>,
}

impl<'a> Problems<'a> {
    pub fn new(file: &'a Path, text: &'a str) -> Self {
        Problems {
            file,
            text,
            list: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn locate(&self, span: Range<usize>, message: String, hint: Option<String>) -> Problem {
        let (line, column) = line_column(self.text, span.start);
        Problem {
            file: self.file.to_path_buf(),
            line,
            column,
            message,
            hint,
        }
    }

    /// Records a problem, once: a value read for several things (a
    /// service's `check` table, read for each of its endpoints) is wrong
    /// once, at one place.
    pub fn add(&mut self, span: Range<usize>, message: impl Into<String>, hint: Option<String>) {
        let problem = self.locate(span, message.into(), hint);
        if !self.list.contains(&problem) {
            self.list.push(problem);
        }
    }

    /// Records a warning, once.
    pub fn warn(
        &mut self,
        span: Range<usize>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        let warning = self.locate(span, message.into(), Some(hint.into()));
        if !self.warnings.contains(&warning) {
            self.warnings.push(warning);
        }
    }

    /// The source text the spans point into.
    pub fn text(&self) -> &str {
        self.text
    }

    /// The warnings, rendered, in file order.
    pub fn warnings(&self) -> Vec<String> {
        let mut list = self.warnings.clone();
        list.sort_by_key(|p| (p.line, p.column));
        list.iter().map(render_warning).collect()
    }

    pub fn hint(
        &mut self,
        span: Range<usize>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.add(span, message, Some(hint.into()));
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// No problem and no warning either.
    pub fn is_clean(&self) -> bool {
        self.list.is_empty() && self.warnings.is_empty()
    }

    pub fn into_vec(mut self) -> Vec<Problem> {
        self.list.sort_by_key(|p| (p.line, p.column));
        self.list
    }
}

/// 1-based line and character column of a byte offset.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..floor_char_boundary(text, offset)];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_counts_from_one() {
        let text = "a = 1\nbb = 2\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        assert_eq!(line_column(text, 9), (2, 4));
    }

    #[test]
    fn problems_render_with_location_and_hint() {
        let path = Path::new("x.toml");
        let mut problems = Problems::new(path, "k = 1\n");
        problems.hint(0..1, "unknown key `k`", "remove it");
        let err = ConfigError::Invalid(problems.into_vec());
        let text = err.to_string();
        assert!(
            text.contains("x.toml:1:1: error: unknown key `k`"),
            "{text}"
        );
        assert!(text.contains("hint: remove it"), "{text}");
        assert!(text.ends_with("1 error in config"), "{text}");
    }
}
