//! Server start-up, shared state and shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use cairn_ingest::DecodeLimits;
use cairn_promql::{Engine, EngineOptions};
use cairn_tsdb::{TenantStore, TsdbOptions};
use tokio::net::TcpListener;

use crate::auth::{AuthOptions, Authenticator};
use crate::limits::{IngestionRateLimiter, Limits, Overrides, RuntimeConfigOptions};
use crate::metrics::Metrics;
use crate::query::scheduler::{QueryScheduler, SchedulerOptions};
use crate::router;
use crate::tenant::TenancyOptions;
use crate::tls::{TlsOptions, TlsReloader};

/// Everything the HTTP layer needs to know, resolved from the configuration.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    pub listen_address: SocketAddr,
    pub data_dir: PathBuf,
    pub tsdb: TsdbOptions,
    pub tenancy: TenancyOptions,
    pub auth: AuthOptions,
    /// HTTPS when set; plain HTTP otherwise.
    pub tls: Option<TlsOptions>,
    /// Largest compressed remote-write body accepted; larger is 413.
    pub max_write_body_bytes: usize,
    pub decode_limits: DecodeLimits,
    /// Every tenant's limits unless the runtime config overrides them.
    pub limits: Limits,
    /// The per-tenant overrides file and how often it is re-read.
    pub runtime_config: RuntimeConfigOptions,
    pub engine: EngineOptions,
    /// Query workers and per-tenant queues.
    pub scheduler: SchedulerOptions,
    pub usage: crate::usage::UsageOptions,
}

/// State shared by every handler.
pub(crate) struct AppState {
    pub options: ServerOptions,
    /// Set once WAL replay has finished; until then `/ready` is 503 and
    /// tenant endpoints answer 503.
    pub store: Arc<OnceLock<Arc<TenantStore>>>,
    pub engine: Engine,
    pub metrics: Metrics,
    pub auth: Arc<Authenticator>,
    /// Where every storage read waits for its turn and runs.
    pub scheduler: QueryScheduler,
    pub usage: crate::usage::Usage,
    /// Per-tenant limits in force (defaults plus runtime overrides).
    pub overrides: Arc<Overrides>,
    /// Per-tenant ingestion token buckets.
    pub ingestion_rate: IngestionRateLimiter,
}

impl AppState {
    /// The tenant store, or 503 while WAL replay is still running.
    pub fn open_store(&self) -> Result<Arc<TenantStore>, crate::error::ApiError> {
        self.store
            .get()
            .cloned()
            .ok_or_else(crate::error::ApiError::unavailable)
    }
}

/// A bound, running Cairn HTTP server.
pub struct Server {
    listener: TcpListener,
    state: Arc<AppState>,
    tls: Option<Arc<TlsReloader>>,
}

