//! Authentication: who is calling, and which tenants they may use.
//!
//! - [`AuthOptions`] picks the mode: `none` (the tenant header is trusted, as
//!   Mimir without a gateway) or `basic` (HTTP basic auth against a users
//!   file of argon2id password hashes).
//! - [`UsersFile`] is the YAML users file: per user a PHC password hash and
//!   the tenants it may `read` and `write` (`*` for all). [`Authenticator`]
//!   holds the parsed file and re-reads it when its contents change; a broken
//!   file keeps the previous users and logs an error.
//! - [`authenticate`] is the middleware in front of every tenant endpoint. It
//!   resolves one [`AuthContext`] per request (401 with `WWW-Authenticate`
//!   when credentials are missing or wrong) and makes it available to
//!   handlers, which pass it to [`crate::tenant::write_tenant`] /
//!   [`crate::tenant::read_tenant`]; those decide the tenant and answer 403
//!   when the user may not use it.
//!
//! Passwords are checked with argon2 (constant time). An unknown user name is
//! checked against a dummy hash, so it costs the same time as a known one.
//! A successful check is remembered as a keyed SHA-256 fingerprint of the
//! credentials (compared in constant time), so a sender pushing many requests
//! a second does not pay an argon2 verification per request.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::app::AppState;
use crate::tenant::TenancyOptions;

/// The realm sent in `WWW-Authenticate`.
pub const REALM: &str = "cairn";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// No credentials; the tenant comes from `X-Scope-OrgID` (or is the fixed
    /// tenant when multi-tenancy is off).
    #[default]
    None,
    /// HTTP basic auth against the users file.
    Basic,
}

#[derive(Clone, Debug)]
pub struct AuthOptions {
    pub mode: AuthMode,
    /// The users file; required in `basic` mode.
    pub users_file: Option<PathBuf>,
    /// In `basic` mode, a request without `X-Scope-OrgID` belongs to the
    /// tenant named like the user (Grafana Cloud / GEM behaviour).
    pub user_as_tenant: bool,
    /// How often the users file is checked for changes.
    pub reload_interval: Duration,
}

impl Default for AuthOptions {
    fn default() -> Self {
        AuthOptions {
            mode: AuthMode::None,
            users_file: None,
            user_as_tenant: false,
            reload_interval: Duration::from_secs(5),
        }
    }
}

/// Which use of a tenant a request makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Right {
    Read,
    Write,
}

impl std::fmt::Display for Right {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Right::Read => "read",
            Right::Write => "write",
        })
    }
}

/// The on-disk users file.
///
/// ```yaml
/// users:
///   team-a:
///     password_hash: "$argon2id$v=19$m=19456,t=2,p=1$..."
///     read: ["team-a", "shared"]
///     write: ["team-a"]
///   ops:
///     password_hash: "$argon2id$..."
///     read: ["*"]
///     admin: true
/// ```
///
/// `admin: true` grants the admin endpoints (series and tenant deletion,
/// usage reports, the tenants overview); tenant rights stay as listed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsersFile {
    #[serde(default)]
    pub users: BTreeMap<String, UserEntry>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserEntry {
    /// argon2 PHC string (`$argon2id$...`).
    pub password_hash: String,
    #[serde(default)]
    pub read: Vec<String>,
    #[serde(default)]
    pub write: Vec<String>,
    /// May call the admin endpoints.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub admin: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read users file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid users file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("auth.mode basic needs auth.users_file")]
    NoUsersFile,
    #[error("cannot hash password: {0}")]
    Hash(String),
}

