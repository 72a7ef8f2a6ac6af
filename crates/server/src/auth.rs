//! Bearer-token authentication and scopes.
//!
//! * The admin token comes from `KINSIGHT_TOKEN` (passed in by the CLI) and can do everything.
//! * The admin creates scoped tokens — `ingest` (ship events, create groups and streams, as
//!   Fluent Bit's `auto_create_group` needs) and `read` (list, read, query) — kept in
//!   `<data-dir>/tokens.json` as SHA-256 hashes (the secret is shown once, at creation).
//! * With no admin token the server only starts on a loopback address, and then every caller
//!   is admin ([`Auth::disabled`]).
//!
//! The CloudWatch API (issue #8) maps each access key to a [`Scope`] and uses
//! [`Scope::allows`] with the same [`Action`]s.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Admin,
    Ingest,
    Read,
}

impl Scope {
    pub fn allows(self, action: Action) -> bool {
        match self {
            Scope::Admin => true,
            Scope::Ingest => action == Action::Ingest,
            Scope::Read => action == Action::Read,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Admin => "admin",
            Scope::Ingest => "ingest",
            Scope::Read => "read",
        }
    }
}

/// Kinds of call, for scope checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Write events; create groups and streams.
    Ingest,
    /// List, read, query.
    Read,
    /// Delete, retention, tags, tokens, maintenance.
    Manage,
}

/// The authenticated caller, put in the request's extensions by [`authenticate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub scope: Scope,
    /// `admin` for the admin token, `anonymous` without auth, else the token's id.
    pub token_id: String,
}

/// A stored scoped token (never the secret itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenInfo {
    pub id: String,
    pub name: String,
    pub scope: Scope,
    pub created_ms: i64,
    /// Hex SHA-256 of the secret.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sha256: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct TokenFile {
    format: String,
    version: u32,
    tokens: Vec<TokenInfo>,
}

const TOKEN_FILE_FORMAT: &str = "kinsight-tokens";

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
}

/// Tokens and the admin secret.
#[derive(Debug)]
pub struct Auth {
    admin_sha256: Option<[u8; 32]>,
    path: Option<PathBuf>,
    /// Replicas: the tokens are the catalogue's `tokens` document, changed with optimistic
    /// concurrency and read again every second ([`Auth::refresh`]).
    shared: Option<kinsight_catalogue::Catalogue>,
    /// Replicas: the version of the tokens document `tokens` holds; an older read (a refresh
    /// that raced a change made here) is not taken.
    shared_version: std::sync::atomic::AtomicI64,
    /// By hex hash.
    tokens: RwLock<BTreeMap<String, TokenInfo>>,
    /// Tokens given by the environment (`KINSIGHT_INGEST_TOKEN`, `KINSIGHT_READ_TOKEN`): checked
    /// like stored ones, never written to the token file.
    fixed: RwLock<BTreeMap<String, TokenInfo>>,
}

