//! Test support: the real application on port 0 with a fresh database, and one helper per
//! endpoint. Every test that takes a [`Backend`] runs on SQLite and on PostgreSQL.

#![allow(dead_code)]

pub mod binary;
pub mod crash;

use serde_json::{json, Value};
use spotter::startup::Application;
use spotter_core::clock::{Clock, ManualClock, SystemClock};
use spotter_core::config::Config;
use spotter_core::testkit::{self, PostgresTestDb};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub addr: String,
    pub token: String,
    /// The `alertmanager` source's credential, as generated into the data folder (`None` when
    /// the test's environment supplied it).
    pub alertmanager_token: Option<String>,
    pub client: reqwest::Client,
    pub dir: tempfile::TempDir,
    pub database_url: String,
    shutdown: CancellationToken,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    pg: Option<PostgresTestDb>,
    /// The running application's engine (its store and configuration).
    pub engine: std::sync::Arc<spotter_core::Engine>,
    /// The configuration it was built with, for replicas.
    pub config: Config,
    /// Person id → that person's own API token, created on first use.
    person_tokens: tokio::sync::Mutex<std::collections::HashMap<String, String>>,
    /// The secrets' environment it was built with, for a restart.
    env: std::collections::HashMap<String, String>,
}

/// The test's secrets as the broadcasts lane reads them at delivery (subscribers' secrets).
fn runtime_env(
    env: &std::collections::HashMap<String, String>,
) -> spotter_webhooks::outbound::broadcast::RuntimeEnv {
    let env = env.clone();
    std::sync::Arc::new(move |k: &str| env.get(k).cloned())
}

/// A database URL for `backend`, or `None` when PostgreSQL tests are skipped.
pub async fn database(
    backend: Backend,
    test: &str,
    dir: &std::path::Path,
) -> Option<(String, Option<PostgresTestDb>)> {
    match backend {
        Backend::Sqlite => Some((format!("sqlite://{}/spotter.db", dir.display()), None)),
        Backend::Postgres => {
            let server = testkit::postgres_url(test)?;
            let db = PostgresTestDb::create(&server)
                .await
                .expect("creating a PostgreSQL test database");
            Some((db.url().to_string(), Some(db)))
        }
    }
}

pub fn test_config(dir: &std::path::Path, database_url: &str) -> Config {
    let mut config = Config::builtin();
    config.server.listen = "127.0.0.1:0".into();
    config.server.data_dir = dir.join("data");
    config.database.url = database_url.into();
    // A variable nobody sets, so the token is generated into the temp data folder.
    config.api.token_env = "SPOTTER_TEST_UNSET_TOKEN".into();
    // The automatic emergency response adds runs (and their timeline entries) to every
    // declaration at its own pace; tests of other features would race it. tests/runbooks
    // turns it on where it is what is tested.
    config.runbooks.on_declare = None;
    config
}

/// A change a test makes to its configuration.
pub type Configure = Box<dyn FnOnce(&mut Config) + Send>;

/// How a test wants the application built.
#[derive(Default)]
pub struct Options {
    /// Changes to the test configuration.
    pub configure: Option<Configure>,
    /// The environment variables holding secrets, as the application should see them.
    pub env: std::collections::HashMap<String, String>,
    /// A clock the test moves by hand.
    pub clock: Option<std::sync::Arc<ManualClock>>,
}

impl TestApp {
    /// Starts the application; `None` when the backend is skipped.
    pub async fn spawn(backend: Backend, test: &str) -> Option<TestApp> {
        Self::spawn_with(backend, test, Options::default()).await
    }

