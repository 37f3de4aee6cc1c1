//! OCSP (RFC 6960 / RFC 5019).

pub mod wire;
