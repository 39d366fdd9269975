//! The alert sources' credentials: from the environment variable the configuration names, else
//! from `<data_dir>/sources/<id>.secret`, else generated into that file on first start (mode
//! 0600, through [`crate::secret_file`]). So every source has a credential and intake fails
//! closed, yet `spotter serve` on the default configuration starts with no environment at all.
//!
//! A generated credential is printed once, to standard output (not the log), with what to paste
//! into the sender. Later starts log only where each credential came from, never its value.

use crate::secret_file::{self, Origin};
use spotter_core::config::{Config, SourceConfig, SourceKind};
use spotter_core::Secret;
use spotter_webhooks::intake::auth::{Check, GENERIC_TIMESTAMP_HEADER};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where source `id`'s credential is kept when no environment variable supplies it.
pub fn secret_path(config: &Config, id: &str) -> PathBuf {
    config
        .server
        .data_dir
        .join("sources")
        .join(format!("{id}.secret"))
}

/// A new secret of the kind `check` needs. PagerDuty routing keys are 32 characters, like
/// PagerDuty's own; the rest are 256 bits.
fn generate(check: &Check) -> String {
    match check {
        Check::RoutingKey => spotter_core::random_token(16),
        _ => spotter_core::random_token(32),
    }
}

/// Every source's secret by id, generating the missing ones. `announce` receives the one-time
/// notice of each generated credential.
///
/// # Errors
/// A credential file that cannot be read or created (the message names it).
pub fn resolve(
    config: &Config,
    env: &dyn Fn(&str) -> Option<String>,
    announce: &mut dyn Write,
) -> anyhow::Result<HashMap<String, Secret>> {
    let mut secrets = HashMap::new();
    for s in &config.sources {
        let check = Check::for_source(s);
        let var = Check::env_var(s);
        let (secret, origin) = match var.and_then(|v| secret_file::from_env(env, v)) {
            Some(secret) => (secret, Origin::Env(var.unwrap_or_default().to_string())),
            None => {
                let path = secret_path(config, &s.id);
                secret_file::load_or_create(&path, || generate(&check))?
            }
        };
        let unset = match (&origin, var) {
            (Origin::Env(_), _) | (_, None) => String::new(),
            (_, Some(v)) => format!("${v} is not set; "),
        };
        tracing::info!(
            "alert source `{}` ({}): {unset}{} {origin}",
            s.id,
            s.kind.as_str(),
            check.noun()
        );
        if let Origin::Generated(path) = &origin {
            let text = notice(config, s, &check, &secret, path, var);
            // Best effort: a closed stdout must not stop the server.
            let _ = announce
                .write_all(text.as_bytes())
                .and_then(|_| announce.flush());
        }
        secrets.insert(s.id.clone(), secret);
    }
    Ok(secrets)
}

