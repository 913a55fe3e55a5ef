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
    "view.js",
    "state.js",
    "dashboard.js",
    "teams.js",
    "members.js",
    "accept.js",
    "audit.js",
    "alerts.js",
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
    "favicon.svg",
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
        Some("svg") => "image/svg+xml",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    const DASHBOARD: &str = include_str!("assets/index.html");

    fn text_of(path: &str) -> &'static str {
        let asset = ASSETS
            .iter()
            .find(|asset| asset.path == path)
            .unwrap_or_else(|| panic!("{path} is loaded but missing from ASSETS"));
        std::str::from_utf8(asset.body).unwrap()
    }

    /// What a module imports: each `import … from "./x.js"` and
    /// `import "./x.js"`, as asset paths (our modules sit side by side).
    fn imports(module: &str) -> Vec<&'static str> {
        let text = text_of(module);
        let found: Vec<&str> = text
            .match_indices("\"./")
            .filter(|(at, _)| {
                let before = text[..*at].trim_end();
                before.ends_with(" from") || before.ends_with("import")
            })
            .map(|(at, _)| {
                let path = &text[at + 3..];
                &path[..path.find('"').expect("a closing quote")]
            })
            .collect();
        // Every import statement was read: none in single quotes, none
        // from elsewhere.
        let statements = text
            .lines()
            .filter(|line| line.starts_with("import "))
            .count();
        assert_eq!(found.len(), statements, "{module} imports {found:?}");
        found
    }

    /// `entry` and every module it imports, directly or not.
    fn reached_from(entry: &'static str) -> BTreeSet<&'static str> {
        let mut reached = BTreeSet::new();
        let mut next = vec![entry];
        while let Some(module) = next.pop() {
            if reached.insert(module) {
                next.extend(imports(module));
            }
        }
        reached
    }

    /// Every `/assets/…` path `page` names.
    fn named_in(page: &'static str) -> Vec<&'static str> {
        page.split("\"/assets/")
            .skip(1)
            .map(|rest| rest.split('"').next().unwrap())
            .collect()
    }

    #[test]
    fn the_dashboard_preloads_exactly_the_modules_app_js_imports() {
        let preloaded: Vec<&str> = DASHBOARD
            .split("<link rel=\"modulepreload\" href=\"/assets/")
            .skip(1)
            .map(|rest| rest.split('"').next().unwrap())
            .collect();
        let unique: BTreeSet<&str> = preloaded.iter().copied().collect();
        assert_eq!(
            unique.len(),
            preloaded.len(),
            "preloaded twice: {preloaded:?}"
        );
        assert!(DASHBOARD.contains("<script type=\"module\" src=\"/assets/app.js\">"));
        let mut imported = reached_from("app.js");
        imported.remove("app.js");
        assert_eq!(unique, imported, "index.html's modulepreload links");
    }

    #[test]
    fn assets_are_exactly_what_the_pages_load() {
        // What the two pages name and their modules import, each of which
        // must be in ASSETS: a module imported but missing fails here, not
        // only in a browser.
        let mut loaded = BTreeSet::new();
        for page in [DASHBOARD, crate::graphql::GRAPHIQL_HTML] {
            for path in named_in(page) {
                text_of(path);
                if path.ends_with(".js") && !path.starts_with("vendor/") {
                    loaded.extend(reached_from(path));
                }
                loaded.insert(path);
            }
        }
        for asset in ASSETS {
            assert!(loaded.contains(asset.path), "no page loads {}", asset.path);
        }
        // And nothing in the folder was forgotten.
        let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http/assets");
        for entry in std::fs::read_dir(folder).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().into_string().unwrap();
            if entry.file_type().unwrap().is_file() && name != "index.html" {
                let listed = ASSETS.iter().any(|asset| asset.path == name);
                assert!(listed, "{name} is not in ASSETS");
            }
        }
    }

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
