//! The HMAC-SHA256 signature check, as one pure function: no clock, no cache, no I/O, so it can be
//! tested exhaustively (see the property tests below) and reasoned about alone.
//!
//! Two senders sign this way:
//! - generic JSON: `X-Spotter-Signature: sha256=<hex HMAC of timestamp "." body>` with
//!   `X-Spotter-Timestamp` in Unix seconds;
//! - Grafana: `X-Grafana-Alerting-Signature: <hex HMAC of body>`, or of `timestamp ":" body` when
//!   a timestamp header is configured.
//!
//! Replays are the caller's business: a verified signature comes back as its MAC bytes, which the
//! replay cache remembers until the timestamp window has closed.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// What a signature covers besides the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signed<'a> {
    /// The body alone (Grafana without a timestamp header): no freshness, no replay protection.
    BodyOnly,
    /// `timestamp + separator + body`; the timestamp must be within `window` seconds of `now`.
    WithTimestamp {
        /// The header value exactly as sent (surrounding whitespace is ignored).
        timestamp: &'a str,
        separator: &'a [u8],
        now: i64,
        window: i64,
    },
}

/// A signature that checked out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// The MAC, for the replay cache.
    pub mac: [u8; 32],
    /// The signed timestamp, when there was one.
    pub timestamp: Option<i64>,
}

/// Why a signature was refused. Messages name the problem and the accepted form, never a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature must be 64 hex digits (HMAC-SHA256), optionally after `sha256=`")]
    Malformed,
    #[error("the timestamp must be Unix seconds")]
    BadTimestamp,
    #[error("stale request: the timestamp is {off} s from now (at most {window} s)")]
    Stale { off: i64, window: i64 },
    #[error("invalid signature")]
    Mismatch,
}

