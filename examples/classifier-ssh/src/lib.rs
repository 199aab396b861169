//! An example third-party classifier: SSH, recognised by its version banner.
//!
//! It lives outside `adi-classifiers` and depends on `adi-core` only, to show how anyone adds
//! a protocol to `adi`: implement [`Classifier`], call [`adi_core::register_classifier!`] once,
//! and make the binary link the crate (`use adi_classifier_ssh as _;` in `bin/src/main.rs`;
//! rust-lang/rust#64731 drops crates nothing references). `adi classifiers` then lists `ssh`
//! and `adi classify` uses it.
//!
//! Evidence (RFC 4253 section 4.2): both sides first send `SSH-protoversion-softwareversion`,
//! optionally followed by ` comments`, ended by CR LF, at most 255 bytes. The server speaks
//! first, so the banner is recognised in either direction. Servers may send other lines before
//! the banner (RFC 4253 allows it); those are not recognised here.
#![forbid(unsafe_code)]

use adi_core::record::{Record, RecordKind};
use adi_core::{
    Category, Classifier, Confidence, Direction, ParseError, PortHint, Probe, ProtocolId, Session,
    Verdict,
};

/// The protocol id.
pub const SSH: ProtocolId = ProtocolId::new("ssh");
/// SSH is a remote shell: a category of its own.
pub const REMOTE_ACCESS: Category = Category::new("remote_access");
/// RFC 4253 section 4.2: the identification string is at most 255 bytes including CR LF.
const MAX_BANNER: usize = 255;
const BANNER_MAGIC: &[u8] = b"SSH-";

/// The classifier (zero-sized; per-flow state lives in [`SshSession`]).
#[derive(Debug)]
pub struct Ssh;

adi_core::register_classifier!(adi_core::Registration {
    id: SSH,
    category: REMOTE_ACCESS,
    description: "SSH version banner (example third-party plugin)",
    default_ports: &[22],
    probe_window: 1..=MAX_BANNER,
    classifier: &Ssh,
});

/// Where a banner line ends, if it is complete within the limit.
fn banner_end(buf: &[u8]) -> Option<usize> {
    buf.iter().take(MAX_BANNER).position(|&b| b == b'\n')
}

impl Classifier for Ssh {
    fn probe(&self, buf: &[u8], _dir: Direction, _ports: PortHint) -> Probe {
        let n = buf.len().min(BANNER_MAGIC.len());
        if buf[..n] != BANNER_MAGIC[..n] {
            return Probe::NoMatch;
        }
        if buf.len() < 8 {
            return Probe::NeedMore;
        }
        // protoversion: "2.0", or "1.99" from servers that also speak SSH 1.
        if !(buf.starts_with(b"SSH-2.0-")
            || buf.starts_with(b"SSH-1.99-")
            || buf.starts_with(b"SSH-1.9"))
        {
            return Probe::NoMatch;
        }
        match banner_end(buf) {
            Some(end) if end > 0 && buf[end - 1] == b'\r' => Probe::Match(Verdict::new(
                SSH,
                REMOTE_ACCESS,
                Confidence::CERTAIN,
                "SSH version banner",
            )),
            Some(_) => Probe::Match(Verdict::new(
                SSH,
                REMOTE_ACCESS,
                Confidence::STRONG,
                "SSH banner without CR",
            )),
            None if buf.len() >= MAX_BANNER => Probe::NoMatch,
            None => Probe::Match(Verdict::new(
                SSH,
                REMOTE_ACCESS,
                Confidence::WEAK,
                "SSH banner prefix",
            )),
        }
    }

    fn session(&self) -> Box<dyn Session> {
        Box::new(SshSession {
            banners_seen: [false; 2],
        })
    }
}

/// Reads each side's banner; everything after it is the encrypted binary packet protocol,
/// consumed without parsing.
#[derive(Debug)]
pub struct SshSession {
    banners_seen: [bool; 2],
}

impl Session for SshSession {
    fn parse(
        &mut self,
        buf: &[u8],
        dir: Direction,
        out: &mut Vec<Record>,
    ) -> Result<usize, ParseError> {
        if self.banners_seen[dir.index()] {
            return Ok(buf.len());
        }
        let Some(end) = banner_end(buf) else {
            if buf.len() >= MAX_BANNER {
                return Err(ParseError::TooLarge {
                    protocol: SSH,
                    what: "banner",
                    len: buf.len(),
                    max: MAX_BANNER,
                });
            }
            return Ok(0);
        };
        let line = buf[..end].strip_suffix(b"\r").unwrap_or(&buf[..end]);
        let mut record = Record::new(RecordKind::Message);
        record.op = Some("banner".to_owned());
        record.resource = Some(String::from_utf8_lossy(line).into_owned());
        record.wire_len = (end + 1) as u64;
        out.push(record);
        self.banners_seen[dir.index()] = true;
        Ok(end + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // OpenSSH 9.2p1 (Debian 12) server banner: "SSH-2.0-" + software version + CR LF.
    const SERVER: &[u8] = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n";

    #[test]
    fn probe_matches_banner_in_both_directions() {
        for dir in [Direction::ToServer, Direction::ToClient] {
            let Probe::Match(v) = Ssh.probe(SERVER, dir, PortHint::NONE) else {
                panic!("no match")
            };
            assert_eq!((v.protocol, v.confidence), (SSH, Confidence::CERTAIN));
        }
    }

    #[test]
    fn every_prefix_needs_more_or_matches() {
        for len in 1..SERVER.len() {
            assert_ne!(
                Ssh.probe(&SERVER[..len], Direction::ToClient, PortHint::NONE),
                Probe::NoMatch,
                "{len}"
            );
        }
    }

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

    #[test]
    fn session_reads_banner_then_consumes_the_rest() {
        let mut s = Ssh.session();
        let mut out = Vec::new();
        let mut bytes = SERVER.to_vec();
        bytes.extend_from_slice(&[0, 0, 1, 0x14, 0x0a]);
        let n = s
            .parse(&bytes, Direction::ToClient, &mut out)
            .expect("parse");
        assert_eq!(n, SERVER.len());
        assert_eq!(
            out[0].resource.as_deref(),
            Some("SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3")
        );
        assert_eq!(
            s.parse(&bytes[n..], Direction::ToClient, &mut out)
                .expect("parse"),
            5
        );
    }

    #[test]
    fn registered_through_inventory() {
        let reg = adi_core::Registry::from_inventory().expect("registry");
        assert!(reg.get("ssh").is_some());
    }
}