    pub async fn spawn_with(backend: Backend, test: &str, options: Options) -> Option<TestApp> {
        let dir = tempfile::tempdir().unwrap();
        let (database_url, pg) = database(backend, test, dir.path()).await?;
        let mut config = test_config(dir.path(), &database_url);
        if let Some(f) = options.configure {
            f(&mut config);
        }
        let token_file = config.server.data_dir.join("api-token");
        let data_dir = config.server.data_dir.clone();
        let clock: std::sync::Arc<dyn Clock> = match options.clock {
            Some(c) => c,
            None => std::sync::Arc::new(SystemClock),
        };
        let env = options.env;
        // Generated source credentials are read from the data folder, not announced.
        let app = Application::build_announcing(
            config.clone(),
            clock,
            &|k| env.get(k).cloned(),
            &mut std::io::sink(),
        )
        .await
        .expect("the application builds")
        .with_runtime_env(runtime_env(&env));
        let engine = app.engine().clone();
        let addr = format!("http://{}", app.addr());
        let token = std::fs::read_to_string(&token_file).expect("the token was generated");
        let alertmanager_token =
            std::fs::read_to_string(data_dir.join("sources/alertmanager.secret")).ok();
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(app.run_until_stopped(shutdown.clone()));
        Some(TestApp {
            addr,
            token,
            alertmanager_token,
            client: reqwest::Client::new(),
            dir,
            database_url,
            shutdown,
            server: Some(server),
            pg,
            engine,
            config,
            person_tokens: Default::default(),
            env,
        })
    }

    /// Stops the server gracefully and starts a new process's worth of application on the same
    /// database, data folder and configuration: everything held in memory is gone.
    pub async fn restart(&mut self) {
        self.restart_after(std::time::Duration::ZERO).await;
    }

    /// [`TestApp::restart`], with the application down for `down` in between (work falls due
    /// meanwhile).
    pub async fn restart_after(&mut self, down: std::time::Duration) {
        self.shutdown.cancel();
        if let Some(s) = self.server.take() {
            s.await.unwrap().unwrap();
        }
        tokio::time::sleep(down).await;
        let env = self.env.clone();
        let app = Application::build_announcing(
            self.config.clone(),
            std::sync::Arc::new(SystemClock),
            &|k| env.get(k).cloned(),
            &mut std::io::sink(),
        )
        .await
        .expect("the application builds again")
        .with_runtime_env(runtime_env(&env));
        self.engine = app.engine().clone();
        self.addr = format!("http://{}", app.addr());
        self.shutdown = CancellationToken::new();
        self.server = Some(tokio::spawn(app.run_until_stopped(self.shutdown.clone())));
    }

    /// The bearer token a request naming `user` goes with: a configured person's own token
    /// (created on first use, as `spotter token create` does), else the shared token. So the
    /// suite speaks as each person the way a person's client does; the shared token's cap is
    /// tested on its own (tests/hostile).
    pub async fn token_for(&self, user: &str) -> String {
        if self.engine.config().person(user).is_none() {
            return self.token.clone();
        }
        let mut tokens = self.person_tokens.lock().await;
        if let Some(t) = tokens.get(user) {
            return t.clone();
        }
        let issued = spotter_webhooks::api_tokens::issue(
            self.engine.store().as_ref(),
            self.engine.config(),
            user,
            "test",
            spotter_core::clock::Clock::now(&SystemClock),
        )
        .await
        .expect("creating a person token");
        let t = issued.token.expose().to_string();
        tokens.insert(user.to_string(), t.clone());
        t
    }

