//! Who may call what: bearer tokens with roles, and the defences against web pages (the
//! `Host` and `Origin` checks, CORS).
//!
//! A browser lets any page send some requests to any address without asking the server
//! first (a form post, a `fetch` with a `text/plain` body), and a DNS-rebinding page can
//! even make its own name resolve to 127.0.0.1. So the service refuses, before anything
//! runs: a `Host` it does not serve (rebinding), an `Origin` it was not told to trust
//! (cross-site requests), and bodies that are not `application/json` (the shapes a browser
//! sends without a preflight).

use std::collections::BTreeSet;
use std::path::Path;

use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use sha2::{Digest, Sha256};

/// What a request may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Right {
    /// Reads: get, batch-get, query, metrics.
    Read,
    /// Everything: also put, delete, allocate-ids, call and the example's operations.
    Write,
}

impl Right {
    /// The right a route needs (`None`: open to all, as the health probe). `route` is the
    /// matched route template; it may carry the prefix of a router the service is nested in.
    pub fn of(method: &Method, route: &str) -> Option<Right> {
        let read = method == Method::GET || method == Method::HEAD;
        if route.ends_with("/v1/health") {
            None
        } else if route.ends_with("/v1/entities/{*key}") && read
            || [
                "/v1/batch-get",
                "/v1/query",
                "/v1/count",
                "/v1/schema",
                "/metrics",
            ]
            .iter()
            .any(|r| route.ends_with(r))
        {
            Some(Right::Read)
        } else {
            Some(Right::Write)
        }
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// No credentials, or unknown ones: 401.
    Unauthenticated(String),
    /// Known credentials without the right: 403.
    Forbidden(String),
}

/// Decides whether a request may have a right. The service asks it for every request
/// whose route needs one; an embedder can plug in its own (mTLS identities, an external
/// auth service) in place of [`Tokens`].
pub trait AccessPolicy: Send + Sync + 'static {
    /// `Ok` if the request may use `right`. Must not log credentials.
    fn check(&self, request: &Parts, right: Right) -> Result<(), Denied>;
}

/// No authentication: every request has every right (loopback use).
#[derive(Debug, Clone, Copy, Default)]
pub struct Open;

impl AccessPolicy for Open {
    fn check(&self, _: &Parts, _: Right) -> Result<(), Denied> {
        Ok(())
    }
}

/// Bearer tokens, each with a role (`read` or `write`).
///
/// File format (`--tokens PATH`): one `ROLE TOKEN` per line; blank lines and lines starting
/// with `#` are ignored. A token has at least [`MIN_TOKEN_LEN`] characters and no white
/// space. Tokens are kept only as SHA-256 digests and compared in constant time.
pub struct Tokens {
    /// (digest, role), every entry compared on each request.
    entries: Vec<([u8; 32], Right)>,
}

/// The shortest token accepted: 16 characters (at least 64 bits from a random generator
/// that prints hex, far more from base64).
pub const MIN_TOKEN_LEN: usize = 16;

/// A token file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    /// The file could not be read.
    #[error("cannot read the tokens file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A line is malformed.
    #[error("tokens file {path}, line {line}: {message}")]
    Line {
        /// The file.
        path: String,
        /// The 1-based line number.
        line: usize,
        /// What is wrong (never the token itself).
        message: String,
    },
    /// The file holds no token.
    #[error("tokens file {path} holds no token (lines are `read TOKEN` or `write TOKEN`)")]
    Empty {
        /// The file.
        path: String,
    },
}

impl Tokens {
    /// Reads a token file.
    pub fn from_file(path: &Path) -> Result<Tokens, TokenFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokenFileError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Tokens::parse(&text).map_err(|err| match err {
            TokenFileError::Line { line, message, .. } => TokenFileError::Line {
                path: path.display().to_string(),
                line,
                message,
            },
            TokenFileError::Empty { .. } => TokenFileError::Empty {
                path: path.display().to_string(),
            },
            other => other,
        })
    }

    /// Reads a token file's text.
    pub fn parse(text: &str) -> Result<Tokens, TokenFileError> {
        let mut entries: Vec<([u8; 32], Right)> = Vec::new();
        let mut seen = BTreeSet::new();
        for (index, line) in text.lines().enumerate() {
            let line_error = |message: &str| TokenFileError::Line {
                path: String::new(),
                line: index + 1,
                message: message.to_string(),
            };
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line.split_whitespace();
            let role = match words.next() {
                Some("read") => Right::Read,
                Some("write") => Right::Write,
                Some(_) => return Err(line_error("the role must be `read` or `write`")),
                None => continue,
            };
            let token = words
                .next()
                .ok_or_else(|| line_error("a token must follow the role"))?;
            if words.next().is_some() {
                return Err(line_error(
                    "one role and one token per line (a token holds no white space)",
                ));
            }
            if token.chars().count() < MIN_TOKEN_LEN {
                return Err(line_error(&format!(
                    "the token is shorter than {MIN_TOKEN_LEN} characters"
                )));
            }
            let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
            if !seen.insert(digest) {
                return Err(line_error("this token is already listed"));
            }
            entries.push((digest, role));
        }
        if entries.is_empty() {
            return Err(TokenFileError::Empty {
                path: String::new(),
            });
        }
        Ok(Tokens { entries })
    }

    /// The role of `token`, if it is one: every entry is compared, each in constant time.
    fn role(&self, token: &[u8]) -> Option<Right> {
        let digest: [u8; 32] = Sha256::digest(token).into();
        let mut found = None;
        for (known, role) in &self.entries {
            let difference = known
                .iter()
                .zip(digest.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            if difference == 0 {
                found = Some(*role);
            }
        }
        found
    }
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens({} entries)", self.entries.len())
    }
}

