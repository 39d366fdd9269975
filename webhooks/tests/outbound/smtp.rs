//! The email notifier against a tiny SMTP server written here: greeting, EHLO with a multi-line
//! answer, AUTH PLAIN, MAIL FROM, RCPT TO, DATA up to the lone dot, QUIT.

use super::*;
use spotter_core::outbox::{DeliveryError, Notifier};
use spotter_webhooks::outbound::{page_notifiers, EmailNotifier};
use std::sync::Mutex;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// One SMTP conversation as the server saw it.
#[derive(Debug, Clone, Default)]
struct Mail {
    /// `user\0password` of AUTH PLAIN, decoded.
    auth: Option<String>,
    from: String,
    to: Vec<String>,
    /// The message as sent between DATA and the lone dot (dot-stuffing undone).
    data: String,
}

/// Starts the server on 127.0.0.1: its port and the mails it accepted. A recipient containing
/// `refuse` is answered 550.
async fn smtp_server() -> (u16, Arc<Mutex<Vec<Mail>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mails = Arc::new(Mutex::new(Vec::new()));
    let store = mails.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let store = store.clone();
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read);
                let mut mail = Mail::default();
                write.write_all(b"220 test.local ESMTP\r\n").await.unwrap();
                let mut line = String::new();
                loop {
                    line.clear();
                    if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let upper = line.to_ascii_uppercase();
                    let reply: &[u8] = if upper.starts_with("EHLO") {
                        b"250-test.local hello\r\n250-8BITMIME\r\n250-AUTH PLAIN LOGIN\r\n250 SIZE 10485760\r\n"
                    } else if upper.starts_with("HELO") {
                        b"250 test.local\r\n"
                    } else if let Some(b64) = upper.strip_prefix("AUTH PLAIN ") {
                        use base64::Engine as _;
                        // Decoded from the original (not upper-cased) line.
                        let b64 = &line["AUTH PLAIN ".len()..][..b64.trim_end().len()];
                        let raw = base64::engine::general_purpose::STANDARD
                            .decode(b64)
                            .unwrap();
                        let text = String::from_utf8(raw).unwrap();
                        mail.auth = Some(text.trim_start_matches('\0').to_string());
                        b"235 2.7.0 accepted\r\n"
                    } else if upper.starts_with("MAIL FROM:") {
                        mail.from = line[10..].trim().to_string();
                        b"250 2.1.0 ok\r\n"
                    } else if upper.starts_with("RCPT TO:") {
                        let to = line[8..].trim().to_string();
                        if to.contains("refuse") {
                            b"550 5.1.1 no such mailbox here\r\n"
                        } else {
                            mail.to.push(to);
                            b"250 2.1.5 ok\r\n"
                        }
                    } else if upper.starts_with("DATA") {
                        write.write_all(b"354 go ahead\r\n").await.unwrap();
                        loop {
                            line.clear();
                            if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                                return;
                            }
                            if line == ".\r\n" {
                                break;
                            }
                            let l = line.strip_prefix('.').unwrap_or(&line);
                            mail.data.push_str(l);
                        }
                        store.lock().unwrap().push(std::mem::take(&mut mail));
                        b"250 2.0.0 queued\r\n"
                    } else if upper.starts_with("RSET") || upper.starts_with("NOOP") {
                        b"250 2.0.0 ok\r\n"
                    } else if upper.starts_with("QUIT") {
                        let _ = write.write_all(b"221 2.0.0 bye\r\n").await;
                        return;
                    } else {
                        b"502 5.5.2 unknown command\r\n"
                    };
                    write.write_all(reply).await.unwrap();
                }
            });
        }
    });
    (port, mails)
}

fn smtp_table(port: u16, password_env: Option<&str>) -> String {
    let auth = password_env
        .map(|v| format!("user = \"spotter\"\npassword_env = \"{v}\"\n"))
        .unwrap_or_default();
    format!(
        "[smtp]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\n{auth}from = \"Spotter <spotter@example.test>\"\n"
    )
}

