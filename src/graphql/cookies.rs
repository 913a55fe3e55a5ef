//! The two cookies keymeter sets, in one place: their names, how a
//! request's are read back, and the `Set-Cookie` that keeps them.
//!
//! - The dashboard's **session**: the same token API clients send as a
//!   bearer, kept in an HttpOnly cookie so that no page script (nor anything
//!   injected into one) can read it. Set only for requests proven to come
//!   from keymeter's own pages (see `http::endpoint::Endpoint::is_own_page`),
//!   so a cross-site form can neither use a session nor plant one (login CSRF).
//! - The **sign-in** binding: ties a started sign-in to the browser that
//!   started it (see `service::sign_in`).
//!
//! When browsers reach keymeter over https both are `__Host-` cookies
//! (Secure, `Path=/`, no `Domain`): a browser takes such a cookie only from
//! this very origin over https, so neither a sibling subdomain nor someone
//! on the network speaking plain http can plant or overwrite one, and only
//! that name is read back. Over plain http (a local run) a browser would
//! refuse the prefix, so they keep their plain names and `Path=/graphql`.

use async_graphql::Context;
use axum::http::{header, HeaderMap};

use crate::service::sign_in::FLOW_LIFETIME;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cookie {
    Session,
    SignIn,
}

/// What the HTTP layer established about the request's origin.
#[derive(Debug, Clone, Copy, Default)]
pub struct PageRequest {
    /// `Origin` is one of keymeter's own and the CSRF header is present.
    pub from_own_page: bool,
    /// Browsers reach keymeter over https: `__Host-` cookies, sent only over https.
    pub secure: bool,
}

impl Cookie {
    /// The one name this cookie has on a server reached over https (`secure`) or not.
    pub const fn name(self, secure: bool) -> &'static str {
        match (self, secure) {
            (Cookie::Session, false) => "keymeter_session",
            (Cookie::Session, true) => "__Host-keymeter_session",
            (Cookie::SignIn, false) => "keymeter_sign_in",
            (Cookie::SignIn, true) => "__Host-keymeter_sign_in",
        }
    }

    /// The cookie's value in any `Cookie` header, under its one name: over
    /// https a plain-named cookie is someone else's and is ignored.
    pub fn read(self, headers: &HeaderMap, secure: bool) -> Option<String> {
        let name = self.name(secure);
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.to_owned())
    }

    /// The `Set-Cookie` value keeping `value` for `max_age` seconds, where
    /// no page script can read it. The session is SameSite=Strict: no
    /// request another site starts carries it, even a top-level one (the
    /// Origin check and header are the second lock). The sign-in binding is
    /// Lax: it rides along when the callback page, on our own origin, calls
    /// completeSignIn; never on another site's requests.
    fn set_cookie(self, value: &str, max_age: i64, secure: bool) -> String {
        let name = self.name(secure);
        let same_site = match self {
            Cookie::Session => "Strict",
            Cookie::SignIn => "Lax",
        };
        // Over http, sent only with API calls, never with page loads; a
        // `__Host-` cookie must have Path=/.
        let (path, secure) = if secure {
            ("/", "; Secure")
        } else {
            ("/graphql", "")
        };
        format!("{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite={same_site}{secure}")
    }
}

fn page_request(ctx: &Context<'_>) -> PageRequest {
    ctx.data_opt::<PageRequest>().copied().unwrap_or_default()
}

/// Keeps `token` in the session cookie, for as long as the session lives.
pub fn set_session(ctx: &Context<'_>, token: &str, lifetime: chrono::Duration) {
    let page = page_request(ctx);
    if page.from_own_page {
        let cookie = Cookie::Session.set_cookie(token, lifetime.num_seconds(), page.secure);
        ctx.append_http_header("set-cookie", cookie);
    }
}

/// Removes the session cookie (logout).
pub fn clear_session(ctx: &Context<'_>) {
    let page = page_request(ctx);
    if page.from_own_page {
        ctx.append_http_header("set-cookie", Cookie::Session.set_cookie("", 0, page.secure));
    }
}

/// Binds a started sign-in to this browser, for as long as it may take.
pub fn set_sign_in(ctx: &Context<'_>, binding: &str) {
    let secure = page_request(ctx).secure;
    let max_age = FLOW_LIFETIME.num_seconds();
    ctx.append_http_header(
        "set-cookie",
        Cookie::SignIn.set_cookie(binding, max_age, secure),
    );
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn over_https_the_cookies_are_host_prefixed_for_the_whole_site() {
        assert_eq!(
            Cookie::Session.set_cookie("t0k3n", 60, true),
            "__Host-keymeter_session=t0k3n; Path=/; Max-Age=60; HttpOnly; SameSite=Strict; Secure"
        );
        assert_eq!(
            Cookie::SignIn.set_cookie("b1nd", 600, true),
            "__Host-keymeter_sign_in=b1nd; Path=/; Max-Age=600; HttpOnly; SameSite=Lax; Secure"
        );
    }

    #[test]
    fn over_http_the_cookies_keep_their_plain_names_and_api_path() {
        assert_eq!(
            Cookie::Session.set_cookie("t0k3n", 60, false),
            "keymeter_session=t0k3n; Path=/graphql; Max-Age=60; HttpOnly; SameSite=Strict"
        );
        let cleared = Cookie::Session.set_cookie("", 0, false);
        assert!(cleared.starts_with("keymeter_session=;") && cleared.contains("Max-Age=0"));
    }

    #[test]
    fn only_the_name_for_the_scheme_is_read() {
        let mut headers = HeaderMap::new();
        let sent = "keymeter_session=plain; __Host-keymeter_session=host";
        headers.insert(header::COOKIE, HeaderValue::from_static(sent));
        assert_eq!(
            Cookie::Session.read(&headers, true).as_deref(),
            Some("host")
        );
        assert_eq!(
            Cookie::Session.read(&headers, false).as_deref(),
            Some("plain")
        );
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("keymeter_session=plain"),
        );
        assert_eq!(Cookie::Session.read(&headers, true), None);
        assert_eq!(Cookie::SignIn.read(&headers, false), None);
    }
}