    /// POSTs JSON with an explicit bearer token.
    pub async fn post_json_as(&self, token: &str, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.addr))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Another replica on the same database and data folder (same shared token), with
    /// `configure` applied to a copy of this one's configuration.
    pub async fn replica(&self, configure: impl FnOnce(&mut Config)) -> Replica {
        let mut config = self.config.clone();
        configure(&mut config);
        let env = self.env.clone();
        let app = Application::build_announcing(
            config,
            std::sync::Arc::new(SystemClock),
            &|k| env.get(k).cloned(),
            &mut std::io::sink(),
        )
        .await
        .expect("the replica builds")
        .with_runtime_env(runtime_env(&env));
        let addr = format!("http://{}", app.addr());
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(app.run_until_stopped(shutdown.clone()));
        Replica {
            addr,
            shutdown,
            server,
        }
    }

    /// Stops the server gracefully and drops the PostgreSQL database.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(s) = self.server.take() {
            s.await.unwrap().unwrap();
        }
        if let Some(pg) = self.pg.take() {
            pg.drop_db().await;
        }
    }

    pub async fn command(&self, user: &str, text: &str) -> Value {
        let res = self
            .post_json("/api/v1/commands", &json!({"text": text, "user": user}))
            .await;
        assert_eq!(res.status(), 200, "command {text:?}");
        res.json().await.unwrap()
    }

    /// Runs a command that must succeed; returns the response.
    pub async fn ok(&self, user: &str, text: &str) -> Value {
        let v = self.command(user, text).await;
        assert_eq!(v["ok"], true, "{text:?} was refused: {}", v["reply"]);
        v
    }

    /// Runs a command that must be refused; returns the reply.
    pub async fn refused(&self, user: &str, text: &str) -> String {
        let v = self.command(user, text).await;
        assert_eq!(v["ok"], false, "{text:?} was accepted: {}", v["reply"]);
        assert!(v["incident"].is_null());
        v["reply"].as_str().unwrap().to_string()
    }

    /// POSTs JSON with the token of the person the body names (see [`TestApp::token_for`]), or the
    /// shared token when it names nobody.
    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        let token = match body.get("user").and_then(Value::as_str) {
            Some(user) => self.token_for(user).await,
            None => self.token.clone(),
        };
        self.client
            .post(format!("{}{path}", self.addr))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.addr))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let res = self.get(path).await;
        assert_eq!(res.status(), 200, "GET {path}");
        res.json().await.unwrap()
    }

    pub async fn incidents(&self, state: &str) -> Vec<Value> {
        self.get_json(&format!("/api/v1/incidents?state={state}"))
            .await["incidents"]
            .as_array()
            .unwrap()
            .clone()
    }

    pub async fn incident(&self, reference: &str) -> Value {
        self.get_json(&format!("/api/v1/incidents/{reference}"))
            .await
    }

    /// POSTs raw bytes with extra headers (no API token: webhooks carry their own credentials).
    pub async fn post_raw(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        self.try_post_raw(path, headers, body).await.unwrap()
    }

    /// [`Self::post_raw`], with the client's error (a broken pipe, say) left to the test.
    pub async fn try_post_raw(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Result<reqwest::Response> {
        let mut req = self
            .client
            .post(format!("{}{path}", self.addr))
            .header("content-type", "application/json");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.body(body).send().await
    }

    /// POSTs to the default Alertmanager source with its generated bearer token.
    pub async fn post_alertmanager(&self, body: &str) -> reqwest::Response {
        let auth = self
            .alertmanager_token
            .as_ref()
            .map(|t| format!("Bearer {t}"))
            .unwrap_or_default();
        self.post_raw(
            "/webhooks/alertmanager",
            &[("authorization", &auth)],
            body.to_string(),
        )
        .await
    }

    pub async fn timeline_kinds(&self, reference: &str) -> Vec<String> {
        self.incident(reference).await["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap().to_string())
            .collect()
    }

    /// Polls `check` until it holds (background work: scheduler, dispatcher) or panics.
    pub async fn eventually<F, Fut>(&self, what: &str, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !check().await {
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for: {what}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    pub async fn metrics(&self) -> String {
        self.client
            .get(format!("{}/metrics", self.addr))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// A second application on a [`TestApp`]'s database.
pub struct Replica {
    pub addr: String,
    shutdown: CancellationToken,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Replica {
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.server.await.unwrap().unwrap();
    }
}

/// Writes one test per backend: `dual_test!(name, |app| async move { … })`.
#[macro_export]
macro_rules! dual_test {
    ($name:ident, options = $options:expr, |$app:ident| $body:expr) => {
        mod $name {
            use super::*;
            async fn run(backend: common::Backend) {
                let Some($app) =
                    common::TestApp::spawn_with(backend, stringify!($name), $options).await
                else {
                    return;
                };
                $body.await;
                $app.stop().await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                run(common::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                run(common::Backend::Postgres).await
            }
        }
    };
    ($name:ident, |$app:ident| $body:expr) => {
        dual_test!($name, options = common::Options::default(), |$app| $body);
    };
    // A test that changes its app (`app.restart()`).
    ($name:ident, mut |$app:ident| $body:expr) => {
        mod $name {
            use super::*;
            async fn run(backend: common::Backend) {
                let Some(mut $app) = common::TestApp::spawn(backend, stringify!($name)).await
                else {
                    return;
                };
                $body.await;
                $app.stop().await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                run(common::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                run(common::Backend::Postgres).await
            }
        }
    };
}
