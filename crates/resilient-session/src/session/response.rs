//! What the end of a request adds to the response.

use http::header::{CACHE_CONTROL, SET_COOKIE, VARY};
use http::{HeaderMap, HeaderValue};

/// A `Set-Cookie` header for the response, with what a response that sets it must also carry:
/// `Vary: Cookie` and `Cache-Control: private`, so that no shared cache hands one user's cookie
/// to another.
///
/// The adapters apply it; an adapter for another framework would do the same:
///
/// ```
/// # fn apply(set: resilient_session::SetCookie, vary: Option<&str>, cache_control: Option<&str>) {
/// for set_cookie in set.headers() { /* append a `Set-Cookie` header */ }
/// let vary = resilient_session::SetCookie::vary(vary);
/// let cache_control = resilient_session::SetCookie::cache_control(cache_control);
/// # }
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct SetCookie {
    header: String,
    /// A second header: the removal of an imported app's cookie.
    also: Option<String>,
}

impl std::fmt::Debug for SetCookie {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The value logs whoever holds it in: only the attributes are shown.
        let attributes = self.header.split_once(';').map_or("", |(_, rest)| rest);
        write!(f, "SetCookie(<redacted>;{attributes})")?;
        if self.also.is_some() {
            f.write_str(" + removal of an imported cookie")?;
        }
        Ok(())
    }
}

impl SetCookie {
    pub(crate) fn new(header: String) -> Self {
        Self { header, also: None }
    }

    /// With a second header after this one.
    pub(crate) fn and(mut self, also: String) -> Self {
        self.also = Some(also);
        self
    }

    /// The (first) `Set-Cookie` header value.
    pub fn header(&self) -> &str {
        &self.header
    }

    /// Every `Set-Cookie` header value to send: the session cookie's, and after an
    /// [import](crate::Import) the removal of the old app's cookie. Adapters send them all.
    pub fn headers(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.header.as_str()).chain(self.also.as_deref())
    }

    /// Adds the `Set-Cookie` header to `headers`, with `Vary: Cookie` and
    /// `Cache-Control: private` (see [`vary`](Self::vary), [`cache_control`](Self::cache_control)).
    pub fn apply(&self, headers: &mut HeaderMap) {
        for header in self.headers() {
            match HeaderValue::from_str(header) {
                Ok(set_cookie) => headers.append(SET_COOKIE, set_cookie),
                Err(_) => {
                    tracing::error!("session cookie is not a valid header value; not sent");
                    continue;
                }
            };
        }
        let joined = |name| {
            let values: Vec<&str> = headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            (!values.is_empty()).then(|| values.join(", "))
        };
        let vary = SetCookie::vary(joined(VARY).as_deref());
        let cache_control = SetCookie::cache_control(joined(CACHE_CONTROL).as_deref());
        for (name, value) in [(VARY, vary), (CACHE_CONTROL, cache_control)] {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
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
    fn vary_gains_cookie_once() {
        assert_eq!(SetCookie::vary(None), "Cookie");
        assert_eq!(
            SetCookie::vary(Some("Accept-Encoding")),
            "Accept-Encoding, Cookie"
        );
        assert_eq!(SetCookie::vary(Some("accept, cookie")), "accept, cookie");
        assert_eq!(SetCookie::vary(Some("*")), "*");
        assert_eq!(SetCookie::vary(Some("")), "Cookie");
    }

    #[test]
    fn cache_control_becomes_private() {
        assert_eq!(SetCookie::cache_control(None), "private");
        assert_eq!(
            SetCookie::cache_control(Some("public, max-age=60")),
            "private, max-age=60"
        );
        assert_eq!(SetCookie::cache_control(Some("no-store")), "no-store");
        assert_eq!(
            SetCookie::cache_control(Some("private, max-age=5")),
            "private, max-age=5"
        );
    }
}
