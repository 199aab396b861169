//! Error types at `core`'s boundaries: the contract's ([`ParseError`], [`RegistryError`],
//! from `adi-classify`) and [`one_line`] to print any error.

pub use adi_classify::error::{ParseError, RegistryError};

/// An error and its causes as one line, `: `-joined, each cause left out when the text so far
/// already says it (many errors print their source in their own message; `{:#}` would then
/// say the same thing twice).
pub fn one_line(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let text = e.to_string();
        if !text.is_empty() && !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        cause = e.source();
    }
    line
}

#[cfg(test)]
mod one_line_tests {
    use super::one_line;

    #[derive(Debug, thiserror::Error)]
    #[error("attaching failed: {0}")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn causes_are_said_once() {
        let e = Outer(std::io::Error::other("tracefs not found"));
        assert_eq!(one_line(&e), "attaching failed: tracefs not found");
        let plain = std::io::Error::other("disk full");
        assert_eq!(one_line(&plain), "disk full");
    }
}
