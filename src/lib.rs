//! pnc-pki: the Plug & Charge (ISO 15118) PKI and certificate authority service.
//!
//! Layers, outermost first (the split Let's Encrypt's Boulder uses; `docs/architecture.md`
//! follows one request through them):
//! - front ends: [`cli`], [`api`] (HTTP) and the OCSP responder's HTTP side ([`ocsp`]), all
//!   reached over HTTP through [`server`] (accept loops, TLS, timeouts, connection cap);
//! - [`ra`]: the registration authority. Every front end calls it and nothing else; it asks
//!   [`policy`] who may do what and whether a subject is acceptable, then calls the CA once;
//! - [`ca`]: builds and signs certificates, CRLs, OCSP responses and tokens, only through
//!   [`hsm`], and announces issuances and revocations to injected observers;
//! - [`store`]: SQLite / PostgreSQL persistence and the audit chain; all SQL lives there.
//!
//! Leaves with no I/O: [`alg`], [`model`], [`x509`], [`exi`], `ocsp::wire`, [`error`],
//! [`ratelimit`], [`client_ip`], [`stats`] (atomic counters for `/metrics`) and the [`clock`]
//! every layer reads time from. [`service`]
//! wires the layers together for a process.

#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod alg;
pub mod api;
pub mod ca;
pub mod cli;
pub mod client_ip;
pub mod clock;
pub mod config;
pub mod console;
pub mod duration;
pub mod error;
pub mod ev;
pub mod events;
pub mod exi;
pub mod fetch;
pub mod hsm;
pub mod model;
pub mod ocsp;
pub mod policy;
pub mod ra;
pub mod ratelimit;
pub mod server;
pub mod service;
pub mod stats;
pub mod store;
pub mod validation;
pub mod x509;