fn sha256(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

/// Comparison whose time does not depend on where the inputs differ.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Auth {
    /// Authentication on, with scoped tokens persisted at `<data_dir>/tokens.json`.
    pub fn open(admin_token: &str, data_dir: &Path) -> Result<Self, AuthError> {
        let path = data_dir.join("tokens.json");
        let mut tokens = BTreeMap::new();
        match std::fs::read(&path) {
            Ok(bytes) => {
                let f: TokenFile = serde_json::from_slice(&bytes).map_err(|e| AuthError::File {
                    path: path.clone(),
                    reason: format!("not a token file: {e}"),
                })?;
                if f.format != TOKEN_FILE_FORMAT || f.version != 1 {
                    return Err(AuthError::File {
                        path,
                        reason: format!("unsupported format {} version {}", f.format, f.version),
                    });
                }
                for t in f.tokens {
                    tokens.insert(t.sha256.clone(), t);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(AuthError::File {
                    path,
                    reason: e.to_string(),
                });
            }
        }
        Ok(Auth {
            admin_sha256: Some(sha256(admin_token)),
            path: Some(path),
            shared: None,
            shared_version: Default::default(),
            tokens: RwLock::new(tokens),
            fixed: RwLock::new(BTreeMap::new()),
        })
    }

    /// Replicas: authentication on, with the scoped tokens every replica shares in the
    /// catalogue.
    pub async fn open_shared(
        admin_token: &str,
        catalogue: kinsight_catalogue::Catalogue,
    ) -> Result<Self, AuthError> {
        let auth = Auth {
            admin_sha256: Some(sha256(admin_token)),
            path: None,
            shared: Some(catalogue),
            shared_version: Default::default(),
            tokens: RwLock::new(BTreeMap::new()),
            fixed: RwLock::new(BTreeMap::new()),
        };
        auth.refresh().await.map_err(|e| AuthError::File {
            path: PathBuf::from("catalogue:tokens"),
            reason: e.message,
        })?;
        Ok(auth)
    }

    /// Replicas: reads the shared tokens again (a token made or revoked on another replica
    /// counts here from then on).
    pub async fn refresh(&self) -> Result<(), ApiError> {
        let Some(cat) = &self.shared else {
            return Ok(());
        };
        let (version, tokens) = load_shared(cat).await?;
        self.take_shared(version, tokens);
        Ok(())
    }

    /// Takes the shared tokens at `version` unless a newer version is held already.
    fn take_shared(&self, version: i64, tokens: BTreeMap<String, TokenInfo>) {
        use std::sync::atomic::Ordering;
        let mut held = self.tokens.write().unwrap_or_else(|p| p.into_inner());
        if version >= self.shared_version.load(Ordering::Acquire) {
            self.shared_version.store(version, Ordering::Release);
            *held = tokens;
        }
    }

    /// Replicas: applies `change` to the shared tokens (retrying when another replica
    /// changed them first) and takes the result as this replica's.
    async fn change_shared(
        &self,
        cat: &kinsight_catalogue::Catalogue,
        change: impl Fn(&mut BTreeMap<String, TokenInfo>) -> Result<(), ApiError>,
    ) -> Result<(), ApiError> {
        for _ in 0..50 {
            let (version, mut tokens) = load_shared(cat).await?;
            change(&mut tokens)?;
            let body = encode_tokens(&tokens)?;
            let done = cat
                .replace_document(TOKENS_DOCUMENT, version, &body)
                .await
                .map_err(|e| ApiError::new(ErrorCode::ServiceUnavailable, e.to_string()))?;
            if let Some(version) = done {
                self.take_shared(version, tokens);
                return Ok(());
            }
        }
        Err(ApiError::new(
            ErrorCode::ServiceUnavailable,
            "the shared tokens kept changing under this request; retry",
        ))
    }

    /// No authentication: every caller is admin (loopback only; the CLI enforces that).
    pub fn disabled() -> Self {
        Auth {
            admin_sha256: None,
            path: None,
            shared: None,
            shared_version: Default::default(),
            tokens: RwLock::new(BTreeMap::new()),
            fixed: RwLock::new(BTreeMap::new()),
        }
    }

    pub fn enabled(&self) -> bool {
        self.admin_sha256.is_some()
    }

    /// Who presents `token`, if anyone.
    pub fn check(&self, token: &str) -> Option<Caller> {
        let h = sha256(token);
        if let Some(admin) = &self.admin_sha256
            && ct_eq(admin, &h)
        {
            return Some(Caller {
                scope: Scope::Admin,
                token_id: "admin".into(),
            });
        }
        let key = hex::encode(h);
        let fixed = self.fixed.read().unwrap_or_else(|p| p.into_inner());
        let tokens = self.tokens.read().unwrap_or_else(|p| p.into_inner());
        fixed
            .get(&key)
            .or_else(|| tokens.get(&key))
            .map(|t| Caller {
                scope: t.scope,
                token_id: t.id.clone(),
            })
    }

    /// Accepts `secret` with `scope` (ingest or read) for this run only: the deployment's
    /// Secret hands agents an ingest token without a call to the admin API (deploy/kubernetes).
    pub fn add_fixed(&self, name: &str, scope: Scope, secret: &str) -> Result<(), ApiError> {
        if !self.enabled() {
            return Err(ApiError::bad_param(format!(
                "{name}: authentication is off (no KINSIGHT_TOKEN), so scoped tokens mean nothing"
            )));
        }
        if scope == Scope::Admin {
            return Err(ApiError::bad_param(format!(
                "{name}: only ingest or read tokens can be fixed"
            )));
        }
        if secret.len() < 16 {
            return Err(ApiError::bad_param(format!(
                "{name} must be at least 16 characters long"
            )));
        }
        let hash = hex::encode(sha256(secret));
        let info = TokenInfo {
            id: format!("env_{}", name.to_ascii_lowercase()),
            name: name.to_string(),
            scope,
            created_ms: 0,
            sha256: hash.clone(),
        };
        self.fixed
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(hash, info);
        Ok(())
    }

    /// Creates a scoped token; returns its info and the secret (shown only now).
    pub async fn create(
        &self,
        name: &str,
        scope: Scope,
        now_ms: i64,
    ) -> Result<(TokenInfo, String), ApiError> {
        if !self.enabled() {
            return Err(ApiError::bad_param(
                "authentication is off (no KINSIGHT_TOKEN): tokens cannot be created",
            ));
        }
        if scope == Scope::Admin {
            return Err(ApiError::bad_param(
                "scope must be \"ingest\" or \"read\"; the admin token comes from KINSIGHT_TOKEN",
            ));
        }
        if name.is_empty() || name.len() > 128 {
            return Err(ApiError::bad_param(
                "token name must be 1 to 128 characters",
            ));
        }
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        let mut id = [0u8; 6];
        rand::rng().fill_bytes(&mut id);
        let secret = format!("ks_{}_{}", scope.as_str(), hex::encode(secret));
        let info = TokenInfo {
            id: format!("tok_{}", hex::encode(id)),
            name: name.to_string(),
            scope,
            created_ms: now_ms,
            sha256: hex::encode(sha256(&secret)),
        };
        if let Some(cat) = &self.shared {
            self.change_shared(cat, |t| {
                t.insert(info.sha256.clone(), info.clone());
                Ok(())
            })
            .await?;
            return Ok((info, secret));
        }
        let mut tokens = self.tokens.write().unwrap_or_else(|p| p.into_inner());
        tokens.insert(info.sha256.clone(), info.clone());
        if let Err(e) = self.save(&tokens) {
            tokens.remove(&info.sha256);
            return Err(e);
        }
        Ok((info, secret))
    }

    /// Scoped tokens, without their hashes.
    pub fn list(&self) -> Vec<TokenInfo> {
        let tokens = self.tokens.read().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<TokenInfo> = tokens
            .values()
            .map(|t| TokenInfo {
                sha256: String::new(),
                ..t.clone()
            })
            .collect();
        out.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        out
    }

    /// Revokes a token by id.
    pub async fn revoke(&self, id: &str) -> Result<(), ApiError> {
        if let Some(cat) = &self.shared {
            return self
                .change_shared(cat, |t| {
                    let key = t
                        .iter()
                        .find(|(_, t)| t.id == id)
                        .map(|(k, _)| k.clone())
                        .ok_or_else(|| no_token(id))?;
                    t.remove(&key);
                    Ok(())
                })
                .await;
        }
        let mut tokens = self.tokens.write().unwrap_or_else(|p| p.into_inner());
        let key = tokens
            .iter()
            .find(|(_, t)| t.id == id)
            .map(|(k, _)| k.clone())
            .ok_or_else(|| no_token(id))?;
        let removed = tokens.remove(&key);
        if let Err(e) = self.save(&tokens) {
            if let Some(t) = removed {
                tokens.insert(key, t);
            }
            return Err(e);
        }
        Ok(())
    }

    /// Writes the token file: temp file, fsync, rename (versioned; `docs/formats/tokens.md`).
    fn save(&self, tokens: &BTreeMap<String, TokenInfo>) -> Result<(), ApiError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let bytes = encode_tokens(tokens)?;
        kinsight_store::storage::write_file_atomic(path, &bytes).map_err(ApiError::from)
    }
}

