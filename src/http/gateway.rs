//! The gateway endpoint (contract v3): `ANY /gateway/verify[/{path}]`, which
//! nginx `auth_request`, Caddy `forward_auth`, Traefik `ForwardAuth` and
//! Envoy `ext_authz` call with the original request's headers and decide
//! from by its status, and `POST /gateway/refund`, refundUsage over plain
//! HTTP. Both go through the same metering front door as GraphQL's
//! verifyKey and refundUsage (quota, requestId idempotency, expiry, group
//! commit), so a call through either shares the quota and the requestIds.
//!
//! The secret is read from `Authorization: Bearer` or `X-API-Key` and never
//! written anywhere: not in a header, a body or a log line.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::refusal::Refusal;
use crate::domain::text::is_unprintable;
use crate::domain::{instant, Charge, Refund, Verification, VerifyCode};
use crate::error::Error;
use crate::metering::Metering;
use crate::metrics::Metrics;

#[derive(Clone)]
pub struct Gateway {
    pub metering: Metering,
    pub metrics: Arc<Metrics>,
}

/// `ANY /gateway/verify` and `ANY /gateway/verify/{path}`. Envoy appends the
/// original path to its `path_prefix`: that path (as sent, never decoded,
/// so no path is refused) is the endpoint when no header names one.
pub async fn verify(State(gateway): State<Gateway>, uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path().strip_prefix(VERIFY).unwrap_or_default();
    gateway
        .verify(&uri, &headers, path.trim_start_matches('/'))
        .await
}

/// Where gateways ask; `/gateway/verify/{path}` too.
pub const VERIFY: &str = "/gateway/verify";

/// `POST /gateway/refund`: the RefundResult as JSON, 200 whatever its code.
pub async fn refund(State(gateway): State<Gateway>, headers: HeaderMap) -> Response {
    let asked = secret(&headers).and_then(|secret| {
        let request_id = single(&headers, REQUEST_ID)?
            .ok_or(Refusal::new(StatusCode::BAD_REQUEST, "send X-Request-Id"))?;
        let secret = secret.ok_or(Refusal::new(
            StatusCode::BAD_REQUEST,
            "send the key as Authorization: Bearer <secret> or X-API-Key",
        ))?;
        Ok((secret, request_id))
    });
    let (secret, request_id) = match asked {
        Ok(asked) => asked,
        Err(refusal) => return refusal.into_response(),
    };
    match gateway.metering.refund(&secret, &request_id).await {
        Ok(refund) => axum::Json(refund_body(&refund)).into_response(),
        Err(error) => failure(error),
    }
}

const COST: &str = "x-keymeter-cost";
const REQUEST_ID: &str = "x-request-id";
const API_KEY: &str = "x-api-key";

impl Gateway {
    async fn verify(&self, uri: &Uri, headers: &HeaderMap, path: &str) -> Response {
        let asked = secret(headers).and_then(|secret| Ok((secret, charge(headers, path)?)));
        let (secret, charge) = match asked {
            Ok(asked) => asked,
            Err(refusal) => return refusal.into_response(),
        };
        let verification = match secret {
            None => Verification::not_found(),
            Some(secret) => match self.metering.verify(&secret, charge).await {
                Ok(verification) => verification,
                Err(error) => return failure(error),
            },
        };
        self.metrics.verify_answered(verification.code);
        answer(&verification, denies_with_403(uri))
    }
}