fn email_person(id: &str, email: Option<&str>) -> String {
    let email = email
        .map(|e| format!("email = \"{e}\"\n"))
        .unwrap_or_default();
    format!("[[person]]\nid = \"{id}\"\nname = \"Pager Person\"\n{email}notify = [{{ kind = \"email\" }}]\n")
}

/// The message's headers and its decoded body (7bit, quoted-printable or base64).
fn split(data: &str) -> (String, String) {
    let (headers, body) = data
        .split_once("\r\n\r\n")
        .expect("headers, blank line, body");
    let encoding = headers
        .lines()
        .find_map(|l| l.strip_prefix("Content-Transfer-Encoding: "))
        .unwrap_or("7bit")
        .trim()
        .to_ascii_lowercase();
    let body = match encoding.as_str() {
        "quoted-printable" => {
            let joined = body.replace("=\r\n", "");
            let mut out = Vec::new();
            let b = joined.as_bytes();
            let mut i = 0;
            while i < b.len() {
                if b[i] == b'=' && i + 2 < b.len() {
                    out.push(u8::from_str_radix(&joined[i + 1..i + 3], 16).unwrap());
                    i += 3;
                } else {
                    out.push(b[i]);
                    i += 1;
                }
            }
            String::from_utf8(out).unwrap()
        }
        "base64" => {
            use base64::Engine as _;
            let compact: String = body.split_whitespace().collect();
            let raw = base64::engine::general_purpose::STANDARD
                .decode(compact)
                .unwrap();
            String::from_utf8(raw).unwrap()
        }
        _ => body.to_string(),
    };
    (headers.to_string(), body.replace("\r\n", "\n"))
}

#[tokio::test]
async fn an_email_page_reaches_the_smtp_server_with_subject_and_ack_link() {
    let (port, mails) = smtp_server().await;
    let cfg = config(&format!(
        "{}{}",
        email_person("pager-e", Some("pager@example.test")),
        smtp_table(port, Some("SMTP_PASSWORD"))
    ));
    let n = EmailNotifier::new(cfg, &env(&[("SMTP_PASSWORD", SMTP_PASSWORD)])).unwrap();
    secrets_absent(&format!("{n:?}"));
    let m = page(Channel::Email, "pager-e", 0, "Database down");
    n.deliver(&m).await.unwrap();

    let mails = mails.lock().unwrap().clone();
    assert_eq!(mails.len(), 1, "{mails:?}");
    let mail = &mails[0];
    assert_eq!(
        mail.auth.as_deref(),
        Some(format!("spotter\0{SMTP_PASSWORD}").as_str())
    );
    assert_eq!(mail.from, "<spotter@example.test>");
    assert_eq!(mail.to, vec!["<pager@example.test>".to_string()]);
    let (headers, body) = split(&mail.data);
    assert!(
        headers.contains("\r\nSubject: [PAGE] INC-7 level 3: Database down\r\n"),
        "{headers}"
    );
    assert!(headers.contains("pager@example.test"), "{headers}");
    assert!(
        headers.contains("From: Spotter <spotter@example.test>"),
        "{headers}"
    );
    assert!(body.contains(&m.text), "{body}");
    assert!(
        body.contains(&format!("Open this link to acknowledge: {ACK_URL}")),
        "{body}"
    );
    assert!(body.contains("confirmation page"), "{body}");
    assert!(
        body.contains("Incident: http://spotter.test/incidents/INC-7"),
        "{body}"
    );
}

#[tokio::test]
async fn an_email_subject_cannot_inject_a_header() {
    let (port, mails) = smtp_server().await;
    let cfg = config(&format!(
        "{}{}",
        email_person("pager-e", Some("pager@example.test")),
        smtp_table(port, None)
    ));
    let n = EmailNotifier::new(cfg, &env(&[])).unwrap();
    n.deliver(&page(
        Channel::Email,
        "pager-e",
        0,
        "Disk full\r\nBcc: evil@example.test",
    ))
    .await
    .unwrap();
    let mails = mails.lock().unwrap().clone();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].auth, None, "no credentials configured");
    assert_eq!(mails[0].to, vec!["<pager@example.test>".to_string()]);
    let (headers, _) = split(&mails[0].data);
    assert!(!headers.lines().any(|l| l.starts_with("Bcc:")), "{headers}");
    assert!(
        headers.contains("Subject: [PAGE] INC-7 level 3: Disk full  Bcc: evil@example.test"),
        "{headers}"
    );
}

