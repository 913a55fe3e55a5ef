//! Headers in and out: a bound on what a request's headers may weigh, and
//! the security headers every response carries.

use std::sync::LazyLock;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use base64::Engine as _;
use sha2::{Digest, Sha256};

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

/// The GraphiQL page, with a policy that admits exactly its one inline
/// script (by hash) and the GraphiQL bundle it loads.
pub async fn graphiql() -> Response {
    static POLICY: LazyLock<HeaderValue> = LazyLock::new(|| {
        let page = crate::graphql::GRAPHIQL_HTML;
        let script = inline_script(page).unwrap_or_default();
        let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(script));
        let policy = format!(
            "default-src 'none'; script-src https://unpkg.com 'sha256-{hash}'; \
             style-src https://unpkg.com 'unsafe-inline'; font-src https://unpkg.com data:; \
             img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
             frame-ancestors 'none'"
        );
        HeaderValue::from_str(&policy).expect("an ASCII policy")
    });
    let mut response = Html(crate::graphql::GRAPHIQL_HTML).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_SECURITY_POLICY, POLICY.clone());
    response
}

/// The text of the page's one `<script>` without a `src`.
fn inline_script(page: &str) -> Option<&str> {
    let start = page.find("<script>")? + "<script>".len();
    let end = start + page[start..].find("</script>")?;
    Some(&page[start..end])
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_graphiql_page_has_one_inline_script() {
        let script = super::inline_script(crate::graphql::GRAPHIQL_HTML).unwrap();
        assert!(script.contains("createFetcher"));
    }
}
