//! The dashboard's session: the same token API clients send as a bearer,
//! kept in an HttpOnly cookie so that no page script (nor anything injected
//! into one) can read it. Set only for requests proven to come from
//! keymeter's own pages (see `http::endpoint::Endpoint::is_own_page`), so a cross-site
//! form can neither use a session nor plant one (login CSRF).

use async_graphql::Context;

/// The cookie's name; `http::endpoint` reads it back.
pub const SESSION_COOKIE: &str = "keymeter_session";

/// What the HTTP layer established about the request's origin.
#[derive(Debug, Clone, Copy, Default)]
pub struct PageRequest {
    /// `Origin` is one of keymeter's own and the CSRF header is present.
    pub from_own_page: bool,
    /// Browsers reach keymeter over https: the cookie goes only over https.
    pub secure: bool,
}

fn page_request(ctx: &Context<'_>) -> PageRequest {
    ctx.data_opt::<PageRequest>().copied().unwrap_or_default()
}

/// Keeps `token` in the session cookie, for as long as the session lives.
pub fn set(ctx: &Context<'_>, token: &str, lifetime: chrono::Duration) {
    let page = page_request(ctx);
    if page.from_own_page {
        ctx.append_http_header("set-cookie", cookie(token, lifetime.num_seconds(), page));
    }
}

/// Removes the session cookie (logout).
pub fn clear(ctx: &Context<'_>) {
    let page = page_request(ctx);
    if page.from_own_page {
        ctx.append_http_header("set-cookie", cookie("", 0, page));
    }
}

/// SameSite=Strict: no request another site starts carries it, even a
/// top-level one; the Origin check and header are the second lock.
fn cookie(value: &str, max_age: i64, page: PageRequest) -> String {
    api_cookie(SESSION_COOKIE, value, max_age, "Strict", page.secure)
}

/// A cookie no page script can read, sent only with API calls
/// (Path=/graphql), never with page loads; Secure when browsers reach us
/// over https.
pub fn api_cookie(name: &str, value: &str, max_age: i64, same_site: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{name}={value}; Path=/graphql; Max-Age={max_age}; HttpOnly; SameSite={same_site}{secure}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_http_only_strict_and_secure_over_https() {
        let page = PageRequest {
            from_own_page: true,
            secure: true,
        };
        let set = cookie("t0k3n", 60, page);
        assert_eq!(
            set,
            "keymeter_session=t0k3n; Path=/graphql; Max-Age=60; HttpOnly; SameSite=Strict; Secure"
        );
        let cleared = cookie("", 0, PageRequest::default());
        assert!(cleared.contains("Max-Age=0") && !cleared.contains("Secure"));
    }
}
