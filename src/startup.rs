//! Building and running the application: connect and migrate the store, bind the listener, run
//! the HTTP server, the outbox dispatcher and the scheduler until one shutdown signal stops them
//! all.

use crate::token;
use anyhow::Context;
use spotter_core::clock::{Clock, SystemClock};
use spotter_core::config::{redact_url, Config};
use spotter_core::domain::Channel;
use spotter_core::metrics::Metrics;
use spotter_core::outbox::{Dispatcher, LogNotifier};
use spotter_core::publisher::StatusWorker;
use spotter_core::runbook::{Executor, Redactor, Runbooks};
use spotter_core::runs::RunWorker;
use spotter_core::scheduler::Scheduler;
use spotter_core::store::SqlStore;
use spotter_core::Engine;
use spotter_webhooks::runner::Runner;
use spotter_webhooks::AppState;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub struct Application {
    listener: TcpListener,
    /// `[status] listen`, when configured.
    public_listener: Option<TcpListener>,
    addr: SocketAddr,
    engine: Arc<Engine>,
    store: SqlStore,
    state: AppState,
    /// The Discord bot, when `[discord]` is configured.
    discord: Option<spotter_bot::discord::Discord>,
    /// Webhook, ntfy and email notifiers of the pages lane.
    page_notifiers: Vec<(Channel, Arc<dyn spotter_core::outbox::Notifier>)>,
    /// Runs runbook steps and probes (spotter_webhooks::runner).
    runner: Arc<dyn Executor>,
    /// Where the broadcasts lane reads subscribers' secrets, when it delivers (subscribers are
    /// added while Spotter runs): the process environment unless a test sets its own.
    runtime_env: spotter_webhooks::outbound::broadcast::RuntimeEnv,
    /// The `[smtp]` password as it was at start, for subscribers' mail.
    broadcast_email: Option<Arc<dyn spotter_core::outbox::Notifier>>,
}

