//! Approval requests of runbook runs: the message's Approve / Deny buttons, whose `custom_id`
//! is `run:3:g0:approve`. The gate is in the id, so a button of a request the run has moved past
//! (approved, or now waiting at a later step) is refused by the engine rather than counted for
//! the new one. Who may press is decided by the engine, by the presser's snowflake and roles.

use serenity::all::{ButtonStyle, CreateActionRow, CreateButton};
use spotter_core::command::Command;
use spotter_core::store::ApprovalAsk;

/// A pressed approval button.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunButton {
    pub run: i64,
    pub gate: usize,
    pub approve: bool,
}

impl RunButton {
    pub fn custom_id(&self) -> String {
        format!(
            "run:{}:g{}:{}",
            self.run,
            self.gate,
            if self.approve { "approve" } else { "deny" }
        )
    }

    pub fn parse(custom_id: &str) -> Option<RunButton> {
        let mut parts = custom_id.split(':');
        let (Some("run"), Some(run), Some(gate), Some(what), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        let run = run.parse().ok().filter(|n: &i64| *n > 0)?;
        let gate = gate.strip_prefix('g')?.parse().ok()?;
        let approve = match what {
            "approve" => true,
            "deny" => false,
            _ => return None,
        };
        Some(RunButton { run, gate, approve })
    }

    /// The engine command the button stands for.
    pub fn command(&self) -> Command {
        if self.approve {
            Command::RunbookApprove {
                run: self.run,
                gate: Some(self.gate),
            }
        } else {
            Command::RunbookDeny {
                run: self.run,
                gate: Some(self.gate),
                reason: None,
            }
        }
    }
}

/// The Approve / Deny row of an approval request.
pub fn buttons(ask: ApprovalAsk) -> Vec<CreateActionRow> {
    let b = |approve: bool| RunButton {
        run: ask.run,
        gate: ask.gate,
        approve,
    };
    vec![CreateActionRow::Buttons(vec![
        CreateButton::new(b(true).custom_id())
            .label("Approve")
            .style(ButtonStyle::Success),
        CreateButton::new(b(false).custom_id())
            .label("Deny")
            .style(ButtonStyle::Danger),
    ])]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_ids_round_trip_and_foreign_ones_are_not_read() {
        let b = RunButton {
            run: 12,
            gate: 3,
            approve: false,
        };
        assert_eq!(b.custom_id(), "run:12:g3:deny");
        assert_eq!(RunButton::parse(&b.custom_id()), Some(b));
        for bad in [
            "run:12:3:deny",
            "run:0:g0:approve",
            "run:x:g0:approve",
            "run:1:g0:ok",
            "run:1:g0:approve:extra",
            "incident:INC-1:ack",
        ] {
            assert_eq!(RunButton::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_buttons_carry_the_run_and_gate() {
        let rows = buttons(ApprovalAsk { run: 7, gate: 2 });
        let v = serde_json::to_value(&rows).unwrap();
        assert_eq!(v[0]["components"][0]["custom_id"], "run:7:g2:approve");
        assert_eq!(v[0]["components"][1]["custom_id"], "run:7:g2:deny");
    }
}
