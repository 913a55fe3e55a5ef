//! `POST /graphql`: from HTTP request to GraphQL response. Everything a
//! client can get wrong at the HTTP level is refused here, before the
//! schema sees the request, as one JSON error (see `refusal`).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_graphql::{Response as GraphqlResponse, ServerError};
use async_graphql_axum::GraphQLResponse;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt as _;
use tracing::Instrument as _;

use super::refusal::Refusal;
use crate::error::OPERATION;
use crate::graphql::cookies::{Cookie, PageRequest};
use crate::graphql::{Client, Documents, KeymeterSchema, RanOperation, RequestAuth, SignInBrowser};
use crate::metrics::{is_plain_name, Metrics};

/// The header keymeter's pages send with every API call. A cross-site form
/// cannot set a header, and a cross-site `fetch` that sets one needs a CORS
/// preflight keymeter never grants to its own cookie.
pub const CSRF_HEADER: &str = "x-keymeter-csrf";

/// Errors one response carries at most; past it, one more says how many
/// were left out (10,000 unused variables would otherwise make a 1 MB list).
const MAX_ERRORS: usize = 20;

#[derive(Clone)]
pub struct Endpoint {
    pub schema: KeymeterSchema,
    pub metrics: Arc<Metrics>,
    pub documents: Arc<Documents>,
    pub trust_forwarded_for: bool,
    pub max_body_bytes: usize,
    /// How long a client has to send the body once its headers are in.
    pub body_timeout: Duration,
    /// The origins of keymeter's own pages (`Config::page_origins`).
    pub page_origins: Arc<[String]>,
    /// Browsers reach keymeter over https: its cookies are `__Host-` ones.
    pub secure_cookies: bool,
}

pub async fn post(
    State(endpoint): State<Endpoint>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: axum::extract::Request,
) -> Response {
    match endpoint.answer(peer, request).await {
        Ok(response) => GraphQLResponse::from(response).into_response(),
        Err(refusal) => refusal.into_response(),
    }
}

impl Endpoint {
    async fn answer(
        &self,
        peer: SocketAddr,
        request: axum::extract::Request,
    ) -> Result<GraphqlResponse, Refusal> {
        let (parts, body) = request.into_parts();
        let (auth, page) = self.authenticate(&parts.headers)?;
        require_json(&parts.headers)?;
        let body = self.read_body(&parts.headers, body).await?;
        let mut request = parse_request(&body)?;
        if let Err(refused) = self.documents.prepare(&mut request).await {
            return Ok(bad_request(refused));
        }
        let client = client_address(&parts.headers, peer, self.trust_forwarded_for);
        let operation = request.operation_name.clone();
        let logged = match operation.as_deref() {
            Some(name) if is_plain_name(name) => name,
            Some(_) => "(not a plain name)",
            None => "(anonymous)",
        };
        let span = tracing::debug_span!("graphql", operation = logged);
        let logged: Arc<str> = Arc::from(logged);
        let request = request
            .data(auth)
            .data(page)
            .data(Client::new(client, &parts.headers))
            .data(SignInBrowser(
                Cookie::SignIn.read(&parts.headers, self.secure_cookies),
            ));
        let ran = RanOperation::default();
        let request = request.data(ran.clone());
        let started = Instant::now();
        let execute = self.schema.execute(request).instrument(span);
        let mut response = OPERATION.scope(logged, execute).await;
        self.metrics.graphql_request(ran.get(), started.elapsed());
        for error in &mut response.errors {
            default_error_code(error);
        }
        cap_errors(&mut response.errors);
        Ok(response)
    }

    /// Whom the request speaks for. A bearer token always wins, so API
    /// clients are unaffected; the session cookie counts only on a request
    /// proven to come from keymeter's own pages, else it is ignored (the
    /// request is signed out), so no other site can act with it.
    fn authenticate(&self, headers: &HeaderMap) -> Result<(RequestAuth, PageRequest), Refusal> {
        let page = PageRequest {
            from_own_page: self.is_own_page(headers),
            secure: self.secure_cookies,
        };
        let token = match bearer_token(headers)? {
            Some(token) => Some(token),
            None if page.from_own_page => Cookie::Session
                .read(headers, self.secure_cookies)
                .filter(|token| !token.is_empty()),
            None => None,
        };
        Ok((RequestAuth::new(token), page))
    }

    /// `Origin` is one of keymeter's own and the CSRF header is set: both,
    /// since an old or odd browser may omit `Origin` on same-origin calls
    /// but no browser lets another site forge it.
    fn is_own_page(&self, headers: &HeaderMap) -> bool {
        let csrf = headers.get(CSRF_HEADER).is_some_and(|value| value == "1");
        let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
        csrf && origin.is_some_and(|origin| self.page_origins.iter().any(|own| own == origin))
    }

