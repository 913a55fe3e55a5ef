//! The provider side of signing in with OpenID Connect: discovery at start,
//! authorization URLs, code exchange and ID token verification. Nothing here
//! touches the database (see `service::sign_in`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreIdTokenVerifier, CoreProviderMetadata,
};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet,
    EndpointSet, IssuerUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    TokenResponse,
};

use crate::config::ProviderSettings;
use crate::error::{Error, Result};

/// A provider answers within this or the sign-in fails: a hung provider
/// must not hold requests (or the start of the server) for long.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);

type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// One configured provider, discovered.
pub struct Provider {
    pub id: String,
    pub name: String,
    /// Its endpoints and signing keys, as last discovered.
    client: RwLock<Arc<Client>>,
    settings: ProviderSettings,
    redirect: RedirectUrl,
    /// When its signing keys were last fetched: at most once a minute.
    discovered_at: Mutex<Instant>,
}

/// How often a provider's keys may be fetched again when a token is signed
/// with one we do not know (providers rotate their keys; Google weekly).
const REDISCOVER_AT_MOST_EVERY: Duration = Duration::from_secs(60);

/// Every configured provider, by id, in the order configured.
pub struct Providers {
    http: reqwest::Client,
    providers: Vec<Provider>,
}

/// What `startSignIn` must remember for `completeSignIn`.
pub struct Authorization {
    pub url: String,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

/// Who the provider says signed in, once the ID token is verified.
#[derive(Debug, PartialEq, Eq)]
pub struct Identity {
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
}

impl Providers {
    /// Discovers every provider of `settings` (their endpoints and signing
    /// keys). Any failure is an error naming the provider, so that a
    /// misconfigured provider stops the start, not a sign-in.
    pub async fn discover(
        settings: &BTreeMap<String, ProviderSettings>,
        order: &[String],
        redirect_uri: &str,
    ) -> anyhow::Result<Self> {
        let http = http_client()?;
        let redirect = RedirectUrl::new(redirect_uri.to_owned())
            .with_context(|| format!("KEYMETER_PUBLIC_URL: {redirect_uri:?} is not a URL"))?;
        let mut providers = Vec::new();
        for id in order {
            let settings = settings
                .get(id)
                .with_context(|| format!("sign-in provider {id:?} has no settings"))?;
            let client = discover_one(&http, settings, redirect.clone())
                .await
                .with_context(|| {
                    format!(
                        "sign-in provider {id:?}: discovery at {} failed",
                        settings.issuer
                    )
                })?;
            providers.push(Provider {
                id: id.clone(),
                name: settings.name.clone(),
                client: RwLock::new(Arc::new(client)),
                settings: settings.clone(),
                redirect: redirect.clone(),
                discovered_at: Mutex::new(Instant::now()),
            });
        }
        Ok(Self { http, providers })
    }

    pub fn none() -> Self {
        Self {
            http: reqwest::Client::new(),
            providers: Vec::new(),
        }
    }

    pub fn list(&self) -> &[Provider] {
        &self.providers
    }

    /// The provider of this id; an unknown one is the caller's mistake.
    pub fn get(&self, id: &str) -> Result<&Provider> {
        self.providers
            .iter()
            .find(|provider| provider.id == id)
            // Never echoed: it is the client's text, of any length.
            .ok_or_else(|| {
                Error::bad_input("provider: no such sign-in provider; authProviders lists them")
            })
    }

