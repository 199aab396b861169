//! What a probe made of the body of a length-framed message: shared by the classifiers whose
//! messages start with a header that gives their length (mongodb, mssql).

use nom::error::Error;
use nom::Err;

/// What the body of a message (or packet) showed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Body {
    /// Not this protocol.
    No,
    /// Not enough bytes yet.
    More,
    /// The first fields (of the first document, of the message) checked out.
    Plausible,
    /// The whole message parsed and its lengths agree.
    Whole,
}

/// `Whole` when the message is whole, else `Plausible`.
pub(crate) const fn band(whole: bool) -> Body {
    if whole {
        Body::Whole
    } else {
        Body::Plausible
    }
}

/// Reads a nom result on a possibly incomplete message: `Incomplete` is `More` while the
/// message is not whole, `No` once it is.
pub(crate) fn body_of<T>(r: Result<T, Err<Error<&[u8]>>>, whole: bool) -> Result<T, Body> {
    match r {
        Ok(x) => Ok(x),
        Err(Err::Incomplete(_)) if !whole => Err(Body::More),
        Err(_) => Err(Body::No),
    }
}
