//! The one error type of `ferry-core`, shared by connectors.

use std::fmt;

/// What kind of failure an [`Error`] is; decides how the runner reacts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The task file or a URL is wrong.
    Config,
    /// The server refused the credentials.
    Auth,
    /// The server could not be reached or the connection dropped.
    Connection,
    /// A table or column is missing or does not fit.
    Schema,
    /// A value cannot be represented on the other side.
    Conversion,
    /// The source server reported an error.
    Source,
    /// The target server reported an error.
    Target,
    /// The operation is not supported by this connector.
    Unsupported,
    /// A bug in Ferry.
    Internal,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            ErrorKind::Config => "config",
            ErrorKind::Auth => "auth",
            ErrorKind::Connection => "connection",
            ErrorKind::Schema => "schema",
            ErrorKind::Conversion => "conversion",
            ErrorKind::Source => "source",
            ErrorKind::Target => "target",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Internal => "internal",
        };
        f.write_str(name)
    }
}

/// An error from a connector or the core, with its kind, whether a retry can help,
/// and a message that names the table/column/row involved.
#[derive(Debug, thiserror::Error)]
#[error("{kind} error: {message}")]
pub struct Error {
    kind: ErrorKind,
    retryable: bool,
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// Result with the core [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error of `kind`; retryable only for connection errors.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            retryable: kind == ErrorKind::Connection,
            message: message.into(),
            source: None,
        }
    }

    /// Attaches the underlying cause.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// Overrides whether retrying can help.
    pub fn retryable(mut self, retryable: bool) -> Self {
        self.retryable = retryable;
        self
    }

    /// Prefixes the message with context (e.g. the table being copied).
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether retrying the operation can succeed.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }

    /// The message without the kind prefix.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Shorthand for a [`ErrorKind::Config`] error.
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Config, message)
    }

    /// Shorthand for a [`ErrorKind::Schema`] error.
    pub fn schema(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Schema, message)
    }

    /// Shorthand for a [`ErrorKind::Conversion`] error.
    pub fn conversion(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conversion, message)
    }

    /// Shorthand for a [`ErrorKind::Internal`] error.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// Shorthand for a [`ErrorKind::Unsupported`] error.
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, message)
    }

    /// The message followed by its chain of causes, on one line.
    pub fn full_message(&self) -> String {
        let mut out = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            let text = c.to_string();
            if !out.contains(&text) {
                out.push_str(": ");
                out.push_str(&text);
            }
            cause = c.source();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_errors_are_retryable_by_default() {
        assert!(Error::new(ErrorKind::Connection, "x").is_retryable());
        assert!(!Error::new(ErrorKind::Schema, "x").is_retryable());
    }

    #[test]
    fn context_prefixes_message() {
        let e = Error::schema("column missing").context("table public.t");
        assert_eq!(
            e.to_string(),
            "schema error: table public.t: column missing"
        );
    }
}
