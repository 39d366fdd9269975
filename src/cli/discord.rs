//! `spotter discord register`.

use spotter_core::config::Config;
use std::process::ExitCode;

pub async fn register(config: Config, dry_run: bool) -> anyhow::Result<ExitCode> {
    // Without [discord] there is nothing to register, and a dry run that printed a payload for
    // no guild would look like success.
    let Some(d) = &config.discord else {
        anyhow::bail!(
            "no [discord] section in the configuration: add one (see the Discord section of \
             `spotter config default`) and pass it with --config FILE"
        );
    };
    if dry_run {
        eprintln!(
            "PUT {}/api/v10/applications/{}/guilds/{}/commands",
            d.api_base_url, d.application_id, d.guild_id
        );
        let payload = spotter_bot::discord::registration_payload(&config);
        println!("{}", serde_json::to_string_pretty(&payload)?);
        return Ok(ExitCode::SUCCESS);
    }
    let guild = d.guild_id.clone();
    let n = spotter_bot::discord::register_once(std::sync::Arc::new(config)).await?;
    println!("registered {n} slash commands for guild {guild}");
    Ok(ExitCode::SUCCESS)
}
