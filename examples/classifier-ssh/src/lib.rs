//! An example third-party classifier: SSH, recognised by its version banner.
//!
//! It lives outside `adi-classifiers` and depends on the contract crate `adi-classify` only,
//! to show how anyone adds a protocol to `adi`: implement [`Classifier::probe`], register it
//! once, and make the binary link the crate (`use adi_classifier_ssh as _;` in
//! `bin/src/main.rs`; rust-lang/rust#64731 drops crates nothing references). `adi classifiers`
//! then lists `ssh` and `adi classify` uses it. It only detects, so it writes no session: the
//! default one consumes the (encrypted) bytes after the banners unread.
//!
//! Evidence (RFC 4253 section 4.2): both sides first send `SSH-protoversion-softwareversion`,
//! optionally followed by ` comments`, ended by CR LF, at most 255 bytes. The server speaks
//! first, so the banner is recognised in either direction. Servers may send other lines before
//! the banner (RFC 4253 allows it); those are not recognised here.
#![forbid(unsafe_code)]

use adi_classify::{Category, Classifier, Confidence, Direction, PortHint, Probe, ProtocolId};

/// RFC 4253 section 4.2: the identification string is at most 255 bytes including CR LF.
const MAX_BANNER: usize = 255;

/// The classifier (zero-sized).
#[derive(Debug)]
pub struct Ssh;

adi_classify::register_classifier!(adi_classify::Registration {
    id: ProtocolId::new("ssh"),
    category: Category::new("remote_access"),
    description: "SSH version banner (example third-party plugin)",
    default_ports: &[22],
    probe_window: 1..=MAX_BANNER,
    classifier: &Ssh,
});

impl Classifier for Ssh {
    fn probe(&self, buf: &[u8], _dir: Direction, _ports: PortHint) -> Probe {
        // protoversion: "2.0", or "1.99" from servers that also speak SSH 1.
        let known = [&b"SSH-2.0-"[..], b"SSH-1.99-", b"SSH-1.9"];
        if !known
            .iter()
            .any(|v| v.starts_with(buf) || buf.starts_with(v))
        {
            return Probe::NoMatch;
        }
        if buf.len() < 8 {
            return Probe::NeedMore;
        }
        match buf.iter().take(MAX_BANNER).position(|&b| b == b'\n') {
            Some(end) if end > 0 && buf[end - 1] == b'\r' => {
                Probe::matched(Confidence::CERTAIN, "SSH version banner")
            }
            Some(_) => Probe::matched(Confidence::STRONG, "SSH banner without CR"),
            None if buf.len() >= MAX_BANNER => Probe::NoMatch,
            None => Probe::matched(Confidence::WEAK, "SSH banner prefix"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The fixtures, fixture prefixes, random bytes and confusion with any linked classifier.
    adi_classify::conformance_tests!("ssh", "fixtures", Confidence::CERTAIN);

    #[test]
    fn rejects_look_alikes() {
        for bytes in [
            &b"SSH-3.0-x\r\n"[..],
            b"GET / HTTP/1.1\r\n",
            b"SSHX",
            &[0x16, 3, 1],
        ] {
            assert_eq!(
                Ssh.probe(bytes, Direction::ToServer, PortHint::NONE),
                Probe::NoMatch,
                "{bytes:?}"
            );
        }
    }
}
