//! The examples' session management routes, the same on both frameworks: the logged-in user's
//! sessions listed, one of them ended, the others, or all. Each function answers with a status
//! and, for the list, a JSON body; the apps turn that into their framework's response.

use resilient_session::{Result, Revoked, Session};
use serde_json::json;

use crate::User;
use crate::routes::Answer;

/// At login: the session becomes `user`'s, with the client's `User-Agent` recorded.
///
/// # Errors
///
/// The session's error when the mark cannot be recorded (never, for a user agent).
pub async fn record_login(session: &Session, user: &User, user_agent: Option<&str>) -> Result<()> {
    session
        .set_owner(&user.user_id, json!({ "user_agent": user_agent }))
        .await
}

async fn user(session: &Session) -> Option<User> {
    session.get::<User>("user").await.ok().flatten()
}

fn failed(err: &resilient_session::Error) -> Answer {
    if !err.is_unavailable() {
        tracing::error!(error = %err, "session management failed");
    }
    Answer::Unavailable
}

/// `GET /sessions`: `[{"handle", "created", "last_seen", "user_agent", "current"}]`.
pub async fn list(session: &Session) -> Answer {
    let Some(user) = user(session).await else {
        return Answer::NotLoggedIn;
    };
    let current = session.handle().await;
    match session.engine().sessions_of(&user.user_id).await {
        Ok(sessions) => Answer::Json(
            sessions
                .into_iter()
                .map(|listed| {
                    json!({
                        "current": current.as_ref() == Some(&listed.handle),
                        "handle": listed.handle,
                        "created": listed.created,
                        "last_seen": listed.last_seen,
                        "user_agent": listed.info["user_agent"],
                    })
                })
                .collect(),
        ),
        Err(err) => failed(&err),
    }
}

/// `DELETE /sessions/{handle}`: ends one of the user's sessions (this one included).
pub async fn revoke(session: &Session, handle: &str) -> Answer {
    let Some(user) = user(session).await else {
        return Answer::NotLoggedIn;
    };
    match session.engine().revoke_session(&user.user_id, handle).await {
        Ok(Revoked::NotFound) => Answer::NotFound,
        Ok(_) => {
            if session.handle().await.as_deref() == Some(handle) {
                session.destroy().await;
            }
            Answer::NoContent
        }
        Err(err) => failed(&err),
    }
}

/// `POST /logout-others`: ends the user's other sessions.
pub async fn logout_others(session: &Session) -> Answer {
    let Some(user) = user(session).await else {
        return Answer::NotLoggedIn;
    };
    let current = session.handle().await;
    match session
        .engine()
        .revoke_others(&user.user_id, current.as_deref())
        .await
    {
        Ok(_) => Answer::NoContent,
        Err(err) => failed(&err),
    }
}

/// `POST /logout-everywhere`: ends all of the user's sessions, this one included.
pub async fn logout_everywhere(session: &Session) -> Answer {
    let Some(user) = user(session).await else {
        return Answer::NotLoggedIn;
    };
    let answer = match session.engine().revoke_all(&user.user_id).await {
        Ok(_) => Answer::NoContent,
        Err(err) => failed(&err),
    };
    // This one ends whatever Redis said: the user asked to be logged out.
    session.destroy().await;
    answer
}
