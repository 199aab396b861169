//! Request targets to endpoint paths: the query string leaves the path (its parameter names
//! are kept, sorted), and, when templating, segments that are identifiers become `{id}`
//! (`/reviews/0` -> `/reviews/{id}`), so 200 distinct ids make one endpoint.

/// A request target split into its path (templated when asked) and its query's parameter
/// names, sorted and deduplicated.
pub fn split(target: &str, template: bool) -> (String, Vec<String>) {
    // An absolute-form target (a proxy request) keeps only its path.
    let target = match target.find("://").filter(|_| !target.starts_with('/')) {
        Some(i) => target[i + 3..]
            .find('/')
            .map_or("/", |p| &target[i + 3 + p..]),
        None => target,
    };
    let target = target.split('#').next().unwrap_or(target);
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut names: Vec<String> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split('=').next().unwrap_or(p).to_owned())
        .collect();
    names.sort();
    names.dedup();
    let path = if path.is_empty() { "/" } else { path };
    let path = if template {
        path.split('/')
            .map(|s| if is_id(s) { "{id}" } else { s })
            .collect::<Vec<_>>()
            .join("/")
    } else {
        path.to_owned()
    };
    (path, names)
}

/// Whether a path segment names one thing among many: a number, a UUID, a long hex string
/// or a long base64-like token mixing digits and letters.
fn is_id(s: &str) -> bool {
    if s.is_empty() {
        return false;
    }
    let b = s.as_bytes();
    if b.iter().all(u8::is_ascii_digit) {
        return true;
    }
    let uuid = b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        });
    if uuid {
        return true;
    }
    if b.len() >= 16 && b.iter().all(u8::is_ascii_hexdigit) {
        return true;
    }
    let token = |c: &u8| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'=');
    b.len() >= 20
        && b.iter().all(token)
        && b.iter().any(u8::is_ascii_digit)
        && b.iter().any(u8::is_ascii_alphabetic)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_become_one_endpoint() {
        let t = |s| split(s, true);
        assert_eq!(t("/reviews/0"), ("/reviews/{id}".into(), vec![]));
        assert_eq!(
            t("/reviews/199?x=1"),
            ("/reviews/{id}".into(), vec!["x".into()])
        );
        assert_eq!(
            t("/u/6f1c2a9e-0d3b-4c5a-9e8f-1a2b3c4d5e6f/orders/deadbeefdeadbeef00"),
            ("/u/{id}/orders/{id}".into(), vec![])
        );
        assert_eq!(
            t("/s/dGhpcyBpcyBhIHRva2VuMTIz/x"),
            ("/s/{id}/x".into(), vec![])
        );
        // Words stay, even long ones, and so do versions.
        assert_eq!(
            t("/api/v2/productpage"),
            ("/api/v2/productpage".into(), vec![])
        );
        assert_eq!(
            t("/search?q=a&page=2&q=b&flag"),
            (
                "/search".into(),
                vec!["flag".into(), "page".into(), "q".into()]
            )
        );
        assert_eq!(
            t("http://h:8080/a/1?z"),
            ("/a/{id}".into(), vec!["z".into()])
        );
        assert_eq!(t(""), ("/".into(), vec![]));
        // A URL in the query string is a parameter's value, not the target.
        assert_eq!(
            t("/login?next=https://x.example/home"),
            ("/login".into(), vec!["next".into()])
        );
        assert_eq!(split("/reviews/0", false).0, "/reviews/0");
    }
}
