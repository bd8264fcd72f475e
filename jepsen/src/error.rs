//! Errors of the history model: a history file that cannot be read, or a history that
//! breaks the invariants of [`crate::history`]. Checkers never fail with an error: what
//! they cannot decide is an `Unknown` verdict.

/// Why a history could not be read, written or trusted.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("history I/O: {0}")]
    Io(#[from] std::io::Error),
    /// A line of a JSON-lines history is not an op (1-based line number).
    #[error("history line {line}: {source}")]
    Parse { line: usize, source: serde_json::Error },
    #[error("encoding an op: {source}")]
    Encode { source: serde_json::Error },
    /// Op `index` completes before it was invoked.
    #[error("op {index} completes before it is invoked")]
    CompletesBeforeInvoke { index: usize },
    /// Two ops of one process overlap in time (indices into the history).
    #[error("process {process} runs ops {first} and {second} at once")]
    ProcessOverlap { process: u32, first: usize, second: usize },
}