impl AccessPolicy for Tokens {
    fn check(&self, request: &Parts, right: Right) -> Result<(), Denied> {
        let Some(value) = request.headers.get(header::AUTHORIZATION) else {
            return Err(Denied::Unauthenticated(
                "this service needs a token: send `Authorization: Bearer TOKEN`".into(),
            ));
        };
        let token = value
            .as_bytes()
            .strip_prefix(b"Bearer ")
            .or_else(|| value.as_bytes().strip_prefix(b"bearer "))
            .ok_or_else(|| {
                Denied::Unauthenticated("the Authorization header must be `Bearer TOKEN`".into())
            })?;
        match self.role(token) {
            None => Err(Denied::Unauthenticated("unknown token".into())),
            Some(role) if role >= right => Ok(()),
            Some(_) => Err(Denied::Forbidden(
                "this token may only read (its role is `read`)".into(),
            )),
        }
    }
}

/// Which `Host` and `Origin` values the service answers: its defence against DNS rebinding
/// and cross-site requests.
#[derive(Debug, Clone)]
pub struct CrossSite {
    /// Host names (without port) requests may be addressed to; `None`: any.
    pub hosts: Option<BTreeSet<String>>,
    /// Origins (`https://app.example`) whose pages may call; `None`: any. A request
    /// without an `Origin` header is not from a page's script and is not checked.
    pub origins: Option<BTreeSet<String>>,
}

impl Default for CrossSite {
    /// Loopback names only, no origin.
    fn default() -> Self {
        CrossSite {
            hosts: Some(
                ["localhost", "127.0.0.1", "::1", "[::1]"]
                    .into_iter()
                    .map(String::from)
                    .collect(),
            ),
            origins: Some(BTreeSet::new()),
        }
    }
}

impl CrossSite {
    /// Also serves `host` (a name or an IP address, any port; `*` turns the check off).
    pub fn allow_host(&mut self, host: &str) {
        if host == "*" {
            self.hosts = None;
        } else if let Some(hosts) = &mut self.hosts {
            let host = host.to_ascii_lowercase();
            // A port is not part of the name (`db.internal:8080`, `[::1]:8080`).
            let host = match host.rfind(':') {
                Some(colon)
                    if host[colon + 1..].bytes().all(|b| b.is_ascii_digit())
                        && (host.starts_with('[') && host[..colon].ends_with(']')
                            || !host[..colon].contains(':')) =>
                {
                    host[..colon].to_string()
                }
                _ => host,
            };
            if host.contains(':') && !host.starts_with('[') {
                hosts.insert(format!("[{host}]"));
            }
            hosts.insert(host);
        }
    }

    /// Also trusts pages from `origin` (`*` trusts any).
    pub fn allow_origin(&mut self, origin: &str) {
        if origin == "*" {
            self.origins = None;
        } else if let Some(origins) = &mut self.origins {
            origins.insert(origin.trim_end_matches('/').to_ascii_lowercase());
        }
    }

    /// `Ok` if the `Host` header names a served host (a request without one, from an
    /// HTTP/1.0 client, passes: browsers always send it).
    pub(super) fn check_host(&self, headers: &HeaderMap) -> Result<(), String> {
        let (Some(hosts), Some(value)) = (&self.hosts, headers.get(header::HOST)) else {
            return Ok(());
        };
        let text = value.to_str().unwrap_or("").to_ascii_lowercase();
        // Strip the port: `[::1]:8080`, `localhost:8080`.
        let name = match text.rfind(':') {
            Some(colon) if !text[colon..].contains(']') => &text[..colon],
            _ => text.as_str(),
        };
        if hosts.contains(name) {
            Ok(())
        } else {
            Err(format!(
                "this service does not answer for host {name:?}: name it with --allow-host"
            ))
        }
    }

