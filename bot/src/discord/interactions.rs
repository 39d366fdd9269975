//! The one interaction dispatcher, over serenity's [`Interaction`] model, for both delivery modes:
//! the gateway hands it what `EventHandler::interaction_create` receives, the HTTP endpoint what
//! Discord POSTs. It answers with the initial response to send and, when the work did not finish
//! within the reply budget, the follow-up that completes a deferred response.
//!
//! - Slash commands: options become the core text line, run by [`Engine::execute`] as the member
//!   (snowflake → person, roles → Spotter roles). Replies to read-only commands and every refusal
//!   are ephemeral. Inside an incident channel, commands default to its incident.
//! - Card buttons (`incident:INC-7:ack`): the same words as typing `/incident ack incident:INC-7`;
//!   success answers with an update of the card (type 7), a refusal with an ephemeral message.
//! - Autocomplete: open incidents, people, components and command names.
//!
//! Discord wants the initial response within 3 seconds. Work that is done within the budget is
//! answered inline; otherwise the answer is a deferral (type 5, or 6 for buttons) and the
//! follow-up edits the original response through the interaction webhook
//! (`PATCH /webhooks/{application_id}/{token}/messages/@original`).

use super::approval::RunButton;
use super::card::{self, CardAction};
use super::commands::{self, Invocation};
use super::rest::{DiscordRest, RestError};
use super::DISCORD;
use futures::future::BoxFuture;
use futures::FutureExt;
use serde_json::{json, Value};
use serenity::all::{
    CommandInteraction, ComponentInteraction, CreateAllowedMentions, CreateAutocompleteResponse,
    CreateInteractionResponse, CreateInteractionResponseFollowup, CreateInteractionResponseMessage,
    EditInteractionResponse, Interaction, RoleId, UserId,
};
use serenity::http::{LightMethod, Route};
use spotter_core::command::{OptionKind, COMMANDS};
use spotter_core::domain::{Actor, IncidentRef, Source, StateFilter};
use spotter_core::{CommandContext, Engine, Reply};
use std::sync::Arc;
use std::time::Duration;

/// How long the work may take before the answer is deferred. Discord allows 3 s from its side,
/// network included.
pub const REPLY_BUDGET: Duration = Duration::from_millis(2000);
/// Discord's limits: message content, autocomplete choices and their names.
const CONTENT_MAX: usize = 2000;
const CHOICES_MAX: usize = 25;
const CHOICE_NAME_MAX: usize = 100;

/// The answer to one interaction.
pub struct Handled {
    /// The initial response (the HTTP body, or what the gateway mode POSTs to the callback).
    pub response: Value,
    /// Completes a deferred response; run it after the initial response is sent.
    pub followup: Option<BoxFuture<'static, ()>>,
}

impl Handled {
    fn now(response: Value) -> Handled {
        Handled {
            response,
            followup: None,
        }
    }
}

/// Where an answer goes: a slash command's reply (private for read-only commands), a card
/// button's update of the card, or an approval button's update of its request.
#[derive(Debug, Clone)]
enum Asked {
    Command {
        private: bool,
    },
    Button,
    /// An Approve / Deny press: on success the request message itself shows the decision (and
    /// keeps its buttons only while the run still waits), so nobody presses a dead button.
    Decision {
        button: RunButton,
        original: String,
    },
}

/// What an interaction asks the engine: a command line (slash commands, card buttons), or a
/// typed command that has no line form (an approval button names the gate it was made for).
enum Work {
    Line(String),
    Command(spotter_core::command::Command),
}

pub struct Interactions {
    engine: Arc<Engine>,
    rest: Arc<DiscordRest>,
    budget: Duration,
}

impl Interactions {
    pub fn new(engine: Arc<Engine>, rest: Arc<DiscordRest>) -> Self {
        Interactions {
            engine,
            rest,
            budget: REPLY_BUDGET,
        }
    }

    pub fn rest(&self) -> &Arc<DiscordRest> {
        &self.rest
    }

    /// Answers one interaction.
    pub async fn handle(self: &Arc<Self>, interaction: Interaction) -> Handled {
        #[allow(unreachable_patterns)]
        match interaction {
            Interaction::Ping(_) => Handled::now(json!({"type": 1})),
            Interaction::Command(ci) => self.command(ci).await,
            Interaction::Component(ci) => self.button(ci).await,
            Interaction::Autocomplete(ci) => {
                let choices = tokio::time::timeout(self.budget, self.suggest(&ci))
                    .await
                    .unwrap_or_default();
                let resp = choices
                    .into_iter()
                    .fold(CreateAutocompleteResponse::new(), |r, (name, value)| {
                        r.add_string_choice(name, value)
                    });
                Handled::now(to_json(&CreateInteractionResponse::Autocomplete(resp)))
            }
            _ => Handled::now(to_json(&CreateInteractionResponse::Message(
                CreateInteractionResponseMessage::new()
                    .content("Spotter does not handle this kind of interaction.")
                    .ephemeral(true),
            ))),
        }
    }