#[tokio::test]
async fn an_email_the_server_refuses_fails_the_page() {
    let (port, mails) = smtp_server().await;
    let cfg = config(&format!(
        "{}{}",
        email_person("pager-e", Some("refuse@example.test")),
        smtp_table(port, None)
    ));
    let n = EmailNotifier::new(cfg, &env(&[])).unwrap();
    let err = n
        .deliver(&page(Channel::Email, "pager-e", 0, "x"))
        .await
        .unwrap_err();
    assert!(matches!(err, DeliveryError::Permanent(_)), "{err:?}");
    assert!(err.to_string().contains("550"), "{err}");
    assert!(mails.lock().unwrap().is_empty());
}

#[tokio::test]
async fn email_without_an_address_smtp_or_password_fails_permanently() {
    let (port, mails) = smtp_server().await;
    let people = format!(
        "{}{}",
        email_person("pager-e", Some("pager@example.test")),
        email_person("no-mail", None)
    );

    let with_smtp = config(&format!(
        "{people}{}",
        smtp_table(port, Some("SMTP_PASSWORD"))
    ));
    let unset = EmailNotifier::new(with_smtp.clone(), &env(&[])).unwrap();
    let err = unset
        .deliver(&page(Channel::Email, "pager-e", 0, "x"))
        .await
        .unwrap_err();
    assert!(matches!(err, DeliveryError::Permanent(_)), "{err:?}");
    assert!(err.to_string().contains("SMTP_PASSWORD"), "{err}");

    let set = EmailNotifier::new(with_smtp, &env(&[("SMTP_PASSWORD", SMTP_PASSWORD)])).unwrap();
    let err = set
        .deliver(&page(Channel::Email, "no-mail", 0, "x"))
        .await
        .unwrap_err();
    assert!(matches!(err, DeliveryError::Permanent(_)), "{err:?}");
    assert!(err.to_string().contains("no email address"), "{err}");
    secrets_absent(&err.to_string());

    let no_smtp = EmailNotifier::new(config(&people), &env(&[])).unwrap();
    let err = no_smtp
        .deliver(&page(Channel::Email, "pager-e", 0, "x"))
        .await
        .unwrap_err();
    assert!(matches!(err, DeliveryError::Permanent(_)), "{err:?}");
    assert!(err.to_string().contains("[smtp]"), "{err}");

    assert!(mails.lock().unwrap().is_empty());
}

#[tokio::test]
async fn page_notifiers_include_email_only_with_smtp() {
    let people = email_person("pager-e", Some("pager@example.test"));
    let channels = |cfg: Arc<spotter_core::config::Config>| {
        page_notifiers(&cfg, &env(&[]))
            .unwrap()
            .into_iter()
            .map(|(c, _)| c)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        channels(config(&people)),
        vec![Channel::Webhook, Channel::Ntfy]
    );
    assert_eq!(
        channels(config(&format!("{people}{}", smtp_table(2525, None)))),
        vec![Channel::Webhook, Channel::Ntfy, Channel::Email]
    );
}

#[tokio::test]
async fn an_smtp_server_that_never_greets_fails_after_the_notifier_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let cfg = config(&format!(
        "{}{}",
        email_person("pager-e", Some("pager@example.test")),
        smtp_table(port, None)
    ));
    let n = EmailNotifier::new(cfg, &env(&[])).unwrap();
    let started = std::time::Instant::now();
    let err = n
        .deliver(&page(Channel::Email, "pager-e", 0, "x"))
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(
        took >= std::time::Duration::from_millis(900) && took < std::time::Duration::from_secs(4),
        "{took:?}"
    );
    assert!(matches!(err, DeliveryError::Retry { .. }), "{err:?}");
}
