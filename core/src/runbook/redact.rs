//! Keeping secrets out of what a run shows: every line of output, every timeline entry and chat
//! post goes through a [`Redactor`] first. It knows the secret values themselves (the
//! configuration's secret env vars, a run's generated secrets) and, for secrets it was never
//! told about, the common shapes: `password=…`, bearer tokens, URL passwords, cloud and chat
//! tokens, private keys.

use crate::config::Config;
use regex::{Captures, Regex};
use std::borrow::Cow;
use std::sync::OnceLock;

const REDACTED: &str = "[redacted]";

/// Values shorter than this are not redacted as such: replacing every `abc` in the output
/// would make it unreadable and hide nothing worth hiding.
const MIN_SECRET_LEN: usize = 4;

#[derive(Clone, Default)]
pub struct Redactor {
    /// The values and their percent-encoded forms, longest first (so a secret containing
    /// another is replaced whole).
    values: Vec<String>,
    /// One alternation of all values: one left-to-right pass, so a replacement is never
    /// searched again.
    matcher: Option<Regex>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} values)", self.values.len())
    }
}

fn percent_encoded(s: &str) -> String {
    super::template::percent_encode(s)
}

impl Redactor {
    pub fn new(values: impl IntoIterator<Item = String>) -> Redactor {
        let mut v: Vec<String> = Vec::new();
        for s in values {
            if s.chars().count() < MIN_SECRET_LEN {
                continue;
            }
            let enc = percent_encoded(&s);
            if enc != s {
                v.push(enc);
            }
            v.push(s);
        }
        v.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        v.dedup();
        let matcher = (!v.is_empty()).then(|| {
            let alt: Vec<String> = v.iter().map(|s| regex::escape(s)).collect();
            Regex::new(&alt.join("|")).expect("escaped literals always compile")
        });
        Redactor { values: v, matcher }
    }

    /// This redactor plus a run's generated secrets.
    pub fn with_secrets(&self, more: &[String]) -> Redactor {
        Redactor::new(self.values.iter().cloned().chain(more.iter().cloned()))
    }

    /// The values of every environment variable the configuration names as secret: `[secrets]
    /// env`, [`Config::secret_env_names`], the API token, the audit key and the Discord token.
    pub fn from_env(config: &Config, env: &dyn Fn(&str) -> Option<String>) -> Redactor {
        let mut names = config.secret_env_names();
        names.push(config.api.token_env.clone());
        names.push(config.audit.key_env.clone());
        if let Some(d) = &config.discord {
            names.push(d.token_env.clone());
        }
        Redactor::new(names.iter().filter_map(|n| env(n)))
    }

    /// `s` with every known secret and every secret-shaped value replaced by `[redacted]`.
    pub fn redact<'a>(&self, s: &'a str) -> Cow<'a, str> {
        let mut out: Cow<'a, str> = Cow::Borrowed(s);
        if let Some(m) = &self.matcher {
            if let Cow::Owned(o) = m.replace_all(&out, REDACTED) {
                out = Cow::Owned(o);
            }
        }
        for (re, replace) in patterns() {
            if !re.is_match(&out) {
                continue;
            }
            let replaced = re.replace_all(&out, |c: &Captures| replace(c)).into_owned();
            out = Cow::Owned(replaced);
        }
        out
    }
}

type Replace = fn(&Captures) -> String;

