//! The tamper-evident audit log.
//!
//! Every state-changing action appends an entry whose hash covers its own contents and the hash
//! of the entry before it; a head row remembers the last sequence number and hash. Editing a row
//! breaks its hash, inserting or deleting one breaks the sequence or the links, and cutting rows
//! off the end disagrees with the head. [`verify`] names the first row where it goes wrong.
//!
//! The hashes are HMAC-SHA256 under an [`AuditKey`] kept outside the database (an env var or a
//! file in `data_dir`), so someone who can write the database cannot edit a row and recompute
//! the chain after it. The head in the database can be rolled back with the rows, so an
//! operator keeps an exported [`Head`] (`spotter audit head`) elsewhere: [`verify_head`] fails
//! when the log no longer contains it.

use crate::Secret;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

/// The key of the audit chain's HMAC.
#[derive(Clone, Debug)]
pub struct AuditKey(Secret);

impl AuditKey {
    pub fn new(secret: Secret) -> Self {
        AuditKey(secret)
    }

    /// A key for another purpose (`"ack links"`), derived from this one: installations keep one
    /// secret, and a key for one purpose reveals nothing about another.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(self.0.expose().as_bytes()).expect("any key length");
        mac.update(b"spotter key derivation: ");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

/// A point of the chain (`<seq>:<hash>`), exported for an operator to keep elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub seq: i64,
    pub hash: String,
}

impl std::fmt::Display for Head {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.seq, self.hash)
    }
}

impl std::str::FromStr for Head {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!("`{s}` is not an audit head; expected <seq>:<64 hex digits>, as printed by `spotter audit head`")
        };
        let (seq, hash) = s.trim().split_once(':').ok_or_else(bad)?;
        let seq: i64 = seq.parse().map_err(|_| bad())?;
        if seq < 0 || hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        Ok(Head {
            seq,
            hash: hash.to_ascii_lowercase(),
        })
    }
}

/// The hash the first entry links to.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What the engine asks to record.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub detail: serde_json::Value,
}

/// A stored entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub subject: String,
    /// The detail as stored (compact JSON); hashed byte for byte.
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

/// The hash of an entry: HMAC-SHA256 under the key over the previous hash and each field, every
/// field prefixed by its length so no two different entries can serialise to the same bytes.
#[allow(clippy::too_many_arguments)]
pub fn entry_hash(
    key: &AuditKey,
    prev_hash: &str,
    seq: i64,
    at: DateTime<Utc>,
    actor: &str,
    action: &str,
    subject: &str,
    detail: &str,
) -> String {
    let mut h = Hmac::<Sha256>::new_from_slice(key.0.expose().as_bytes())
        .expect("HMAC takes any key length");
    let at_ms = at.timestamp_millis().to_string();
    let seq = seq.to_string();
    for field in [prev_hash, &seq, &at_ms, actor, action, subject, detail] {
        h.update(&(field.len() as u64).to_le_bytes());
        h.update(field.as_bytes());
    }
    hex::encode(h.finalize().into_bytes())
}

/// Chains a record onto the log after (`prev_seq`, `prev_hash`).
pub fn seal(key: &AuditKey, record: &AuditRecord, prev_seq: i64, prev_hash: &str) -> AuditEntry {
    let seq = prev_seq + 1;
    let detail = record.detail.to_string();
    let hash = entry_hash(
        key,
        prev_hash,
        seq,
        record.at,
        &record.actor,
        &record.action,
        &record.subject,
        &detail,
    );
    AuditEntry {
        seq,
        at: record.at,
        actor: record.actor.clone(),
        action: record.action.clone(),
        subject: record.subject.clone(),
        detail,
        prev_hash: prev_hash.to_string(),
        hash,
    }
}

/// Where the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The sequence number of the row that is wrong (or where rows are missing).
    pub seq: i64,
    pub problem: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "audit row {}: {}", self.seq, self.problem)
    }
}

/// Checks the whole chain, oldest first. Returns the number of entries on success.
pub fn verify(
    key: &AuditKey,
    entries: &[AuditEntry],
    head_seq: i64,
    head_hash: &str,
) -> Result<usize, Violation> {
    let mut prev_hash = GENESIS.to_string();
    let mut expected_seq = 1;
    for e in entries {
        if e.seq != expected_seq {
            let problem = if e.seq > expected_seq {
                format!("rows {}..{} are missing (deleted)", expected_seq, e.seq - 1)
            } else {
                "is out of sequence (inserted or duplicated)".to_string()
            };
            let seq = if e.seq > expected_seq {
                expected_seq
            } else {
                e.seq
            };
            return Err(Violation { seq, problem });
        }
        let recomputed = entry_hash(
            key,
            &e.prev_hash,
            e.seq,
            e.at,
            &e.actor,
            &e.action,
            &e.subject,
            &e.detail,
        );
        if recomputed != e.hash {
            return Err(Violation {
                seq: e.seq,
                problem: "contents do not match its hash (the row was edited)".into(),
            });
        }
        if e.prev_hash != prev_hash {
            return Err(Violation {
                seq: e.seq,
                problem:
                    "does not link to the row before it (a row was edited, inserted or deleted)"
                        .into(),
            });
        }
        prev_hash = e.hash.clone();
        expected_seq += 1;
    }
    let last_seq = expected_seq - 1;
    if head_seq != last_seq {
        return Err(Violation {
            seq: last_seq + 1,
            problem: format!("the log ends at row {last_seq} but its head records row {head_seq} (rows were deleted at the end)"),
        });
    }
    if last_seq > 0 && head_hash != prev_hash {
        return Err(Violation {
            seq: last_seq,
            problem: "does not match the hash recorded in the head".into(),
        });
    }
    Ok(entries.len())
}