impl Application {
    /// Connects and migrates the database, loads or creates the API token, and binds the listen
    /// address (port 0 picks a free port, which tests use).
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    pub async fn build_with_clock(
        config: Config,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Application> {
        Self::build_with(config, clock, &|var| std::env::var(var).ok()).await
    }

    /// Builds with an explicit clock and a lookup for the environment variables that hold
    /// secrets (tests pass their own, so nothing depends on the process environment). Generated
    /// source credentials are announced on standard output.
    pub async fn build_with(
        config: Config,
        clock: Arc<dyn Clock>,
        env: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> anyhow::Result<Application> {
        Self::build_announcing(config, clock, env, &mut std::io::stdout()).await
    }

    /// [`Application::build_with`], announcing generated source credentials to `announce`.
    pub async fn build_announcing(
        config: Config,
        clock: Arc<dyn Clock>,
        env: &(dyn Fn(&str) -> Option<String> + Sync),
        announce: &mut (dyn std::io::Write + Send),
    ) -> anyhow::Result<Application> {
        let audit_key = crate::audit_key::load(&config, true)?;
        // Acknowledgement links are signed with a key derived from the audit key: every replica
        // shares it, and it is not in the database.
        let link_key = audit_key.derive("ack links");
        let store = SqlStore::connect(&config.database.url, config.database.max_connections)
            .await?
            .with_audit_key(audit_key);
        store.migrate().await?;
        tracing::info!(database = %redact_url(&config.database.url), "database ready");
        let (api_token, origin) = token::load_or_create(&config)?;
        tracing::info!("API token {origin}");
        // Every alert source gets a credential (generated ones are shown once, on stdout).
        let secrets = crate::sources::resolve(&config, env, announce)?;
        let source_secrets: Vec<String> =
            secrets.values().map(|s| s.expose().to_string()).collect();
        let listener = TcpListener::bind(&config.server.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.server.listen))?;
        let addr = listener.local_addr()?;
        crate::server_url::write(&config.server.data_dir, addr);
        // `[status] listen`: the public surfaces alone, for the internet.
        let public_listener = match &config.status.listen {
            Some(a) => Some(
                TcpListener::bind(a)
                    .await
                    .with_context(|| format!("cannot listen on {a} ([status] listen)"))?,
            ),
            None => None,
        };
        let intake = spotter_webhooks::intake::Intake::new(&config, secrets);
        for id in intake.switched_off() {
            tracing::warn!("alert source `{id}` has no credential and refuses every request");
        }
        let guard = spotter_webhooks::limit::ClientGuard::from_config(&config);
        let metrics = Metrics::new().with_sources(config.sources.iter().map(|s| s.id.clone()));
        // Runbooks: `[runbooks] dir`, else the guide's, written out under the data folder.
        let runbooks = Runbooks::for_config(&config)?;
        tracing::info!("{} runbooks loaded", runbooks.len());
        // The configured secrets' values, and the alert sources' credentials (generated ones
        // included): none of them may appear in what a run prints.
        let redactor = Redactor::from_env(&config, env).with_secrets(&source_secrets);
        let runner: Arc<dyn Executor> = Arc::new(Runner::new(runner_env(&config, &runbooks, env)));
        let engine = Arc::new(
            Engine::new(
                Arc::new(store.clone()),
                Arc::new(config),
                clock,
                Arc::new(metrics),
            )
            .with_link_key(link_key)
            .with_runbooks(runbooks)
            .with_redactor(redactor)
            .with_executor(runner.clone()),
        );
        let discord = spotter_bot::discord::Discord::from_engine(&engine, env)?;
        let page_notifiers = page_notifiers(engine.config(), env)?;
        let broadcast_email: Option<Arc<dyn spotter_core::outbox::Notifier>> =
            match engine.config().smtp {
                Some(_) => Some(Arc::new(
                    spotter_webhooks::outbound::broadcast::BroadcastEmailNotifier::new(
                        engine.config(),
                        engine.status_board().clone(),
                        env,
                    )?,
                )),
                None => None,
            };
        let state = AppState {
            engine: engine.clone(),
            api_token,
            intake: Arc::new(intake),
            guard: Arc::new(guard),
        };
        Ok(Application {
            listener,
            public_listener,
            addr,
            engine,
            store,
            state,
            discord,
            page_notifiers,
            runner,
            runtime_env: Arc::new(|var| std::env::var(var).ok()),
            broadcast_email,
        })
    }

    /// Reads subscribers' secrets through `env` instead of the process environment (tests).
    pub fn with_runtime_env(
        mut self,
        env: spotter_webhooks::outbound::broadcast::RuntimeEnv,
    ) -> Self {
        self.runtime_env = env;
        self
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Serves until `shutdown` is cancelled: stops accepting, lets in-flight requests finish, then
    /// stops the dispatcher and scheduler (each finishing the item in hand) and closes the pool.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let engine = self.engine.clone();
        let config = engine.config().clone();
        let mut dispatcher = Dispatcher::new(
            engine.store().clone(),
            engine.clock().clone(),
            engine.metrics().clone(),
            config.outbox.clone(),
            engine.outbox_wakeup(),
        )
        .reporting_to(engine.clone())
        .with_notifier(Channel::Log, Arc::new(LogNotifier));
        if let Some(d) = &self.discord {
            dispatcher = dispatcher.with_notifier(Channel::Discord, d.notifier());
        }
        // The pages lane: its own dispatcher, so pages never wait behind chat traffic.
        let mut pager = Dispatcher::new(
            engine.store().clone(),
            engine.clock().clone(),
            engine.metrics().clone(),
            config.outbox.clone(),
            engine.page_wakeup(),
        )
        .pages(engine.clone());
        for (channel, notifier) in self.page_notifiers {
            pager = pager.with_notifier(channel, notifier);
        }
        if let Some(d) = &self.discord {
            pager = pager.with_notifier(Channel::Discord, d.notifier());
        }
        // The broadcasts lane: subscribers and the announcement channel, below everything else.
        let mut broadcaster = Dispatcher::new(
            engine.store().clone(),
            engine.clock().clone(),
            engine.metrics().clone(),
            config.outbox.clone(),
            engine.broadcast_wakeup(),
        )
        .broadcasts(engine.clone())
        .with_notifier(
            Channel::Webhook,
            Arc::new(
                spotter_webhooks::outbound::broadcast::BroadcastWebhookNotifier::new(
                    &config,
                    engine.status_board().clone(),
                    self.runtime_env.clone(),
                )?,
            ),
        );
        if let Some(n) = self.broadcast_email {
            broadcaster = broadcaster.with_notifier(Channel::Email, n);
        }
        if let Some(d) = &self.discord {
            broadcaster = broadcaster.with_notifier(Channel::Discord, d.notifier());
        }
        let background = CancellationToken::new();
        let dispatcher = tokio::spawn(dispatcher.run(background.clone()));
        let pager = tokio::spawn(pager.run(background.clone()));
        let broadcaster = tokio::spawn(broadcaster.run(background.clone()));
        let scheduler = tokio::spawn(Scheduler::new(engine.clone()).run(background.clone()));
        let runs =
            tokio::spawn(RunWorker::new(engine.clone(), self.runner).run(background.clone()));
        let status = tokio::spawn(StatusWorker::new(engine.clone()).run(background.clone()));

        tracing::info!("listening on http://{}", self.addr);
        // Discord: slash-command registration, the gateway in gateway mode (both stop on the
        // shutdown signal), and POST /discord/interactions in interactions mode.
        let discord = self.discord.as_ref().map(|d| d.start(shutdown.clone()));
        let extra = self
            .discord
            .as_ref()
            .map(|d| d.router())
            .unwrap_or_default();
        let public = self.public_listener.map(|l| {
            let app = spotter_webhooks::public_router(self.state.clone())
                .into_make_service_with_connect_info::<SocketAddr>();
            if let Ok(a) = l.local_addr() {
                tracing::info!("status page listening on http://{a}/status");
            }
            let stop = shutdown.clone();
            tokio::spawn(async move {
                if let Err(e) = axum::serve(l, app)
                    .with_graceful_shutdown(stop.cancelled_owned())
                    .await
                {
                    tracing::error!(error = %e, "the status page listener failed");
                }
            })
        });
        let app = spotter_webhooks::router_with(self.state, extra);
        // Peer addresses reach the handlers: the per-client limits are keyed by them.
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        let served = axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown.clone().cancelled_owned())
            .await;

        // The HTTP side has drained; now the background workers.
        background.cancel();
        let tasks = [
            ("dispatcher", Some(dispatcher)),
            ("pager", Some(pager)),
            ("broadcaster", Some(broadcaster)),
            ("scheduler", Some(scheduler)),
            ("runs", Some(runs)),
            ("status", Some(status)),
            ("public listener", public),
            ("discord", discord),
        ];
        for (name, task) in tasks.into_iter().filter_map(|(n, t)| Some((n, t?))) {
            if tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .is_err()
            {
                tracing::warn!("{name} did not stop within 10 s");
            }
        }
        self.store.close().await;
        tracing::info!("stopped");
        served.context("HTTP server failed")
    }
}

