//! The `email` contact method: a plain-text mail to the person's `email`, over `[smtp]`.
//!
//! `tls = "starttls"` connects in the clear and refuses to go on unless the server upgrades
//! (so credentials never travel unencrypted); `tls = "tls"` speaks TLS from the first byte;
//! `tls = "none"` is for a relay on localhost. Each page opens its own connection: pages are
//! rare, and a pooled connection the server dropped would cost a failed page.

use super::{bounded, headline, missing_secret, one_line, resolve, what};
use async_trait::async_trait;
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use spotter_core::config::{Config, SmtpTls};
use spotter_core::domain::Channel;
use spotter_core::outbox::{DeliveryError, Notifier};
use spotter_core::store::{OutboxMessage, Page};
use std::sync::Arc;
use std::time::Duration;

/// Mails pages to `email` contact methods.
pub struct EmailNotifier {
    config: Arc<Config>,
    mailer: Mailer,
    timeout: Duration,
}

pub(super) enum Mailer {
    Ready {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        from: Mailbox,
    },
    /// Why no mail can go out (no `[smtp]`, a password variable that was not set): every
    /// delivery fails with this.
    Unusable(DeliveryError),
}

impl std::fmt::Debug for EmailNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the transport: its credentials hold the password.
        let state = match &self.mailer {
            Mailer::Ready { from, .. } => format!("ready, from {from}"),
            Mailer::Unusable(e) => format!("unusable: {e}"),
        };
        f.debug_struct("EmailNotifier")
            .field("mailer", &state)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl EmailNotifier {
    /// Builds the SMTP transport from `[smtp]`, with the password read through `env` once.
    /// Without `[smtp]`, or with its password variable unset, the notifier is built but every
    /// delivery fails (permanently, naming what is missing).
    ///
    /// # Errors
    /// When `[smtp] from` is not a mailbox, or the TLS settings cannot be built for `host`.
    pub fn new(config: Arc<Config>, env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let timeout = config
            .paging
            .notifier_timeout
            .to_std()
            .unwrap_or(Duration::from_secs(10));
        let mailer = build_mailer(&config, env, timeout)?;
        Ok(EmailNotifier {
            config,
            mailer,
            timeout,
        })
    }
}

/// The SMTP transport of `[smtp]`, with its password read through `env` once. Without `[smtp]`,
/// or with its password variable unset, every delivery through it fails (permanently, naming
/// what is missing).
///
/// # Errors
/// When `[smtp] from` is not a mailbox, or the TLS settings cannot be built for `host`.
pub(super) fn build_mailer(
    config: &Config,
    env: &dyn Fn(&str) -> Option<String>,
    timeout: Duration,
) -> anyhow::Result<Mailer> {
    Ok(match &config.smtp {
        None => Mailer::Unusable(DeliveryError::Permanent(
            "email needs an [smtp] section (host, port, tls, from)".into(),
        )),
        Some(smtp) => {
            let from: Mailbox = smtp.from.parse().map_err(|e| {
                anyhow::anyhow!(
                    "[smtp] from `{}` is not a mailbox ({e}): write it like Spotter <spotter@example.com>",
                    smtp.from
                )
            })?;
            let builder = match smtp.tls {
                SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(
                    &smtp.host,
                )
                .map_err(|e| anyhow::anyhow!("[smtp] host `{}`: {e} (STARTTLS)", smtp.host))?,
                SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&smtp.host)
                    .map_err(|e| anyhow::anyhow!("[smtp] host `{}`: {e} (TLS)", smtp.host))?,
                SmtpTls::None => {
                    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host)
                }
            }
            .port(smtp.port)
            .timeout(Some(timeout));
            let password = smtp
                .password_env
                .as_ref()
                .map(|var| (var, super::secret_from(env, var)));
            match (&smtp.user, password) {
                (_, Some((var, None))) => {
                    tracing::warn!(variable = %var, "[smtp] password_env is not set: email pages will fail over to the next method");
                    Mailer::Unusable(missing_secret("email ([smtp] password_env)", var))
                }
                (Some(user), Some((_, Some(password)))) => Mailer::Ready {
                    transport: builder
                        .credentials(Credentials::new(
                            user.clone(),
                            password.expose().to_string(),
                        ))
                        .build(),
                    from,
                },
                (Some(_), None) => Mailer::Unusable(DeliveryError::Permanent(
                    "email: [smtp] user is set without password_env (the variable holding the password)".into(),
                )),
                // A password without a user: log in as the sender's address.
                (None, Some((_, Some(password)))) => Mailer::Ready {
                    transport: builder
                        .credentials(Credentials::new(
                            from.email.to_string(),
                            password.expose().to_string(),
                        ))
                        .build(),
                    from,
                },
                (None, None) => Mailer::Ready {
                    transport: builder.build(),
                    from,
                },
            }
        }
    })
}