/// The URL a sender posts to for source `s`.
pub fn endpoint(config: &Config, s: &SourceConfig) -> String {
    let base = config.server.public_url.trim_end_matches('/');
    let first_of_kind = config
        .sources
        .iter()
        .find(|o| o.kind == s.kind)
        .is_some_and(|o| o.id == s.id);
    match s.kind {
        SourceKind::Pagerduty => format!("{base}/v2/enqueue"),
        SourceKind::Generic => format!("{base}/webhooks/generic/{}", s.id),
        kind if first_of_kind => format!("{base}/webhooks/{}", kind.as_str()),
        kind => format!("{base}/webhooks/{}/{}", kind.as_str(), s.id),
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The one-time notice for a generated credential: the value, the file, what to paste.
fn notice(
    config: &Config,
    s: &SourceConfig,
    check: &Check,
    secret: &Secret,
    path: &Path,
    var: Option<&str>,
) -> String {
    let file = absolute(path);
    let file = file.display();
    let url = endpoint(config, s);
    let value = secret.expose();
    let noun = check.noun();
    let mut out = format!(
        "\n── New credential for alert source `{id}` ({kind}) ──\n\
         Spotter generated a {noun} and keeps it in {file} (mode 0600).\n\
         It is shown this once; later starts only say where it was read from.{own}\n\n    \
         {noun}: {value}\n\n",
        id = s.id,
        kind = s.kind.as_str(),
        own = var
            .map(|v| format!("\nTo use your own instead, set ${v} (it wins over the file)."))
            .unwrap_or_default(),
    );
    let how = match (s.kind, check) {
        (SourceKind::Alertmanager, Check::Basic { user }) => format!(
            "In alertmanager.yml (password_file reads it straight from that file):\n\n\
             receivers:\n  - name: spotter\n    webhook_configs:\n      - url: {url}\n        \
             send_resolved: true\n        http_config:\n          basic_auth:\n            \
             username: {user}\n            password_file: {file}\n"
        ),
        (SourceKind::Alertmanager, _) => format!(
            "In alertmanager.yml (credentials_file reads it straight from that file):\n\n\
             receivers:\n  - name: spotter\n    webhook_configs:\n      - url: {url}\n        \
             send_resolved: true\n        http_config:\n          authorization:\n            \
             type: Bearer\n            credentials_file: {file}\n"
        ),
        (SourceKind::Grafana, Check::Hmac {
            timestamp_header, ..
        }) => format!(
            "In Grafana: Alerting → Contact points → Webhook, URL {url}; under HMAC signature, \
             the secret above, header X-Grafana-Alerting-Signature{ts}.\n",
            ts = timestamp_header
                .as_deref()
                .map(|t| format!(", timestamp header {t}"))
                .unwrap_or_default()
        ),
        (SourceKind::Grafana, _) => format!(
            "In Grafana: Alerting → Contact points → Webhook, URL {url}; under Optional settings, \
             Authorization header scheme Bearer with the token above as credentials.\n"
        ),
        (SourceKind::Pagerduty, _) => format!(
            "Point any PagerDuty Events v2 sender at {url} with \"routing_key\": \"<the key \
             above>\".\n"
        ),
        (SourceKind::Generic, Check::Hmac { .. }) => format!(
            "Sign each request as the README shows (X-Spotter-Signature, {GENERIC_TIMESTAMP_HEADER}) \
             and POST it to {url}:\n    SECRET=$(cat {file})\n"
        ),
        (SourceKind::Generic, _) => format!(
            "POST to {url} with Authorization: Bearer $(cat {file})\n"
        ),
    };
    out.push_str(&how);
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_sources_get_credentials_once_and_the_notice_shows_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::builtin();
        config.server.data_dir = dir.path().join("data");
        let no_env = |_: &str| None;
        let mut first = Vec::new();
        let secrets = resolve(&config, &no_env, &mut first).unwrap();
        let first = String::from_utf8(first).unwrap();
        assert_eq!(secrets.len(), config.sources.len());
        for s in &config.sources {
            let stored = std::fs::read_to_string(secret_path(&config, &s.id)).unwrap();
            assert_eq!(stored, secrets[&s.id].expose(), "{}", s.id);
            assert!(
                first.contains(&stored),
                "the notice shows {}'s value once",
                s.id
            );
        }
        assert!(first.contains("credentials_file: /"), "{first}");
        assert!(first.contains("type: Bearer"), "{first}");
        // The second start reads the same values and says nothing.
        let mut second = Vec::new();
        let again = resolve(&config, &no_env, &mut second).unwrap();
        assert!(second.is_empty());
        for (id, s) in &secrets {
            assert_eq!(again[id].expose(), s.expose());
        }
    }

    #[test]
    fn a_set_variable_wins_and_writes_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::builtin();
        config.server.data_dir = dir.path().join("data");
        let env = |v: &str| (v == "SPOTTER_ALERTMANAGER_TOKEN").then(|| "from-env".to_string());
        let mut out = Vec::new();
        let secrets = resolve(&config, &env, &mut out).unwrap();
        assert_eq!(secrets["alertmanager"].expose(), "from-env");
        assert!(!secret_path(&config, "alertmanager").exists());
        assert!(!String::from_utf8(out).unwrap().contains("from-env"));
    }
}
