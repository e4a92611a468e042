//! What the end of a request adds to the response.

use http::header::{CACHE_CONTROL, SET_COOKIE, VARY};
use http::{HeaderMap, HeaderValue};

/// What the end of a request adds to the response: the `Set-Cookie` headers (none, the
/// session cookie's, and after an [import](crate::Import) the removal of the old app's), and,
/// for every response that read the session or sets a cookie, `Vary: Cookie` and
/// `Cache-Control: private`, so that no shared cache hands one user's session to another.
///
/// The adapters apply it; an adapter for another framework would do the same:
///
/// ```
/// # fn apply(headers: resilient_session::adapter::ResponseHeaders, vary: Option<&str>, cache_control: Option<&str>) {
/// for set_cookie in headers.set_cookies() { /* append a `Set-Cookie` header */ }
/// if headers.is_private() {
///     let vary = resilient_session::adapter::ResponseHeaders::vary(vary);
///     let cache_control = resilient_session::adapter::ResponseHeaders::cache_control(cache_control);
///     /* set them */
/// }
/// # }
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ResponseHeaders {
    /// Our cookie: set, or removed.
    cookie: Option<String>,
    /// The removal of an imported app's cookie.
    legacy: Option<String>,
    /// The handler read the session.
    read: bool,
}

impl std::fmt::Debug for ResponseHeaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The value logs whoever holds it in: only the attributes are shown.
        let cookie = self.cookie.as_deref().map(|header| {
            let attributes = header.split_once(';').map_or("", |(_, rest)| rest);
            format!("<redacted>;{attributes}")
        });
        f.debug_struct("ResponseHeaders")
            .field("cookie", &cookie)
            .field("removes_imported_cookie", &self.legacy.is_some())
            .field("private", &self.is_private())
            .finish()
    }
}

impl ResponseHeaders {
    pub(crate) fn new(cookie: Option<String>, legacy: Option<String>, read: bool) -> Self {
        Self {
            cookie,
            legacy,
            read,
        }
    }

    /// The session cookie's `Set-Cookie` value, when the response sets or removes it.
    pub fn session_cookie(&self) -> Option<&str> {
        self.cookie.as_deref()
    }

    /// Every `Set-Cookie` header value to send: the session cookie's, and after an
    /// [import](crate::Import) the removal of the old app's cookie. Adapters send them all.
    pub fn set_cookies(&self) -> impl Iterator<Item = &str> {
        self.cookie
            .as_deref()
            .into_iter()
            .chain(self.legacy.as_deref())
    }

    /// The response is about a session (its handler read it, or a cookie is set): it must carry
    /// `Vary: Cookie` and `Cache-Control: private`.
    pub fn is_private(&self) -> bool {
        self.read || self.cookie.is_some() || self.legacy.is_some()
    }

    /// Nothing to add to the response.
    pub fn is_empty(&self) -> bool {
        !self.is_private()
    }

    /// Adds the `Set-Cookie` headers to `headers` and, when [private](Self::is_private),
    /// `Vary: Cookie` and `Cache-Control: private` (see [`vary`](Self::vary),
    /// [`cache_control`](Self::cache_control)).
    pub fn apply(&self, headers: &mut HeaderMap) {
        for header in self.set_cookies() {
            match HeaderValue::from_str(header) {
                Ok(set_cookie) => headers.append(SET_COOKIE, set_cookie),
                Err(_) => {
                    tracing::error!("session cookie is not a valid header value; not sent");
                    continue;
                }
            };
        }
        if !self.is_private() {
            return;
        }
        let joined = |headers: &HeaderMap, name| {
            let values: Vec<&str> = headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            (!values.is_empty()).then(|| values.join(", "))
        };
        for (name, fresh, merged) in [
            (VARY, "Cookie", Self::vary as fn(Option<&str>) -> String),
            (CACHE_CONTROL, "private", Self::cache_control),
        ] {
            // The common case, a response that says neither: no allocation.
            let value = match joined(headers, name.clone()) {
                None => HeaderValue::from_static(fresh),
                Some(existing) => match HeaderValue::from_str(&merged(Some(&existing))) {
                    Ok(value) => value,
                    Err(_) => continue,
                },
            };
            headers.insert(name, value);
        }
    }

    /// The `Vary` value to send, given the response's current one: `Cookie` added unless already
    /// there (or `*`).
    pub fn vary(existing: Option<&str>) -> String {
        let covers_cookie = |vary: &str| {
            vary.split(',')
                .map(str::trim)
                .any(|v| v == "*" || v.eq_ignore_ascii_case("cookie"))
        };
        match existing.map(str::trim).filter(|vary| !vary.is_empty()) {
            None => "Cookie".to_owned(),
            Some(vary) if covers_cookie(vary) => vary.to_owned(),
            Some(vary) => format!("{vary}, Cookie"),
        }
    }

    /// The `Cache-Control` value to send, given the response's current one: `private` unless it
    /// already says `private` or `no-store`; a `public` directive is dropped.
    pub fn cache_control(existing: Option<&str>) -> String {
        let Some(existing) = existing else {
            return "private".to_owned();
        };
        let directives: Vec<&str> = existing
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .collect();
        let is = |name: &str, d: &&str| {
            d.split('=')
                .next()
                .is_some_and(|n| n.trim().eq_ignore_ascii_case(name))
        };
        if directives
            .iter()
            .any(|d| is("private", d) || is("no-store", d))
        {
            return existing.to_owned();
        }
        let mut kept: Vec<&str> = vec!["private"];
        kept.extend(directives.into_iter().filter(|d| !is("public", d)));
        kept.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_that_read_the_session_is_private_without_a_cookie() {
        let mut headers = HeaderMap::new();
        headers.insert(
            CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=60"),
        );
        ResponseHeaders::new(None, None, true).apply(&mut headers);
        assert_eq!(headers[VARY], "Cookie");
        assert_eq!(headers[CACHE_CONTROL], "private, max-age=60");
        assert!(headers.get(SET_COOKIE).is_none());

        let mut untouched = HeaderMap::new();
        let unused = ResponseHeaders::new(None, None, false);
        assert!(unused.is_empty());
        unused.apply(&mut untouched);
        assert!(
            untouched.is_empty(),
            "a response that never used the session stays public"
        );

        let mut both = HeaderMap::new();
        ResponseHeaders::new(
            Some("session=x".into()),
            Some("id=; Max-Age=0".into()),
            false,
        )
        .apply(&mut both);
        assert_eq!(both.get_all(SET_COOKIE).iter().count(), 2);
        assert_eq!(both[VARY], "Cookie");
    }

    #[test]
    fn vary_gains_cookie_once() {
        assert_eq!(ResponseHeaders::vary(None), "Cookie");
        assert_eq!(
            ResponseHeaders::vary(Some("Accept-Encoding")),
            "Accept-Encoding, Cookie"
        );
        assert_eq!(
            ResponseHeaders::vary(Some("accept, cookie")),
            "accept, cookie"
        );
        assert_eq!(ResponseHeaders::vary(Some("*")), "*");
        assert_eq!(ResponseHeaders::vary(Some("")), "Cookie");
    }

    #[test]
    fn cache_control_becomes_private() {
        assert_eq!(ResponseHeaders::cache_control(None), "private");
        assert_eq!(
            ResponseHeaders::cache_control(Some("public, max-age=60")),
            "private, max-age=60"
        );
        assert_eq!(ResponseHeaders::cache_control(Some("no-store")), "no-store");
        assert_eq!(
            ResponseHeaders::cache_control(Some("private, max-age=5")),
            "private, max-age=5"
        );
    }
}
