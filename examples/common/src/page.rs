//! `GET /`: the example apps' page. Plain HTML forms, no JavaScript: log in, count, log out, end
//! the other sessions; and what the request was served from, how Redis is doing, and the user's
//! sessions. The forms post to the JSON routes, which answer a form with `303 See Other` back
//! to the page (see [`routes`](crate::routes)).

use std::time::{SystemTime, UNIX_EPOCH};

use maud::{DOCTYPE, Markup, html};
use resilient_session::{ConnectionState, OwnedSession, Session, Source};

use crate::User;

/// The `Content-Type` of the page.
pub const CONTENT_TYPE: &str = "text/html; charset=utf-8";

/// What the page shows, gathered from the request's session.
#[derive(Debug)]
pub struct Page {
    user: Option<User>,
    /// `None`: not known (Redis unavailable and the cookie cannot stand in).
    counter: Option<i64>,
    source: Source,
    redis: ConnectionState,
    /// `None` when logged out; `Err` when Redis cannot list them.
    sessions: Option<Result<Vec<(OwnedSession, bool)>, String>>,
}

impl Page {
    /// Reads what the page shows: the user, the counter, where they came from, Redis's state as
    /// the last operations saw it (no extra command), and, for a logged-in user, their sessions.
    pub async fn of(session: &Session) -> Self {
        let user = session.get::<User>("user").await.ok().flatten();
        let counter = crate::counter(session.get("counter").await);
        let source = session.source().await;
        let sessions = match &user {
            None => None,
            Some(user) => {
                let current = session.handle().await;
                Some(match session.engine().sessions_of(&user.user_id).await {
                    Ok(listed) => Ok(listed
                        .into_iter()
                        .map(|listed| {
                            let here = current.as_ref() == Some(&listed.handle);
                            (listed, here)
                        })
                        .collect()),
                    Err(err) => Err(err.to_string()),
                })
            }
        };
        let redis = session.engine().manager().health().state;
        Self {
            user,
            counter,
            source,
            redis,
            sessions,
        }
    }

    /// The page as HTML; every value shown is escaped.
    pub fn render(&self) -> String {
        page(self).into_string()
    }
}

fn page(view: &Page) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "resilient-session example" }
                style { (STYLE) }
            }
            body {
                h1 { "resilient-session" }
                p.status {
                    "This request was served from " strong #source { (view.source) } ". "
                    "Redis: " strong #redis { (redis_state(view.redis)) } "."
                }
                @match &view.user {
                    Some(user) => {
                        p { "Logged in as " strong #user { (user.user_id) } " (" (user.role) ")." }
                        form method="post" action="/logout" { button #logout type="submit" { "Log out" } }
                    }
                    None => {
                        form #login method="post" action="/login" {
                            label { "User " input name="user_id" value="ada" required; }
                            label { "Role " input name="role" value="admin" required; }
                            button type="submit" { "Log in" }
                        }
                    }
                }
                h2 { "Counter" }
                p {
                    "Counter: " strong #counter {
                        @match view.counter {
                            Some(counter) => (counter),
                            None => "unknown (Redis is unavailable and the cookie cannot stand in)",
                        }
                    }
                }
                form method="post" action="/counter" { button #count type="submit" { "Count" } }
                @if let Some(sessions) = &view.sessions {
                    h2 { "Your sessions" }
                    @match sessions {
                        Ok(sessions) => {
                            table #sessions {
                                tr { th { "created" } th { "last seen" } th { "browser" } th {} }
                                @for (listed, here) in sessions {
                                    tr {
                                        td { (ago(listed.created)) }
                                        td { (ago(listed.last_seen)) }
                                        td { (listed.info["user_agent"].as_str().unwrap_or("unknown")) }
                                        td { @if *here { "this one" } }
                                    }
                                }
                            }
                            form method="post" action="/logout-others" { button #logout-others type="submit" { "Log out the others" } }
                            form method="post" action="/logout-everywhere" { button #logout-everywhere type="submit" { "Log out everywhere" } }
                        }
                        Err(why) => p #sessions { "Not known right now: " (why) }
                    }
                }
                p.links {
                    a href="/api/health/redis" { "health" } " · " a href="/metrics" { "metrics" }
                }
            }
        }
    }
}

fn redis_state(state: ConnectionState) -> &'static str {
    match state {
        ConnectionState::Connected => "connected",
        ConnectionState::Connecting => "connecting",
        ConnectionState::Disconnected => "unavailable",
        ConnectionState::CircuitOpen => "unavailable (circuit open)",
        _ => "not used",
    }
}

/// How long ago a unix time was, for people.
fn ago(unix: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    match now.saturating_sub(unix).max(0) {
        seconds @ 0..60 => format!("{seconds} s ago"),
        seconds @ 60..3600 => format!("{} min ago", seconds / 60),
        seconds => format!("{} h ago", seconds / 3600),
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;\
padding:0 1rem}form{display:inline-block;margin:.25rem .5rem .25rem 0}label{margin-right:.5rem}\
table{border-collapse:collapse}td,th{padding:.2rem .6rem;text-align:left}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped() {
        let page = Page {
            user: Some(User {
                user_id: "<script>alert(1)</script>".into(),
                role: "a\"b".into(),
            }),
            counter: Some(1),
            source: Source::Cookie,
            redis: ConnectionState::Disconnected,
            sessions: Some(Err("Redis is unavailable".into())),
        };
        let html = page.render();
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(
            html.contains(r#"<strong id="source">cookie</strong>"#),
            "{html}"
        );
        assert!(html.contains(r#"action="/logout""#), "{html}");
    }

    #[test]
    fn logged_out_it_offers_the_login_form() {
        let page = Page {
            user: None,
            counter: None,
            source: Source::New,
            redis: ConnectionState::Connected,
            sessions: None,
        };
        let html = page.render();
        assert!(
            html.contains(r#"<form id="login" method="post" action="/login">"#),
            "{html}"
        );
        assert!(!html.contains("Your sessions"), "{html}");
    }
}