/// The presented secret: `Authorization: Bearer <secret>` (the scheme in any
/// case), else `X-API-Key`. A header sent twice is refused: which copy a
/// proxy and keymeter would each read is what an attacker probes.
fn secret(headers: &HeaderMap) -> Result<Option<String>, Refusal> {
    let bearer = single(headers, header::AUTHORIZATION.as_str())?.and_then(|value| {
        let (scheme, token) = value.trim().split_once(' ')?;
        let token = token.trim();
        (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
    });
    match bearer {
        Some(secret) => Ok(Some(secret)),
        None => Ok(single(headers, API_KEY)?
            .map(|value| value.trim().to_owned())
            .filter(|value| !value.is_empty())),
    }
}

/// The value of a header sent at most once, as text; 400 otherwise.
fn single(headers: &HeaderMap, name: &str) -> Result<Option<String>, Refusal> {
    let mut values = headers.get_all(name).iter();
    let (first, None) = (values.next(), values.next()) else {
        return Err(Refusal::owned(
            StatusCode::BAD_REQUEST,
            format!("send the {name} header at most once"),
        ));
    };
    first
        .map(|value| {
            value.to_str().map(str::to_owned).map_err(|_| {
                Refusal::owned(
                    StatusCode::BAD_REQUEST,
                    format!("the {name} header is not visible ASCII"),
                )
            })
        })
        .transpose()
}

/// What the call costs, its requestId and its endpoint, as verifyKey takes
/// them; a malformed cost or requestId is 400.
fn charge(headers: &HeaderMap, path: &str) -> Result<Charge, Refusal> {
    let credits = match single(headers, COST)? {
        None => 1,
        Some(cost) => cost
            .trim()
            .parse::<i32>()
            .ok()
            .filter(|credits| (0..=Charge::MAX_CREDITS).contains(credits))
            .ok_or(Refusal::new(
                StatusCode::BAD_REQUEST,
                "X-Keymeter-Cost: a whole number from 0 to 1000000",
            ))?,
    };
    let request_id = single(headers, REQUEST_ID)?;
    Charge::parse(credits, Some(endpoint(headers, path)), request_id)
        .map_err(|error| Refusal::owned(StatusCode::BAD_REQUEST, error.to_string()))
}

/// The endpoint the gateway was asked for: `X-Forwarded-Uri`, else
/// `X-Original-URI`, else "/" + `path`; without its query string, without
/// characters that cannot be stored or shown, and at most 256 characters.
fn endpoint(headers: &HeaderMap, path: &str) -> String {
    let forwarded = ["x-forwarded-uri", "x-original-uri"]
        .iter()
        .find_map(|name| headers.get(*name))
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
    let uri = forwarded.unwrap_or_else(|| format!("/{path}"));
    let without_query = uri.split('?').next().unwrap_or_default();
    without_query
        .chars()
        .filter(|c| !is_unprintable(*c))
        .take(Charge::MAX_ENDPOINT_CHARS)
        .collect()
}

/// `?deny=403`: nginx's auth_request takes any status but 2xx, 401 and 403
/// for an error of its own, so every refusal answers 403 there.
fn denies_with_403(uri: &Uri) -> bool {
    uri.query()
        .is_some_and(|query| query.split('&').any(|pair| pair == "deny=403"))
}

/// The answer: its status, the X-Keymeter-* headers and the VerifyKeyResult as JSON.
fn answer(verification: &Verification, deny_with_403: bool) -> Response {
    let (status, challenge) = match verification.code {
        VerifyCode::Valid => (StatusCode::OK, false),
        VerifyCode::UsageExceeded | VerifyCode::RateLimited => {
            (StatusCode::TOO_MANY_REQUESTS, false)
        }
        VerifyCode::NotFound | VerifyCode::Revoked | VerifyCode::Expired => {
            (StatusCode::UNAUTHORIZED, true)
        }
    };
    let status = match status {
        StatusCode::OK => status,
        _ if deny_with_403 => StatusCode::FORBIDDEN,
        _ => status,
    };
    let mut response = (status, axum::Json(verify_body(verification))).into_response();
    let headers = response.headers_mut();
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    };
    set("x-keymeter-code", verification.code.name().to_owned());
    if let Some(key) = verification.key {
        set("x-keymeter-key-id", key.id.to_string());
        set("x-keymeter-key-type", key.key_type.name().to_owned());
    }
    if let Some(account) = verification.account_id {
        set("x-keymeter-account-id", account.to_string());
    }
    if let Some(remaining) = verification.remaining_credits {
        set("x-keymeter-remaining-credits", remaining.to_string());
    }
    if let Some(end) = verification.cycle_end {
        set("x-keymeter-cycle-end", instant::render(end));
    }
    if let Some(wait) = verification.retry_after_secs {
        set("retry-after", wait.to_string());
    }
    if let Some(state) = verification.rate_limit {
        set("x-ratelimit-limit", state.limit.to_string());
        set("x-ratelimit-remaining", state.remaining.to_string());
    }
    if let Some(reset) = verification.window_resets_in_secs {
        set("x-ratelimit-reset", reset.to_string());
    }
    if challenge {
        set("www-authenticate", "Bearer".to_owned());
    }
    response
}

/// The VerifyKeyResult, as GraphQL's verifyKey answers it.
fn verify_body(verification: &Verification) -> Value {
    json!({
        "valid": verification.code == VerifyCode::Valid,
        "code": verification.code.name(),
        "keyId": verification.key.map(|key| key.id),
        "keyType": verification.key.map(|key| key.key_type.name()),
        "remainingCredits": verification.remaining_credits,
        "cycleEnd": verification.cycle_end.map(instant::render),
        "accountId": verification.account_id,
        "rateLimit": verification.rate_limit.map(|state| json!({
            "limit": state.limit,
            "remaining": state.remaining,
            "reset": instant::render(state.reset),
        })),
        "retryAfterSeconds": verification.retry_after_secs,
    })
}

/// The RefundResult, as GraphQL's refundUsage answers it.
fn refund_body(refund: &Refund) -> Value {
    json!({
        "code": refund.code.name(),
        "credits": refund.credits,
        "remainingCredits": refund.remaining_credits,
    })
}

/// A call that could not be decided. The database being out of reach is
/// the only failure a gateway can act on (retry elsewhere, or later): 503.
fn failure(error: Error) -> Response {
    match error {
        Error::BadUserInput(message) => Refusal::owned(StatusCode::BAD_REQUEST, message),
        other => {
            other.log_if_internal();
            Refusal::unavailable("keymeter cannot decide now; retry")
        }
    }
    .into_response()
}
