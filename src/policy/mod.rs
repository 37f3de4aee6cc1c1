//! Policy and authorization: certificate profiles and identifier rules.

pub mod identifiers;
pub mod profile;