    /// The request's `Origin`, if it has one and it is trusted; an error if it is not.
    pub(super) fn check_origin(&self, headers: &HeaderMap) -> Result<Option<HeaderValue>, String> {
        let Some(origin) = headers.get(header::ORIGIN) else {
            return Ok(None);
        };
        let allowed = match &self.origins {
            None => true,
            Some(origins) => origins.contains(&origin.to_str().unwrap_or("").to_ascii_lowercase()),
        };
        if allowed {
            Ok(Some(origin.clone()))
        } else {
            Err(format!(
                "pages from origin {:?} may not call this service: trust it with --allow-origin",
                origin.to_str().unwrap_or("(not text)")
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(headers: &[(&str, &str)]) -> Parts {
        let mut request = axum::http::Request::builder();
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(()).unwrap().into_parts().0
    }

    #[test]
    fn tokens_grant_their_role_and_no_more() {
        let tokens =
            Tokens::parse("# readers\nread r-0123456789abcdef\n\nwrite w-0123456789abcdef\n")
                .unwrap();
        let reader = parts(&[("authorization", "Bearer r-0123456789abcdef")]);
        let writer = parts(&[("authorization", "Bearer w-0123456789abcdef")]);
        assert_eq!(tokens.check(&reader, Right::Read), Ok(()));
        assert!(matches!(
            tokens.check(&reader, Right::Write),
            Err(Denied::Forbidden(_))
        ));
        assert_eq!(tokens.check(&writer, Right::Write), Ok(()));
        for headers in [
            vec![],
            vec![("authorization", "Bearer r-0123456789abcdeX")],
            vec![("authorization", "Basic r-0123456789abcdef")],
        ] {
            assert!(matches!(
                tokens.check(&parts(&headers), Right::Read),
                Err(Denied::Unauthenticated(_))
            ));
        }
    }

    #[test]
    fn token_files_are_checked_line_by_line() {
        for (text, line, says) in [
            ("read short", 1, "shorter"),
            ("\nadmin 0123456789abcdef0", 2, "role"),
            (
                "read 0123456789abcdef0\nwrite 0123456789abcdef0",
                2,
                "already",
            ),
            ("read 0123456789abcdef0 extra", 1, "one role"),
            ("write", 1, "must follow"),
        ] {
            match Tokens::parse(text) {
                Err(TokenFileError::Line {
                    line: got, message, ..
                }) => {
                    assert_eq!(got, line, "{text}");
                    assert!(message.contains(says), "{text}: {message}");
                    assert!(!message.contains("0123456789"), "no token in {message}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
        assert!(matches!(
            Tokens::parse("# none\n"),
            Err(TokenFileError::Empty { .. })
        ));
    }

    #[test]
    fn hosts_and_origins() {
        let mut policy = CrossSite::default();
        let host = |h: &str| parts(&[("host", h)]).headers;
        assert!(policy.check_host(&host("127.0.0.1:8080")).is_ok());
        assert!(policy.check_host(&host("[::1]:8080")).is_ok());
        assert!(policy.check_host(&host("LOCALHOST")).is_ok());
        assert!(policy.check_host(&host("evil.example")).is_err());
        assert!(policy.check_host(&host("evil.example:8080")).is_err());
        policy.allow_host("db.internal");
        assert!(policy.check_host(&host("db.internal:1")).is_ok());
        policy.allow_host("api.internal:8080");
        assert!(policy.check_host(&host("api.internal:9")).is_ok());
        policy.allow_host("fe80::1");
        assert!(policy.check_host(&host("[fe80::1]:80")).is_ok());
        policy.allow_host("[fe80::2]:8080");
        assert!(policy.check_host(&host("[fe80::2]")).is_ok());
        assert_eq!(Right::of(&Method::GET, "/ds/v1/health"), None);
        assert_eq!(
            Right::of(&Method::GET, "/ds/v1/entities/{*key}"),
            Some(Right::Read)
        );
        assert_eq!(
            Right::of(&Method::PUT, "/v1/entities/{*key}"),
            Some(Right::Write)
        );
        policy.allow_host("*");
        assert!(policy.check_host(&host("anything")).is_ok());

        let origin = |o: &str| parts(&[("origin", o)]).headers;
        assert!(policy.check_origin(&origin("https://app.example")).is_err());
        assert_eq!(policy.check_origin(&parts(&[]).headers), Ok(None));
        policy.allow_origin("https://app.example/");
        assert!(policy.check_origin(&origin("https://app.example")).is_ok());
        assert!(
            policy
                .check_origin(&origin("https://app.example.evil"))
                .is_err()
        );
        assert!(policy.check_origin(&origin("null")).is_err());
    }
}
