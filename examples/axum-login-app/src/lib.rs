//! axum-login and axum-messages, unchanged, on our session layer: the tower-sessions session
//! they take is [`TowerSessionLayer`]'s, backed by ours, so a Redis outage keeps the user
//! logged in (axum-login's key is mirrored in the cookie).
//!
//! | route | does | answers |
//! | --- | --- | --- |
//! | `POST /login` (form `username`, `password`) | logs in (axum-login), adds the flash message `Welcome, ferris` (axum-messages) | 303 to `/`; 401 for bad credentials |
//! | `GET /` | axum-login's `login_required!` | 200 `{"user", "messages", "source"}` (each message shown once; `source`: `redis` or `cookie`); 401 when not logged in |
//! | `POST /logout` | logs out (axum-login) | 204 |
//!
//! The one user is `ferris`, password `hunter42`.

use std::sync::Arc;

use axum::extract::Form;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use axum_login::{AuthManager, AuthSession, AuthUser, AuthnBackend, UserId, login_required};
use axum_messages::{Messages, MessagesManagerLayer};
use example_common::users::{User, Users};
use resilient_session_axum::tower_sessions::{AXUM_LOGIN_KEY, TowerSessionLayer};
use resilient_session_axum::{Session, SessionConfig, SessionEngine, SessionLayer};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

/// The session configuration this app needs over the examples' common one: axum-login's key
/// mirrored in the cookie, so that a login survives a Redis outage.
pub fn session_config(config: SessionConfig) -> SessionConfig {
    config.mirrored_keys([AXUM_LOGIN_KEY])
}

/// The app's routes, behind axum-messages, axum-login's `AuthManager`, the tower-sessions bridge
/// and our session layer (outermost).
pub fn router(store: SessionEngine) -> Router {
    let backend = Backend::default();
    Router::new()
        .route("/", get(home))
        .route_layer(login_required!(Backend))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .layer(MessagesManagerLayer)
        .layer(tower_layer::layer_fn(move |inner| {
            AuthManager::new(inner, backend.clone(), AXUM_LOGIN_KEY)
        }))
        .layer(TowerSessionLayer::new())
        .layer(SessionLayer::new(store))
}

/// axum-login's user: ours, and what its sessions are keyed to (a changed password ends them).
#[derive(Debug, Clone)]
pub struct AuthenticatedUser {
    user: User,
    /// SHA-256 of the password hash: sessions (and their cookies) carry this, not the hash.
    auth_hash: [u8; 32],
}

impl From<User> for AuthenticatedUser {
    fn from(user: User) -> Self {
        let auth_hash = Sha256::digest(user.password_hash.as_bytes()).into();
        Self { user, auth_hash }
    }
}

impl AuthUser for AuthenticatedUser {
    type Id = u64;

    fn id(&self) -> u64 {
        self.user.id
    }

    fn session_auth_hash(&self) -> &[u8] {
        &self.auth_hash
    }
}

/// The login form.
#[derive(Debug, Clone, Deserialize)]
pub struct Credentials {
    /// The login name.
    pub username: String,
    /// The password, in clear (over TLS in production).
    pub password: String,
}

/// The password check could not run.
#[derive(Debug, thiserror::Error)]
#[error("the password check did not finish")]
pub struct BackendError(#[from] tokio::task::JoinError);

/// axum-login's backend over the in-memory users.
#[derive(Debug, Clone, Default)]
pub struct Backend {
    users: Arc<Users>,
}

impl AuthnBackend for Backend {
    type User = AuthenticatedUser;
    type Credentials = Credentials;
    type Error = BackendError;

    async fn authenticate(
        &self,
        credentials: Credentials,
    ) -> Result<Option<AuthenticatedUser>, BackendError> {
        let users = Arc::clone(&self.users);
        // Argon2 is slow on purpose: off the runtime's threads.
        let user = tokio::task::spawn_blocking(move || {
            users.check(&credentials.username, &credentials.password)
        })
        .await?;
        Ok(user.map(AuthenticatedUser::from))
    }

    async fn get_user(&self, id: &UserId<Self>) -> Result<Option<AuthenticatedUser>, BackendError> {
        Ok(self.users.by_id(*id).cloned().map(AuthenticatedUser::from))
    }
}

async fn login(
    mut auth: AuthSession<Backend>,
    messages: Messages,
    session: Session,
    Form(credentials): Form<Credentials>,
) -> Response {
    let user = match auth.authenticate(credentials).await {
        Ok(Some(user)) => user,
        Ok(None) => return StatusCode::UNAUTHORIZED.into_response(),
        Err(err) => {
            tracing::error!(error = %err, "login failed");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    if let Err(err) = auth.login(&user).await {
        tracing::error!(error = %err, "login failed");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    // axum-login gives the session a new id on a first login only; a login over another one
    // (someone else's session planted in this browser) gets one too.
    session.cycle_id().await;
    messages.success(format!("Welcome, {}", user.user.name));
    Redirect::to("/").into_response()
}

async fn home(auth: AuthSession<Backend>, messages: Messages, session: Session) -> Response {
    // `login_required!` let only a logged-in user through.
    let user = auth.user.map(|user| user.user.name);
    let messages: Vec<String> = messages.into_iter().map(|m| m.message).collect();
    Json(json!({
        "user": user,
        "messages": messages,
        "source": session.source().await,
    }))
    .into_response()
}

async fn logout(mut auth: AuthSession<Backend>) -> StatusCode {
    match auth.logout().await {
        Ok(_) => StatusCode::NO_CONTENT,
        Err(err) => {
            tracing::error!(error = %err, "logout failed");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}