/// Name of the replicas' token document in the catalogue (the token file's JSON).
const TOKENS_DOCUMENT: &str = "tokens";

fn no_token(id: &str) -> ApiError {
    ApiError::new(
        ErrorCode::ResourceNotFound,
        format!("no token with id {id:?}"),
    )
}

fn encode_tokens(tokens: &BTreeMap<String, TokenInfo>) -> Result<Vec<u8>, ApiError> {
    let f = TokenFile {
        format: TOKEN_FILE_FORMAT.into(),
        version: 1,
        tokens: tokens.values().cloned().collect(),
    };
    serde_json::to_vec_pretty(&f)
        .map_err(|e| ApiError::new(ErrorCode::InternalError, e.to_string()))
}

/// The shared tokens and the document's version (0: none made yet).
async fn load_shared(
    cat: &kinsight_catalogue::Catalogue,
) -> Result<(i64, BTreeMap<String, TokenInfo>), ApiError> {
    let doc = cat
        .document(TOKENS_DOCUMENT)
        .await
        .map_err(|e| ApiError::new(ErrorCode::ServiceUnavailable, e.to_string()))?;
    let Some((version, body)) = doc else {
        return Ok((0, BTreeMap::new()));
    };
    let f: TokenFile = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            ErrorCode::InternalError,
            format!("the catalogue's token document is damaged: {e}"),
        )
    })?;
    Ok((
        version,
        f.tokens
            .into_iter()
            .map(|t| (t.sha256.clone(), t))
            .collect(),
    ))
}

