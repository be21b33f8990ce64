//! `AppState`: everything a handler may touch, built once at start.

use std::sync::Arc;

use crate::activity::recorder::ActivityLog;
use crate::keys::Keys;
use crate::mail::Mailer;
use crate::ratelimit::Limits;
use crate::settings::Settings;
use crate::store::Store;

#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

pub struct Inner {
    pub settings: Settings,
    pub store: Store,
    pub keys: Keys,
    pub mailer: Mailer,
    pub limits: Limits,
    pub activity: ActivityLog,
    /// API-token callers resolved recently (`auth::cache`).
    pub principals: crate::auth::cache::PrincipalCache,
    /// The embedded data plane: `serve` binds it to the proxy address; the
    /// control plane applies configuration to it and serves its metrics.
    pub dataplane: dataplane::DataPlane,
    /// Every routing change goes through here: applied to `dataplane`
    /// before the API answers, and fanned out to remote nodes.
    pub publisher: crate::publish::Publisher,
    /// Remote data-plane nodes following `publisher`: open streams, acks.
    pub nodes: crate::nodes::registry::NodeRegistry,
    /// The container runtime; set once by `serve` (it needs root and the host tools),
    /// absent in unit tests and admin commands.
    runtime: std::sync::OnceLock<Arc<dyn runtime::Runtime>>,
    /// Serializes lifecycle changes per container (`containers::locks`).
    pub container_locks: crate::containers::locks::ContainerLocks,
    /// Serializes the recompiles of one container (`proxy::compile::recompile`), so
    /// a unit built from older records never replaces a newer one.
    pub compile_locks: crate::containers::locks::ContainerLocks,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.inner
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("data directory {0}: {1}")]
    DataDir(String, std::io::Error),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Keys(#[from] crate::keys::KeyError),
    #[error(transparent)]
    Mail(#[from] crate::mail::MailError),
}

impl AppState {
    /// Installs the container runtime; later calls are ignored.
    pub fn set_runtime(&self, rt: Arc<dyn runtime::Runtime>) {
        let _ = self.inner.runtime.set(rt);
    }

    /// The container runtime, or 503 when this process runs without one.
    pub fn runtime(&self) -> Result<Arc<dyn runtime::Runtime>, crate::error::ApiError> {
        self.inner
            .runtime
            .get()
            .cloned()
            .ok_or_else(|| crate::error::ApiError::Unavailable {
                code: "RUNTIME_UNAVAILABLE",
                message: "this server runs no container runtime".into(),
            })
    }

    /// Opens the store and keys under the data directory. Must run inside
    /// a tokio runtime (it starts the activity writer).
    pub fn open(settings: Settings) -> Result<AppState, StartError> {
        let dir = &settings.data_dir;
        std::fs::create_dir_all(dir)
            .map_err(|e| StartError::DataDir(dir.display().to_string(), e))?;
        let store = Store::open(&dir.join("db"))?;
        Self::with_store(settings, store)
    }

    pub fn with_store(settings: Settings, store: Store) -> Result<AppState, StartError> {
        let dir = &settings.data_dir;
        std::fs::create_dir_all(dir)
            .map_err(|e| StartError::DataDir(dir.display().to_string(), e))?;
        let keys = Keys::load_or_create(dir)?;
        let mailer = Mailer::new(
            settings.smtp_url.as_deref(),
            &settings.mail_from,
            dir.join("outbox"),
        )?;
        let limits = Limits::new(&settings.rate);
        let dataplane = dataplane::DataPlane::new(dataplane::Settings {
            node: settings.node_name.clone(),
            base_domain: settings.base_domain.clone(),
            owner_claim_key: Some(keys.public_key_hex()),
            module_dir: Some(crate::modules::module_dir(dir)),
            ..dataplane::Settings::default()
        });
        let activity = ActivityLog::start(store.clone());
        Ok(AppState {
            inner: Arc::new(Inner {
                settings,
                store,
                keys,
                mailer,
                limits,
                activity,
                principals: Default::default(),
                publisher: crate::publish::Publisher::new(dataplane.clone()),
                dataplane,
                nodes: crate::nodes::registry::NodeRegistry::new(),
                runtime: std::sync::OnceLock::new(),
                container_locks: Default::default(),
                compile_locks: Default::default(),
            }),
        })
    }
}
