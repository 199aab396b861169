//! What the classifiers' nom parsers share: the result type over bytes and the verification
//! failure.

use nom::error::{Error, ErrorKind};
use nom::{Err, IResult};

/// A nom result over bytes.
pub(crate) type PResult<'a, T> = IResult<&'a [u8], T>;

/// A recoverable error at `i` (`ErrorKind::Verify`): the bytes are not what the format allows.
pub(crate) fn fail<T>(i: &[u8]) -> PResult<'_, T> {
    Err(Err::Error(Error::new(i, ErrorKind::Verify)))
}
