//! Who a Discord user is to Spotter: by snowflake, never by display name.

use spotter_core::config::Config;
use spotter_core::domain::{Actor, Role, RoleSet};

/// The actor for a Discord member: the configured person with that `discord_user_id`, else an
/// unconfigured member identified by snowflake (`discord:<id>`) with the Spotter roles their
/// Discord roles map to (`[[discord.roles]]`), at least viewer. Never a display name.
pub fn actor_for_member(config: &Config, user_id: &str, member_roles: &[String]) -> Actor {
    if let Some(p) = config
        .people
        .values()
        .find(|p| p.discord_user_id.as_deref() == Some(user_id))
    {
        return Actor {
            id: p.id.to_string(),
            person: Some(p.id.clone()),
            roles: p.roles.clone(),
            limited_to: None,
        };
    }
    let mapped = config
        .discord
        .iter()
        .flat_map(|d| d.role_map.iter())
        .filter(|(id, _)| member_roles.contains(id))
        .map(|(_, r)| *r);
    Actor {
        id: format!("discord:{user_id}"),
        person: None,
        roles: RoleSet::new(std::iter::once(Role::Viewer).chain(mapped)),
        limited_to: None,
    }
}
