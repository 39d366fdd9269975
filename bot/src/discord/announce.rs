//! The status page's Discord announcement channel (`[status] discord_channel_id`): what the
//! public sees of an incident or a maintenance, never the internal incident.
//!
//! The announcer queues one broadcast per public change (`target = "announce:<channel>"`, one
//! ordering key per channel, so they arrive here one at a time and in order). Each subject has
//! at most two posts:
//!
//! - the opening post (`incident:pi_…`, `maintenance:pm_…`): made by the first broadcast about
//!   the subject, and edited in place by its later ones (new updates, status or impact changes,
//!   a maintenance starting), so followers are not sent a message per update;
//! - the closing post (`incident:pi_…:resolved`, `maintenance:pm_…:completed`): a new message
//!   when the incident is resolved or the maintenance completed, edited if that changes again.
//!
//! Every new post is published to the channel's followers (crossposted) when the channel is an
//! announcement channel. The posts' message ids are kept in the store (`announcement_posts`),
//! so an edit after a restart still finds its post; with none remembered (the opening was given
//! up, or the channel changed) an update posts anew.

use super::rest::{snowflake, DiscordRest, RestError};
use super::DISCORD;
use serenity::all::{ChannelId, CreateAllowedMentions, CreateEmbed, CreateMessage, EditMessage};
use serenity::all::{MessageId, Timestamp};
use serenity::http::{LightMethod, Route};
use spotter_core::config::Config;
use spotter_core::outbox::DeliveryError;
use spotter_core::status::{Impact, MaintenanceStatus, PublicIncident, PublicMaintenance};
use spotter_core::store::{AnnouncementPost, BroadcastEvent, OutboxMessage};
use spotter_core::{Engine, StoreError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The shortest time between two edits of one post. An edit of a published message reaches
/// every follower's server too, so a burst of updates must not become a burst of edits there;
/// a minute keeps the post at most a minute behind the page. The first edit of a post is never
/// held back (there was no edit before it).
pub const EDIT_INTERVAL: Duration = Duration::from_secs(60);

/// Discord's channel type of an announcement channel (`GUILD_ANNOUNCEMENT`).
const GUILD_ANNOUNCEMENT: u64 = 5;
/// Discord's limits on an embed.
const TITLE_MAX: usize = 256;
const DESCRIPTION_MAX: usize = 4096;

pub struct Announcer {
    engine: Arc<Engine>,
    rest: Arc<DiscordRest>,
    /// Whether each channel is an announcement channel, as Discord said once: a channel's type
    /// changes only by hand in Discord's settings, and a restart reads it again. Std mutexes:
    /// held for a map access only, never across an await.
    announcement: Mutex<HashMap<ChannelId, bool>>,
    /// When this process last edited each post (by message id).
    edited: Mutex<HashMap<String, Instant>>,
}

/// What one broadcast becomes in the channel.
struct Post {
    /// The `announcement_posts` subject it posts as, or edits.
    subject: String,
    embed: CreateEmbed,
}

impl Announcer {
    pub fn new(engine: Arc<Engine>, rest: Arc<DiscordRest>) -> Self {
        Announcer {
            engine,
            rest,
            announcement: Mutex::new(HashMap::new()),
            edited: Mutex::new(HashMap::new()),
        }
    }

    /// Delivers one `announce:<channel>` broadcast: a new post (and its crosspost), or an edit
    /// of the subject's post.
    pub async fn deliver(&self, m: &OutboxMessage) -> Result<(), DeliveryError> {
        let Some(b) = &m.broadcast else {
            return Err(DeliveryError::Permanent(format!(
                "announcement {} carries no broadcast",
                m.id
            )));
        };
        let channel = snowflake("status.discord_channel_id", &b.address)
            .map(ChannelId::from)
            .map_err(|e| DeliveryError::Permanent(e.to_string()))?;
        let config = self.engine.config();
        let post = match &b.event {
            BroadcastEvent::Incident { incident, .. } => incident_post(config, incident),
            BroadcastEvent::Maintenance { maintenance } => maintenance_post(config, maintenance),
            other => {
                return Err(DeliveryError::Permanent(format!(
                    "a {} broadcast is not for the announcement channel",
                    other.kind()
                )))
            }
        };
        let fail = |e: RestError| e.into_delivery(m.attempts, &config.outbox);
        let remembered = self
            .engine
            .store()
            .announcement_post(DISCORD, &b.address, &post.subject)
            .await
            .map_err(store_error)?;
        if let Some(existing) = remembered {
            match self.edit(channel, &existing.message_id, &post).await {
                Ok(()) => return Ok(()),
                // Someone deleted the post: post it anew below.
                Err(Edit::Gone) => {}
                Err(Edit::Rest(e)) => return Err(fail(e)),
                Err(Edit::Soon(remaining)) => {
                    // Held back, not dropped: this message may be the last word on the subject,
                    // and dropping it would leave the post stale. The dispatcher tries it again
                    // once the interval is over, and the later broadcasts of the channel wait
                    // behind it (one ordering key), so the post ends up showing the latest state.
                    // Coalescing (skipping to the newest queued change) would need the outbox to
                    // tell a notifier what is queued behind a message, which it does not.
                    return Err(DeliveryError::Retry {
                        reason: format!(
                            "announcement post {} was edited less than {}s ago",
                            existing.message_id,
                            EDIT_INTERVAL.as_secs()
                        ),
                        after: chrono::Duration::from_std(remaining).ok(),
                    });
                }
            }
        }
        // Known before posting, so a failure to learn it retries without a post made.
        let announcement = self.is_announcement(channel).await.map_err(fail)?;
        let body = CreateMessage::new()
            .embed(post.embed.clone())
            .allowed_mentions(CreateAllowedMentions::new());
        let message = self
            .rest
            .call(
                Route::ChannelMessages {
                    channel_id: channel,
                },
                LightMethod::Post,
                Some(&body),
            )
            .await
            .map_err(fail)?;
        let Some(mid) = super::rest::id_of(&message) else {
            tracing::warn!(channel = %channel, subject = %post.subject, "Discord returned the announcement without an id; it cannot be edited later");
            return Ok(());
        };
        // Remembered at once: if what follows fails, the retry edits this post, never posts
        // a second one. A store failure here retries and so may post twice, which is the lesser
        // harm than a message the followers never see.
        self.engine
            .store()
            .save_announcement_post(&AnnouncementPost {
                platform: DISCORD.into(),
                channel_id: b.address.clone(),
                subject: post.subject.clone(),
                message_id: mid.clone(),
                posted_at: self.engine.clock().now(),
            })
            .await
            .map_err(store_error)?;
        if announcement {
            self.crosspost(channel, &mid).await;
        }
        tracing::info!(channel = %channel, subject = %post.subject, message = %mid, "status announcement posted");
        Ok(())
    }

    /// Edits the post `mid`, unless it was edited less than [`EDIT_INTERVAL`] ago.
    async fn edit(&self, channel: ChannelId, mid: &str, post: &Post) -> Result<(), Edit> {
        let now = Instant::now();
        if let Some(remaining) = self
            .edited
            .lock()
            .unwrap()
            .get(mid)
            .and_then(|at| EDIT_INTERVAL.checked_sub(now.duration_since(*at)))
            .filter(|d| !d.is_zero())
        {
            return Err(Edit::Soon(remaining));
        }
        let Some(message_id) = mid.parse::<u64>().ok().filter(|n| *n != 0) else {
            // A row this module wrote from Discord's answer; unreadable, it cannot be edited.
            return Err(Edit::Gone);
        };
        let body = EditMessage::new().embed(post.embed.clone());
        match self
            .rest
            .call(
                Route::ChannelMessage {
                    channel_id: channel,
                    message_id: MessageId::new(message_id),
                },
                LightMethod::Patch,
                Some(&body),
            )
            .await
        {
            Ok(_) => {
                self.edited.lock().unwrap().insert(mid.to_string(), now);
                Ok(())
            }
            Err(e) if e.not_found() && e.code() == Some(super::rest::UNKNOWN_MESSAGE) => {
                Err(Edit::Gone)
            }
            Err(e) => Err(Edit::Rest(e)),
        }
    }

    /// Whether `channel` is an announcement channel (`GET /channels/{id}`, once per channel).
    async fn is_announcement(&self, channel: ChannelId) -> Result<bool, RestError> {
        if let Some(known) = self.announcement.lock().unwrap().get(&channel) {
            return Ok(*known);
        }
        let v = self
            .rest
            .call(
                Route::Channel {
                    channel_id: channel,
                },
                LightMethod::Get,
                None::<&()>,
            )
            .await?;
        let known = v.get("type").and_then(serde_json::Value::as_u64) == Some(GUILD_ANNOUNCEMENT);
        self.announcement.lock().unwrap().insert(channel, known);
        Ok(known)
    }

    /// Publishes the post to the channel's followers. Best effort: the post is delivered
    /// already, and retrying the message would post it again. Discord allows about ten
    /// crossposts an hour per channel; past that (429) or on any other failure the post stays
    /// in the channel only, and the failure is logged for the people running Spotter.
    async fn crosspost(&self, channel: ChannelId, mid: &str) {
        let Some(message_id) = mid.parse::<u64>().ok().filter(|n| *n != 0) else {
            return;
        };
        if let Err(e) = self
            .rest
            .call(
                Route::ChannelMessageCrosspost {
                    channel_id: channel,
                    message_id: MessageId::new(message_id),
                },
                LightMethod::Post,
                None::<&()>,
            )
            .await
        {
            tracing::warn!(channel = %channel, message = %mid, error = %e, "the status announcement was posted but not published to the channel's followers");
        }
    }
}

/// Why an edit did not happen.
enum Edit {
    /// The post was edited less than [`EDIT_INTERVAL`] ago; this much of it is left.
    Soon(Duration),
    /// The post no longer exists.
    Gone,
    Rest(RestError),
}

fn store_error(e: StoreError) -> DeliveryError {
    DeliveryError::Retry {
        reason: format!("store: {e}"),
        after: None,
    }
}

/// The incident's post: its public title, status, latest public update, impact, components
/// and a link to its page. Only fields of the public incident: nothing internal reaches it.
fn incident_post(config: &Config, p: &PublicIncident) -> Post {
    let resolved = p.status.is_resolved();
    let base = spotter_core::status::snapshot::page_url(config);
    let link = format!("{}/incidents/{}", base.trim_end_matches('/'), p.id);
    let title = if resolved {
        format!("Resolved: {}", p.name)
    } else {
        p.name.clone()
    };
    let latest = p.updates.first().map(|u| u.body.as_str()).unwrap_or("");
    let mut embed = CreateEmbed::new()
        .title(super::commands::truncate(&title, TITLE_MAX))
        .url(link.clone())
        .description(super::commands::truncate(
            &format!("{latest}\n\n{link}"),
            DESCRIPTION_MAX,
        ))
        .colour(if resolved {
            0x2ECC71
        } else {
            impact_colour(p.impact)
        })
        .field("Status", p.status.title(), true)
        .field("Impact", impact_title(p.impact), true);
    if let Some(names) = component_names(config, &p.components) {
        embed = embed.field("Affected", names, false);
    }
    if let Ok(t) = Timestamp::from_unix_timestamp(p.updated_at.timestamp()) {
        embed = embed.timestamp(t);
    }
    Post {
        subject: if resolved {
            format!("incident:{}:resolved", p.id)
        } else {
            format!("incident:{}", p.id)
        },
        embed,
    }
}

/// The maintenance's post: its public title, status, window and components.
fn maintenance_post(config: &Config, m: &PublicMaintenance) -> Post {
    let completed = m.status == MaintenanceStatus::Completed;
    let link = spotter_core::status::snapshot::page_url(config);
    let title = match m.status {
        MaintenanceStatus::Completed => format!("Maintenance completed: {}", m.name),
        _ => format!("Scheduled maintenance: {}", m.name),
    };
    let window = format!(
        "<t:{}:f> to <t:{}:f>",
        m.scheduled_for.timestamp(),
        m.scheduled_until.timestamp()
    );
    let mut embed = CreateEmbed::new()
        .title(super::commands::truncate(&title, TITLE_MAX))
        .url(link.clone())
        .description(format!("{window}\n\n{link}"))
        .colour(if completed { 0x2ECC71 } else { 0x3498DB })
        .field("Status", m.status.title(), true);
    if let Some(names) = component_names(config, &m.components) {
        embed = embed.field("Affected", names, false);
    }
    Post {
        subject: if completed {
            format!("maintenance:{}:completed", m.id)
        } else {
            format!("maintenance:{}", m.id)
        },
        embed,
    }
}

/// The components' public names, as the page lists them.
fn component_names(config: &Config, ids: &[spotter_core::domain::ComponentId]) -> Option<String> {
    let names: Vec<&str> = ids
        .iter()
        .map(|id| {
            config
                .component(id.as_str())
                .map(|c| c.name.as_str())
                .unwrap_or(id.as_str())
        })
        .collect();
    (!names.is_empty()).then(|| super::commands::truncate(&names.join(", "), 1024))
}

fn impact_title(i: Impact) -> &'static str {
    match i {
        Impact::None => "None",
        Impact::Minor => "Minor",
        Impact::Major => "Major",
        Impact::Critical => "Critical",
    }
}

fn impact_colour(i: Impact) -> u32 {
    match i {
        Impact::None => 0x95A5A6,
        Impact::Minor => 0xF1C40F,
        Impact::Major => 0xE67E22,
        Impact::Critical => 0xE74C3C,
    }
}
