//! The one error type of the core. Messages name the expected and the actual values.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Sizes, strides or buffer lengths that do not fit together.
    BadShape(String),
    /// An option or label outside its allowed range.
    BadArgument(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BadShape(m) | Error::BadArgument(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}

pub(crate) fn bad_shape(msg: impl Into<String>) -> Error {
    Error::BadShape(msg.into())
}

pub(crate) fn bad_argument(msg: impl Into<String>) -> Error {
    Error::BadArgument(msg.into())
}
