//! The files keymeter's pages load, built into the binary with
//! `include_bytes!`: a fresh clone serves the dashboard and GraphiQL with
//! no build step, no Node and no network.

use std::sync::LazyLock;

use axum::extract::rejection::PathRejection;
use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::refusal::NO_SUCH_ASSET;

struct Asset {
    path: &'static str,
    body: &'static [u8],
}

macro_rules! assets {
    ($($path:literal),* $(,)?) => {
        &[$(Asset { path: $path, body: include_bytes!(concat!("assets/", $path)) }),*]
    };
}

/// Every file under `/assets/`. The dashboard is plain ES modules: what is
/// here is exactly what runs.
const ASSETS: &[Asset] = assets![
    "app.css",
    "app.js",
    "api.js",
    "queries.js",
    "dom.js",
    "auth.js",
    "account.js",
    "keys.js",
    "usage.js",
    "secret.js",
    "chart.js",
    "format.js",
    "graphiql.css",
    "graphiql.js",
    "vendor/graphiql-3.8.3.min.css",
    "vendor/graphiql-3.8.3.min.js",
    "vendor/react-18.3.1.production.min.js",
    "vendor/react-dom-18.3.1.production.min.js",
];

/// Each asset's entity tag, in `ASSETS`' order: a digest of its bytes, so
/// it changes exactly when the file does.
static ENTITY_TAGS: LazyLock<Vec<HeaderValue>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|asset| {
            let digest = Sha256::digest(asset.body);
            let tag = format!("\"{}\"", URL_SAFE_NO_PAD.encode(&digest[..16]));
            HeaderValue::from_str(&tag).expect("base64 is a valid header value")
        })
        .collect()
});

/// `GET /assets/{path}`. A browser that already holds the file (its
/// `If-None-Match` names the tag) gets 304 and no body. A path that names
/// no asset, or is not even UTF-8, is the JSON 404 every refusal is.
pub async fn serve(path: Result<Path<String>, PathRejection>, request: HeaderMap) -> Response {
    let index = path
        .ok()
        .and_then(|Path(path)| ASSETS.iter().position(|asset| asset.path == path));
    let Some(index) = index else {
        return NO_SUCH_ASSET.into_response();
    };
    let path = ASSETS[index].path;
    let tag = ENTITY_TAGS[index].clone();
    // Vendored files carry their version in their name and never change;
    // our own may change with any release, so browsers check them again,
    // and their tag spares them the download when nothing changed.
    let cache = HeaderValue::from_static(if path.starts_with("vendor/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    });
    let unchanged = request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .any(|value| names_tag(value, &tag));
    if unchanged {
        return (
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, tag), (header::CACHE_CONTROL, cache)],
        )
            .into_response();
    }
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(content_type(path)),
            ),
            (header::CACHE_CONTROL, cache),
            (header::ETAG, tag),
        ],
        ASSETS[index].body,
    )
        .into_response()
}

/// Whether an `If-None-Match` value names `tag`: `*`, or a list of tags
/// compared weakly (RFC 9110, 13.1.2), so `W/"x"` names `"x"`.
fn names_tag(value: &HeaderValue, tag: &HeaderValue) -> bool {
    let (Ok(value), Ok(tag)) = (value.to_str(), tag.to_str()) else {
        return false;
    };
    value.split(',').map(str::trim).any(|candidate| {
        candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == tag
    })
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_has_a_known_type_and_no_third_party_url() {
        for asset in ASSETS {
            assert_ne!(content_type(asset.path), "application/octet-stream");
            if !asset.path.starts_with("vendor/") {
                let text = std::str::from_utf8(asset.body).unwrap();
                assert!(
                    !text.contains("https://"),
                    "{} loads from elsewhere",
                    asset.path
                );
            }
        }
    }
}
