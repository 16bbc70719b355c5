//! The one error type of vault-core, grouped into classes that map to exit codes.

use std::fmt;

/// Result type of every fallible vault-core operation.
pub type Result<T> = std::result::Result<T, Error>;

/// The class of an error: what a caller can do about it.
///
/// The CLI maps each class to one documented exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// Bad input: a malformed name, phone, option or file.
    InvalidInput,
    /// The vault, identity or record does not exist.
    NotFound,
    /// No usable credentials, or the credentials were refused.
    Locked,
    /// Authentication of stored data failed: tampering or damage.
    Integrity,
    /// The operation conflicts with what is stored, or a lookup is ambiguous.
    Conflict,
    /// Anything else: I/O failures, SQLite failures, bugs.
    Internal,
    /// A remote store could not be reached or did not answer in time.
    Unavailable,
}

impl ErrorClass {
    /// A short stable identifier, used as `error.code` in JSON output.
    pub fn code(self) -> &'static str {
        match self {
            ErrorClass::InvalidInput => "invalid_input",
            ErrorClass::NotFound => "not_found",
            ErrorClass::Locked => "locked",
            ErrorClass::Integrity => "integrity",
            ErrorClass::Conflict => "conflict",
            ErrorClass::Internal => "internal",
            ErrorClass::Unavailable => "unavailable",
        }
    }
}

/// A candidate of an ambiguous lookup: enough to pick one by uuid.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Candidate {
    /// The record's uuid.
    pub uuid: String,
    /// The username stored with the record (may be empty).
    pub username: String,
}

/// An error of vault-core. Messages never contain secret material.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input, with a message saying what was wrong.
    #[error("{0}")]
    InvalidInput(String),
    /// Something that was looked up does not exist.
    #[error("{0}")]
    NotFound(String),
    /// No credentials were available to open the vault.
    #[error("{0}")]
    Locked(String),
    /// The credentials in use may not do this (an agent key on a vault-wide
    /// operation or on an identity it was not granted).
    #[error("{0}")]
    Denied(String),
    /// The passphrase did not open the vault's root key. A damaged or
    /// tampered wrapped root key is indistinguishable from a wrong passphrase.
    #[error("wrong passphrase or damaged vault")]
    WrongPassphrase,
    /// A ciphertext, wrapped key or the file itself failed authentication.
    #[error("integrity check failed: {0}")]
    Integrity(String),
    /// The operation conflicts with stored state (duplicate name, existing vault).
    #[error("{0}")]
    Conflict(String),
    /// A lookup matched several records.
    #[error("{message}")]
    Ambiguous {
        /// What was ambiguous.
        message: String,
        /// The records that matched.
        candidates: Vec<Candidate>,
    },
    /// The store failed for a reason that is not the caller's input.
    #[error("storage error: {0}")]
    Storage(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A file could not be read or written.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The operating system's random number generator failed.
    #[error("the OS random number generator failed: {0}")]
    Rng(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The system clock is before 1970.
    #[error("the system clock is before 1970")]
    Clock(#[source] std::time::SystemTimeError),
    /// A value could not be encoded (a bug: every encoded type is plain data).
    #[error("encoding failed: {0}")]
    Encoding(#[source] serde_json::Error),
    /// A cryptographic operation failed where it cannot on valid input (a bug).
    #[error("{0} failed")]
    Crypto(&'static str),
    /// A remote store could not be reached, or did not answer in time.
    /// Nothing was written by the call that failed (or, for a commit whose
    /// answer was lost, the batch was applied whole or not at all).
    #[error("{0}")]
    Unavailable(String),
}

impl Error {
    /// The class of this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::InvalidInput(_) => ErrorClass::InvalidInput,
            Error::NotFound(_) => ErrorClass::NotFound,
            Error::Locked(_) | Error::WrongPassphrase | Error::Denied(_) => ErrorClass::Locked,
            Error::Integrity(_) => ErrorClass::Integrity,
            Error::Conflict(_) | Error::Ambiguous { .. } => ErrorClass::Conflict,
            Error::Storage(_)
            | Error::Io { .. }
            | Error::Rng(_)
            | Error::Clock(_)
            | Error::Encoding(_)
            | Error::Crypto(_) => ErrorClass::Internal,
            Error::Unavailable(_) => ErrorClass::Unavailable,
        }
    }

    /// A short stable identifier for `error.code` in JSON output: the class
    /// code, except `denied` for [`Error::Denied`].
    pub fn code(&self) -> &'static str {
        match self {
            Error::Denied(_) => "denied",
            other => other.class().code(),
        }
    }

    /// The candidates of an ambiguous lookup, empty otherwise.
    pub fn candidates(&self) -> &[Candidate] {
        match self {
            Error::Ambiguous { candidates, .. } => candidates,
            _ => &[],
        }
    }

    pub(crate) fn invalid(msg: impl fmt::Display) -> Self {
        Error::InvalidInput(msg.to_string())
    }

    pub(crate) fn io(context: impl fmt::Display, source: std::io::Error) -> Self {
        Error::Io {
            context: context.to_string(),
            source,
        }
    }

    /// The error for a record or wrapped key whose authentication failed.
    pub(crate) fn tampered(what: impl fmt::Display) -> Self {
        Error::Integrity(format!(
            "{what} failed to authenticate (damaged or tampered)"
        ))
    }
}
