//! What the classifiers' nom parsers share: the result type over bytes and the verification
//! failure.

use adi_classify::{ParseError, ProtocolId};
use nom::error::{Error, ErrorKind};
use nom::{Err, IResult};

/// A nom result over bytes.
pub(crate) type PResult<'a, T> = IResult<&'a [u8], T>;

/// A recoverable error at `i` (`ErrorKind::Verify`): the bytes are not what the format allows.
pub(crate) fn fail<T>(i: &[u8]) -> PResult<'_, T> {
    Err(Err::Error(Error::new(i, ErrorKind::Verify)))
}

/// A session's reading of a streaming parser's `result`: `Ok(Some((rest, value)))`, `Ok(None)`
/// while more bytes could complete it, else a [`ParseError::malformed`] naming `what`.
///
/// # Errors
///
/// [`ParseError::Malformed`] when the bytes cannot be `what` of `protocol`.
pub(crate) fn read<'a, T>(
    result: PResult<'a, T>,
    protocol: ProtocolId,
    what: &'static str,
) -> Result<Option<(&'a [u8], T)>, ParseError> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(Err::Incomplete(_)) => Ok(None),
        Err(_) => Err(ParseError::malformed(protocol, what)),
    }
}
