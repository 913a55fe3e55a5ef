//! Headers in and out: a bound on what a request's headers may weigh, and
//! the security headers every response carries.

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};

use super::refusal::HEADERS_TOO_LARGE;

/// 431, as JSON, for a request whose target and header lines together
/// weigh more than `max_bytes`. (Past hyper's read buffer, a few times
/// larger, hyper answers a bare 431 itself.)
pub async fn refuse_oversized(
    State(max_bytes): State<usize>,
    request: Request,
    next: Next,
) -> Response {
    let target = request.uri().to_string().len();
    let headers: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if target + headers > max_bytes {
        return HEADERS_TOO_LARGE.into_response();
    }
    next.run(request).await
}

/// The policy of keymeter's own pages: nothing from anywhere but itself,
/// no inline script, never inside another site's frame.
const PAGE_POLICY: &str = "default-src 'self'; script-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Sets `X-Content-Type-Options: nosniff` on every response and, on HTML,
/// a Content-Security-Policy (the page's own, or `PAGE_POLICY`), framing
/// refused and no referrer sent.
pub async fn secure(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    let is_html = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("text/html"));
    if is_html {
        if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
            headers.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(PAGE_POLICY),
            );
        }
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
    }
    response
}

/// GraphiQL's policy: everything from keymeter itself (vendored), no
/// inline script and no inline style element (its fonts are data URLs).
/// GraphiQL styles elements through the CSSOM, which a policy does not
/// govern; the one style element it makes (the scroll lock of its modal
/// dialogs, react-style-singleton) is refused, and the page scrolls behind
/// a modal: a small price for a policy with no 'unsafe-inline'.
const GRAPHIQL_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     font-src 'self' data:; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// The GraphiQL page, with its policy.
pub async fn graphiql() -> Response {
    let mut response = Html(crate::graphql::GRAPHIQL_HTML).into_response();
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(GRAPHIQL_POLICY),
    );
    response
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_graphiql_page_has_no_inline_script_and_nothing_from_elsewhere() {
        let page = crate::graphql::GRAPHIQL_HTML;
        assert!(!page.contains("<script>"));
        assert!(!page.contains("https://"));
        assert!(!super::GRAPHIQL_POLICY.contains("https:"));
        assert!(!super::GRAPHIQL_POLICY.contains("unsafe"));
    }
}
