//! The JSON API: commands and incidents.

use crate::api_tokens::Caller;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::AppState;
use axum::extract::{Extension, Path, Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use spotter_core::config::Config;
use spotter_core::domain::{Incident, IncidentRef, Source, StateFilter, TimelineEntry};
use spotter_core::CommandContext;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandRequest {
    /// The command line, exactly as typed in chat.
    pub text: String,
    /// The person id who speaks. With a person token, that person (naming another is refused);
    /// with the shared token, required, and their roles are capped at `api.shared_token_role`.
    #[serde(default)]
    pub user: Option<String>,
    /// `chat` when relaying a chat (the console), `api` otherwise (the default).
    pub source: Option<String>,
    /// The incident the conversation is about, when the client knows one.
    pub incident: Option<String>,
}

/// An incident as the API shows it: the stored fields plus the level's name.
#[derive(Serialize)]
pub struct IncidentView {
    #[serde(flatten)]
    pub incident: Incident,
    pub level_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline: Option<Vec<TimelineEntry>>,
}

impl IncidentView {
    pub fn new(incident: Incident, config: &Config) -> Self {
        let level_name = spotter_core::render::level_name(&incident, config);
        IncidentView {
            incident,
            level_name,
            timeline: None,
        }
    }
}

#[derive(Serialize)]
pub struct CommandResponse {
    pub ok: bool,
    pub reply: String,
    pub incident: Option<IncidentView>,
    /// The run a `/runbook` command requested or acted on: `{"id": 3, "state": "…"}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<spotter_core::RunBrief>,
}

const USER_MAX: usize = 64;

pub async fn command(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(req): ApiJson<CommandRequest>,
) -> Result<Json<CommandResponse>, ApiError> {
    let user = req.user.as_deref().map(str::trim);
    if user.is_some_and(|user| {
        user.is_empty()
            || user.chars().count() > USER_MAX
            || user.chars().any(|c| c.is_control() || c.is_whitespace())
    }) {
        return Err(ApiError::BadRequest(format!(
            "field `user`: expected a person id (1-{USER_MAX} characters, no spaces), e.g. \"sysadmin\""
        )));
    }
    let source = match req.source.as_deref() {
        None | Some("api") => Source::Api,
        Some("chat") => Source::Chat,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "field `source`: `{other}` is not accepted; use \"chat\" or \"api\""
            )))
        }
    };
    let channel_incident = req
        .incident
        .as_deref()
        .map(|s| {
            s.parse::<IncidentRef>()
                .map_err(|e| ApiError::BadRequest(format!("field `incident`: {e}")))
        })
        .transpose()?;
    let actor = caller.actor(&state.engine, user)?;
    let ctx = CommandContext {
        source: Some(source),
        channel_incident,
    };
    let reply = state.engine.execute_line(&actor, &req.text, &ctx).await?;
    let config = state.engine.config();
    Ok(Json(CommandResponse {
        ok: reply.ok,
        reply: caller.explain_refusal(&actor, reply.ok, reply.text),
        incident: reply.incident.map(|i| IncidentView::new(i, config)),
        run: reply.run,
    }))
}

#[derive(Deserialize)]
pub struct ListQuery {
    state: Option<String>,
}

#[derive(Serialize)]
pub struct IncidentList {
    pub incidents: Vec<IncidentView>,
}

pub async fn list_incidents(
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<IncidentList>, ApiError> {
    let filter = match q.state.as_deref() {
        None => StateFilter::All,
        Some(s) => s.parse::<StateFilter>().map_err(|_| {
            ApiError::BadRequest(format!(
                "query `state`: `{s}` is not accepted; use {}",
                StateFilter::FORM
            ))
        })?,
    };
    let config = state.engine.config();
    let incidents = state.engine.store().incidents(filter).await?;
    Ok(Json(IncidentList {
        incidents: incidents
            .into_iter()
            .map(|i| IncidentView::new(i, config))
            .collect(),
    }))
}

pub async fn get_incident(
    State(state): State<AppState>,
    Path(reference): Path<String>,
) -> Result<Json<IncidentView>, ApiError> {
    let r: IncidentRef = reference
        .parse()
        .map_err(|e: String| ApiError::BadRequest(e))?;
    let store = state.engine.store();
    let incident = store
        .incident(r)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("{r} does not exist")))?;
    let timeline = store.timeline(r).await?;
    let mut view = IncidentView::new(incident, state.engine.config());
    view.timeline = Some(timeline);
    Ok(Json(view))
}

#[derive(Deserialize)]
pub struct AlertQuery {
    status: Option<String>,
    limit: Option<i64>,
}

/// `GET /api/v1/alerts?status=firing|resolved&limit=N`: alerts, most recently changed first.
pub async fn list_alerts(
    State(state): State<AppState>,
    Query(q): Query<AlertQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let status = match q.status.as_deref() {
        None | Some("all") => None,
        Some(s) => Some(spotter_core::alerts::AlertStatus::parse(s).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "query `status`: `{s}` is not accepted; use firing, resolved or all"
            ))
        })?),
    };
    let limit = q.limit.unwrap_or(100).clamp(1, 10_000);
    let alerts = state.engine.store().alerts(status, limit).await?;
    Ok(Json(serde_json::json!({ "alerts": alerts })))
}

/// `GET /api/v1/maintenance`: the active maintenance windows.
pub async fn list_maintenance(
    State(state): State<AppState>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let now = state.engine.clock().now();
    let windows = state.engine.store().maintenance_windows(Some(now)).await?;
    Ok(Json(serde_json::json!({ "maintenance": windows })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceRequest {
    /// As in [`CommandRequest::user`].
    #[serde(default)]
    pub user: Option<String>,
    pub components: Vec<String>,
    pub duration: String,
    pub reason: String,
}

/// `POST /api/v1/maintenance`: starts a window, through the same rules as `/maintenance start`.
pub async fn start_maintenance(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(req): ApiJson<MaintenanceRequest>,
) -> Result<(axum::http::StatusCode, Json<serde_json::Value>), ApiError> {
    use spotter_core::command::quote;
    let line = format!(
        "/maintenance start component:{} duration:{} reason:{}",
        quote(&req.components.join(",")),
        quote(&req.duration),
        quote(&req.reason)
    );
    let actor = caller.actor(&state.engine, req.user.as_deref())?;
    let reply = state
        .engine
        .execute_line(
            &actor,
            &line,
            &CommandContext {
                source: Some(Source::Api),
                channel_incident: None,
            },
        )
        .await?;
    if reply.ok {
        let now = state.engine.clock().now();
        let windows = state.engine.store().maintenance_windows(Some(now)).await?;
        return Ok((
            axum::http::StatusCode::CREATED,
            Json(serde_json::json!({"reply": reply.text, "maintenance": windows.last()})),
        ));
    }
    // The engine's reply says why in words; whether it was the caller's roles is read from the
    // same command table the engine checked (maintenance is not incident-scoped, so the role
    // alone decides).
    let forbidden = spotter_core::command::parse(&line, state.engine.config())
        .is_ok_and(|cmd| !actor.allows(cmd.spec().role));
    let why = caller.explain_refusal(&actor, false, reply.text);
    if forbidden {
        return Err(ApiError::Forbidden(why));
    }
    Ok((
        axum::http::StatusCode::UNPROCESSABLE_ENTITY,
        Json(serde_json::json!({ "error": why })),
    ))
}