/// The webhook, ntfy and email notifiers (spotter_webhooks::outbound).
fn page_notifiers(
    config: &Arc<Config>,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
) -> anyhow::Result<Vec<(Channel, Arc<dyn spotter_core::outbox::Notifier>)>> {
    spotter_webhooks::outbound::page_notifiers(config, env)
}

/// What runbook steps may read of Spotter's environment: the variables the runbooks and probes
/// name (pass-through `env`, `hmac_secret_env`, `url_env`, `password_env`) and `HOME`, read
/// once at start-up. Steps see nothing else.
fn runner_env(
    config: &Config,
    runbooks: &Runbooks,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
) -> spotter_webhooks::runner::EnvLookup {
    use spotter_core::runbook::{ProbeRef, ProbeSpec, StepKind};
    let mut names: Vec<String> = vec!["HOME".into()];
    let probe_names = |p: &ProbeSpec, names: &mut Vec<String>| match p {
        ProbeSpec::Mysql { url_env, .. } | ProbeSpec::Postgres { url_env, .. } => {
            names.extend(url_env.clone())
        }
        ProbeSpec::Redis { password_env, .. } => names.extend(password_env.clone()),
        _ => {}
    };
    for p in &config.probes {
        probe_names(&p.spec, &mut names);
    }
    for rb in runbooks.iter() {
        for step in &rb.steps {
            match &step.kind {
                StepKind::Exec(e) => names.extend(e.env.iter().cloned()),
                StepKind::Http(h) => names.extend(h.hmac_secret_env.clone()),
                StepKind::Probe(ProbeRef::Inline(p)) => probe_names(p, &mut names),
                _ => {}
            }
        }
    }
    let values: std::collections::HashMap<String, String> = names
        .into_iter()
        .filter_map(|n| env(&n).map(|v| (n, v)))
        .collect();
    Arc::new(move |name: &str| values.get(name).cloned())
}

/// A token cancelled on Ctrl-C or SIGTERM.
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("installing the SIGTERM handler");
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutdown requested; finishing in-flight work");
        t.cancel();
    });
    token
}
