//! The runs API: `GET /api/v1/runs` and `GET /api/v1/runs/{id}`. Runs are requested, approved
//! and cancelled through the command API (`/runbook run`, `/runbook approve`), so every rule
//! stays in the engine; this is the read side, with each step's output as stored (redacted
//! before it was written).

use crate::error::ApiError;
use crate::AppState;
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;
use spotter_core::domain::{IncidentRef, Run};
use spotter_core::store::RunFilter;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunQuery {
    /// `active` (pending approval, approved, running) or `all` (the default).
    state: Option<String>,
    incident: Option<String>,
    limit: Option<i64>,
}

/// `GET /api/v1/runs?state=active|all&incident=INC-n&limit=N`: newest first, with approvals and
/// steps (each step's output only in the single-run view).
pub async fn list_runs(
    State(state): State<AppState>,
    Query(q): Query<RunQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let active = match q.state.as_deref() {
        None | Some("all") => false,
        Some("active") => true,
        Some(s) => {
            return Err(ApiError::BadRequest(format!(
                "query `state`: `{s}` is not accepted; use active or all"
            )))
        }
    };
    let incident = q
        .incident
        .as_deref()
        .map(|s| {
            s.parse::<IncidentRef>()
                .map_err(|e| ApiError::BadRequest(format!("query `incident`: {e}")))
        })
        .transpose()?;
    let runs = state
        .engine
        .store()
        .runs(RunFilter {
            active,
            incident,
            limit: q.limit.unwrap_or(100).clamp(1, 1000),
        })
        .await?;
    Ok(Json(serde_json::json!({ "runs": runs })))
}

/// `GET /api/v1/runs/{id}`: one run with its approvals and its steps' (redacted) output.
pub async fn get_run(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Run>, ApiError> {
    let n: i64 = id.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "path: `{id}` is not a run number; expected a positive whole number, e.g. /api/v1/runs/3"
        ))
    })?;
    let run = state
        .engine
        .store()
        .run(n)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("run #{n} does not exist")))?;
    Ok(Json(run))
}
