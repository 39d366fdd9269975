//! How pages leave: contact methods (`notify = [...]` of a `[[person]]`), `[smtp]` for email,
//! and `[paging]` (acknowledgement expiry, ack links, notifier timeouts).

use super::*;
use serde::Deserialize;
use toml::Spanned;

type Report<'a> = &'a mut dyn FnMut(&std::ops::Range<usize>, String);

/// One way to reach a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContactMethod {
    /// A mention in the incident channel (allowed to ping exactly the paged people) and a DM.
    Discord,
    /// A JSON POST signed like generic intake (`X-Spotter-Signature`, `X-Spotter-Timestamp`).
    Webhook {
        url: String,
        /// The variable holding the HMAC secret.
        hmac_secret_env: String,
    },
    /// ntfy's publish API: the topic URL, and the variable holding an access token, if any.
    Ntfy {
        url: String,
        token_env: Option<String>,
    },
    /// The person's `email`, over `[smtp]`.
    Email,
}

impl ContactMethod {
    pub fn channel(&self) -> Channel {
        match self {
            ContactMethod::Discord => Channel::Discord,
            ContactMethod::Webhook { .. } => Channel::Webhook,
            ContactMethod::Ntfy { .. } => Channel::Ntfy,
            ContactMethod::Email => Channel::Email,
        }
    }
    pub fn kind(&self) -> &'static str {
        self.channel().as_str()
    }
}

/// `[smtp]`: the mail server that sends `email` pages.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub user: Option<String>,
    /// The variable holding the password.
    pub password_env: Option<String>,
    pub from: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (port 587); refused when the server cannot.
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption (a relay on localhost).
    None,
}

/// `[paging]`: acknowledgement expiry, ack links and notifier timeouts.
#[derive(Debug, Clone)]
pub struct PagingConfig {
    /// On levels at or above `ack_timeout_min_level`, an acknowledgement without activity for
    /// this long expires and the current tier is paged again.
    pub ack_timeout: Duration,
    pub ack_timeout_min_level: LevelId,
    /// How long the acknowledgement link in a page stays valid.
    pub ack_link_ttl: Duration,
    /// The longest one delivery of a page may take before it counts as failed.
    pub notifier_timeout: Duration,
}