impl UsersFile {
    pub fn parse(text: &str) -> Result<UsersFile, String> {
        if text.trim().is_empty() {
            return Ok(UsersFile::default());
        }
        serde_yaml::from_str(text).map_err(|e| e.to_string())
    }

    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self).expect("users file serializes")
    }

    /// Reads a users file; a file that does not exist is an empty one.
    pub fn load_or_empty(path: &Path) -> Result<UsersFile, AuthError> {
        match std::fs::read_to_string(path) {
            Ok(text) => UsersFile::parse(&text).map_err(|message| AuthError::Invalid {
                path: path.to_path_buf(),
                message,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(UsersFile::default()),
            Err(source) => Err(AuthError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Writes the file atomically (temporary file, then rename), mode 0600.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let tmp = path.with_extension("tmp");
        {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let mut file = options.open(&tmp)?;
            std::io::Write::write_all(&mut file, self.to_yaml().as_bytes())?;
            file.sync_all()?;
        }
        std::fs::rename(&tmp, path)
    }
}

/// An argon2id PHC string for `password`, with a random salt.
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

/// A set of tenant names, or every tenant (`*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TenantSet {
    All,
    Some(BTreeSet<String>),
}

impl TenantSet {
    fn from_list(list: &[String]) -> TenantSet {
        if list.iter().any(|t| t == "*") {
            return TenantSet::All;
        }
        TenantSet::Some(list.iter().map(|t| t.trim().to_string()).collect())
    }

    pub fn contains(&self, tenant: &str) -> bool {
        match self {
            TenantSet::All => true,
            TenantSet::Some(set) => set.contains(tenant),
        }
    }
}

/// An authenticated user and its rights.
#[derive(Debug)]
pub struct AuthUser {
    pub name: String,
    pub read: TenantSet,
    pub write: TenantSet,
    pub admin: bool,
}

impl AuthUser {
    pub fn may(&self, right: Right, tenant: &str) -> bool {
        match right {
            Right::Read => self.read.contains(tenant),
            Right::Write => self.write.contains(tenant),
        }
    }
}

/// Who a request comes from, resolved once per request by [`authenticate`].
#[derive(Clone, Debug)]
pub struct AuthContext {
    pub tenancy: Arc<TenancyOptions>,
    /// The basic-auth user; `None` in mode `none`.
    pub user: Option<Arc<AuthUser>>,
    pub user_as_tenant: bool,
    /// False only for the fail-closed context of a request that did not pass
    /// through [`authenticate`]: every tenant lookup then fails with 401.
    pub authenticated: bool,
}

tokio::task_local! {
    static CURRENT: AuthContext;
}

impl AuthContext {
    /// The context of the request being handled. Outside [`authenticate`]
    /// (a route added without the layer) this is a context that refuses every
    /// tenant, so a forgotten layer fails closed.
    pub fn current() -> AuthContext {
        CURRENT
            .try_with(|context| context.clone())
            .unwrap_or_else(|_| AuthContext::unauthenticated())
    }

    fn unauthenticated() -> AuthContext {
        AuthContext {
            tenancy: Arc::new(TenancyOptions::default()),
            user: None,
            user_as_tenant: false,
            authenticated: false,
        }
    }

    /// Whether this request may call the admin endpoints: in mode `none`
    /// every authenticated request may (the server is expected to listen on
    /// loopback or behind a proxy, as Prometheus's admin API with
    /// `--web.enable-admin-api`); in mode `basic` only users with
    /// `admin: true`.
    pub fn is_admin(&self) -> bool {
        self.authenticated && self.user.as_ref().is_none_or(|user| user.admin)
    }

    /// `Ok` for an admin, else the error every admin endpoint answers
    /// (403, `err-cairn-admin-required`; 401 outside the auth layer).
    pub fn require_admin(&self) -> Result<(), crate::error::ApiError> {
        if !self.authenticated {
            return Err(crate::error::ApiError {
                error_type: "unauthorized",
                message: "unauthorized: missing or wrong credentials (err-cairn-unauthorized)"
                    .into(),
            });
        }
        if self.is_admin() {
            return Ok(());
        }
        Err(crate::error::ApiError {
            error_type: "forbidden",
            message: "this endpoint needs an admin user (admin: true in the users file) (err-cairn-admin-required)".into(),
        })
    }

    /// A context for mode `none` (used by tests and tools).
    pub fn anonymous(tenancy: TenancyOptions) -> AuthContext {
        AuthContext {
            tenancy: Arc::new(tenancy),
            user: None,
            user_as_tenant: false,
            authenticated: true,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for AuthContext {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<AuthContext>()
            .cloned()
            .unwrap_or_else(AuthContext::unauthenticated))
    }
}

/// The users currently in force, with a cache of verified credentials.
struct Users {
    users: HashMap<String, (String, Arc<AuthUser>)>,
    /// user name → fingerprint of the last credentials that verified.
    verified: Mutex<HashMap<String, [u8; 32]>>,
}

impl Users {
    fn from_file(file: &UsersFile) -> Result<Users, String> {
        let mut users = HashMap::new();
        for (name, entry) in &file.users {
            PasswordHash::new(&entry.password_hash)
                .map_err(|e| format!("user {name:?}: password_hash is not a PHC string: {e}"))?;
            let user = AuthUser {
                name: name.clone(),
                read: TenantSet::from_list(&entry.read),
                write: TenantSet::from_list(&entry.write),
                admin: entry.admin,
            };
            users.insert(name.clone(), (entry.password_hash.clone(), Arc::new(user)));
        }
        Ok(Users {
            users,
            verified: Mutex::new(HashMap::new()),
        })
    }
}

/// Checks credentials against the users file, and keeps that file current.
pub struct Authenticator {
    options: AuthOptions,
    tenancy: Arc<TenancyOptions>,
    users: RwLock<Arc<Users>>,
    /// Contents of the users file last read (loaded or not).
    last_seen: Mutex<Option<Vec<u8>>>,
    /// Verified for unknown user names, so they cost an argon2 verification.
    dummy_hash: String,
    /// Random per-process key for the credential fingerprints.
    fingerprint_key: [u8; 32],
    /// Bounds concurrent argon2 verifications to the number of cores, so a
    /// flood of wrong passwords cannot take every blocking thread.
    verifications: tokio::sync::Semaphore,
}

impl Authenticator {
    /// Loads the users file (in `basic` mode); a missing or broken file is an
    /// error at start-up.
    pub fn new(options: AuthOptions, tenancy: TenancyOptions) -> Result<Authenticator, AuthError> {
        let mut fingerprint_key = [0u8; 32];
        OsRng.fill_bytes(&mut fingerprint_key);
        let mut dummy_hash = String::new();
        if options.mode == AuthMode::Basic {
            let mut dummy_password = [0u8; 16];
            OsRng.fill_bytes(&mut dummy_password);
            dummy_hash =
                hash_password(&base64::engine::general_purpose::STANDARD.encode(dummy_password))?;
        }
        let mut last_seen = None;
        let users = match options.mode {
            AuthMode::None => Users::from_file(&UsersFile::default()).expect("empty"),
            AuthMode::Basic => {
                let path = options.users_file.as_ref().ok_or(AuthError::NoUsersFile)?;
                let bytes = std::fs::read(path).map_err(|source| AuthError::Read {
                    path: path.clone(),
                    source,
                })?;
                let users = parse_users(&bytes).map_err(|message| AuthError::Invalid {
                    path: path.clone(),
                    message,
                })?;
                tracing::info!(path = %path.display(), users = users.users.len(), "users file loaded");
                last_seen = Some(bytes);
                users
            }
        };
        Ok(Authenticator {
            options,
            tenancy: Arc::new(tenancy),
            users: RwLock::new(Arc::new(users)),
            last_seen: Mutex::new(last_seen),
            dummy_hash,
            fingerprint_key,
            verifications: tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(4, |n| n.get()),
            ),
        })
    }

    pub fn mode(&self) -> AuthMode {
        self.options.mode
    }

    /// Re-reads the users file if its contents changed. A file that cannot be
    /// read or parsed keeps the users in force and logs an error once.
    pub fn reload_if_changed(&self) {
        let Some(path) = &self.options.users_file else {
            return;
        };
        if self.options.mode != AuthMode::Basic {
            return;
        }
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(error) => {
                let mut last = self.last_seen.lock();
                if last.is_some() {
                    tracing::error!(path = %path.display(), %error, "cannot read users file, keeping the previous users");
                    *last = None;
                }
                return;
            }
        };
        let mut last = self.last_seen.lock();
        if last.as_deref() == Some(bytes.as_slice()) {
            return;
        }
        match parse_users(&bytes) {
            Ok(users) => {
                tracing::info!(path = %path.display(), users = users.users.len(), "users file reloaded");
                *self.users.write() = Arc::new(users);
            }
            Err(error) => {
                tracing::error!(path = %path.display(), %error, "invalid users file, keeping the previous users");
            }
        }
        *last = Some(bytes);
    }

    /// Polls the users file until the returned task is aborted.
    pub(crate) fn spawn_reloader(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        if self.options.mode != AuthMode::Basic {
            return None;
        }
        let this = Arc::clone(self);
        Some(tokio::spawn(async move {
            let mut interval = tokio::time::interval(this.options.reload_interval);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                let reloader = Arc::clone(&this);
                let _ = tokio::task::spawn_blocking(move || reloader.reload_if_changed()).await;
            }
        }))
    }

    /// Resolves the request's [`AuthContext`], or the 401 to answer.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<AuthContext, Response> {
        let user = match self.options.mode {
            AuthMode::None => None,
            AuthMode::Basic => {
                let (name, password) = basic_credentials(headers).ok_or_else(unauthorized)?;
                Some(self.verify(name, password).await.ok_or_else(unauthorized)?)
            }
        };
        Ok(AuthContext {
            tenancy: Arc::clone(&self.tenancy),
            user,
            user_as_tenant: self.options.user_as_tenant,
            authenticated: true,
        })
    }

    async fn verify(&self, name: String, password: String) -> Option<Arc<AuthUser>> {
        let users = Arc::clone(&self.users.read());
        let fingerprint = self.fingerprint(&name, &password);
        let known = users.users.get(&name).cloned();
        if known.is_some() {
            if let Some(cached) = users.verified.lock().get(&name) {
                if bool::from(cached.ct_eq(&fingerprint)) {
                    return known.map(|(_, user)| user);
                }
            }
        }
        // Unknown users are verified against a dummy hash so that they take
        // as long as known ones.
        let hash = match &known {
            Some((hash, _)) => hash.clone(),
            None => self.dummy_hash.clone(),
        };
        let Ok(_permit) = self.verifications.acquire().await else {
            return None;
        };
        let matches = tokio::task::spawn_blocking(move || verify_password(&hash, &password))
            .await
            .unwrap_or(false);
        let (_, user) = known?;
        if !matches {
            return None;
        }
        users.verified.lock().insert(name, fingerprint);
        Some(user)
    }

    fn fingerprint(&self, name: &str, password: &str) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(self.fingerprint_key);
        hasher.update((name.len() as u64).to_le_bytes());
        hasher.update(name.as_bytes());
        hasher.update(password.as_bytes());
        hasher.finalize().into()
    }
}

