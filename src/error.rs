//! How an error is classified across layers. Every layer has its own error enum; each can say
//! which [`ErrorKind`] it is and which stable machine-readable code it carries, so that the
//! front ends map errors to HTTP statuses and exit messages in one place each.

/// The class of a failure, independent of the layer that produced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is malformed or refused by policy (HTTP 400).
    BadRequest,
    /// No or invalid credentials (HTTP 401).
    Unauthenticated,
    /// Authenticated, but not allowed (HTTP 403).
    Forbidden,
    /// The thing asked about does not exist (HTTP 404).
    NotFound,
    /// The request conflicts with what exists (HTTP 409).
    Conflict,
    /// This caller sent too many requests; retry later (HTTP 429).
    TooManyRequests,
    /// A dependency (HSM, database, replicas) cannot serve now; retrying may help (HTTP 503).
    Unavailable,
    /// A fault on our side (HTTP 500).
    Internal,
}

impl ErrorKind {
    /// True when the caller's input is at fault, false for our side.
    pub fn is_client_error(self) -> bool {
        !matches!(self, ErrorKind::Unavailable | ErrorKind::Internal)
    }

    /// The HTTP status code of this kind.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::BadRequest => 400,
            ErrorKind::Unauthenticated => 401,
            ErrorKind::Forbidden => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::Conflict => 409,
            ErrorKind::TooManyRequests => 429,
            ErrorKind::Unavailable => 503,
            ErrorKind::Internal => 500,
        }
    }
}
