//! The backend layer's error: what a caller of `LogBackend` branches on.

/// Result of a backend operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a backend operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The log does not exist in the store.
    #[error("log {name:?} not found")]
    NotFound {
        /// The log name.
        name: String,
    },
    /// The request cannot be served as asked (e.g. a position past the end).
    #[error("{message}")]
    InvalidArgument {
        /// What is wrong, naming the value.
        message: String,
    },
    /// The upload stream ended with an error before it finished; nothing of
    /// it was stored.
    #[error("upload of {name:?} aborted: {message}")]
    UploadAborted {
        /// The log name.
        name: String,
        /// Why the stream broke.
        message: String,
    },
    /// The provider cannot do this at all.
    #[error("the {provider} provider does not support {operation}")]
    Unsupported {
        /// The provider.
        provider: &'static str,
        /// What was asked, e.g. `deleting logs`.
        operation: &'static str,
    },
    /// The provider cannot be reached or is overloaded; try again later.
    #[error("{provider} is unavailable: {message}")]
    Unavailable {
        /// The provider (`local`, `loki`, ...).
        provider: &'static str,
        /// The cause.
        message: String,
    },
    /// Anything else: an I/O failure, a malformed provider answer.
    #[error("{provider}: {message}")]
    Internal {
        /// The provider (`local`, `loki`, ...).
        provider: &'static str,
        /// The cause, for the service's log.
        message: String,
    },
}

impl Error {
    /// An internal failure of `provider`, from any displayable cause.
    pub fn internal(provider: &'static str, cause: impl std::fmt::Display) -> Self {
        Self::Internal {
            provider,
            message: cause.to_string(),
        }
    }
}