    async fn command(self: &Arc<Self>, ci: CommandInteraction) -> Handled {
        let inv = Invocation::from_interaction(&ci.data.name, &ci.data.options);
        let line = inv.line();
        let asked = Asked::Command {
            private: commands::reads_only(inv.spec()),
        };
        let actor = self.actor(ci.user.id, ci.member.as_ref().map(|m| m.roles.as_slice()));
        let channel = ci.channel_id.to_string();
        tracing::info!(actor = %actor.id, interaction = %ci.id, "{line}");
        self.respond(actor, Work::Line(line), Some(channel), asked, ci.token)
            .await
    }

    async fn button(self: &Arc<Self>, ci: ComponentInteraction) -> Handled {
        let actor = self.actor(ci.user.id, ci.member.as_ref().map(|m| m.roles.as_slice()));
        let (work, asked) = if let Some((r, action)) = CardAction::parse(&ci.data.custom_id) {
            (Work::Line(action.line(r)), Asked::Button)
        } else if let Some(b) = RunButton::parse(&ci.data.custom_id) {
            let asked = Asked::Decision {
                button: b,
                original: ci.message.content.clone(),
            };
            (Work::Command(b.command()), asked)
        } else {
            return Handled::now(ephemeral("This button is not Spotter's (or no longer is)."));
        };
        tracing::info!(actor = %actor.id, interaction = %ci.id, "button: {}", ci.data.custom_id);
        self.respond(actor, work, None, asked, ci.token).await
    }

    /// The actor for a Discord user: by snowflake only, never by name.
    fn actor(&self, user: UserId, roles: Option<&[RoleId]>) -> Actor {
        let roles: Vec<String> = roles
            .unwrap_or_default()
            .iter()
            .map(|r| r.to_string())
            .collect();
        super::identity::actor_for_member(self.engine.config(), &user.to_string(), &roles)
    }

    /// Runs the line, answering inline when it is done within the budget and deferring otherwise.
    async fn respond(
        self: &Arc<Self>,
        actor: Actor,
        line: Work,
        channel: Option<String>,
        asked: Asked,
        token: String,
    ) -> Handled {
        let me = self.clone();
        let mut work = tokio::spawn(async move { me.run(&actor, line, channel).await });
        match tokio::time::timeout(self.budget, &mut work).await {
            Ok(joined) => Handled::now(self.initial(joined.unwrap_or_else(crashed), asked).await),
            Err(_) => {
                let deferred = match &asked {
                    Asked::Command { private } => CreateInteractionResponse::Defer(
                        CreateInteractionResponseMessage::new().ephemeral(*private),
                    ),
                    Asked::Button | Asked::Decision { .. } => {
                        CreateInteractionResponse::Acknowledge
                    }
                };
                let me = self.clone();
                let followup = async move {
                    let reply = work.await.unwrap_or_else(crashed);
                    me.complete(reply, asked, &token).await;
                }
                .boxed();
                Handled {
                    response: to_json(&deferred),
                    followup: Some(followup),
                }
            }
        }
    }

