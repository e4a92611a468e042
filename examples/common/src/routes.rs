//! The counter apps' routes, the same on both frameworks: each takes the session and what it
//! needs of the request, and says what to answer; the apps turn an [`Answer`] into their
//! framework's response. A `POST` of the page's forms (`application/x-www-form-urlencoded`) is
//! answered with a redirect back to the page, and refused when it comes from another site.

use resilient_session::Session;
use serde_json::{Value, json};

use crate::User;
use crate::sessions;

/// What a route answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// 200 with this body.
    Json(Value),
    /// 204.
    NoContent,
    /// 303 back to the page (`GET /`): a form of the page was posted, and it worked.
    BackToPage,
    /// 401: not logged in.
    NotLoggedIn,
    /// 404: not one of the user's sessions.
    NotFound,
    /// 503: Redis is unavailable and the cookie cannot stand in for what was asked.
    Unavailable,
    /// Another error status, with its message: `{"error": message}`.
    Error {
        /// The HTTP status.
        status: u16,
        /// What went wrong, for the client.
        message: String,
    },
}

impl Answer {
    /// The answer to a form of the page (`form`): back to the page where it would be 204.
    ///
    /// ```
    /// use example_common::routes::Answer;
    ///
    /// assert_eq!(Answer::NoContent.for_form(true), Answer::BackToPage);
    /// assert_eq!(Answer::NoContent.for_form(false), Answer::NoContent);
    /// assert_eq!(Answer::NotLoggedIn.for_form(true), Answer::NotLoggedIn);
    /// ```
    pub fn for_form(self, form: bool) -> Self {
        match self {
            Answer::NoContent if form => Answer::BackToPage,
            other => other,
        }
    }

    /// The status and the JSON body of an error answer; `None` for the others.
    pub fn error(&self) -> Option<(u16, Value)> {
        let (status, message) = match self {
            Answer::NotLoggedIn => (401, "not logged in"),
            Answer::NotFound => (404, "no such session of yours"),
            Answer::Unavailable => (503, crate::UNAVAILABLE),
            Answer::Error { status, message } => (*status, message.as_str()),
            Answer::Json(_) | Answer::NoContent | Answer::BackToPage => return None,
        };
        Some((status, json!({ "error": message })))
    }

    fn failed(status: u16, message: impl Into<String>) -> Self {
        Answer::Error {
            status,
            message: message.into(),
        }
    }
}

/// What the routes need of a request's headers.
#[derive(Debug, Clone, Copy, Default)]
pub struct Request<'a> {
    /// `Content-Type`.
    pub content_type: Option<&'a str>,
    /// `User-Agent`, recorded at login.
    pub user_agent: Option<&'a str>,
    /// `Sec-Fetch-Site`, which browsers send with every request.
    pub fetch_site: Option<&'a str>,
    /// `Origin`.
    pub origin: Option<&'a str>,
    /// `Host`.
    pub host: Option<&'a str>,
}

impl Request<'_> {
    /// The body is a form a browser posted (`application/x-www-form-urlencoded`).
    ///
    /// ```
    /// use example_common::routes::Request;
    ///
    /// let form = Request { content_type: Some("application/x-www-form-urlencoded"), ..Request::default() };
    /// assert!(form.is_form());
    /// assert!(!Request { content_type: Some("application/json"), ..Request::default() }.is_form());
    /// ```
    pub fn is_form(&self) -> bool {
        self.mime() == Some("application/x-www-form-urlencoded")
    }

    /// The body is JSON (`application/json`, or a `+json` type).
    pub fn is_json(&self) -> bool {
        self.mime()
            .is_some_and(|mime| mime == "application/json" || mime.ends_with("+json"))
    }

    /// A form post that another site made the browser send (login CSRF, or a sibling subdomain
    /// posting with the `SameSite=Lax` cookie): `Sec-Fetch-Site` says so, or, from a browser that
    /// does not send it, an `Origin` other than this host.
    ///
    /// ```
    /// use example_common::routes::Request;
    ///
    /// let form = Request { content_type: Some("application/x-www-form-urlencoded"), host: Some("app.test"), ..Request::default() };
    /// assert!(!form.is_cross_site_form());
    /// assert!(Request { fetch_site: Some("cross-site"), ..form }.is_cross_site_form());
    /// assert!(Request { fetch_site: Some("same-site"), ..form }.is_cross_site_form());
    /// assert!(!Request { fetch_site: Some("same-origin"), ..form }.is_cross_site_form());
    /// assert!(Request { origin: Some("https://evil.test"), ..form }.is_cross_site_form());
    /// assert!(!Request { origin: Some("http://app.test"), ..form }.is_cross_site_form());
    /// ```
    pub fn is_cross_site_form(&self) -> bool {
        if !self.is_form() {
            return false;
        }
        if let Some(site) = self.fetch_site {
            return !matches!(site, "same-origin" | "none");
        }
        match (self.origin, self.host) {
            (Some(origin), Some(host)) => {
                let authority = origin.split_once("://").map_or(origin, |(_, rest)| rest);
                !authority.eq_ignore_ascii_case(host)
            }
            (Some(_), None) => true,
            (None, _) => false,
        }
    }

    fn mime(&self) -> Option<&str> {
        self.content_type
            .and_then(|value| value.split(';').next())
            .map(str::trim)
    }

    /// Refuses a form post from another site; `None` lets the route go on.
    fn refused(&self) -> Option<Answer> {
        self.is_cross_site_form()
            .then(|| Answer::failed(403, "a form of another site cannot post here"))
    }
}

