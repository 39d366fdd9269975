//! Rows as stored, and their conversions to and from the domain.

use super::*;

pub(super) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(super) fn from_ms(v: i64) -> Result<DateTime<Utc>, StoreError> {
    Utc.timestamp_millis_opt(v)
        .single()
        .ok_or_else(|| StoreError::Other(anyhow!("bad timestamp {v} in the database")))
}

pub(super) fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Other(anyhow!("bad {what} in the database: {e}"))
}

pub(super) const INCIDENT_COLUMNS: &str = "number, level, title, components, commander, source, state, phase, declared_by, \
     declared_at, acknowledged_at, acknowledged_by, resolved_at, closed_at, rto_deadline, summary, version, escalation_tier";

#[derive(sqlx::FromRow)]
pub(super) struct IncidentRow {
    pub(super) number: i64,
    pub(super) level: i64,
    pub(super) title: String,
    pub(super) components: String,
    pub(super) commander: Option<String>,
    pub(super) source: String,
    pub(super) state: String,
    pub(super) phase: String,
    pub(super) declared_by: String,
    pub(super) declared_at: i64,
    pub(super) acknowledged_at: Option<i64>,
    pub(super) acknowledged_by: Option<String>,
    pub(super) resolved_at: Option<i64>,
    pub(super) closed_at: Option<i64>,
    pub(super) rto_deadline: i64,
    pub(super) summary: Option<String>,
    pub(super) version: i64,
    pub(super) escalation_tier: Option<i64>,
}