/// "[PAGE] INC-7 level 3: Database down", on one line.
pub fn subject(page: &Page) -> String {
    one_line(&match &page.incident {
        Some(i) => format!("[PAGE] {} level {}: {}", i.reference, i.level, i.title),
        None => format!("[PAGE] Spotter page for {}", page.person_name),
    })
}

/// The plain-text body: the page's text, the incident's link and the acknowledgement link.
pub fn body(m: &OutboxMessage, page: &Page) -> String {
    let mut out = m.text.trim_end().to_string();
    out.push_str("\n\n");
    if let Some(i) = &page.incident {
        out.push_str(&format!("{}: {}\n", headline(i), i.title));
        if !i.url.is_empty() {
            out.push_str(&format!("Incident: {}\n", i.url));
        }
    }
    if let Some(ack) = &m.ack_url {
        // The link opens a confirmation page whose button acknowledges, so a mail scanner that
        // fetches links acknowledges nothing.
        out.push_str(&format!(
            "\nOpen this link to acknowledge: {ack}\nIt opens a confirmation page; its button acknowledges (once).\n"
        ));
    }
    if let Some(t) = page.tier {
        out.push_str(&format!(
            "\n-- \nSpotter paged {} ({}, tier {}).\n",
            page.person_name,
            page.reason,
            t + 1
        ));
    } else {
        out.push_str(&format!(
            "\n-- \nSpotter paged {} ({}).\n",
            page.person_name, page.reason
        ));
    }
    out
}

/// A lettre error with its causes (a refusal quotes the server's reply).
pub(super) fn describe(e: &lettre::transport::smtp::Error) -> String {
    let mut out = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

#[async_trait]
impl Notifier for EmailNotifier {
    async fn deliver(&self, m: &OutboxMessage) -> Result<(), DeliveryError> {
        let r = resolve(&self.config, m, Channel::Email)?;
        let what = what(&r);
        let (transport, from) = match &self.mailer {
            Mailer::Ready { transport, from } => (transport, from),
            Mailer::Unusable(e) => return Err(e.clone()),
        };
        let Some(address) = &r.person.email else {
            return Err(DeliveryError::Permanent(format!(
                "{what}: person `{}` has no email address",
                r.person.id
            )));
        };
        let to = address
            .parse()
            .map(|a| Mailbox::new(Some(one_line(&r.person.name)), a))
            .map_err(|e| {
                DeliveryError::Permanent(format!(
                    "{what}: email `{address}` is not an address ({e})"
                ))
            })?;
        let message = Message::builder()
            .from(from.clone())
            .to(to)
            .subject(subject(r.page))
            // Generated on this host's name; mail without one is more likely taken for spam.
            .message_id(None)
            .header(ContentType::TEXT_PLAIN)
            .body(body(m, r.page))
            .map_err(|e| DeliveryError::Permanent(format!("{what}: cannot build the mail: {e}")))?;
        bounded(self.timeout, &what, async {
            transport.send(message).await.map(|_| ()).map_err(|e| {
                let reason = format!("{what}: {}", describe(&e));
                if e.is_permanent() {
                    DeliveryError::Permanent(reason)
                } else {
                    DeliveryError::Retry {
                        reason,
                        after: None,
                    }
                }
            })
        })
        .await
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }
}