fn parse_users(bytes: &[u8]) -> Result<Users, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())?;
    Users::from_file(&UsersFile::parse(text)?)
}

fn verify_password(phc: &str, password: &str) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &hash)
        .is_ok()
}

/// `Authorization: Basic base64(user:password)`.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (name, password) = text.split_once(':')?;
    Some((name.to_string(), password.to_string()))
}

/// 401 with the challenge, for missing or wrong credentials.
pub fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(
            header::WWW_AUTHENTICATE,
            format!("Basic realm=\"{REALM}\", charset=\"UTF-8\""),
        )],
        "unauthorized: missing or wrong credentials (err-cairn-unauthorized)",
    )
        .into_response()
}

/// Middleware in front of every tenant endpoint: resolves the
/// [`AuthContext`] once, or answers 401.
pub(crate) async fn authenticate(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let context = match state.auth.authenticate(request.headers()).await {
        Ok(context) => context,
        Err(response) => return response,
    };
    request.extensions_mut().insert(context.clone());
    CURRENT.scope(context, next.run(request)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn basic(name: &str, password: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{name}:{password}"));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {encoded}")).unwrap(),
        );
        headers
    }

    fn authenticator(dir: &Path) -> Authenticator {
        let path = dir.join("users.yaml");
        let mut file = UsersFile::default();
        file.users.insert(
            "alice".into(),
            UserEntry {
                password_hash: hash_password("secret").unwrap(),
                read: vec!["a".into(), "b".into()],
                write: vec!["a".into()],
                admin: false,
            },
        );
        file.save(&path).unwrap();
        Authenticator::new(
            AuthOptions {
                mode: AuthMode::Basic,
                users_file: Some(path),
                ..AuthOptions::default()
            },
            TenancyOptions::default(),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn right_password_passes_and_is_cached_wrong_or_unknown_fails() {
        let dir = tempfile::tempdir().unwrap();
        let auth = authenticator(dir.path());
        let context = auth.authenticate(&basic("alice", "secret")).await.unwrap();
        let user = context.user.unwrap();
        assert!(user.may(Right::Read, "b") && !user.may(Right::Write, "b"));
        // Second time from the fingerprint cache.
        assert!(auth.authenticate(&basic("alice", "secret")).await.is_ok());
        assert!(auth.authenticate(&basic("alice", "wrong")).await.is_err());
        assert!(auth
            .authenticate(&basic("mallory", "secret"))
            .await
            .is_err());
        assert!(auth.authenticate(&HeaderMap::new()).await.is_err());
    }

    #[tokio::test]
    async fn a_broken_file_keeps_the_previous_users() {
        let dir = tempfile::tempdir().unwrap();
        let auth = authenticator(dir.path());
        std::fs::write(dir.path().join("users.yaml"), "users: [not a map").unwrap();
        auth.reload_if_changed();
        assert!(auth.authenticate(&basic("alice", "secret")).await.is_ok());
        std::fs::write(dir.path().join("users.yaml"), "users: {}\n").unwrap();
        auth.reload_if_changed();
        assert!(auth.authenticate(&basic("alice", "secret")).await.is_err());
    }

    #[test]
    fn star_means_every_tenant() {
        let set = TenantSet::from_list(&["x".into(), "*".into()]);
        assert!(set.contains("anything"));
    }

    #[test]
    fn admin_endpoints_need_admin_true_under_basic_auth() {
        let anonymous = AuthContext::anonymous(TenancyOptions::default());
        assert!(anonymous.require_admin().is_ok());
        let user = |admin| AuthContext {
            user: Some(Arc::new(AuthUser {
                name: "u".into(),
                read: TenantSet::All,
                write: TenantSet::All,
                admin,
            })),
            ..AuthContext::anonymous(TenancyOptions::default())
        };
        assert!(user(true).require_admin().is_ok());
        assert_eq!(user(false).require_admin().unwrap_err().status(), 403);
        assert_eq!(
            AuthContext::unauthenticated()
                .require_admin()
                .unwrap_err()
                .status(),
            401
        );
    }
}