/// `POST /login` `{"user_id", "role"}` (JSON, or the page's form): a new session id, the user
/// stored, the session marked as theirs.
pub async fn login(session: &Session, request: &Request<'_>, body: &[u8]) -> Answer {
    if let Some(refused) = request.refused() {
        return refused;
    }
    let user: Option<User> = if request.is_form() {
        serde_urlencoded::from_bytes(body).ok()
    } else if request.is_json() {
        serde_json::from_slice(body).ok()
    } else {
        None
    };
    let Some(user) = user else {
        return Answer::failed(400, "expected {\"user_id\": ..., \"role\": ...}");
    };
    session.cycle_id().await;
    if let Err(err) = sessions::record_login(session, &user, request.user_agent).await {
        return Answer::failed(400, err.to_string());
    }
    match session.insert("user", &user).await {
        Ok(()) if request.is_form() => Answer::BackToPage,
        Ok(()) => Answer::Json(json!(user)),
        Err(err) => Answer::failed(413, err.to_string()),
    }
}

/// `GET /me`: the user and where the session came from.
pub async fn me(session: &Session) -> Answer {
    match session.get::<User>("user").await {
        Ok(Some(user)) => Answer::Json(json!({
            "user_id": user.user_id,
            "role": user.role,
            "source": session.source().await,
        })),
        _ => Answer::NotLoggedIn,
    }
}

/// `POST /logout`: the session ends.
pub async fn logout(session: &Session, request: &Request<'_>) -> Answer {
    if let Some(refused) = request.refused() {
        return refused;
    }
    session.destroy().await;
    Answer::NoContent.for_form(request.is_form())
}

/// `GET /counter`: `{"counter", "source"}`.
pub async fn read_counter(session: &Session) -> Answer {
    match crate::counter(session.get("counter").await) {
        Some(counter) => counter_answer(session, counter).await,
        None => Answer::Unavailable,
    }
}

/// `POST /counter`: the counter plus one.
pub async fn increment_counter(session: &Session, request: &Request<'_>) -> Answer {
    if let Some(refused) = request.refused() {
        return refused;
    }
    let Some(counter) = crate::counter(session.get("counter").await) else {
        // The page says the counter is not known, and why.
        return match request.is_form() {
            true => Answer::BackToPage,
            false => Answer::Unavailable,
        };
    };
    let counter = counter + 1;
    if let Err(err) = session.insert("counter", counter).await {
        return Answer::failed(413, err.to_string());
    }
    match request.is_form() {
        true => Answer::BackToPage,
        false => counter_answer(session, counter).await,
    }
}

async fn counter_answer(session: &Session, counter: i64) -> Answer {
    Answer::Json(json!({ "counter": counter, "source": session.source().await }))
}

/// `POST /logout-others`: the user's other sessions end.
pub async fn logout_others(session: &Session, request: &Request<'_>) -> Answer {
    match request.refused() {
        Some(refused) => refused,
        None => sessions::logout_others(session)
            .await
            .for_form(request.is_form()),
    }
}

/// `POST /logout-everywhere`: all of the user's sessions end, this one included.
pub async fn logout_everywhere(session: &Session, request: &Request<'_>) -> Answer {
    match request.refused() {
        Some(refused) => refused,
        None => sessions::logout_everywhere(session)
            .await
            .for_form(request.is_form()),
    }
}
