//! Who is calling the API: the shared token, or a person's own token.
//!
//! - The **shared token** (`api.token_env`, else `<data_dir>/api-token`) is for automation. A
//!   request through it names the person who speaks (`"user"`), and acts as that person with
//!   their roles capped at `api.shared_token_role` (default `responder`): naming an admin does not
//!   grant admin.
//! - A **person token** (`spotter token create --person dba`) acts as its person with their full
//!   roles; a request naming anyone else is refused (403). It reads
//!   `spotter_<id>_<secret>`: the id is public and finds the row, and only the SHA-256 of the
//!   whole token is stored, compared in constant time. Every request reads the row, so a
//!   revocation holds at once on every replica, and a token whose person left the configuration
//!   stops working with them.

use crate::error::ApiError;
use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};
use spotter_core::audit::AuditRecord;
use spotter_core::config::Config;
use spotter_core::domain::{Actor, PersonId};
use spotter_core::store::{ApiToken, ApiTokenWrite, Changeset, Store};
use spotter_core::{Engine, Secret, StoreError};

/// How every person token begins (so secret scanners and people recognise it).
pub const PREFIX: &str = "spotter_";
/// Bytes of randomness in the id (public) and in the secret.
const ID_BYTES: usize = 6;
const SECRET_BYTES: usize = 32;
/// `last_used_at` is written at most this often per token: a read per request, not a write.
const USED_GRANULARITY: Duration = Duration::seconds(60);

/// The caller of one request, as the auth middleware established it (a request extension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Shared,
    Person { person: PersonId, token_id: String },
}

/// The SHA-256 of a whole token, in hex: what the store keeps.
pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The id of a token of the person-token form, if it is one.
pub fn id_of(token: &str) -> Option<&str> {
    let rest = token.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let hex = |s: &str, n: usize| s.len() == n * 2 && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(id, ID_BYTES) && hex(secret, SECRET_BYTES)).then_some(id)
}

/// A token just created: shown once, never stored.
pub struct Issued {
    pub id: String,
    pub person: PersonId,
    pub token: Secret,
}

