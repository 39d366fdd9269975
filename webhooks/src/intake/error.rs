//! Why an intake request was refused, how that is answered, and the fixed words that name the
//! reason in logs and in `spotter_webhook_rejections_total`.

use crate::error::ApiError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

/// The reason label of a refusal: a fixed set, so the metric stays bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    UnknownSource,
    TooLarge,
    /// The source has no credential at all (switched off).
    NoCredential,
    MissingCredential,
    BadCredential,
    BadSignature,
    BadTimestamp,
    StaleTimestamp,
    Replayed,
    /// The client spent its failed-authentication budget (see [`crate::limit`]).
    Throttled,
    /// The source is over its `rate`.
    RateLimited,
    BadPayload,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::UnknownSource => "unknown_source",
            Reason::TooLarge => "too_large",
            Reason::NoCredential => "no_credential",
            Reason::MissingCredential => "missing_credential",
            Reason::BadCredential => "bad_credential",
            Reason::BadSignature => "bad_signature",
            Reason::BadTimestamp => "bad_timestamp",
            Reason::StaleTimestamp => "stale_timestamp",
            Reason::Replayed => "replayed",
            Reason::Throttled => "throttled",
            Reason::RateLimited => "rate_limited",
            Reason::BadPayload => "bad_payload",
        }
    }
}

/// Why a request was refused before it reached the engine.
#[derive(Debug)]
pub enum IntakeError {
    UnknownSource(String),
    TooLarge(usize),
    /// 401: the credential is missing or wrong, the signature stale or replayed.
    Unauthorized(Reason, String),
    /// 429 before the credential was looked at: the client's failure budget is spent.
    Throttled(u64),
    /// 429: the source is over its rate.
    RateLimited(u64),
    BadPayload(String),
    /// A PagerDuty event that does not validate, with every problem found.
    InvalidEvent(Vec<String>),
    Api(ApiError),
}

impl From<spotter_core::StoreError> for IntakeError {
    fn from(e: spotter_core::StoreError) -> Self {
        IntakeError::Api(e.into())
    }
}

impl IntakeError {
    pub fn status(&self) -> StatusCode {
        match self {
            IntakeError::UnknownSource(_) => StatusCode::NOT_FOUND,
            IntakeError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            IntakeError::Unauthorized(..) => StatusCode::UNAUTHORIZED,
            IntakeError::Throttled(_) | IntakeError::RateLimited(_) => {
                StatusCode::TOO_MANY_REQUESTS
            }
            IntakeError::BadPayload(_) | IntakeError::InvalidEvent(_) => StatusCode::BAD_REQUEST,
            IntakeError::Api(e) => e.status(),
        }
    }

    /// The reason this counts as a refused webhook; `None` for our own trouble (storage).
    pub fn reason(&self) -> Option<Reason> {
        Some(match self {
            IntakeError::UnknownSource(_) => Reason::UnknownSource,
            IntakeError::TooLarge(_) => Reason::TooLarge,
            IntakeError::Unauthorized(r, _) => *r,
            IntakeError::Throttled(_) => Reason::Throttled,
            IntakeError::RateLimited(_) => Reason::RateLimited,
            IntakeError::BadPayload(_) | IntakeError::InvalidEvent(_) => Reason::BadPayload,
            IntakeError::Api(_) => return None,
        })
    }

    /// True when the answer tells the sender to send the same request again later (429, 503):
    /// nothing of it was stored.
    pub fn asks_for_retry(&self) -> bool {
        matches!(
            self.status(),
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        )
    }

    /// True when the presented credential was the problem (it spends the failure budget).
    pub fn is_auth_failure(&self) -> bool {
        matches!(self, IntakeError::Unauthorized(..))
    }

    pub fn message(&self) -> String {
        match self {
            IntakeError::UnknownSource(m)
            | IntakeError::Unauthorized(_, m)
            | IntakeError::BadPayload(m) => m.clone(),
            IntakeError::TooLarge(max) => {
                format!("request body is larger than this source's limit of {max} bytes")
            }
            IntakeError::Throttled(s) => {
                format!("too many failed authentications from this address; retry in {s} s")
            }
            IntakeError::RateLimited(s) => {
                format!("rate limit exceeded for this source; retry in {s} s")
            }
            IntakeError::InvalidEvent(errors) => errors.join("; "),
            IntakeError::Api(e) => e.to_string(),
        }
    }

    /// The answer in PagerDuty's shape (`{"status":"invalid event","message","errors"}`), so
    /// existing senders understand it.
    pub fn into_pagerduty_response(self) -> Response {
        let (message, errors) = match &self {
            IntakeError::InvalidEvent(errors) => {
                ("Event object is invalid".to_string(), errors.clone())
            }
            IntakeError::BadPayload(m) => ("Event object is invalid".to_string(), vec![m.clone()]),
            IntakeError::Unauthorized(_, m) | IntakeError::UnknownSource(m) => {
                (m.clone(), vec![m.clone()])
            }
            IntakeError::TooLarge(_) => (self.message(), vec![self.message()]),
            _ => return self.into_response(),
        };
        let mut r = (
            self.status(),
            Json(serde_json::json!({"status": "invalid event", "message": message, "errors": errors})),
        )
            .into_response();
        if matches!(self, IntakeError::TooLarge(_)) {
            close_connection(&mut r);
        }
        r
    }
}

fn close_connection(r: &mut Response) {
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
}

impl IntoResponse for IntakeError {
    fn into_response(self) -> Response {
        let status = self.status();
        match self {
            IntakeError::Api(e) => e.into_response(),
            IntakeError::RateLimited(secs) | IntakeError::Throttled(secs) => {
                let mut r =
                    (status, Json(serde_json::json!({"error": self.message()}))).into_response();
                r.headers_mut().insert(header::RETRY_AFTER, secs.into());
                r
            }
            IntakeError::TooLarge(_) => {
                // The rest of the body was not read, so this connection cannot carry another
                // request: say so, or a client may reuse it and fail on a closed socket.
                let mut r =
                    (status, Json(serde_json::json!({"error": self.message()}))).into_response();
                close_connection(&mut r);
                r
            }
            other => (status, Json(serde_json::json!({"error": other.message()}))).into_response(),
        }
    }
}
