//! The status page in a real headless browser: Debian's `chromium`, driven through
//! `chromedriver` (started here on a free port) by fantoccini over WebDriver.
//!
//! Without chromium or chromedriver the test says it skipped; with `SPOTTER_TEST_STRICT=1` (CI)
//! that is a failure, so CI cannot pass without having run the browser.

use crate::fixtures::*;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// `name` on the PATH.
fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// Both programs, or `None` after saying why (a panic under strict mode).
fn browser_programs(test: &str) -> Option<(PathBuf, PathBuf)> {
    let chromium = which("chromium").or_else(|| which("chromium-browser"));
    let driver = which("chromedriver");
    match (chromium, driver) {
        (Some(c), Some(d)) => Some((c, d)),
        _ => {
            let why = "chromium and chromedriver are not both on the PATH (apt-get install chromium chromium-driver)";
            if std::env::var("SPOTTER_TEST_STRICT").as_deref() == Ok("1") {
                panic!(
                    "{test}: {why}, and SPOTTER_TEST_STRICT=1 forbids skipping the browser test"
                );
            }
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "SKIPPED (browser) {test}: {why}");
            None
        }
    }
}

/// chromedriver, killed when the test ends however it ends.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_driver(path: &PathBuf) -> (Driver, String) {
    let port = free_port();
    let child = Command::new(path)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver(child);
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return (driver, url);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not listen on port {port} within 10 s");
}

async fn session(driver: &str, chromium: &PathBuf, javascript: bool, dark: bool) -> Client {
    let mut args = vec![
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=390,844",
    ];
    if !javascript {
        args.push("--blink-settings=scriptEnabled=false");
    }
    if dark {
        // The system preference the page's `prefers-color-scheme: dark` rules follow.
        args.push("--force-dark-mode");
    }
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {"binary": chromium, "args": args},
        "goog:loggingPrefs": {"browser": "ALL"},
    });
    let Value::Object(caps) = caps else {
        unreachable!()
    };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(driver)
        .await
        .expect("a chromedriver session")
}

/// chromedriver's log endpoint: what the page wrote to the browser console.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }
    fn method_and_body(&self, _: &url::Url) -> (axum::http::Method, Option<String>) {
        (
            axum::http::Method::POST,
            Some(r#"{"type":"browser"}"#.into()),
        )
    }
}

async fn text(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} is on the page: {e}"))
        .text()
        .await
        .unwrap()
}

/// What must hold with JavaScript on or off: the state, the components and the active
/// incident, its `<script>` title as plain text.
async fn assert_page_renders(c: &Client, base: &str) {
    c.goto(&format!("{base}/status")).await.unwrap();
    assert_eq!(c.title().await.unwrap(), "Workout Tracker status");
    assert_eq!(text(c, ".banner").await, "Major Service Outage");
    assert_eq!(text(c, "#component-database .st").await, "Major Outage");
    assert_eq!(text(c, "#component-application .st").await, "Operational");
    assert_eq!(
        text(c, "#component-website .st").await,
        "Degraded Performance"
    );
    assert_eq!(
        text(c, "#component-database .uptime").await,
        "96.66% uptime"
    );
    let cells = c
        .find_all(Locator::Css("#component-database .bar span"))
        .await
        .unwrap();
    assert_eq!(cells.len(), 90);
    assert_eq!(
        cells[89].attr("title").await.unwrap().as_deref(),
        Some("1 Dec 2026: Major Outage")
    );
    // The active incident, title as text (the browser parsed no script element from it).
    assert_eq!(text(c, "#incident-pi_db h3").await, XSS);
    assert!(c.find_all(Locator::Css("script")).await.unwrap().is_empty());
    let updates = text(c, "#incident-pi_db").await;
    let newer = updates
        .find("The primary <b>disk</b> is full & read-only.")
        .expect("update shown as text");
    let older = updates
        .find("We are investigating problems with the database.")
        .unwrap();
    assert!(newer < older);
    // No alert is open.
    assert!(c.get_alert_text().await.is_err(), "no alert() fired");
    // The incident link leads to the incident's page.
    c.find(Locator::Css("#incident-pi_db h3 a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert!(c
        .current_url()
        .await
        .unwrap()
        .path()
        .ends_with("/status/incidents/pi_db"));
    assert_eq!(c.title().await.unwrap(), XSS);
    assert!(c.get_alert_text().await.is_err());
}

#[tokio::test]
async fn a_real_browser_renders_the_page_with_and_without_javascript() {
    let test = "a_real_browser_renders_the_page_with_and_without_javascript";
    let Some((chromium, driver_path)) = browser_programs(test) else {
        return;
    };

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (router, _board) = router_for(snapshot());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });

    let (_driver, driver) = start_driver(&driver_path).await;

    // JavaScript on: the page renders, the title stays text, no alert, a clean console.
    let c = session(&driver, &chromium, true, false).await;
    assert_page_renders(&c, &base).await;
    // Fluid on a phone (the window is 390 px wide): nothing wider than the viewport.
    c.goto(&format!("{base}/status")).await.unwrap();
    let fits = c
        .execute(
            "return document.documentElement.scrollWidth <= window.innerWidth",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(fits, Value::Bool(true), "no horizontal scrolling at 390 px");
    let bg = c
        .execute(
            "return getComputedStyle(document.body).backgroundColor",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(bg, "rgb(246, 247, 249)", "the light scheme");
    c.goto(&format!("{base}/status/history")).await.unwrap();
    assert_eq!(text(&c, "h2").await, "December 2026");
    let logs = c
        .issue_cmd(BrowserLog)
        .await
        .expect("chromedriver's browser log");
    let logs = logs.as_array().expect("a list of log entries").clone();
    let errors: Vec<&Value> = logs.iter().filter(|e| e["level"] == "SEVERE").collect();
    assert!(errors.is_empty(), "console errors: {errors:?}");
    // The console is really read: a page that logs an error shows up in it.
    c.goto("data:text/html,<script>console.error('probe-error')</script>")
        .await
        .unwrap();
    let probe = c.issue_cmd(BrowserLog).await.unwrap();
    assert!(
        probe.to_string().contains("probe-error"),
        "the browser log works: {probe}"
    );
    c.close().await.unwrap();

    // JavaScript off: the same page, the same content.
    let c = session(&driver, &chromium, false, false).await;
    // Scripts are really off: `<noscript>` content is parsed as elements only then.
    c.goto("data:text/html,<noscript><p id=off>scripts off</p></noscript>")
        .await
        .unwrap();
    assert_eq!(
        text(&c, "#off").await,
        "scripts off",
        "the session runs without JavaScript"
    );
    assert_page_renders(&c, &base).await;
    c.close().await.unwrap();

    // A browser that prefers dark: the dark scheme.
    let c = session(&driver, &chromium, true, true).await;
    c.goto(&format!("{base}/status")).await.unwrap();
    let dark = c
        .execute(
            "return matchMedia('(prefers-color-scheme: dark)').matches",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        dark,
        Value::Bool(true),
        "--force-dark-mode makes the browser prefer dark"
    );
    let bg = c
        .execute(
            "return getComputedStyle(document.body).backgroundColor",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(bg, "rgb(17, 21, 28)", "the dark scheme");
    assert_eq!(text(&c, ".banner").await, "Major Service Outage");
    c.close().await.unwrap();
}