impl Default for PagingConfig {
    fn default() -> Self {
        PagingConfig {
            ack_timeout: Duration::minutes(30),
            ack_timeout_min_level: LevelId(3),
            ack_link_ttl: Duration::hours(4),
            notifier_timeout: Duration::seconds(10),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMethod {
    kind: Spanned<String>,
    url: Option<Spanned<String>>,
    hmac_secret_env: Option<Spanned<String>>,
    token_env: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSmtp {
    host: Spanned<String>,
    port: Option<u16>,
    tls: Option<Spanned<String>>,
    user: Option<String>,
    password_env: Option<Spanned<String>>,
    from: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPaging {
    ack_timeout: Option<Spanned<String>>,
    ack_timeout_min_level: Option<u8>,
    ack_link_ttl: Option<Spanned<String>>,
    notifier_timeout: Option<Spanned<String>>,
}

pub(super) fn duration_of(sp: &Spanned<String>, err: Report<'_>) -> Option<Duration> {
    parse_duration(sp.get_ref())
        .map_err(|m| err(&sp.span(), m))
        .ok()
}

fn http_url(sp: &Spanned<String>, what: &str, err: Report<'_>) -> String {
    let s = sp.get_ref();
    if !(s.starts_with("http://") || s.starts_with("https://")) || s.len() < 10 {
        err(
            &sp.span(),
            format!("{what} `{s}` is not an http(s) URL: write it like https://host/path"),
        );
    }
    s.clone()
}

pub(super) fn parse_method(m: Spanned<RawMethod>, err: Report<'_>) -> Option<ContactMethod> {
    let span = m.span();
    let m = m.into_inner();
    let kind = m.kind.get_ref().as_str();
    let need_url = |err: Report<'_>| match &m.url {
        Some(u) => Some(http_url(u, "url", err)),
        None => {
            err(&span, format!("a `{kind}` contact method needs `url`"));
            None
        }
    };
    let refuse = |err: Report<'_>, key: &str, sp: std::ops::Range<usize>| {
        err(
            &sp,
            format!("`{key}` does not apply to a `{kind}` contact method"),
        )
    };
    match kind {
        "discord" | "email" => {
            if let Some(u) = &m.url {
                refuse(err, "url", u.span());
            }
            if let Some(h) = &m.hmac_secret_env {
                refuse(err, "hmac_secret_env", h.span());
            }
            if let Some(t) = &m.token_env {
                refuse(err, "token_env", t.span());
            }
            Some(if kind == "discord" {
                ContactMethod::Discord
            } else {
                ContactMethod::Email
            })
        }
        "webhook" => {
            if let Some(t) = &m.token_env {
                refuse(err, "token_env", t.span());
            }
            let url = need_url(err)?;
            let Some(secret) = &m.hmac_secret_env else {
                err(&span, "a `webhook` contact method needs `hmac_secret_env` (the variable holding its signing secret)".into());
                return None;
            };
            Some(ContactMethod::Webhook {
                url,
                hmac_secret_env: super::raw::env_var_name(secret, err),
            })
        }
        "ntfy" => {
            if let Some(h) = &m.hmac_secret_env {
                refuse(err, "hmac_secret_env", h.span());
            }
            let url = need_url(err)?;
            Some(ContactMethod::Ntfy {
                url,
                token_env: m
                    .token_env
                    .as_ref()
                    .map(|t| super::raw::env_var_name(t, err)),
            })
        }
        other => {
            err(
                &m.kind.span(),
                format!("unknown contact method kind `{other}`; accepted: discord, webhook, ntfy, email"),
            );
            None
        }
    }
}

/// `[smtp]`, checked.
pub(super) fn parse_smtp(raw: Option<RawSmtp>, err: Report<'_>) -> Option<SmtpConfig> {
    raw.map(|s| {
        let tls = match s.tls.as_ref().map(|t| t.get_ref().as_str()) {
            None | Some("starttls") => SmtpTls::Starttls,
            Some("tls") => SmtpTls::Tls,
            Some("none") => SmtpTls::None,
            Some(other) => {
                let t = s.tls.as_ref().expect("matched Some");
                err(
                    &t.span(),
                    format!("tls `{other}`; accepted: starttls, tls, none"),
                );
                SmtpTls::Starttls
            }
        };
        if !s.from.get_ref().contains('@') {
            err(
                &s.from.span(),
                format!(
                    "from `{}` is not an email address: write it like Spotter <spotter@example.com>",
                    s.from.get_ref()
                ),
            );
        }
        SmtpConfig {
            host: s.host.into_inner(),
            port: s.port.unwrap_or(match tls {
                SmtpTls::Tls => 465,
                SmtpTls::Starttls => 587,
                SmtpTls::None => 25,
            }),
            tls,
            user: s.user,
            password_env: s
                .password_env
                .as_ref()
                .map(|p| super::raw::env_var_name(p, err)),
            from: s.from.into_inner(),
        }
    })
}

/// `[paging]`, with the defaults for what it leaves out.
pub(super) fn parse_paging(raw: Option<RawPaging>, err: Report<'_>) -> PagingConfig {
    let mut paging = PagingConfig::default();
    if let Some(p) = raw {
        if let Some(d) = p.ack_timeout.as_ref().and_then(|d| duration_of(d, err)) {
            paging.ack_timeout = d;
        }
        if let Some(l) = p.ack_timeout_min_level {
            paging.ack_timeout_min_level = LevelId(l);
        }
        if let Some(d) = p.ack_link_ttl.as_ref().and_then(|d| duration_of(d, err)) {
            paging.ack_link_ttl = d;
        }
        if let Some(d) = p
            .notifier_timeout
            .as_ref()
            .and_then(|d| duration_of(d, err))
        {
            paging.notifier_timeout = d;
        }
    }
    paging
}
