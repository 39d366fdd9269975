//! Outbound HTTP errors as they may be shown or logged.
//!
//! reqwest's `Display` names the request's URL, and some URLs are credentials: an interaction
//! webhook (`/webhooks/{application}/{token}/…`) carries the interaction token, valid 15 minutes.
//! Every reqwest error Spotter shows goes through [`describe`], which drops the URL (the caller
//! names the route or server it was talking to instead) and keeps the causes.

/// The error without its URL, with its causes: "error sending request: client error (Connect):
/// tcp connect error: Connection refused (os error 111)".
pub fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut out = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_refused_connection_is_described_without_its_url() {
        // A port nobody listens on: bind, read the port, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/api/v10/webhooks/1/secret-interaction-token");
        let e = reqwest::Client::new().get(&url).send().await.unwrap_err();
        assert!(e.to_string().contains("secret-interaction-token"), "{e}");
        let shown = describe(e);
        assert!(!shown.contains("secret-interaction-token"), "{shown}");
        assert!(!shown.contains(&port.to_string()), "{shown}");
        assert!(shown.to_lowercase().contains("connect"), "{shown}");
    }
}