/// Why a token could not be created.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("`{given}` is not a configured person; the people are: {known}")]
    UnknownPerson { given: String, known: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Creates a token for `person` (a configured person id) and records it in the audit log as done
/// `by` (e.g. `cli:alice`).
///
/// # Errors
/// The person is not configured (the message lists who is), or the store failed; no token
/// exists then.
pub async fn issue(
    store: &dyn Store,
    config: &Config,
    person: &str,
    by: &str,
    now: DateTime<Utc>,
) -> Result<Issued, IssueError> {
    let Some(p) = config.person(person.trim()) else {
        return Err(IssueError::UnknownPerson {
            given: person.to_string(),
            known: config
                .people
                .keys()
                .map(|p| p.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    let mut attempt = 0;
    let (id, token) = loop {
        attempt += 1;
        let id = spotter_core::random_token(ID_BYTES);
        let token = format!("{PREFIX}{id}_{}", spotter_core::random_token(SECRET_BYTES));
        let row = ApiToken {
            id: id.clone(),
            person: p.id.to_string(),
            hash: hash(&token),
            created_at: now,
            revoked_at: None,
            last_used_at: None,
        };
        // The token and its audit entry in one transaction: never a token the audit log does
        // not know about.
        let cs = Changeset {
            at: Some(now),
            audit: vec![AuditRecord {
                at: now,
                actor: by.to_string(),
                action: "api_token.create".into(),
                subject: format!("person:{}", p.id),
                detail: serde_json::json!({ "token_id": id }),
            }],
            api_tokens: vec![ApiTokenWrite::Insert(row)],
            ..Changeset::default()
        };
        match store.commit(cs).await {
            Ok(()) => break (id, token),
            // 48 random bits rarely collide; when they do, draw again.
            Err(StoreError::Conflict(_)) if attempt < 3 => continue,
            Err(e) => return Err(e.into()),
        }
    };
    Ok(Issued {
        id,
        person: p.id.clone(),
        token: Secret::new(token),
    })
}

/// Revokes a token (by id, or the whole token pasted) and records it in the audit log; returns
/// the row, `None` when there is no such token.
///
/// # Errors
/// The store failed.
pub async fn revoke(
    store: &dyn Store,
    id_or_token: &str,
    by: &str,
    now: DateTime<Utc>,
) -> Result<Option<ApiToken>, StoreError> {
    let id = id_of(id_or_token.trim()).unwrap_or(id_or_token.trim());
    let before = store.api_token(id).await?;
    let Some(before) = before else {
        return Ok(None);
    };
    if before.revoked_at.is_none() {
        // The revocation and its audit entry in one transaction.
        store
            .commit(Changeset {
                at: Some(now),
                audit: vec![AuditRecord {
                    at: now,
                    actor: by.to_string(),
                    action: "api_token.revoke".into(),
                    subject: format!("person:{}", before.person),
                    detail: serde_json::json!({ "token_id": before.id }),
                }],
                api_tokens: vec![ApiTokenWrite::Revoke {
                    id: id.to_string(),
                    at: now,
                }],
                ..Changeset::default()
            })
            .await?;
    }
    store.api_token(id).await
}

/// Who presented `token`: the shared token, a live person token, or nobody (`None`).
///
/// # Errors
/// The store could not be read (the request should be answered 503, not 401).
pub async fn recognise(
    store: &dyn Store,
    config: &Config,
    shared: &Secret,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Option<Caller>, StoreError> {
    if shared.matches(token) {
        return Ok(Some(Caller::Shared));
    }
    let Some(id) = id_of(token) else {
        return Ok(None);
    };
    let Some(row) = store.api_token(id).await? else {
        return Ok(None);
    };
    let matches = spotter_core::secrets_equal(hash(token).as_bytes(), row.hash.as_bytes());
    let Some(person) = config.person(&row.person) else {
        // The person left the configuration: their tokens go with them.
        return Ok(None);
    };
    if !matches || row.revoked_at.is_some() {
        return Ok(None);
    }
    if row.last_used_at.is_none_or(|t| now - t >= USED_GRANULARITY) {
        if let Err(e) = store.api_token_used(id, now).await {
            tracing::warn!(token = %id, error = %e, "cannot record the API token's use");
        }
    }
    Ok(Some(Caller::Person {
        person: person.id.clone(),
        token_id: row.id,
    }))
}

impl Caller {
    /// The actor a request acts as, given the `user` its body names (if any).
    ///
    /// # Errors
    /// 400 when the shared token names nobody; 403 when a person token names someone else.
    pub fn actor(&self, engine: &Engine, named: Option<&str>) -> Result<Actor, ApiError> {
        let named = named.map(str::trim).filter(|u| !u.is_empty());
        match self {
            Caller::Person { person, .. } => match named {
                Some(u) if u != person.as_str() => Err(ApiError::Forbidden(format!(
                    "field `user`: this API token belongs to `{person}` and acts only as them, \
                     not as `{u}` (leave `user` out, or use `{u}`'s own token)"
                ))),
                _ => Ok(engine.actor_for_person(person.as_str())),
            },
            Caller::Shared => {
                let u = named.ok_or_else(|| {
                    ApiError::BadRequest(
                        "missing field `user`: a request with the shared API token names the \
                         person who speaks, e.g. \"user\": \"sysadmin\""
                            .into(),
                    )
                })?;
                Ok(engine
                    .actor_for_person(u)
                    .limited_to(engine.config().api.shared_token_role))
            }
        }
    }
}

impl Caller {
    /// A role refusal through the shared token says that the token, not the person, fell short.
    pub fn explain_refusal(&self, actor: &Actor, ok: bool, reply: String) -> String {
        // The engine names the limit when it is why (see `Actor::limited_to`); this door adds
        // which credential that was and the way out.
        if ok || *self != Caller::Shared || !reply.contains("grants at most role") {
            return reply;
        }
        format!(
            "{reply} (the shared API token; `{id}` can use their own token: spotter token create \
             --person {id})",
            id = actor.id
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn person_tokens_are_recognised_by_form() {
        let t = format!("{PREFIX}{}_{}", "ab".repeat(6), "0f".repeat(32));
        assert_eq!(id_of(&t), Some("abababababab"));
        assert_eq!(id_of("spotter_abababababab_short"), None);
        assert_eq!(id_of("some-shared-token"), None);
        assert_eq!(hash("x").len(), 64);
    }
}
