//! `/oncall override`: someone else is on call in a rotation for a while (a swap, a sick day).
//!
//! The override is a row of its own, laid over the schedule when anyone asks who is on call
//! (see [`crate::oncall::on_call`]); the rotation's schedule itself never changes, so when the
//! override ends the rotation simply resumes.

use super::*;
use crate::oncall::RotationOverride;

impl Engine {
    /// Writes the override (now until now + `duration`, by `actor`) and its audit record in one
    /// changeset, then answers with who the rotation has on call now, read back from the store.
    pub(crate) async fn oncall_override(
        &self,
        actor: &Actor,
        rotation: &str,
        user: PersonId,
        duration: chrono::Duration,
    ) -> Result<Reply, StoreError> {
        // The parser checked the id against this same configuration; a typed caller may not have.
        let Some(rot) = self.config.rotation(rotation) else {
            return Ok(Reply::refused(format!(
                "bad value for `rotation`: `{rotation}`; accepted: a configured rotation id"
            )));
        };
        let now = self.clock.now();
        let ends_at = now + duration;
        let mut plan = Plan::new(self, actor, now);
        plan.audit.push(AuditRecord {
            at: now,
            actor: actor.id.clone(),
            action: "oncall.override".into(),
            subject: rot.id.clone(),
            detail: serde_json::json!({
                "person": user,
                "starts_at": now,
                "ends_at": ends_at,
            }),
        });
        plan.extra.rotation_overrides.push(RotationOverride {
            // Assigned by the store.
            id: 0,
            rotation: rot.id.clone(),
            person: user.clone(),
            starts_at: now,
            ends_at,
            created_by: actor.id.clone(),
            created_at: now,
        });
        self.commit(plan.finish(None)).await?;

        let overrides = self.current_overrides().await?;
        let who = |p: &PersonId| self.config.display_name(p.as_str());
        let text = match crate::oncall::on_call(rot, now, &overrides) {
            Some(on) => format!(
                "{} ({}): {} is on call until {} (override by {}; the rotation resumes then)",
                rot.name,
                rot.id,
                who(&on.person),
                render::time(on.until),
                self.config.display_name(&actor.id),
            ),
            // Not reachable with a row just written; said plainly rather than assumed.
            None => format!(
                "{} ({}): override saved, but nobody is on call now",
                rot.name, rot.id
            ),
        };
        Ok(Reply::ok(text, None))
    }
}
