//! The outbox's Discord channel: incident channels, the card, and timeline posts.
//!
//! - `card_update`: make sure the incident has its channel (a channel under the configured
//!   category, or a thread in the configured channel), then post the card or edit it in place.
//!   The card shows the incident as the store has it *now*, so stale updates cost nothing: when
//!   this process has already put the current version on the card, the edit is skipped, and a
//!   burst of changes becomes one edit.
//! - `chat_post`: the timeline event, posted to the incident channel.
//! - `alert_post`: an alert event, posted like a `chat_post`; under a storm the dispatcher hands
//!   over one post standing for a run of them ("… and N more alert events").
//! - `page` (a person's `discord` contact method): a message in the incident channel that
//!   mentions the person, and may ping nobody else, and the same text as a direct message.
//!   A page about no incident is only the direct message.
//! - `broadcast` to `announce:<channel>`: the status page's announcement channel, delivered by
//!   [`super::announce`]; other broadcasts are not Discord's, and are acknowledged and dropped.
//!
//! The chat lane and the pages lane deliver in parallel, so a card update and a page of a new
//! incident can both find it without a channel: opening one is serialised per incident (and
//! re-checked under the lock), so exactly one channel is created.
//!
//! Every outcome maps onto the dispatcher's retry rules (see [`RestError::into_delivery`]), and
//! the dispatcher delivers one incident's messages one at a time, in order.

use super::card;
use super::rest::{DiscordRest, RestError, UNKNOWN_CHANNEL};
use super::DISCORD;
use async_trait::async_trait;
use serenity::all::{
    AutoArchiveDuration, ChannelId, ChannelType, CreateAllowedMentions, CreateChannel, CreateEmbed,
    CreateMessage, CreateThread, EditMessage, MessageId, UserId,
};
use serenity::http::{LightMethod, Route};
use spotter_core::config::{DiscordConfig, IncidentChannels};
use spotter_core::domain::{Incident, IncidentRef};
use spotter_core::outbox::{DeliveryError, Notifier};
use spotter_core::store::{ChatBinding, MessageKind, OutboxMessage};
use spotter_core::{Engine, StoreError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Discord's limits: message content and embed description.
const CONTENT_MAX: usize = 2000;
const DESCRIPTION_MAX: usize = 4096;

pub struct DiscordNotifier {
    engine: Arc<Engine>,
    rest: Arc<DiscordRest>,
    config: DiscordConfig,
    /// The incident version this process last put on each card. A std mutex: held for a map
    /// lookup only, never across an await.
    rendered: Mutex<HashMap<IncidentRef, i64>>,
    /// Serialises opening an incident's channel, striped by incident number: two incidents
    /// sharing a stripe only wait for each other's channel creation, which is rare and short.
    opening: Vec<tokio::sync::Mutex<()>>,
    announcer: super::announce::Announcer,
}

/// Lock stripes for opening channels.
const OPENING_STRIPES: usize = 64;

/// What went wrong delivering one message.
enum Failure {
    Rest(RestError),
    Store(StoreError),
    Gone(String),
}

impl From<RestError> for Failure {
    fn from(e: RestError) -> Self {
        Failure::Rest(e)
    }
}
impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Store(e)
    }
}

