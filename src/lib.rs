//! pnc-pki: the Plug & Charge (ISO 15118) PKI and certificate authority service.
//!
//! Layers, outermost first (the split Let's Encrypt's Boulder uses):
//! - `cli` and `api`: front ends (command line, HTTP);
//! - `policy`: profiles, identifiers, who may ask for what;
//! - `ca`: builds and signs certificates, only through `hsm`;
//! - `store`: SQLite / PostgreSQL persistence and the audit chain.
//!
//! `x509` holds format code with no I/O.

pub mod api;
pub mod ca;
pub mod cli;
pub mod config;
pub mod exi;
pub mod hsm;
pub mod ocsp;
pub mod policy;
pub mod store;
pub mod x509;
