//! Policy: certificate profiles ([`profile`]), identifier rules ([`identifiers`]), what a subject
//! may contain ([`subject`]), which characters text may hold ([`text`]) and who may do what
//! ([`authz`]). Pure decisions: no I/O.

pub mod authz;
pub mod identifiers;
pub mod profile;
pub mod subject;
pub mod text;

use crate::error::ErrorKind;

/// Refusals and failures of the policy layer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PolicyError {
    /// A request the profile does not allow (subject, requested extensions).
    #[error("request refused by profile {profile}: {reason}")]
    Refused {
        /// The profile that refused.
        profile: String,
        /// Why.
        reason: String,
    },
    /// No profile of that name.
    #[error("{0}")]
    UnknownProfile(String),
    /// A profile file is invalid, or the set of profiles is inconsistent.
    #[error("{0}")]
    ProfileFile(String),
    /// A tenant prefix that does not fit its role.
    #[error("{0}")]
    InvalidTenant(String),
    /// A role name we do not know.
    #[error("{0}")]
    UnknownRole(String),
    /// A query that cannot be answered as asked.
    #[error("{0}")]
    BadQuery(String),
    /// The principal may not do this.
    #[error(transparent)]
    Denied(#[from] authz::Denial),
}

impl PolicyError {
    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            PolicyError::Refused { .. } => "profile_violation",
            PolicyError::UnknownProfile(_) => "unknown_profile",
            PolicyError::ProfileFile(_) => "config",
            PolicyError::InvalidTenant(_) => "invalid_tenant",
            PolicyError::UnknownRole(_) => "invalid_role",
            PolicyError::BadQuery(_) => "bad_query",
            PolicyError::Denied(d) => d.code.as_str(),
        }
    }

    /// How it is answered.
    pub fn kind(&self) -> ErrorKind {
        match self {
            PolicyError::ProfileFile(_) => ErrorKind::Internal,
            PolicyError::Denied(_) => ErrorKind::Forbidden,
            _ => ErrorKind::BadRequest,
        }
    }

    pub(crate) fn refused(profile: &profile::Profile, reason: impl Into<String>) -> PolicyError {
        PolicyError::Refused {
            profile: profile.name.clone(),
            reason: reason.into(),
        }
    }
}