    /// Runs one command line through the core engine, as typed in `channel`.
    async fn run(&self, actor: &Actor, work: Work, channel: Option<String>) -> Reply {
        let channel_incident = match channel {
            Some(c) => match self
                .engine
                .store()
                .chat_binding_by_channel(DISCORD, &c)
                .await
            {
                Ok(b) => b.map(|b| b.incident),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot look up the channel's incident");
                    None
                }
            },
            None => None,
        };
        let ctx = CommandContext {
            source: Some(Source::Chat),
            channel_incident,
        };
        let done = match work {
            Work::Line(line) => self.engine.execute_line(actor, &line, &ctx).await,
            Work::Command(cmd) => self.engine.execute(actor, cmd, &ctx).await,
        };
        match done {
            Ok(reply) => reply,
            Err(e) => {
                tracing::error!(error = %e, "command failed on the store");
                Reply {
                    ok: false,
                    text: "Spotter cannot reach its database right now; nothing was changed. Try again in a moment.".into(),
                    incident: None,
                    run: None,
                }
            }
        }
    }

    /// The card's embed for an incident, with the alerts feeding it.
    async fn card(&self, i: &spotter_core::domain::Incident) -> serenity::all::CreateEmbed {
        let alerts = match self
            .engine
            .store()
            .incident_alert_summary(i.reference, card::ALERTS_SHOWN)
            .await
        {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the incident's alerts for its card");
                Default::default()
            }
        };
        card::embed(i, self.engine.config(), &alerts)
    }

    /// The inline answer to finished work.
    async fn initial(&self, reply: Reply, asked: Asked) -> Value {
        let text = commands::truncate(&reply.text, CONTENT_MAX);
        match (asked, reply.ok, &reply.incident) {
            (Asked::Decision { button, original }, true, _) => {
                let (content, rows) = decided(&original, &reply, button);
                to_json(&CreateInteractionResponse::UpdateMessage(
                    CreateInteractionResponseMessage::new()
                        .content(content)
                        .components(rows)
                        .allowed_mentions(CreateAllowedMentions::new()),
                ))
            }
            // The button's answer is the card itself, updated in place (type 7).
            (Asked::Button, true, Some(i)) => to_json(&CreateInteractionResponse::UpdateMessage(
                CreateInteractionResponseMessage::new()
                    .embed(self.card(i).await)
                    .components(card::buttons(i)),
            )),
            (Asked::Command { private }, true, _) => to_json(&CreateInteractionResponse::Message(
                CreateInteractionResponseMessage::new()
                    .content(text)
                    .ephemeral(private)
                    .allowed_mentions(CreateAllowedMentions::new()),
            )),
            _ => ephemeral(&text),
        }
    }

    /// Completes a deferred answer through the interaction webhook.
    async fn complete(&self, reply: Reply, asked: Asked, token: &str) {
        let app = self.rest.application_id();
        let original = || Route::WebhookOriginalInteractionResponse {
            application_id: app,
            token,
        };
        let followup = || Route::WebhookFollowupMessages {
            application_id: app,
            token,
        };
        let text = commands::truncate(&reply.text, CONTENT_MAX);
        let result = match (asked, reply.ok) {
            (
                Asked::Decision {
                    button,
                    original: request,
                },
                true,
            ) => {
                let (content, rows) = decided(&request, &reply, button);
                let body = EditInteractionResponse::new()
                    .content(content)
                    .components(rows);
                self.webhook(original, LightMethod::Patch, Some(&body))
                    .await
            }
            (Asked::Button, true) if reply.incident.is_some() => {
                let i = reply.incident.as_ref().expect("checked");
                let body = EditInteractionResponse::new()
                    .embed(self.card(i).await)
                    .components(card::buttons(i));
                self.webhook(original, LightMethod::Patch, Some(&body))
                    .await
            }
            (Asked::Command { private }, ok) if ok || private => {
                let body = EditInteractionResponse::new().content(text);
                self.webhook(original, LightMethod::Patch, Some(&body))
                    .await
            }
            // A refusal must not be public: drop the public "thinking…" and say it privately.
            (Asked::Command { .. }, _) => {
                if let Err(e) = self
                    .webhook(original, LightMethod::Delete, None::<&()>)
                    .await
                {
                    tracing::warn!(error = %e, "cannot delete the deferred response");
                }
                let body = CreateInteractionResponseFollowup::new()
                    .content(text)
                    .ephemeral(true);
                self.webhook(followup, LightMethod::Post, Some(&body)).await
            }
            (Asked::Button | Asked::Decision { .. }, _) => {
                let body = CreateInteractionResponseFollowup::new()
                    .content(text)
                    .ephemeral(true);
                self.webhook(followup, LightMethod::Post, Some(&body)).await
            }
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "cannot complete a deferred interaction response");
        }
    }

    /// One interaction-webhook call, retried a few times: interaction tokens live 15 minutes,
    /// and the deferral itself may still be on its way to Discord (a 404 at first).
    async fn webhook<'a>(
        &self,
        route: impl Fn() -> Route<'a>,
        method: LightMethod,
        body: Option<&(impl serde::Serialize + ?Sized)>,
    ) -> Result<(), RestError> {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match self.rest.call(route(), method, body).await {
                Ok(_) => return Ok(()),
                Err(e) if attempt < 6 && (e.is_retryable() || e.not_found()) => {
                    let wait = match &e {
                        RestError::RateLimited {
                            retry_after: Some(d),
                            ..
                        } => (*d).min(Duration::from_secs(30)),
                        _ => Duration::from_millis(250 * 2u64.pow(attempt)),
                    };
                    tokio::time::sleep(wait).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Suggestions for the option being typed.
    async fn suggest(&self, ci: &CommandInteraction) -> Vec<(String, String)> {
        let Some(focused) = ci.data.autocomplete() else {
            return vec![];
        };
        let inv = Invocation::from_interaction(&ci.data.name, &ci.data.options);
        let kind = inv
            .spec()
            .and_then(|s| s.option(focused.name))
            .map(|o| o.kind);
        let typed = focused.value.trim().to_lowercase();
        let config = self.engine.config();
        let mut out: Vec<(String, String)> = match kind {
            Some(OptionKind::Incident) => {
                let open = match self.engine.store().incidents(StateFilter::Open).await {
                    Ok(list) => list,
                    Err(e) => {
                        tracing::warn!(error = %e, "autocomplete cannot list incidents");
                        vec![]
                    }
                };
                open.into_iter()
                    .filter(|i| {
                        typed.is_empty()
                            || i.reference.to_string().to_lowercase().contains(&typed)
                            || i.title.to_lowercase().contains(&typed)
                            || typed.parse::<IncidentRef>().is_ok_and(|r| r == i.reference)
                    })
                    .map(|i| {
                        (
                            format!("{} · L{} · {} ({})", i.reference, i.level, i.title, i.state),
                            i.reference.to_string(),
                        )
                    })
                    .collect()
            }
            Some(OptionKind::Runbook) => self
                .engine
                .runbooks()
                .iter()
                .filter(|r| typed.is_empty() || r.name.contains(&typed))
                .map(|r| (format!("{} · {}", r.name, r.description), r.name.clone()))
                .collect(),
            Some(OptionKind::Person) => config
                .people
                .values()
                .filter(|p| {
                    typed.is_empty()
                        || p.id.as_str().contains(&typed)
                        || p.name.to_lowercase().contains(&typed)
                })
                .map(|p| (format!("{} ({})", p.name, p.id), p.id.to_string()))
                .collect(),
            Some(OptionKind::Components) => {
                // A comma-separated list: complete its last item.
                let (done, last) = match typed.rfind(',') {
                    Some(i) => (typed[..=i].to_string(), typed[i + 1..].trim().to_string()),
                    None => (String::new(), typed.clone()),
                };
                config
                    .components
                    .iter()
                    .filter(|c| {
                        c.id.as_str().starts_with(&last) || c.name.to_lowercase().contains(&last)
                    })
                    .map(|c| {
                        let value = format!("{done}{}", c.id);
                        (format!("{value} ({})", c.name), value)
                    })
                    .collect()
            }
            Some(OptionKind::Target) => config
                .people
                .values()
                .map(|p| (format!("{} ({})", p.name, p.id), p.id.to_string()))
                .chain(
                    config
                        .teams
                        .values()
                        .map(|t| (format!("team {} ({})", t.name, t.id), t.id.clone())),
                )
                .filter(|(name, id)| {
                    typed.is_empty() || id.contains(&typed) || name.to_lowercase().contains(&typed)
                })
                .collect(),
            Some(OptionKind::CommandName) => COMMANDS
                .iter()
                .map(|c| c.path.join(" "))
                .filter(|n| n.contains(&typed))
                .map(|n| (n.clone(), n))
                .collect(),
            _ => vec![],
        };
        out.truncate(CHOICES_MAX);
        out.into_iter()
            .map(|(name, value)| (commands::truncate(&name, CHOICE_NAME_MAX), value))
            .collect()
    }
}

/// An ephemeral message (flags 64): only the asker sees it.
fn ephemeral(text: &str) -> Value {
    to_json(&CreateInteractionResponse::Message(
        CreateInteractionResponseMessage::new()
            .content(commands::truncate(text, CONTENT_MAX))
            .ephemeral(true),
    ))
}

fn to_json(r: &CreateInteractionResponse) -> Value {
    serde_json::to_value(r).expect("interaction responses serialise")
}

/// An approval request after a decision: its text with the outcome below, and its buttons
/// only while the run still waits at that gate (a second approval wanted).
fn decided(
    original: &str,
    reply: &Reply,
    button: RunButton,
) -> (String, Vec<serenity::all::CreateActionRow>) {
    let still_waiting = reply
        .run
        .as_ref()
        .is_some_and(|r| r.state == "pending_approval");
    let rows = if still_waiting {
        super::approval::buttons(spotter_core::store::ApprovalAsk {
            run: button.run,
            gate: button.gate,
        })
    } else {
        vec![]
    };
    let outcome = format!("\n\n**{}**", reply.text);
    let keep = CONTENT_MAX.saturating_sub(outcome.chars().count());
    (
        format!("{}{outcome}", commands::truncate(original, keep)),
        rows,
    )
}

fn crashed(e: tokio::task::JoinError) -> Reply {
    tracing::error!(error = %e, "interaction work crashed");
    Reply {
        ok: false,
        text: "Spotter hit an internal error; nothing was changed.".into(),
        incident: None,
        run: None,
    }
}
