//! Error types of the EXI layer.

use iso15118::exi::ExiError;

/// Error from decoding or encoding an EXI stream or fragment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The stream does not match the grammar; `bit` is the position where
    /// the decoder stopped (bits from the start of the stream, header included).
    #[error("EXI decode error at bit {bit} (byte {byte}): {kind}", byte = bit / 8)]
    Decode {
        /// What went wrong.
        kind: ExiError,
        /// Bit offset where decoding stopped.
        bit: usize,
    },
    /// A value could not be encoded (out of schema range, too long, ...).
    #[error("EXI encode error: {0}")]
    Encode(ExiError),
    /// The stream is a valid start of a V2G message, but not one this module handles.
    #[error("unsupported message: {0}")]
    UnsupportedMessage(String),
    /// The input is larger than any certificate message can be.
    #[error("input too large: {len} bytes (limit {limit})")]
    InputTooLarge {
        /// Input length.
        len: usize,
        /// Accepted maximum.
        limit: usize,
    },
    /// A structural value is outside what the schema or profile permits.
    #[error("invalid value: {0}")]
    Invalid(String),
}

impl CodecError {
    pub(crate) fn decode(kind: ExiError, bit: usize) -> Self {
        Self::Decode { kind, bit }
    }
}

impl From<ExiError> for CodecError {
    fn from(e: ExiError) -> Self {
        Self::Encode(e)
    }
}

/// Result alias of the EXI layer.
pub type Result<T, E = CodecError> = core::result::Result<T, E>;