    /// Exchanges the code (with the flow's PKCE verifier) and verifies the
    /// ID token against the flow's nonce. A code or token the provider or
    /// the checks refuse is INVALID_CREDENTIALS; why is logged, never the
    /// code or token itself.
    pub async fn redeem(
        &self,
        provider: &Provider,
        code: &str,
        pkce_verifier: &str,
        nonce: &str,
    ) -> Result<Identity> {
        let client = provider.client();
        let request = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|err| {
                anyhow::anyhow!("provider {} has no token endpoint: {err}", provider.id)
            })?
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_owned()));
        let response = request.request_async(&self.http).await.map_err(|err| {
            tracing::info!(provider = %provider.id, error = %err, "the provider refused the code");
            Error::InvalidCredentials
        })?;
        let id_token = response.id_token().ok_or_else(|| {
            tracing::info!(provider = %provider.id, "the token response has no ID token");
            Error::InvalidCredentials
        })?;
        let nonce = Nonce::new(nonce.to_owned());
        let verified = verified_identity(id_token, &client.id_token_verifier(), &nonce);
        if verified.is_ok() || !self.rediscover(provider).await {
            return verified.inspect_err(
                |_| tracing::info!(provider = %provider.id, "the ID token failed verification"),
            );
        }
        // Signed with keys fetched just now: a provider that rotated its keys.
        verified_identity(id_token, &provider.client().id_token_verifier(), &nonce).inspect_err(
            |_| tracing::info!(provider = %provider.id, "the ID token failed verification"),
        )
    }

    /// Fetches `provider`'s endpoints and keys again, unless that was done
    /// within the last minute; true when the keys were refreshed.
    async fn rediscover(&self, provider: &Provider) -> bool {
        {
            let mut last = provider
                .discovered_at
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if last.elapsed() < REDISCOVER_AT_MOST_EVERY {
                return false;
            }
            *last = Instant::now();
        }
        match discover_one(&self.http, &provider.settings, provider.redirect.clone()).await {
            Ok(client) => {
                *provider.client.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(client);
                true
            }
            Err(err) => {
                tracing::warn!(provider = %provider.id, error = %err, "rediscovering the provider failed");
                false
            }
        }
    }
}

impl Provider {
    fn client(&self) -> Arc<Client> {
        self.client
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A fresh authorization request: scope `openid email profile`, PKCE
    /// S256, and a state that starts with the provider id, so that the
    /// callback page can tell which provider answered without storing
    /// anything in the browser.
    pub fn authorize(&self) -> Authorization {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let state = format!("{}.{}", self.id, CsrfToken::new_random().secret());
        let state_for_url = state.clone();
        let (url, _, nonce) = self
            .client()
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                move || CsrfToken::new(state_for_url),
                Nonce::new_random,
            )
            .add_scope(Scope::new("email".to_owned()))
            .add_scope(Scope::new("profile".to_owned()))
            .set_pkce_challenge(challenge)
            .url();
        Authorization {
            url: url.into(),
            state,
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        }
    }
}

/// The provider HTTP client: bounded in time, and following no redirects,
/// so that a provider's endpoint cannot bounce our requests (with the
/// client secret) elsewhere.
fn http_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(PROVIDER_TIMEOUT)
        .connect_timeout(PROVIDER_TIMEOUT)
        .build()
        .context("building the HTTP client for sign-in providers")
}

async fn discover_one(
    http: &reqwest::Client,
    settings: &ProviderSettings,
    redirect: RedirectUrl,
) -> anyhow::Result<Client> {
    let issuer = IssuerUrl::new(settings.issuer.clone())?;
    let metadata = CoreProviderMetadata::discover_async(issuer, http).await?;
    Ok(CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(settings.client_id.clone()),
        Some(ClientSecret::new(settings.client_secret.clone())),
    )
    .set_redirect_uri(redirect))
}

/// Checks the ID token's signature (against the issuer's keys), issuer,
/// audience, expiry and nonce, and reads who signed in. Any failure is
/// INVALID_CREDENTIALS: to the client, a forged token and a stale one are
/// the same refusal.
pub fn verified_identity(
    id_token: &CoreIdToken,
    verifier: &CoreIdTokenVerifier,
    nonce: &Nonce,
) -> Result<Identity> {
    let claims = id_token.claims(verifier, nonce).map_err(|err| {
        tracing::info!(error = %err, "ID token refused");
        Error::InvalidCredentials
    })?;
    Ok(Identity {
        subject: claims.subject().as_str().to_owned(),
        email: claims.email().map(|email| email.as_str().to_owned()),
        email_verified: claims.email_verified() == Some(true),
    })
}