    /// The whole body, if it arrives within the limit and in time. A body
    /// announced too large is refused before a byte of it is read; one sent
    /// in chunks, as soon as it passes the limit.
    async fn read_body(&self, headers: &HeaderMap, body: Body) -> Result<Bytes, Refusal> {
        const TOO_LARGE: Refusal = Refusal::closing(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the request body is too large",
        );
        let announced = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
        if announced.is_some_and(|length| length > self.max_body_bytes as u64) {
            return Err(TOO_LARGE);
        }
        let limited = http_body_util::Limited::new(body, self.max_body_bytes);
        match tokio::time::timeout(self.body_timeout, limited.collect()).await {
            Err(_) => Err(Refusal::closing(
                StatusCode::REQUEST_TIMEOUT,
                "the request body did not arrive in time",
            )),
            Ok(Err(err)) if err.is::<http_body_util::LengthLimitError>() => Err(TOO_LARGE),
            Ok(Err(_)) => Err(Refusal::closing(
                StatusCode::BAD_REQUEST,
                "the request body could not be read",
            )),
            Ok(Ok(collected)) => Ok(collected.to_bytes()),
        }
    }
}

/// Only JSON is accepted: a form or `text/plain` POST is what any web page
/// can make a browser send without asking (no CORS preflight).
fn require_json(headers: &HeaderMap) -> Result<(), Refusal> {
    let essence = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(|value| value.split(';').next().unwrap_or("").trim());
    match essence {
        Some(essence) if essence.eq_ignore_ascii_case("application/json") => Ok(()),
        _ => Err(Refusal::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the request as Content-Type: application/json",
        )),
    }
}

fn parse_request(body: &[u8]) -> Result<async_graphql::Request, Refusal> {
    // JSON text is UTF-8 (RFC 8259 §8.1), in an ignored field too, which
    // serde would otherwise skip over unchecked.
    if std::str::from_utf8(body).is_err() {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "the body is not valid JSON: it is not UTF-8",
        ));
    }
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "batched requests are not accepted: send one operation per request",
        ));
    }
    serde_json::from_slice(body).map_err(|err| {
        let message = if err.is_data() {
            "the body must be a JSON object with a string `query`, and optionally an object \
             `variables` and a string `operationName`"
        } else {
            "the body is not valid JSON"
        };
        Refusal::new(StatusCode::BAD_REQUEST, message)
    })
}

fn bad_request(mut error: ServerError) -> GraphqlResponse {
    default_error_code(&mut error);
    GraphqlResponse::from_errors(vec![error])
}

/// Errors raised before any resolver runs (syntax, validation, variable
/// coercion such as a malformed UUID) carry no code of ours: they are all
/// malformed input.
fn default_error_code(error: &mut ServerError) {
    let extensions = error.extensions.get_or_insert_with(Default::default);
    if extensions.get("code").is_none() {
        extensions.set("code", "BAD_USER_INPUT");
    }
}

fn cap_errors(errors: &mut Vec<ServerError>) {
    if errors.len() <= MAX_ERRORS {
        return;
    }
    let left_out = errors.len() - MAX_ERRORS;
    errors.truncate(MAX_ERRORS);
    let mut more = ServerError::new(format!("and {left_out} more errors"), None);
    default_error_code(&mut more);
    errors.push(more);
}

/// The TCP peer, or, behind a trusted proxy, the last address it appended
/// to `X-Forwarded-For` (earlier entries are whatever the client claimed).
fn client_address(headers: &HeaderMap, peer: SocketAddr, trust_forwarded_for: bool) -> IpAddr {
    let forwarded = || {
        let value = headers.get("x-forwarded-for")?.to_str().ok()?;
        value.rsplit(',').next()?.trim().parse().ok()
    };
    trust_forwarded_for
        .then(forwarded)
        .flatten()
        .unwrap_or(peer.ip())
}

/// The bearer token, if any. Two `Authorization` headers are refused: which
/// one a proxy or the server would pick is exactly what an attacker probes.
fn bearer_token(headers: &HeaderMap) -> Result<Option<String>, Refusal> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return match headers.contains_key(header::AUTHORIZATION) {
            true => Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                "send at most one Authorization header",
            )),
            false => Ok(None),
        };
    };
    let token = value.to_str().ok().and_then(|value| {
        let (scheme, token) = value.trim().split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_owned())
            .filter(|t| !t.is_empty())
    });
    Ok(token)
}