/// Checks `presented` (hex, optionally `sha256=`-prefixed, either case) against the HMAC-SHA256
/// of what `signed` describes, with `key`. Constant-time in the MAC comparison.
///
/// # Errors
/// [`SignatureError`] naming the first problem: the presented form, the timestamp's form, its
/// freshness, then the MAC itself.
pub fn verify_signature(
    key: &[u8],
    presented: &str,
    signed: Signed<'_>,
    body: &[u8],
) -> Result<Verified, SignatureError> {
    let hex_part = presented.trim();
    let hex_part = hex_part.strip_prefix("sha256=").unwrap_or(hex_part);
    let mut claimed = [0u8; 32];
    hex::decode_to_slice(hex_part, &mut claimed).map_err(|_| SignatureError::Malformed)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    let timestamp = match signed {
        Signed::BodyOnly => None,
        Signed::WithTimestamp {
            timestamp,
            separator,
            now,
            window,
        } => {
            let raw = timestamp.trim();
            // Digits only: `+5` or ` 5` would parse, yet sign differently from what we check.
            if raw.is_empty() || raw.len() > 19 || !raw.bytes().all(|b| b.is_ascii_digit()) {
                return Err(SignatureError::BadTimestamp);
            }
            let ts: i64 = raw.parse().map_err(|_| SignatureError::BadTimestamp)?;
            let off = now.saturating_sub(ts).saturating_abs();
            if off > window {
                return Err(SignatureError::Stale { off, window });
            }
            mac.update(raw.as_bytes());
            mac.update(separator);
            Some(ts)
        }
    };
    mac.update(body);
    let expected: [u8; 32] = mac.finalize().into_bytes().into();
    if spotter_core::secrets_equal(&expected, &claimed) {
        Ok(Verified {
            mac: expected,
            timestamp,
        })
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// The hex HMAC-SHA256 of `parts` with `key`: how a sender signs (tests and examples use it).
pub fn sign_hex(key: &[u8], parts: &[&[u8]]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        mac.update(p);
    }
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const WINDOW: i64 = 300;

    fn at<'a>(timestamp: &'a str, now: i64) -> Signed<'a> {
        Signed::WithTimestamp {
            timestamp,
            separator: b".",
            now,
            window: WINDOW,
        }
    }

    #[test]
    fn the_readme_example_verifies() {
        let body = br#"{"summary":"Nightly backup failed"}"#;
        let sig = sign_hex(b"k", &[b"1700000000", b".", body]);
        let ok = verify_signature(
            b"k",
            &format!("sha256={sig}"),
            at("1700000000", 1700000100),
            body,
        );
        assert_eq!(ok.unwrap().timestamp, Some(1700000000));
        // Uppercase hex and no prefix are the same signature.
        let upper = sig.to_ascii_uppercase();
        assert!(verify_signature(b"k", &upper, at("1700000000", 1700000000), body).is_ok());
    }

    #[test]
    fn a_stale_or_odd_timestamp_is_refused_before_any_mac_comparison() {
        let sig = sign_hex(b"k", &[b"100", b".", b"x"]);
        assert_eq!(
            verify_signature(b"k", &sig, at("100", 100 + WINDOW + 1), b"x"),
            Err(SignatureError::Stale {
                off: WINDOW + 1,
                window: WINDOW
            })
        );
        for odd in ["", "+100", "-100", "1e3", "99999999999999999999", "１００"] {
            assert_eq!(
                verify_signature(b"k", &sig, at(odd, 100), b"x"),
                Err(SignatureError::BadTimestamp),
                "{odd:?}"
            );
        }
    }

    fn ts_strategy() -> impl Strategy<Value = i64> {
        1_000_000_000i64..4_000_000_000i64
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_inputs_never_panic(
            key in proptest::collection::vec(any::<u8>(), 0..80),
            presented in ".{0,80}",
            timestamp in ".{0,24}",
            body in proptest::collection::vec(any::<u8>(), 0..256),
            now in any::<i64>(),
            window in any::<i64>(),
            with_ts in any::<bool>(),
        ) {
            let signed = if with_ts {
                Signed::WithTimestamp { timestamp: &timestamp, separator: b":", now, window }
            } else {
                Signed::BodyOnly
            };
            let _ = verify_signature(&key, &presented, signed, &body);
        }

        #[test]
        fn a_correct_signature_verifies(
            key in proptest::collection::vec(any::<u8>(), 1..64),
            body in proptest::collection::vec(any::<u8>(), 0..512),
            ts in ts_strategy(),
            skew in -WINDOW..=WINDOW,
        ) {
            let t = ts.to_string();
            let sig = sign_hex(&key, &[t.as_bytes(), b".", &body]);
            let v = verify_signature(&key, &format!("sha256={sig}"), at(&t, ts + skew), &body);
            prop_assert_eq!(v.map(|v| v.timestamp), Ok(Some(ts)));
            let plain = sign_hex(&key, &[&body]);
            prop_assert!(verify_signature(&key, &plain, Signed::BodyOnly, &body).is_ok());
        }

        #[test]
        fn any_changed_byte_of_the_body_fails(
            key in proptest::collection::vec(any::<u8>(), 1..64),
            body in proptest::collection::vec(any::<u8>(), 1..512),
            ts in ts_strategy(),
            at_byte in any::<prop::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let t = ts.to_string();
            let sig = sign_hex(&key, &[t.as_bytes(), b".", &body]);
            let mut changed = body.clone();
            let i = at_byte.index(changed.len());
            changed[i] ^= flip;
            prop_assert_eq!(
                verify_signature(&key, &sig, at(&t, ts), &changed),
                Err(SignatureError::Mismatch)
            );
        }

        #[test]
        fn any_changed_byte_of_the_timestamp_fails(
            key in proptest::collection::vec(any::<u8>(), 1..64),
            body in proptest::collection::vec(any::<u8>(), 0..128),
            ts in ts_strategy(),
            at_byte in any::<prop::sample::Index>(),
            replacement in any::<u8>(),
        ) {
            let t = ts.to_string();
            let sig = sign_hex(&key, &[t.as_bytes(), b".", &body]);
            let mut changed = t.clone().into_bytes();
            let i = at_byte.index(changed.len());
            prop_assume!(changed[i] != replacement);
            changed[i] = replacement;
            // Not necessarily UTF-8 any more: a header that is not text never reaches us.
            if let Ok(changed) = String::from_utf8(changed) {
                // `now` is the changed value itself, so only the MAC can refuse it.
                let now = changed.trim().parse::<i64>().unwrap_or(ts);
                prop_assert!(verify_signature(&key, &sig, at(&changed, now), &body).is_err());
            }
        }

        #[test]
        fn any_changed_byte_of_the_signature_fails(
            key in proptest::collection::vec(any::<u8>(), 1..64),
            body in proptest::collection::vec(any::<u8>(), 0..128),
            ts in ts_strategy(),
            at_byte in 0usize..32,
            flip in 1u8..=255,
        ) {
            let t = ts.to_string();
            let mut mac = hex::decode(sign_hex(&key, &[t.as_bytes(), b".", &body])).unwrap();
            mac[at_byte] ^= flip;
            let changed = hex::encode(&mac);
            prop_assert_eq!(
                verify_signature(&key, &changed, at(&t, ts), &body),
                Err(SignatureError::Mismatch)
            );
            // And in its textual form: a hex digit replaced by another (not its other case).
            let good = sign_hex(&key, &[t.as_bytes(), b".", &body]).into_bytes();
            let mut text = good.clone();
            let j = at_byte * 2;
            text[j] = if text[j] == b'0' { b'1' } else { b'0' };
            let text = String::from_utf8(text).unwrap();
            prop_assert!(verify_signature(&key, &text, at(&t, ts), &body).is_err());
        }
    }
}