/// Middleware: authenticates `Authorization: Bearer <token>` and stores the [`Caller`] in the
/// request's extensions; 401 without a valid token.
pub async fn authenticate(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let caller = if !state.auth.enabled() {
        Caller {
            scope: Scope::Admin,
            token_id: "anonymous".into(),
        }
    } else {
        let header = req
            .headers()
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::Unauthenticated,
                    "missing `Authorization: Bearer <token>` header",
                )
            })?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::Unauthenticated,
                    "the Authorization header must be `Bearer <token>`",
                )
            })?;
        state
            .auth
            .check(token)
            .ok_or_else(|| ApiError::new(ErrorCode::Unauthenticated, "invalid or revoked token"))?
    };
    req.extensions_mut().insert(caller);
    Ok(next.run(req).await)
}

/// A permission a handler requires; see [`Require`].
pub trait Permission: Send + Sync + 'static {
    const ACTION: Action;
    const WHAT: &'static str;
}

/// Permission to ingest (and create groups and streams).
pub struct CanIngest;
/// Permission to read.
pub struct CanRead;
/// Permission to manage (delete, retention, tags, tokens, maintenance).
pub struct CanManage;

impl Permission for CanIngest {
    const ACTION: Action = Action::Ingest;
    const WHAT: &'static str = "ingest";
}
impl Permission for CanRead {
    const ACTION: Action = Action::Read;
    const WHAT: &'static str = "read";
}
impl Permission for CanManage {
    const ACTION: Action = Action::Manage;
    const WHAT: &'static str = "manage (admin only)";
}

/// Extractor: the caller, checked for permission `P` (403 otherwise). Put it first in a
/// handler's arguments: `async fn h(_: Require<CanRead>, ...)`.
pub struct Require<P: Permission>(pub Caller, std::marker::PhantomData<P>);

impl<P: Permission, S: Send + Sync> FromRequestParts<S> for Require<P> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let caller = parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            // Only reachable if a route was mounted outside the authenticated router.
            ApiError::new(
                ErrorCode::InternalError,
                "route is not behind authentication",
            )
        })?;
        if !caller.scope.allows(P::ACTION) {
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                format!(
                    "token {:?} has scope {:?}, which may not {}",
                    caller.token_id,
                    caller.scope.as_str(),
                    P::WHAT
                ),
            ));
        }
        Ok(Require(caller, std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_allow_their_actions_only() {
        assert!(Scope::Admin.allows(Action::Manage));
        assert!(Scope::Ingest.allows(Action::Ingest));
        assert!(!Scope::Ingest.allows(Action::Read));
        assert!(Scope::Read.allows(Action::Read));
        assert!(!Scope::Read.allows(Action::Ingest));
        assert!(!Scope::Read.allows(Action::Manage));
    }

    #[tokio::test]
    async fn tokens_persist_as_hashes_and_can_be_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let auth = Auth::open("admin-secret", dir.path()).unwrap();
        assert_eq!(auth.check("admin-secret").unwrap().scope, Scope::Admin);
        assert!(auth.check("nope").is_none());
        let (info, secret) = auth.create("agents", Scope::Ingest, 1).await.unwrap();
        assert!(auth.create("x", Scope::Admin, 1).await.is_err());
        let file = std::fs::read_to_string(dir.path().join("tokens.json")).unwrap();
        assert!(!file.contains(&secret), "the secret is never stored");
        let again = Auth::open("admin-secret", dir.path()).unwrap();
        assert_eq!(again.check(&secret).unwrap().token_id, info.id);
        again.revoke(&info.id).await.unwrap();
        assert!(again.check(&secret).is_none());
        assert!(
            Auth::open("admin-secret", dir.path())
                .unwrap()
                .check(&secret)
                .is_none()
        );
    }
}