/// The checks a real provider cannot be made to fail (a forged signature, a
/// token for another client, a replayed nonce), on tokens signed here with
/// keys made for these tests only.
#[cfg(test)]
mod tests {
    use chrono::{Duration, Utc};
    use openidconnect::core::{
        CoreGenderClaim, CoreIdTokenClaims, CoreJsonWebKeySet, CoreJwsSigningAlgorithm,
        CoreRsaPrivateSigningKey,
    };
    use openidconnect::{
        Audience, EmptyAdditionalClaims, EndUserEmail, JsonWebKeyId, PrivateSigningKey,
        StandardClaims, SubjectIdentifier,
    };

    use super::*;

    const ISSUER: &str = "https://issuer.example";
    const CLIENT: &str = "keymeter";
    const NONCE: &str = "the-nonce";

    fn key(pem: &str) -> CoreRsaPrivateSigningKey {
        CoreRsaPrivateSigningKey::from_pem(pem, Some(JsonWebKeyId::new("k1".into()))).unwrap()
    }

    fn issuer_key() -> CoreRsaPrivateSigningKey {
        key(include_str!("../tests/fixtures/oidc-test-key.pem"))
    }

    fn verifier() -> CoreIdTokenVerifier<'static> {
        let keys = CoreJsonWebKeySet::new(vec![issuer_key().as_verification_key()]);
        CoreIdTokenVerifier::new_public_client(
            ClientId::new(CLIENT.into()),
            IssuerUrl::new(ISSUER.into()).unwrap(),
            keys,
        )
    }

    fn claims() -> CoreIdTokenClaims {
        let standard = StandardClaims::<CoreGenderClaim>::new(SubjectIdentifier::new("s1".into()))
            .set_email(Some(EndUserEmail::new("ada@example.com".into())))
            .set_email_verified(Some(true));
        CoreIdTokenClaims::new(
            IssuerUrl::new(ISSUER.into()).unwrap(),
            vec![Audience::new(CLIENT.into())],
            Utc::now() + Duration::minutes(5),
            Utc::now(),
            standard,
            EmptyAdditionalClaims {},
        )
        .set_nonce(Some(Nonce::new(NONCE.into())))
    }

    fn signed(claims: CoreIdTokenClaims, key: &CoreRsaPrivateSigningKey) -> CoreIdToken {
        CoreIdToken::new(
            claims,
            key,
            CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
            None,
            None,
        )
        .unwrap()
    }

    fn check(token: &CoreIdToken, nonce: &str) -> Result<Identity> {
        verified_identity(token, &verifier(), &Nonce::new(nonce.into()))
    }

    #[test]
    fn a_good_token_names_its_subject_and_email() {
        let identity = check(&signed(claims(), &issuer_key()), NONCE).unwrap();
        assert_eq!(
            identity,
            Identity {
                subject: "s1".into(),
                email: Some("ada@example.com".into()),
                email_verified: true,
            }
        );
    }

    #[test]
    fn forged_foreign_stale_and_replayed_tokens_are_invalid_credentials() {
        let refused = |token: CoreIdToken, nonce: &str| {
            matches!(check(&token, nonce), Err(Error::InvalidCredentials))
        };
        let other_key = key(include_str!("../tests/fixtures/oidc-other-key.pem"));
        assert!(refused(signed(claims(), &other_key), NONCE), "signature");
        let for_other_client = claims().set_audiences(vec![Audience::new("someone-else".into())]);
        assert!(
            refused(signed(for_other_client, &issuer_key()), NONCE),
            "audience"
        );
        let other_issuer =
            claims().set_issuer(IssuerUrl::new("https://evil.example".into()).unwrap());
        assert!(
            refused(signed(other_issuer, &issuer_key()), NONCE),
            "issuer"
        );
        let expired = claims().set_expiration(Utc::now() - Duration::minutes(1));
        assert!(refused(signed(expired, &issuer_key()), NONCE), "expiry");
        assert!(
            refused(signed(claims(), &issuer_key()), "another-nonce"),
            "nonce"
        );
        let without_nonce = claims().set_nonce(None);
        assert!(
            refused(signed(without_nonce, &issuer_key()), NONCE),
            "no nonce"
        );
    }
}
