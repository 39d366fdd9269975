//! How each source proves itself, and the check of one request's credential.
//!
//! Every source has a credential: the one its configuration names, or, when it names none, the
//! kind its sender supports (a bearer token for Alertmanager and Grafana, an HMAC secret for
//! generic JSON, a routing key for PagerDuty), which the binary generates into the data folder. A
//! source without a secret refuses everything: intake fails closed, whatever the client address.

use super::error::{IntakeError, Reason};
use super::signature::{verify_signature, SignatureError, Signed};
use super::{AlertSource, Intake, SIGNATURE_WINDOW_SECS};
use axum::http::HeaderMap;
use spotter_core::config::{Credential, SourceConfig, SourceKind};

/// The credential check of one source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// `Authorization: Bearer <token>`.
    Bearer,
    /// `Authorization: Basic` with this user name.
    Basic { user: String },
    /// A hex HMAC-SHA256 in `header`, over `timestamp + separator + body` when
    /// `timestamp_header` is set, else over the body.
    Hmac {
        header: &'static str,
        separator: &'static [u8],
        timestamp_header: Option<String>,
    },
    /// PagerDuty Events v2: the `routing_key` in the body.
    RoutingKey,
}

/// The timestamp header generic JSON is always signed with.
pub const GENERIC_TIMESTAMP_HEADER: &str = "X-Spotter-Timestamp";

impl Check {
    pub fn for_source(s: &SourceConfig) -> Check {
        let hmac = |timestamp_header: Option<String>| match s.kind {
            SourceKind::Generic => Check::Hmac {
                header: "x-spotter-signature",
                separator: b".",
                timestamp_header,
            },
            _ => Check::Hmac {
                header: "x-grafana-alerting-signature",
                separator: b":",
                timestamp_header,
            },
        };
        match (&s.credential, s.kind) {
            (Credential::Bearer { .. }, _) => Check::Bearer,
            (Credential::Basic { user, .. }, _) => Check::Basic { user: user.clone() },
            (
                Credential::Hmac {
                    timestamp_header, ..
                },
                _,
            ) => hmac(timestamp_header.clone()),
            (Credential::RoutingKey { .. }, _) => Check::RoutingKey,
            (Credential::None, SourceKind::Alertmanager | SourceKind::Grafana) => Check::Bearer,
            (Credential::None, SourceKind::Generic) => {
                hmac(Some(GENERIC_TIMESTAMP_HEADER.to_string()))
            }
            (Credential::None, SourceKind::Pagerduty) => Check::RoutingKey,
        }
    }

    /// The environment variable the configuration names for the secret, if any.
    pub fn env_var(s: &SourceConfig) -> Option<&str> {
        match &s.credential {
            Credential::None => None,
            Credential::Bearer { token_env } => Some(token_env),
            Credential::Basic { password_env, .. } => Some(password_env),
            Credential::Hmac { secret_env, .. } => Some(secret_env),
            Credential::RoutingKey { key_env } => Some(key_env),
        }
    }

    /// Whether checking needs the body (an HMAC over it, a routing key in it): costly work, done
    /// only within the client's failure budget. Header credentials are compared first.
    pub fn reads_body(&self) -> bool {
        matches!(self, Check::Hmac { .. } | Check::RoutingKey)
    }

    /// What the secret is, in the words of the sender's documentation.
    pub fn noun(&self) -> &'static str {
        match self {
            Check::Bearer => "bearer token",
            Check::Basic { .. } => "basic-auth password",
            Check::Hmac { .. } => "HMAC secret",
            Check::RoutingKey => "routing key",
        }
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn unauthorized(reason: Reason, message: impl Into<String>) -> IntakeError {
    IntakeError::Unauthorized(reason, message.into())
}

/// The refusal of a signature already used.
pub(super) fn replayed() -> IntakeError {
    unauthorized(
        Reason::Replayed,
        "replayed request: this signature was already used; sign each delivery afresh",
    )
}

/// A timestamped signature that verified and is new to this process: the caller still asks the
/// database whether another process or replica saw it first (see `intake::remember`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FreshSignature {
    pub mac: [u8; 32],
    /// The signed timestamp (Unix seconds): the signature is remembered until its window closes.
    pub timestamp: i64,
}

