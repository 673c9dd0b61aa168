//! One error type for both front ends: every layer's error says its
//! `ErrorCode`, which maps once to a gRPC code and once to an HTTP status.
//! Internal causes go to the service's log, not to clients.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::backend;
use crate::run::{NameError, ResolveError};

/// The kinds of failure a client can tell apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// Malformed input: a name, a position, a request.
    InvalidArgument,
    /// The log does not exist.
    NotFound,
    /// An upload broke off before its end.
    Aborted,
    /// The provider is down or overloaded; retrying may help.
    Unavailable,
    /// A failure inside the service or its store.
    Internal,
    /// The configured provider cannot do what was asked.
    Unimplemented,
    /// No credentials, or credentials nobody issued.
    Unauthenticated,
    /// A known caller, not allowed this.
    PermissionDenied,
    /// A limit was reached; retrying later may help.
    ResourceExhausted,
    /// A time limit ended the request.
    DeadlineExceeded,
}

impl ErrorCode {
    /// The gRPC status code.
    pub fn grpc_code(self) -> tonic::Code {
        match self {
            Self::InvalidArgument => tonic::Code::InvalidArgument,
            Self::NotFound => tonic::Code::NotFound,
            Self::Aborted => tonic::Code::Aborted,
            Self::Unavailable => tonic::Code::Unavailable,
            Self::Internal => tonic::Code::Internal,
            Self::Unimplemented => tonic::Code::Unimplemented,
            Self::Unauthenticated => tonic::Code::Unauthenticated,
            Self::PermissionDenied => tonic::Code::PermissionDenied,
            Self::ResourceExhausted => tonic::Code::ResourceExhausted,
            Self::DeadlineExceeded => tonic::Code::DeadlineExceeded,
        }
    }

    /// The HTTP status, as the gRPC-HTTP gateway mapping has it.
    pub fn http_status(self) -> StatusCode {
        match self {
            Self::InvalidArgument => StatusCode::BAD_REQUEST,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Aborted => StatusCode::CONFLICT,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Unimplemented => StatusCode::NOT_IMPLEMENTED,
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::PermissionDenied => StatusCode::FORBIDDEN,
            Self::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
            Self::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        }
    }
}

/// An error as a client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// Its kind.
    pub code: ErrorCode,
    /// The client-facing message.
    pub message: String,
    /// Seconds after which a retry may succeed (`Retry-After`, and the
    /// `retry-after` gRPC metadata).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error of `code` with `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// The same error, saying when to try again.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// An `InvalidArgument` error: the request is wrong, and says how.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidArgument, message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<NameError> for ApiError {
    fn from(err: NameError) -> Self {
        Self::new(ErrorCode::InvalidArgument, err.to_string())
    }
}

impl From<ResolveError> for ApiError {
    fn from(err: ResolveError) -> Self {
        let code = match &err {
            ResolveError::NotFound { .. } => ErrorCode::NotFound,
            ResolveError::InvalidRecord { .. } => ErrorCode::InvalidArgument,
            ResolveError::Unavailable { .. } => {
                // Database errors name users and hosts: keep them in the log.
                tracing::error!(error = %err, "run database unavailable");
                return Self::new(
                    ErrorCode::Unavailable,
                    "the run database is unavailable; try again later (the cause is in the service log)",
                );
            }
        };
        Self::new(code, err.to_string())
    }
}

impl From<backend::Error> for ApiError {
    fn from(err: backend::Error) -> Self {
        use backend::Error as E;
        let code = match &err {
            E::NotFound { .. } => ErrorCode::NotFound,
            E::InvalidArgument { .. } => ErrorCode::InvalidArgument,
            E::UploadAborted { .. } => ErrorCode::Aborted,
            E::Unavailable { .. } => ErrorCode::Unavailable,
            E::Unsupported { .. } => ErrorCode::Unimplemented,
            E::Internal { provider, .. } => {
                tracing::error!(provider, error = %err, "backend operation failed");
                return Self::new(
                    ErrorCode::Internal,
                    format!("internal error in the {provider} log store; the cause is in the service log"),
                );
            }
        };
        Self::new(code, err.to_string())
    }
}

impl From<crate::auth::Error> for ApiError {
    fn from(err: crate::auth::Error) -> Self {
        use crate::auth::Error as E;
        match err {
            E::Unauthenticated(m) => Self::new(ErrorCode::Unauthenticated, m),
            E::Denied(m) => Self::new(ErrorCode::PermissionDenied, m),
            E::Unavailable(m) => Self::new(ErrorCode::Unavailable, m).retry_after(1),
        }
    }
}

impl From<ApiError> for tonic::Status {
    fn from(err: ApiError) -> Self {
        let mut status = tonic::Status::new(err.code.grpc_code(), err.message);
        if let Some(seconds) = err.retry_after {
            if let Ok(value) = seconds.to_string().parse() {
                status.metadata_mut().insert("retry-after", value);
            }
        }
        status
    }
}

/// The JSON error body of the REST routes, in the gRPC-HTTP gateway's shape.
#[derive(Debug, Serialize)]
struct ErrorBody<'a> {
    code: i32,
    message: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            code: self.code.grpc_code() as i32,
            message: &self.message,
        };
        let mut response = (self.code.http_status(), axum::Json(body)).into_response();
        let headers = response.headers_mut();
        if let Some(seconds) = self.retry_after {
            headers.insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        if self.code == ErrorCode::Unauthenticated {
            headers.insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"tekton-results-logs\""),
            );
        }
        response
    }
}
