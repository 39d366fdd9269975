//! Where each incident lives on each chat platform, and the posts in announcement channels.

use super::ops::binds;
use super::rows::*;
use super::*;

impl SqlStore {
    pub(super) async fn chat_binding_sql(
        &self,
        platform: &str,
        incident: IncidentRef,
    ) -> Result<Option<ChatBinding>, StoreError> {
        let row: Option<(i64, String, String, Option<String>)> = sqlx::query_as(
            "SELECT incident, platform, channel_id, card_message_id FROM chat_bindings WHERE platform = $1 AND incident = $2",
        )
        .bind(platform)
        .bind(incident.number())
        .fetch_optional(&self.reader)
        .await
        .map_err(map_err)?;
        Ok(row.map(binding_from_row))
    }

    pub(super) async fn chat_binding_by_channel_sql(
        &self,
        platform: &str,
        channel_id: &str,
    ) -> Result<Option<ChatBinding>, StoreError> {
        let row: Option<(i64, String, String, Option<String>)> = sqlx::query_as(
            "SELECT incident, platform, channel_id, card_message_id FROM chat_bindings WHERE platform = $1 AND channel_id = $2",
        )
        .bind(platform)
        .bind(channel_id)
        .fetch_optional(&self.reader)
        .await
        .map_err(map_err)?;
        Ok(row.map(binding_from_row))
    }

    pub(super) async fn save_chat_binding_sql(&self, b: &ChatBinding) -> Result<(), StoreError> {
        self.write_statement(
            "INSERT INTO chat_bindings (incident, platform, channel_id, card_message_id) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (incident, platform) DO UPDATE SET channel_id = excluded.channel_id, \
             card_message_id = excluded.card_message_id",
            binds![
                b.incident.number(),
                b.platform.as_str(),
                b.channel_id.as_str(),
                b.card_message_id.clone()
            ],
        )
        .await?;
        Ok(())
    }

    pub(super) async fn announcement_post_sql(
        &self,
        platform: &str,
        channel_id: &str,
        subject: &str,
    ) -> Result<Option<AnnouncementPost>, StoreError> {
        let row: Option<(String, String, String, String, i64)> = sqlx::query_as(
            "SELECT platform, channel_id, subject, message_id, posted_at FROM announcement_posts \
             WHERE platform = $1 AND channel_id = $2 AND subject = $3",
        )
        .bind(platform)
        .bind(channel_id)
        .bind(subject)
        .fetch_optional(&self.reader)
        .await
        .map_err(map_err)?;
        row.map(|(platform, channel_id, subject, message_id, at)| {
            Ok(AnnouncementPost {
                platform,
                channel_id,
                subject,
                message_id,
                posted_at: from_ms(at)?,
            })
        })
        .transpose()
    }

    pub(super) async fn save_announcement_post_sql(
        &self,
        p: &AnnouncementPost,
    ) -> Result<(), StoreError> {
        self.write_statement(
            "INSERT INTO announcement_posts (platform, channel_id, subject, message_id, posted_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (platform, channel_id, subject) DO UPDATE SET \
             message_id = excluded.message_id, posted_at = excluded.posted_at",
            binds![
                p.platform.as_str(),
                p.channel_id.as_str(),
                p.subject.as_str(),
                p.message_id.as_str(),
                ms(p.posted_at)
            ],
        )
        .await?;
        Ok(())
    }
}