/// The shapes of secrets nobody told us about.
fn patterns() -> &'static [(Regex, Replace)] {
    static P: OnceLock<Vec<(Regex, Replace)>> = OnceLock::new();
    P.get_or_init(|| {
        let r = |s: &str| Regex::new(s).expect("a fixed pattern");
        vec![
            // A PEM private key: the whole block, or from its header to the end of the text
            // (output arrives line by line).
            (
                r(r"(?s)-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\z)"),
                |_| "[redacted private key]".to_string(),
            ),
            // A body line of a PEM block on its own: 64 base64 characters of mixed case.
            (r(r"^\s*[A-Za-z0-9+/]{64}\s*$"), |c| {
                let s = &c[0];
                let mixed = s.bytes().any(|b| b.is_ascii_uppercase())
                    && s.bytes().any(|b| b.is_ascii_lowercase())
                    && s.bytes().any(|b| b.is_ascii_digit());
                if mixed { REDACTED.to_string() } else { s.to_string() }
            }),
            // An Authorization header, whatever its scheme: the credential goes.
            (
                r(r"(?i)\b((?:proxy-)?authorization\s*[:=]\s*)([A-Za-z][A-Za-z0-9_-]*\s+)?([^\s\[][^\s]*)"),
                |c| format!("{}{}{REDACTED}", &c[1], c.get(2).map_or("", |m| m.as_str())),
            ),
            // `Bearer x`, `Basic x` elsewhere.
            (r(r"(?i)\b(bearer)(\s+)([A-Za-z0-9._~+/=-]{8,})"), |c| {
                format!("{}{}{REDACTED}", &c[1], &c[2])
            }),
            (r(r"\b(Basic)(\s+)([A-Za-z0-9+/]{6,}={0,2})"), |c| {
                let v = &c[3];
                // "Basic authentication" is prose; a credential has digits, base64 signs or
                // capitals inside.
                let inner_capital = v.bytes().skip(1).any(|b| b.is_ascii_uppercase());
                if inner_capital || v.bytes().any(|b| b.is_ascii_digit() || b"+/=".contains(&b)) {
                    format!("{}{}{REDACTED}", &c[1], &c[2])
                } else {
                    c[0].to_string()
                }
            }),
            // `password=…`, `passwd: …`, `"secret": "…"`, `api_key=…`: the key stays.
            (
                r(r#"(?i)\b([a-z0-9_.-]*(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key)[a-z0-9_.-]*)("?\s*[=:]\s*"?)([^\s"'&,;]+)"#),
                |c| format!("{}{}{REDACTED}", &c[1], &c[2]),
            ),
            // `scheme://user:password@host`.
            (
                r(r"\b([a-zA-Z][a-zA-Z0-9+.-]*://[^\s/:@]*:)([^\s@/]+)@"),
                |c| format!("{}{REDACTED}@", &c[1]),
            ),
            (r(r"\bAKIA[0-9A-Z]{16}\b"), |_| REDACTED.to_string()),
            (r(r"\bgh[pousr]_[A-Za-z0-9]{20,}"), |_| REDACTED.to_string()),
            (r(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"), |_| REDACTED.to_string()),
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values_and_their_url_form_are_redacted() {
        let r = Redactor::new(["s3cr3t/pw+1".to_string(), "ab".to_string(), String::new()]);
        assert_eq!(r.redact("x s3cr3t/pw+1 y"), "x [redacted] y");
        assert_eq!(r.redact("q=s3cr3t%2Fpw%2B1"), "q=[redacted]");
        // Too short to be redacted as a value.
        assert_eq!(r.redact("ab cd"), "ab cd");
        assert!(matches!(r.redact("nothing here"), Cow::Borrowed(_)));
        let more = r.with_secrets(&["generated-value".to_string()]);
        assert_eq!(
            more.redact("generated-value and s3cr3t/pw+1"),
            "[redacted] and [redacted]"
        );
    }

    #[test]
    fn secret_shapes_are_redacted() {
        let r = Redactor::default();
        for (input, want) in [
            ("password=hunter22 ok", "password=[redacted] ok"),
            ("DB_PASSWORD: abcdef", "DB_PASSWORD: [redacted]"),
            ("{\"secret\": \"xyz123\"}", "{\"secret\": \"[redacted]\"}"),
            ("api_key=zzzz9999", "api_key=[redacted]"),
            (
                "Authorization: Bearer abc.def.ghi123",
                "Authorization: Bearer [redacted]",
            ),
            (
                "Authorization: Basic dXNlcjpwYXNz",
                "Authorization: Basic [redacted]",
            ),
            ("Basic authentication works", "Basic authentication works"),
            (
                "Authorization: Digest abc",
                "Authorization: Digest [redacted]",
            ),
            (
                "curl -H 'Authorization: token ghtoken'",
                "curl -H 'Authorization: token [redacted]",
            ),
            (
                "mysql://root:pa55@db:3306/x",
                "mysql://root:[redacted]@db:3306/x",
            ),
            ("key AKIAABCDEFGHIJKLMNOP here", "key [redacted] here"),
            ("ghp_abcdefghijklmnopqrstuvwxyz0123", "[redacted]"),
            ("xoxb-1234567890-abcdef", "[redacted]"),
            (
                "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----\nafter",
                "[redacted private key]\nafter",
            ),
            ("-----BEGIN PRIVATE KEY-----", "[redacted private key]"),
        ] {
            assert_eq!(r.redact(input), want, "{input}");
        }
    }
}