impl Server {
    /// Loads the users file and TLS files, and binds the listen address.
    /// Storage is opened by [`Server::run`].
    pub async fn bind(options: ServerOptions) -> Result<Server, ServeError> {
        let auth = Authenticator::new(options.auth.clone(), options.tenancy.clone())
            .map_err(ServeError::Auth)?;
        let tls = match &options.tls {
            Some(tls) => Some(Arc::new(
                TlsReloader::new(tls.clone()).map_err(ServeError::Tls)?,
            )),
            None => None,
        };
        let overrides = Arc::new(
            Overrides::new(options.limits.clone(), options.runtime_config.clone())
                .map_err(ServeError::RuntimeConfig)?,
        );
        let listener = TcpListener::bind(options.listen_address)
            .await
            .map_err(|source| ServeError::Bind {
                address: options.listen_address,
                source,
            })?;
        let usage = crate::usage::Usage::new(options.usage.clone());
        let attribution_limits = Arc::clone(&overrides);
        usage.set_attribution(Arc::new(move |tenant| {
            let limits = attribution_limits.for_tenant(tenant);
            crate::usage::attribution::AttributionSpec::new(
                limits.cost_attribution_label_names(),
                limits.max_cost_attribution_cardinality,
            )
        }));
        let store = Arc::new(OnceLock::new());
        let scheduler = QueryScheduler::new(&options.scheduler);
        let mut metrics = Metrics::new(Arc::clone(&store), options.data_dir.clone());
        metrics.register_collector(overrides.collector());
        scheduler.register_metrics(metrics.registry_mut());
        let state = Arc::new(AppState {
            engine: Engine::new(options.engine.clone()),
            metrics,
            scheduler,
            store,
            auth: Arc::new(auth),
            usage,
            overrides,
            ingestion_rate: IngestionRateLimiter::new(),
            options,
        });
        Ok(Server {
            listener,
            state,
            tls,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Replays storage in the background, serves until `shutdown` resolves,
    /// lets in-flight requests finish, then flushes every tenant's WAL. If
    /// storage cannot be opened the server stops and the error is returned.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let Server {
            listener,
            state,
            tls,
        } = self;
        let users_reloader = state.auth.spawn_reloader();
        let rate_ticker = crate::tenant_stats::spawn_rate_ticker(Arc::clone(&state.store));
        let reload_state = Arc::clone(&state);
        let overrides_reloader = state.overrides.spawn_reloader(move || {
            if let Some(store) = reload_state.store.get() {
                crate::limits::apply_retention_all(
                    store,
                    &reload_state.overrides,
                    reload_state.options.tsdb.retention,
                );
            }
        });
        let storage_failed = Arc::new(tokio::sync::Notify::new());
        let replay_state = Arc::clone(&state);
        let notify_failure = Arc::clone(&storage_failed);
        let replay = tokio::task::spawn_blocking(move || {
            let result = open_storage(&replay_state);
            if result.is_err() {
                notify_failure.notify_one();
            }
            result
        });

        let usage_recorder = tokio::spawn(crate::usage::recorder::run(Arc::clone(&state)));
        let app = router::build(Arc::clone(&state));
        let stop = async move {
            tokio::select! {
                _ = shutdown => tracing::info!("shutdown signal received, finishing in-flight requests"),
                _ = storage_failed.notified() => {}
            }
        };
        match tls {
            Some(tls) => crate::tls::serve(listener, app, tls, stop)
                .await
                .map_err(ServeError::Http)?,
            None => axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await
                .map_err(ServeError::Http)?,
        }
        for reloader in [users_reloader, overrides_reloader].into_iter().flatten() {
            reloader.abort();
        }
        rate_ticker.abort();
        usage_recorder.abort();

        replay
            .await
            .map_err(|e| ServeError::Task(e.to_string()))??;
        if let Some(store) = state.store.get() {
            let store = Arc::clone(store);
            let closing = Arc::clone(&state);
            tokio::task::spawn_blocking(move || {
                // The last usage record, so the report is exact up to here.
                crate::usage::recorder::final_record(&closing.usage, &store);
                store.close_all()
            })
            .await
            .map_err(|e| ServeError::Task(e.to_string()))?
            .map_err(ServeError::Storage)?;
        }
        tracing::info!("shut down cleanly");
        Ok(())
    }
}

/// Opens every tenant's database (replaying WALs) and marks the server ready.
fn open_storage(state: &AppState) -> Result<(), ServeError> {
    let started = std::time::Instant::now();
    let store = TenantStore::open(&state.options.data_dir, state.options.tsdb.clone())
        .map_err(ServeError::Storage)?;
    let tenants = store.tenants().len();
    crate::limits::apply_retention_all(&store, &state.overrides, state.options.tsdb.retention);
    // Before the first write is accepted, so counts continue from the record.
    crate::usage::recorder::restore(&state.usage, &store);
    let store = Arc::new(store);
    if state.store.set(store).is_err() {
        unreachable!("storage is opened once");
    }
    tracing::info!(
        tenants,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "storage opened, ready"
    );
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {address}")]
    Bind {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("authentication setup failed")]
    Auth(#[source] crate::auth::AuthError),
    #[error("runtime config (per-tenant overrides) setup failed")]
    RuntimeConfig(#[source] crate::limits::RuntimeConfigError),
    #[error("TLS setup failed")]
    Tls(#[source] crate::tls::TlsError),
    #[error("http server failed")]
    Http(#[source] std::io::Error),
    #[error("storage failed")]
    Storage(#[source] cairn_tsdb::TsdbError),
    #[error("background task failed: {0}")]
    Task(String),
}