impl IncidentRow {
    pub(super) fn into_incident(self) -> Result<Incident, StoreError> {
        let opt_ms = |v: Option<i64>| v.map(from_ms).transpose();
        Ok(Incident {
            reference: IncidentRef::new(self.number),
            level: LevelId(u8::try_from(self.level).map_err(|e| corrupt("level", e))?),
            title: self.title,
            components: self
                .components
                .split(',')
                .filter(|s| !s.is_empty())
                .map(|s| s.parse().map_err(|e| corrupt("component", e)))
                .collect::<Result<_, _>>()?,
            commander: self
                .commander
                .map(|c| c.parse().map_err(|e| corrupt("commander", e)))
                .transpose()?,
            source: self
                .source
                .parse::<Source>()
                .map_err(|e| corrupt("source", e))?,
            state: self
                .state
                .parse::<State>()
                .map_err(|e| corrupt("state", e))?,
            phase: self
                .phase
                .parse::<Phase>()
                .map_err(|e| corrupt("phase", e))?,
            declared_by: self.declared_by,
            declared_at: from_ms(self.declared_at)?,
            acknowledged_at: opt_ms(self.acknowledged_at)?,
            acknowledged_by: self.acknowledged_by,
            resolved_at: opt_ms(self.resolved_at)?,
            closed_at: opt_ms(self.closed_at)?,
            rto_deadline: from_ms(self.rto_deadline)?,
            summary: self.summary,
            escalation_tier: self
                .escalation_tier
                .map(|t| u32::try_from(t).map_err(|e| corrupt("escalation tier", e)))
                .transpose()?,
            version: self.version,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct TimelineRow {
    pub(super) incident: i64,
    pub(super) at: i64,
    pub(super) actor: String,
    pub(super) kind: String,
    pub(super) text: String,
    pub(super) public: i64,
}

#[derive(sqlx::FromRow)]
pub(super) struct AuditRow {
    pub(super) seq: i64,
    pub(super) at: i64,
    pub(super) actor: String,
    pub(super) action: String,
    pub(super) subject: String,
    pub(super) detail: String,
    pub(super) prev_hash: String,
    pub(super) hash: String,
}

#[derive(sqlx::FromRow)]
pub(super) struct OutboxRow {
    pub(super) id: i64,
    pub(super) channel: String,
    pub(super) kind: String,
    pub(super) target: String,
    pub(super) incident: Option<i64>,
    pub(super) text: String,
    pub(super) priority: i64,
    pub(super) attempts: i64,
    pub(super) state: String,
    pub(super) last_error: Option<String>,
    pub(super) created_at: i64,
    pub(super) delivered_at: Option<i64>,
    pub(super) idempotency_key: String,
    pub(super) payload: Option<String>,
}

impl OutboxRow {
    pub(super) fn into_message(self) -> Result<OutboxMessage, StoreError> {
        Ok(OutboxMessage {
            id: self.id,
            channel: Channel::parse(&self.channel)
                .ok_or_else(|| corrupt("outbox channel", &self.channel))?,
            kind: MessageKind::parse(&self.kind)
                .ok_or_else(|| corrupt("outbox kind", &self.kind))?,
            target: self.target,
            incident: self.incident.map(IncidentRef::new),
            text: self.text,
            priority: self.priority as i32,
            attempts: self.attempts as i32,
            state: DeliveryState::parse(&self.state)
                .ok_or_else(|| corrupt("outbox state", &self.state))?,
            last_error: self.last_error,
            created_at: from_ms(self.created_at)?,
            delivered_at: self.delivered_at.map(from_ms).transpose()?,
            idempotency_key: self.idempotency_key,
            page: match self.payload.as_deref() {
                Some(p) if self.kind == "page" => {
                    Some(serde_json::from_str(p).map_err(|e| corrupt("page payload", e))?)
                }
                _ => None,
            },
            approval: match self.payload.as_deref() {
                Some(p) if self.kind == "approval_request" => {
                    Some(serde_json::from_str(p).map_err(|e| corrupt("approval payload", e))?)
                }
                _ => None,
            },
            broadcast: match self.payload.as_deref() {
                Some(p) if self.kind == "broadcast" => {
                    Some(serde_json::from_str(p).map_err(|e| corrupt("broadcast payload", e))?)
                }
                _ => None,
            },
            ack_url: None,
            links: None,
        })
    }
}

pub(super) const OUTBOX_COLUMNS: &str =
    "id, channel, kind, target, incident, text, priority, attempts, state, last_error, created_at, delivered_at, idempotency_key, payload";

#[derive(sqlx::FromRow)]
pub(super) struct JobRow {
    pub(super) id: i64,
    pub(super) job_key: String,
    pub(super) kind: String,
    pub(super) incident: Option<i64>,
    pub(super) due_at: i64,
    pub(super) payload: String,
    pub(super) attempts: i64,
}

impl JobRow {
    pub(super) fn into_job(self) -> Result<Job, StoreError> {
        Ok(Job {
            id: self.id,
            key: self.job_key,
            incident: self.incident.map(IncidentRef::new),
            due_at: from_ms(self.due_at)?,
            payload: {
                let kind =
                    JobKind::parse(&self.kind).ok_or_else(|| corrupt("job kind", &self.kind))?;
                let json: serde_json::Value =
                    serde_json::from_str(&self.payload).map_err(|e| corrupt("job payload", e))?;
                JobPayload::from_json(kind, &json).map_err(|e| corrupt("job payload", e))?
            },
            attempts: self.attempts as i32,
        })
    }
}

pub(super) const JOB_COLUMNS: &str = "id, job_key, kind, incident, due_at, payload, attempts";

pub(super) const ALERT_COLUMNS: &str = "source, fingerprint, status, labels, annotations, summary, group_key, incident, \
     starts_at, ends_at, first_seen_at, changed_at, recent_changes, flapping, suppressed_by, version";

#[derive(sqlx::FromRow)]
pub(super) struct AlertRow {
    pub(super) source: String,
    pub(super) fingerprint: String,
    pub(super) status: String,
    pub(super) labels: String,
    pub(super) annotations: String,
    pub(super) summary: String,
    pub(super) group_key: String,
    pub(super) incident: Option<i64>,
    pub(super) starts_at: Option<i64>,
    pub(super) ends_at: Option<i64>,
    pub(super) first_seen_at: i64,
    pub(super) changed_at: i64,
    pub(super) recent_changes: String,
    pub(super) flapping: i64,
    pub(super) suppressed_by: Option<i64>,
    pub(super) version: i64,
}

impl AlertRow {
    pub(super) fn into_record(self) -> Result<AlertRecord, StoreError> {
        let changes: Vec<i64> =
            serde_json::from_str(&self.recent_changes).map_err(|e| corrupt("alert changes", e))?;
        Ok(AlertRecord {
            source: self.source,
            fingerprint: self.fingerprint,
            status: AlertStatus::parse(&self.status)
                .ok_or_else(|| corrupt("alert status", &self.status))?,
            labels: serde_json::from_str(&self.labels).map_err(|e| corrupt("alert labels", e))?,
            annotations: serde_json::from_str(&self.annotations)
                .map_err(|e| corrupt("alert annotations", e))?,
            summary: self.summary,
            group_key: self.group_key,
            incident: self.incident.map(IncidentRef::new),
            starts_at: self.starts_at.map(from_ms).transpose()?,
            ends_at: self.ends_at.map(from_ms).transpose()?,
            first_seen_at: from_ms(self.first_seen_at)?,
            changed_at: from_ms(self.changed_at)?,
            recent_changes: changes.into_iter().map(from_ms).collect::<Result<_, _>>()?,
            flapping: self.flapping != 0,
            suppressed_by: self.suppressed_by,
            version: self.version,
        })
    }
}

pub(super) fn binding_from_row(
    (incident, platform, channel_id, card_message_id): (i64, String, String, Option<String>),
) -> ChatBinding {
    ChatBinding {
        incident: IncidentRef::new(incident),
        platform,
        channel_id,
        card_message_id,
    }
}

pub(super) fn components_text(i: &Incident) -> String {
    i.components
        .iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

pub(super) fn bind_incident<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    i: &'q Incident,
    version: i64,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    let opt_ms = |t: Option<DateTime<Utc>>| t.map(ms);
    q.bind(i.reference.number())
        .bind(i.level.0 as i64)
        .bind(&i.title)
        .bind(components_text(i))
        .bind(i.commander.as_ref().map(|c| c.to_string()))
        .bind(i.source.as_str())
        .bind(i.state.as_str())
        .bind(i.phase.as_str())
        .bind(&i.declared_by)
        .bind(ms(i.declared_at))
        .bind(opt_ms(i.acknowledged_at))
        .bind(i.acknowledged_by.clone())
        .bind(opt_ms(i.resolved_at))
        .bind(opt_ms(i.closed_at))
        .bind(ms(i.rto_deadline))
        .bind(i.summary.clone())
        .bind(version)
        .bind(i.escalation_tier.map(i64::from))
}