/// Checks that the log still contains an exported head: the entry at its sequence number with
/// its hash. Fails when the database was rolled back to an older copy (the entry is missing) or
/// rewritten (the hash differs). Run [`verify`] as well: this only pins one point.
pub fn verify_head(entries: &[AuditEntry], head: &Head) -> Result<(), Violation> {
    if head.seq == 0 {
        return Ok(());
    }
    match entries.iter().find(|e| e.seq == head.seq) {
        Some(e) if e.hash == head.hash => Ok(()),
        Some(_) => Err(Violation {
            seq: head.seq,
            problem: "differs from the exported head (the log was rewritten)".into(),
        }),
        None => Err(Violation {
            seq: head.seq,
            problem: format!(
                "is missing, but the exported head records it (the log ends at row {}: rolled back to an older copy, or rows were cut off the end)",
                entries.last().map(|e| e.seq).unwrap_or(0)
            ),
        }),
    }
}

/// The head of a chain (the last entry), for export.
pub fn head_of(entries: &[AuditEntry]) -> Head {
    entries
        .last()
        .map(|e| Head {
            seq: e.seq,
            hash: e.hash.clone(),
        })
        .unwrap_or(Head {
            seq: 0,
            hash: GENESIS.into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn key() -> AuditKey {
        AuditKey::new(Secret::new("test-audit-key"))
    }

    fn chain(n: usize) -> Vec<AuditEntry> {
        let mut out: Vec<AuditEntry> = Vec::new();
        for i in 0..n {
            let rec = AuditRecord {
                at: Utc
                    .timestamp_millis_opt(1_700_000_000_000 + i as i64)
                    .unwrap(),
                actor: "sysadmin".into(),
                action: "incident.declare".into(),
                subject: format!("INC-{}", i + 1),
                detail: serde_json::json!({"level": 3}),
            };
            let (seq, prev) = out
                .last()
                .map(|e| (e.seq, e.hash.clone()))
                .unwrap_or((0, GENESIS.into()));
            out.push(seal(&key(), &rec, seq, &prev));
        }
        out
    }

    fn head(c: &[AuditEntry]) -> (i64, String) {
        c.last()
            .map(|e| (e.seq, e.hash.clone()))
            .unwrap_or((0, GENESIS.into()))
    }

    #[test]
    fn an_untouched_chain_verifies() {
        let c = chain(5);
        let (s, h) = head(&c);
        assert_eq!(verify(&key(), &c, s, &h), Ok(5));
        assert_eq!(verify(&key(), &[], 0, GENESIS), Ok(0));
    }

    #[test]
    fn an_edited_row_is_named() {
        let mut c = chain(5);
        let (s, h) = head(&c);
        c[2].subject = "INC-99".into();
        let v = verify(&key(), &c, s, &h).unwrap_err();
        assert_eq!(v.seq, 3);
        assert!(v.problem.contains("edited"));
    }

    #[test]
    fn a_rehashed_edit_breaks_the_next_link() {
        let mut c = chain(5);
        let (s, h) = head(&c);
        c[1].actor = "mallory".into();
        c[1].hash = entry_hash(
            &key(),
            &c[1].prev_hash,
            2,
            c[1].at,
            "mallory",
            &c[1].action,
            &c[1].subject,
            &c[1].detail,
        );
        assert_eq!(verify(&key(), &c, s, &h).unwrap_err().seq, 3);
    }

    #[test]
    fn deleted_rows_are_named() {
        let mut c = chain(5);
        let (s, h) = head(&c);
        c.remove(2);
        let v = verify(&key(), &c, s, &h).unwrap_err();
        assert_eq!(v.seq, 3);
        assert!(v.problem.contains("missing"));
        let mut c = chain(5);
        c.pop();
        assert!(verify(&key(), &c, s, &h)
            .unwrap_err()
            .problem
            .contains("deleted at the end"));
    }

    #[test]
    fn a_chain_recomputed_without_the_key_is_detected() {
        let mut c = chain(3);
        let (s, _) = head(&c);
        // The attacker edits row 2 and recomputes rows 2 and 3 under a key of their own.
        let theirs = AuditKey::new(Secret::new("guessed"));
        c[1].actor = "mallory".into();
        for i in 1..3 {
            let prev = c[i - 1].hash.clone();
            let e = &mut c[i];
            e.prev_hash = prev;
            e.hash = entry_hash(
                &theirs,
                &e.prev_hash,
                e.seq,
                e.at,
                &e.actor,
                &e.action,
                &e.subject,
                &e.detail,
            );
        }
        let forged_head = c[2].hash.clone();
        let v = verify(&key(), &c, s, &forged_head).unwrap_err();
        assert_eq!(v.seq, 2);
        assert!(v.problem.contains("edited"), "{v}");
    }

    #[test]
    fn an_exported_head_catches_a_rollback_and_a_rewrite() {
        let c = chain(5);
        let exported = head_of(&c);
        assert_eq!(verify_head(&c, &exported), Ok(()));
        let rolled_back = &c[..3];
        let v = verify_head(rolled_back, &exported).unwrap_err();
        assert_eq!(v.seq, 5);
        assert!(v.problem.contains("rolled back"), "{v}");
        let mut rewritten = c.clone();
        rewritten[4].hash = "f".repeat(64);
        assert!(verify_head(&rewritten, &exported)
            .unwrap_err()
            .problem
            .contains("rewritten"));
        let parsed: Head = exported.to_string().parse().unwrap();
        assert_eq!(parsed, exported);
        for bad in ["", "5", "x:abc", "5:abc", "-1:"] {
            assert!(bad.parse::<Head>().is_err(), "{bad}");
        }
    }
}