/// Checks the request's credential against the source's (not PagerDuty's routing key, which is
/// in the body and names the source: see the PagerDuty handler). Synchronous, so it is pure CPU
/// work; a timestamped signature comes back for the durable replay check.
pub(super) fn authenticate(
    intake: &Intake,
    src: &AlertSource,
    headers: &HeaderMap,
    body: &[u8],
    now: i64,
) -> Result<Option<FreshSignature>, IntakeError> {
    let Some(secret) = &src.secret else {
        return Err(unauthorized(
            Reason::NoCredential,
            format!(
                "source `{}` has no credential, so it accepts nothing; see the start-up log",
                src.config.id
            ),
        ));
    };
    let auth = header(headers, "authorization");
    match &src.check {
        Check::Bearer => {
            let token = auth.and_then(|a| {
                a.strip_prefix("Bearer ")
                    .or_else(|| a.strip_prefix("bearer "))
            });
            match token {
                Some(t) if secret.matches(t.trim()) => Ok(None),
                Some(_) => Err(unauthorized(
                    Reason::BadCredential,
                    "missing or invalid bearer token",
                )),
                None => Err(unauthorized(
                    Reason::MissingCredential,
                    "missing or invalid bearer token: send Authorization: Bearer <token>",
                )),
            }
        }
        Check::Basic { user } => {
            use base64::Engine as _;
            let Some(encoded) = auth.and_then(|a| a.strip_prefix("Basic ")) else {
                return Err(unauthorized(
                    Reason::MissingCredential,
                    "missing or invalid basic credentials: send Authorization: Basic",
                ));
            };
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok());
            let ok = decoded
                .as_deref()
                .and_then(|d| d.split_once(':'))
                .is_some_and(|(u, p)| {
                    // Both compared in constant time, and both always compared.
                    let user_ok = spotter_core::secrets_equal(u.as_bytes(), user.as_bytes());
                    let pass_ok = secret.matches(p);
                    user_ok & pass_ok
                });
            if ok {
                Ok(None)
            } else {
                Err(unauthorized(
                    Reason::BadCredential,
                    "missing or invalid basic credentials",
                ))
            }
        }
        Check::Hmac {
            header: sig_header,
            separator,
            timestamp_header,
        } => {
            let presented = header(headers, sig_header).ok_or_else(|| {
                unauthorized(
                    Reason::MissingCredential,
                    format!("missing {sig_header} header"),
                )
            })?;
            let signed = match timestamp_header {
                Some(th) => Signed::WithTimestamp {
                    timestamp: header(headers, th).ok_or_else(|| {
                        unauthorized(Reason::MissingCredential, format!("missing {th} header"))
                    })?,
                    separator,
                    now,
                    window: SIGNATURE_WINDOW_SECS,
                },
                None => Signed::BodyOnly,
            };
            let th = timestamp_header.as_deref().unwrap_or("the timestamp");
            let verified = verify_signature(secret.expose().as_bytes(), presented, signed, body)
                .map_err(|e| match e {
                    SignatureError::Malformed => unauthorized(
                        Reason::BadSignature,
                        format!("invalid signature: {sig_header} {e}"),
                    ),
                    SignatureError::Mismatch => {
                        unauthorized(Reason::BadSignature, "invalid signature")
                    }
                    SignatureError::BadTimestamp => {
                        unauthorized(Reason::BadTimestamp, format!("{th} must be Unix seconds"))
                    }
                    SignatureError::Stale { off, window } => unauthorized(
                        Reason::StaleTimestamp,
                        format!("stale request: {th} is {off} s from now (at most {window} s)"),
                    ),
                })?;
            // Only a timestamped signature can be told apart from an honest resend of the body.
            let Some(timestamp) = verified.timestamp else {
                return Ok(None);
            };
            if !intake.replays.first_use(verified.mac, now) {
                return Err(replayed());
            }
            Ok(Some(FreshSignature {
                mac: verified.mac,
                timestamp,
            }))
        }
        Check::RoutingKey => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spotter_core::config::Config;
    use spotter_core::Secret;

    fn bearer(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("authorization", format!("Bearer {token}").parse().unwrap());
        h
    }

    #[test]
    fn a_source_without_a_secret_refuses_everything() {
        let intake = Intake::new(&Config::builtin(), Default::default());
        assert_eq!(intake.switched_off().len(), intake.sources.len());
        for src in &intake.sources {
            let e = authenticate(&intake, src, &bearer(""), b"{}", 0).unwrap_err();
            assert!(
                matches!(e, IntakeError::Unauthorized(Reason::NoCredential, _)),
                "{}: {e:?}",
                src.config.id
            );
        }
    }

    #[test]
    fn the_default_sources_check_the_credential_their_sender_supports() {
        let config = Config::builtin();
        let checks: Vec<(&str, Check)> = config
            .sources
            .iter()
            .map(|s| (s.id.as_str(), Check::for_source(s)))
            .collect();
        assert_eq!(
            checks,
            [
                ("alertmanager", Check::Bearer),
                ("grafana", Check::Bearer),
                ("uptime", Check::RoutingKey),
                (
                    "backup-jobs",
                    Check::Hmac {
                        header: "x-spotter-signature",
                        separator: b".",
                        timestamp_header: Some(GENERIC_TIMESTAMP_HEADER.into()),
                    }
                ),
            ]
        );
        let secrets = [("alertmanager".to_string(), Secret::new("right"))].into();
        let intake = Intake::new(&config, secrets);
        let am = &intake.sources[0];
        assert!(authenticate(&intake, am, &bearer("right"), b"", 0).is_ok());
        let wrong = authenticate(&intake, am, &bearer("wrong"), b"", 0).unwrap_err();
        assert!(matches!(
            wrong,
            IntakeError::Unauthorized(Reason::BadCredential, _)
        ));
        let none = authenticate(&intake, am, &HeaderMap::new(), b"", 0).unwrap_err();
        assert!(matches!(
            none,
            IntakeError::Unauthorized(Reason::MissingCredential, _)
        ));
    }
}
