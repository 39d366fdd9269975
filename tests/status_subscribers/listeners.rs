//! The far ends of broadcasts, started by the tests on 127.0.0.1: an SMTP server that keeps
//! every mail, and a webhook receiver that keeps every request and answers a chosen status.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// One mail as the server received it.
#[derive(Debug, Clone, Default)]
pub struct Mail {
    pub to: Vec<String>,
    /// Headers and body as sent between DATA and the lone dot.
    pub data: String,
}

impl Mail {
    /// A header's value (first occurrence, unfolded).
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next()?;
        let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
        unfolded.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
    pub fn body(&self) -> String {
        self.data
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.replace("=\r\n", "").replace("\r\n", "\n"))
            .unwrap_or_default()
    }
    /// The first link in the body that starts with `prefix`.
    pub fn link(&self, prefix: &str) -> Option<String> {
        let body = self.body();
        let at = body.find(prefix)?;
        Some(
            body[at..]
                .split(|c: char| c.is_whitespace())
                .next()
                .unwrap()
                .to_string(),
        )
    }
}

pub type Mails = Arc<Mutex<Vec<Mail>>>;

/// An SMTP server that accepts every mail: its port and the mails.
pub async fn smtp_server() -> (u16, Mails) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mails: Mails = Arc::new(Mutex::new(Vec::new()));
    let store = mails.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let store = store.clone();
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read);
                let mut mail = Mail::default();
                let _ = write.write_all(b"220 test.local ESMTP\r\n").await;
                let mut line = String::new();
                loop {
                    line.clear();
                    if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let upper = line.to_ascii_uppercase();
                    let reply: &[u8] = if upper.starts_with("EHLO") {
                        b"250-test.local hello\r\n250-8BITMIME\r\n250 SIZE 10485760\r\n"
                    } else if upper.starts_with("HELO") || upper.starts_with("MAIL FROM:") {
                        b"250 ok\r\n"
                    } else if upper.starts_with("RCPT TO:") {
                        mail.to
                            .push(line[8..].trim().trim_matches(['<', '>']).to_string());
                        b"250 ok\r\n"
                    } else if upper.starts_with("DATA") {
                        let _ = write.write_all(b"354 go ahead\r\n").await;
                        let mut data = String::new();
                        loop {
                            line.clear();
                            if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                                return;
                            }
                            if line == ".\r\n" {
                                break;
                            }
                            data.push_str(line.strip_prefix('.').unwrap_or(&line));
                        }
                        mail.data = data;
                        store.lock().unwrap().push(std::mem::take(&mut mail));
                        b"250 queued\r\n"
                    } else if upper.starts_with("QUIT") {
                        let _ = write.write_all(b"221 bye\r\n").await;
                        return;
                    } else {
                        b"250 ok\r\n"
                    };
                    if write.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, mails)
}

/// One request the webhook receiver got.
#[derive(Debug, Clone)]
pub struct Hook {
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Hook {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
    /// Whether `X-Spotter-Signature` is the HMAC of `timestamp "." body` under `secret`.
    pub fn verified(&self, secret: &str) -> bool {
        let ts = self.headers["x-spotter-timestamp"].to_str().unwrap();
        let sig = self.headers["x-spotter-signature"].to_str().unwrap();
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(ts.as_bytes());
        mac.update(b".");
        mac.update(&self.body);
        sig.strip_prefix("sha256=")
            .and_then(|h| hex::decode(h).ok())
            .is_some_and(|raw| mac.verify_slice(&raw).is_ok())
    }
}

#[derive(Clone)]
struct Receiver {
    hooks: Arc<Mutex<Vec<Hook>>>,
    status: StatusCode,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    r.hooks.lock().unwrap().push(Hook { headers, body });
    r.status
}

pub type Hooks = Arc<Mutex<Vec<Hook>>>;

/// A webhook receiver answering `status` to every POST: its URL and what it got.
pub async fn webhook_receiver(status: StatusCode) -> (String, Hooks) {
    let hooks: Hooks = Arc::new(Mutex::new(Vec::new()));
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(Receiver {
            hooks: hooks.clone(),
            status,
        });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, hooks)
}