impl DiscordNotifier {
    pub fn new(engine: Arc<Engine>, rest: Arc<DiscordRest>, config: DiscordConfig) -> Self {
        let announcer = super::announce::Announcer::new(engine.clone(), rest.clone());
        DiscordNotifier {
            engine,
            rest,
            config,
            announcer,
            rendered: Mutex::new(HashMap::new()),
            opening: (0..OPENING_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
        }
    }

    fn opening_lock(&self, r: IncidentRef) -> &tokio::sync::Mutex<()> {
        &self.opening[(r.number().unsigned_abs() as usize) % self.opening.len()]
    }

    async fn incident(&self, r: IncidentRef) -> Result<Incident, Failure> {
        self.engine
            .store()
            .incident(r)
            .await?
            .ok_or_else(|| Failure::Gone(format!("{r} does not exist")))
    }

    /// The incident's channel, created (with its card) when it has none yet.
    async fn channel(&self, incident: &Incident) -> Result<ChatBinding, Failure> {
        match self
            .engine
            .store()
            .chat_binding(DISCORD, incident.reference)
            .await?
        {
            Some(b) => Ok(b),
            None => self.replace_channel(incident, None).await,
        }
    }

    /// Under the incident's opening lock: the channel as the store has it now, unless it is
    /// missing or still the `stale` one (deleted on Discord); then a new one.
    async fn replace_channel(
        &self,
        incident: &Incident,
        stale: Option<&str>,
    ) -> Result<ChatBinding, Failure> {
        let _opening = self.opening_lock(incident.reference).lock().await;
        // Whoever held the lock before may have opened it already.
        match self
            .engine
            .store()
            .chat_binding(DISCORD, incident.reference)
            .await?
        {
            Some(b) if Some(b.channel_id.as_str()) != stale => Ok(b),
            _ => self.open_channel(incident).await,
        }
    }

    /// Creates the incident's channel (or thread) and remembers it at once, so a retry after a
    /// later failure reuses it. Only through [`Self::replace_channel`], which holds the lock.
    async fn open_channel(&self, incident: &Incident) -> Result<ChatBinding, Failure> {
        let name = card::channel_name(incident);
        let topic = format!(
            "{} · level {} · {}",
            incident.reference, incident.level, incident.title
        );
        let channel_id = match &self.config.incident_channels {
            IncidentChannels::Category(category) => {
                let mut body = CreateChannel::new(name)
                    .kind(ChannelType::Text)
                    .topic(super::commands::truncate(&topic, 1024));
                if let Some(c) = category {
                    // Checked at start-up (`Discord::new`); a bad id is never silently dropped.
                    let c = super::rest::snowflake("discord.incident_category_id", c)
                        .map_err(|e| Failure::Gone(e.to_string()))?;
                    body = body.category(ChannelId::from(c));
                }
                self.rest
                    .call_for_id(
                        Route::GuildChannels {
                            guild_id: self.rest.guild_id(),
                        },
                        LightMethod::Post,
                        Some(&body),
                    )
                    .await?
            }
            IncidentChannels::Threads(parent) => {
                let body = CreateThread::new(name)
                    .kind(ChannelType::PublicThread)
                    .auto_archive_duration(AutoArchiveDuration::OneWeek);
                self.rest
                    .call_for_id(
                        Route::ChannelThreads {
                            channel_id: channel_id(parent)?,
                        },
                        LightMethod::Post,
                        Some(&body),
                    )
                    .await?
            }
        };
        let binding = ChatBinding {
            incident: incident.reference,
            platform: DISCORD.into(),
            channel_id,
            card_message_id: None,
        };
        self.engine.store().save_chat_binding(&binding).await?;
        tracing::info!(incident = %incident.reference, channel = %binding.channel_id, "Discord incident channel created");
        Ok(binding)
    }

    /// Brings the card up to date with the incident's latest state.
    async fn update_card(&self, r: IncidentRef) -> Result<(), Failure> {
        let incident = self.incident(r).await?;
        let mut binding = self.channel(&incident).await?;
        if binding.card_message_id.is_some()
            && self.rendered.lock().unwrap().get(&r) == Some(&incident.version)
        {
            return Ok(());
        }
        let config = self.engine.config();
        let alerts = self
            .engine
            .store()
            .incident_alert_summary(r, card::ALERTS_SHOWN)
            .await?;
        let embed = card::embed(&incident, config, &alerts);
        let rows = card::buttons(&incident);
        let edited = match &binding.card_message_id {
            Some(mid) => {
                let body = EditMessage::new()
                    .embed(embed.clone())
                    .components(rows.clone());
                match self
                    .rest
                    .call(
                        Route::ChannelMessage {
                            channel_id: channel_id(&binding.channel_id)?,
                            message_id: message_id(mid)?,
                        },
                        LightMethod::Patch,
                        Some(&body),
                    )
                    .await
                {
                    Ok(_) => true,
                    Err(e) if e.not_found() && e.code() == Some(UNKNOWN_CHANNEL) => {
                        return self.reopen(&incident, &binding.channel_id, e).await
                    }
                    // Someone deleted the card: post a new one below.
                    Err(e) if e.not_found() => false,
                    Err(e) => return Err(e.into()),
                }
            }
            None => false,
        };
        if !edited {
            let body = CreateMessage::new()
                .embed(embed)
                .components(rows)
                .allowed_mentions(CreateAllowedMentions::new());
            let posted = self
                .rest
                .call(
                    Route::ChannelMessages {
                        channel_id: channel_id(&binding.channel_id)?,
                    },
                    LightMethod::Post,
                    Some(&body),
                )
                .await;
            let mid = match posted {
                Ok(message) => super::rest::id_of(&message),
                Err(e) if e.not_found() => {
                    return self.reopen(&incident, &binding.channel_id, e).await
                }
                Err(e) => return Err(e.into()),
            };
            // The card is posted either way; without its id it cannot be edited later, and the
            // next change posts a fresh card instead.
            match mid {
                Some(mid) => {
                    binding.card_message_id = Some(mid);
                    self.engine.store().save_chat_binding(&binding).await?;
                }
                None => tracing::warn!(incident = %r, "Discord returned the card without an id"),
            }
        }
        self.rendered.lock().unwrap().insert(r, incident.version);
        Ok(())
    }

    /// The incident channel `gone` was deleted: open a new one (unless a parallel delivery
    /// already did), then let the dispatcher retry.
    async fn reopen(&self, incident: &Incident, gone: &str, e: RestError) -> Result<(), Failure> {
        tracing::warn!(incident = %incident.reference, error = %e, "Discord incident channel is gone; opening a new one");
        self.rendered.lock().unwrap().remove(&incident.reference);
        self.replace_channel(incident, Some(gone)).await?;
        Err(Failure::Rest(RestError::Transport {
            route: "incident channel".into(),
            message: "the incident channel was deleted; a new one was opened".into(),
        }))
    }

    /// Posts a timeline event to the incident channel.
    async fn post(&self, r: IncidentRef, body: CreateMessage) -> Result<(), Failure> {
        let binding = match self.engine.store().chat_binding(DISCORD, r).await? {
            Some(b) => b,
            // The card (which opens the channel) comes first; it may have been given up.
            None => self.channel(&self.incident(r).await?).await?,
        };
        match self
            .rest
            .call(
                Route::ChannelMessages {
                    channel_id: channel_id(&binding.channel_id)?,
                },
                LightMethod::Post,
                Some(&body),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.not_found() => {
                self.reopen(&self.incident(r).await?, &binding.channel_id, e)
                    .await
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A page of person `m.target`: the mention in the incident channel (when the page is about
    /// an incident) and the direct message. Both are attempted even when one fails, so one
    /// broken path does not silence the other; the page counts as delivered only when both went
    /// out (else it falls through to the person's next contact method).
    async fn page(&self, m: &OutboxMessage) -> Result<(), Failure> {
        let config = self.engine.config();
        let person = config.person(&m.target).ok_or_else(|| {
            Failure::Gone(format!("page for `{}`: not a configured person", m.target))
        })?;
        let user = person
            .discord_user_id
            .as_deref()
            .and_then(|id| super::rest::snowflake("discord_user_id", id).ok())
            .map(UserId::from)
            .ok_or_else(|| {
                Failure::Gone(format!(
                    "{} ({}) has no discord_user_id: Discord cannot page them",
                    person.name, person.id
                ))
            })?;
        let text = page_text(m);
        let in_channel = match m.incident {
            Some(r) => self.page_in_channel(r, user, &text).await,
            None => Ok(()),
        };
        let direct = self.direct_message(user, &text).await;
        in_channel.and(direct)
    }

    /// The mention in the incident channel, allowed to ping exactly `user`.
    async fn page_in_channel(
        &self,
        r: IncidentRef,
        user: UserId,
        text: &str,
    ) -> Result<(), Failure> {
        let incident = self.incident(r).await?;
        let binding = self.channel(&incident).await?;
        let mention = format!("<@{user}> ");
        let content = format!(
            "{mention}{}",
            super::commands::truncate(text, CONTENT_MAX - mention.chars().count())
        );
        let body = CreateMessage::new()
            .content(content)
            .allowed_mentions(CreateAllowedMentions::new().users([user]));
        match self
            .rest
            .call(
                Route::ChannelMessages {
                    channel_id: channel_id(&binding.channel_id)?,
                },
                LightMethod::Post,
                Some(&body),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.not_found() => self.reopen(&incident, &binding.channel_id, e).await,
            Err(e) => Err(e.into()),
        }
    }

    /// The page as a direct message: open (or find) the DM channel, then post in it.
    async fn direct_message(&self, user: UserId, text: &str) -> Result<(), Failure> {
        let dm = self
            .rest
            .call_for_id(
                Route::UserMeDmChannels,
                LightMethod::Post,
                Some(&serde_json::json!({ "recipient_id": user.to_string() })),
            )
            .await?;
        // A DM pings its reader anyway; mentions in the text stay inert.
        let body = CreateMessage::new()
            .content(super::commands::truncate(text, CONTENT_MAX))
            .allowed_mentions(CreateAllowedMentions::new());
        self.rest
            .call(
                Route::ChannelMessages {
                    channel_id: channel_id(&dm)?,
                },
                LightMethod::Post,
                Some(&body),
            )
            .await?;
        Ok(())
    }
}

/// The page's text and, when it has one, its acknowledgement link.
fn page_text(m: &OutboxMessage) -> String {
    match &m.ack_url {
        Some(url) => format!("{}\nAcknowledge: {url}", m.text),
        None => m.text.clone(),
    }
}

/// A timeline post: plain content, or an embed when it is longer than a message may be. Nobody is
/// pinged by what people typed.
fn message(text: &str) -> CreateMessage {
    let m = CreateMessage::new().allowed_mentions(CreateAllowedMentions::new());
    if text.chars().count() <= CONTENT_MAX {
        m.content(text)
    } else {
        m.embed(CreateEmbed::new().description(super::commands::truncate(text, DESCRIPTION_MAX)))
    }
}

fn channel_id(s: &str) -> Result<ChannelId, Failure> {
    s.parse::<u64>()
        .ok()
        .filter(|n| *n != 0)
        .map(ChannelId::new)
        .ok_or_else(|| Failure::Gone(format!("`{s}` is not a Discord channel id")))
}

fn message_id(s: &str) -> Result<MessageId, Failure> {
    s.parse::<u64>()
        .ok()
        .filter(|n| *n != 0)
        .map(MessageId::new)
        .ok_or_else(|| Failure::Gone(format!("`{s}` is not a Discord message id")))
}

/// The incident a message is about: its column, else its `incident:INC-7` target.
fn incident_of(m: &OutboxMessage) -> Option<IncidentRef> {
    m.incident.or_else(|| {
        m.target
            .strip_prefix("incident:")
            .and_then(|r| r.parse().ok())
    })
}

#[async_trait]
impl Notifier for DiscordNotifier {
    async fn deliver(&self, m: &OutboxMessage) -> Result<(), DeliveryError> {
        let is = |k: MessageKind| m.kind == k;
        if is(MessageKind::Page) {
            return self.page(m).await.map_err(|f| self.delivery_error(m, f));
        }
        if is(MessageKind::Broadcast) && m.target.starts_with("announce:") {
            return self.announcer.deliver(m).await;
        }
        if !is(MessageKind::CardUpdate)
            && !is(MessageKind::ChatPost)
            && !is(MessageKind::AlertPost)
            && !is(MessageKind::ApprovalRequest)
        {
            tracing::debug!(id = m.id, kind = %m.kind, "not a Discord message kind; dropped");
            return Ok(());
        }
        let Some(r) = incident_of(m) else {
            return Err(DeliveryError::Permanent(format!(
                "`{}` names no incident",
                m.target
            )));
        };
        let result = if is(MessageKind::CardUpdate) {
            self.update_card(r).await
        } else {
            let body = match m.approval {
                Some(ask) => message(&m.text).components(super::approval::buttons(ask)),
                None => message(&m.text),
            };
            self.post(r, body).await
        };
        result.map_err(|f| self.delivery_error(m, f))
    }
}

impl DiscordNotifier {
    fn delivery_error(&self, m: &OutboxMessage, f: Failure) -> DeliveryError {
        match f {
            Failure::Rest(e) => e.into_delivery(m.attempts, &self.engine.config().outbox),
            Failure::Store(e) => DeliveryError::Retry {
                reason: format!("store: {e}"),
                after: None,
            },
            Failure::Gone(why) => DeliveryError::Permanent(why),
        }
    }
}
