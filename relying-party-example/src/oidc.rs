//! The OpenID Connect side of the app, written against the `openidconnect`
//! crate the way any outside team would use it: discovery, authorization
//! request with PKCE, code exchange, ID token verification, userinfo and
//! RP-initiated logout. With `RP_USE_PAR` the request the library builds is
//! pushed to the IdP first (RFC 9126; the crate has no PAR of its own), and
//! with `RP_USE_DPOP` the library's requests go through [`DpopKey`], which
//! binds the tokens to this app's key (RFC 9449).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{anyhow, Context};
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreClaimName, CoreClaimType, CoreClientAuthMethod,
    CoreErrorResponseType, CoreGenderClaim, CoreGrantType, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm, CoreJwsSigningAlgorithm, CoreResponseMode, CoreResponseType, CoreRevocableToken,
    CoreRevocationErrorResponse, CoreSubjectIdentifierType, CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AccessTokenHash, AdditionalClaims, AdditionalProviderMetadata, AuthorizationCode, ClaimsVerificationError, Client,
    CsrfToken, EmptyExtraTokenFields, EndSessionUrl, EndpointMaybeSet, EndpointNotSet, EndpointSet, IdToken,
    IdTokenClaims, IdTokenFields, LogoutProviderMetadata, LogoutRequest, Nonce, OAuth2TokenResponse, PkceCodeChallenge,
    PkceCodeVerifier, PostLogoutRedirectUrl, ProviderMetadata, RedirectUrl, RequestTokenError,
    SignatureVerificationError, StandardErrorResponse, StandardTokenResponse, TokenResponse, UserInfoClaims,
};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::config::Config;
use crate::dpop::DpopKey;

/// ID token signature algorithms accepted. The IdP signs with ES256 by default
/// and can be configured for RS256. Listing them explicitly (instead of
/// trusting whatever the discovery document advertises) keeps `none` and the
/// HMAC algorithms out for good.
const ALLOWED_ID_TOKEN_ALGS: [CoreJwsSigningAlgorithm; 2] =
    [CoreJwsSigningAlgorithm::EcdsaP256Sha256, CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256];

/// Catches every claim the library has no typed field for (e.g. `sid`,
/// `jti`, or anything IdP-specific) so the home page can show them.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct AllOtherClaims {
    #[serde(flatten)]
    pub claims: BTreeMap<String, serde_json::Value>,
}
impl AdditionalClaims for AllOtherClaims {}

/// Discovery fields beyond the core set that this app cares about.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct ExtraProviderMetadata {
    /// RFC 9207: when true, every authorization response carries `iss` and
    /// its absence must be treated as an error (mix-up attack defence).
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: Option<bool>,
    /// RFC 9126: where authorization requests are pushed.
    #[serde(default)]
    pub pushed_authorization_request_endpoint: Option<String>,
}
impl AdditionalProviderMetadata for ExtraProviderMetadata {}

/// Discovery document with `end_session_endpoint` (RP-Initiated Logout) and
/// the RFC 9207 flag.
type RpProviderMetadata = ProviderMetadata<
    LogoutProviderMetadata<ExtraProviderMetadata>,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// An ID token whose extra claims are kept (see [`AllOtherClaims`]).
pub type RpIdToken =
    IdToken<AllOtherClaims, CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm>;

/// Verified ID token claims.
pub type RpIdTokenClaims = IdTokenClaims<AllOtherClaims, CoreGenderClaim>;

type RpTokenResponse = StandardTokenResponse<
    IdTokenFields<
        AllOtherClaims,
        EmptyExtraTokenFields,
        CoreGenderClaim,
        CoreJweContentEncryptionAlgorithm,
        CoreJwsSigningAlgorithm,
    >,
    CoreTokenType,
>;

/// `CoreClient` with [`AllOtherClaims`] instead of no additional claims. The
/// endpoint states are those produced by `from_provider_metadata`: the
/// authorization endpoint is always known, the token and userinfo endpoints
/// only if discovery listed them.
type RpClient = Client<
    AllOtherClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    RpTokenResponse,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// What was learned from discovery, ready to use.
struct Provider {
    client: RpClient,
    end_session_endpoint: Option<EndSessionUrl>,
    iss_parameter_required: bool,
    par_endpoint: Option<String>,
}

/// What must be remembered between `/login` and `/callback`.
pub struct PendingLogin {
    pub csrf_state: CsrfToken,
    nonce: Nonce,
    pkce_verifier: PkceCodeVerifier,
}

/// The outcome of a successful sign-in.
pub struct SignedIn {
    /// Kept only to send back as `id_token_hint` at logout.
    pub id_token: RpIdToken,
    pub claims: RpIdTokenClaims,
    /// The userinfo response as JSON, or why it could not be fetched; a
    /// userinfo failure is shown rather than failing the whole sign-in.
    pub userinfo: Result<serde_json::Value, String>,
}

/// The relying party's view of the IdP.
pub struct Oidc {
    issuer: openidconnect::IssuerUrl,
    http: reqwest::Client,
    config: Arc<Config>,
    /// Replaced when the IdP's signing keys change (see [`Oidc::refresh`]).
    provider: RwLock<Arc<Provider>>,
    /// This app's DPoP key, when `RP_USE_DPOP` is on.
    dpop: Option<DpopKey>,
}

impl Oidc {
    /// Runs discovery against the configured issuer. Failing here (instead of
    /// at the first sign-in) makes a wrong `RP_ISSUER` or a stopped IdP
    /// obvious right away.
    pub async fn discover(config: Arc<Config>) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            // The openidconnect docs require this: following redirects would
            // open the client up to SSRF.
            .redirect(reqwest::redirect::Policy::none())
            // Fail fast rather than leave a browser hanging if the IdP stalls.
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            // actix-web runs one single-threaded runtime per worker; a pooled
            // connection is driven by the runtime that opened it, so sharing
            // idle connections between workers is avoided. The RP makes only a
            // handful of calls per sign-in, so no pooling costs nothing.
            .pool_max_idle_per_host(0)
            .build()
            .context("cannot build the HTTP client")?;
        let provider = fetch_provider(&http, &config).await?;
        if config.use_par && provider.par_endpoint.is_none() {
            return Err(anyhow!("RP_USE_PAR is set but the IdP advertises no pushed_authorization_request_endpoint"));
        }
        let dpop = if config.use_dpop { Some(DpopKey::generate()?) } else { None };
        Ok(Oidc { issuer: config.issuer.clone(), http, config, provider: RwLock::new(Arc::new(provider)), dpop })
    }

    /// The IdP's issuer identifier.
    pub fn issuer(&self) -> &str {
        self.issuer.as_str()
    }

    /// Whether the IdP promised (RFC 9207) to always send `iss` back.
    pub fn iss_parameter_required(&self) -> bool {
        self.provider().iss_parameter_required
    }

    fn provider(&self) -> Arc<Provider> {
        self.provider.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Re-runs discovery, picking up new signing keys after the IdP rotated
    /// them. Without this the app would reject every ID token signed with a
    /// key it has not seen until it is restarted.
    async fn refresh(&self) -> anyhow::Result<Arc<Provider>> {
        let provider = Arc::new(fetch_provider(&self.http, &self.config).await?);
        *self.provider.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = provider.clone();
        Ok(provider)
    }

    /// Builds the authorization URL: code flow, PKCE S256, random `state` and
    /// `nonce`, and the configured scopes — pushed to the IdP first when
    /// `RP_USE_PAR` is on, so the browser carries only the `request_uri`.
    pub async fn begin_login(&self) -> anyhow::Result<(Url, PendingLogin)> {
        let (url, pending) = self.authorization_request();
        let provider = self.provider();
        match (&provider.par_endpoint, self.config.use_par) {
            (Some(endpoint), true) => Ok((self.push(endpoint, url).await?, pending)),
            _ => Ok((url, pending)),
        }
    }

    /// RFC 9126: posts the parameters of the URL the library built to the PAR
    /// endpoint (authenticated like the token request, with a DPoP proof when
    /// DPoP is on, which binds the code to this app's key), and returns the
    /// authorization endpoint with only `client_id` and `request_uri`.
    async fn push(&self, endpoint: &str, url: Url) -> anyhow::Result<Url> {
        let mut body = url::form_urlencoded::Serializer::new(String::new());
        body.extend_pairs(url.query_pairs());
        let mut request = openidconnect::http::Request::builder()
            .method("POST")
            .uri(endpoint)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json");
        if let Some(secret) = &self.config.client_secret {
            // RFC 6749 §2.3.1: form-encode each part, then Basic.
            let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let pair = format!("{}:{}", enc(self.config.client_id.as_str()), enc(secret.secret()));
            use base64::Engine;
            let basic = base64::engine::general_purpose::STANDARD.encode(pair);
            request = request.header("authorization", format!("Basic {basic}"));
        }
        let request = request.body(body.finish().into_bytes()).context("cannot build the PAR request")?;
        let response = match &self.dpop {
            Some(key) => key.send(&self.http, request).await.map_err(|e| anyhow!("PAR request failed: {e}"))?,
            None => {
                let (parts, body) = request.into_parts();
                let r = self
                    .http
                    .post(endpoint)
                    .headers(parts.headers)
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| anyhow!("PAR request failed: {}", error_chain(&e)))?;
                let status = r.status().as_u16();
                let bytes = r.bytes().await.context("PAR response")?.to_vec();
                openidconnect::http::Response::builder().status(status).body(bytes).context("PAR response")?
            }
        };
        let v: serde_json::Value = serde_json::from_slice(response.body()).context("the PAR response is not JSON")?;
        if response.status().as_u16() != 201 {
            return Err(anyhow!(
                "the IdP refused the pushed request: {} {}",
                v["error"].as_str().unwrap_or("?"),
                v["error_description"].as_str().unwrap_or("")
            ));
        }
        let request_uri = v["request_uri"].as_str().ok_or_else(|| anyhow!("the PAR response has no request_uri"))?;
        let mut to = url;
        to.set_query(None);
        to.query_pairs_mut()
            .append_pair("client_id", self.config.client_id.as_str())
            .append_pair("request_uri", request_uri);
        Ok(to)
    }

    /// The authorization request as the library builds it.
    fn authorization_request(&self) -> (Url, PendingLogin) {
        let provider = self.provider();
        let (pkce_challenge, pkce_verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = provider.client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in &self.config.scopes {
            request = request.add_scope(scope.clone());
        }
        let (url, csrf_state, nonce) = request.set_pkce_challenge(pkce_challenge).url();
        (url, PendingLogin { csrf_state, nonce, pkce_verifier })
    }

    /// Exchanges the authorization code, verifies the ID token and fetches
    /// userinfo. The caller has already checked `state` and `iss`.
    pub async fn finish_login(&self, code: String, pending: PendingLogin) -> anyhow::Result<SignedIn> {
        let provider = self.provider();

        // With a client secret the library authenticates with HTTP Basic
        // (client_secret_basic, its default); without one it sends only
        // client_id and relies on the PKCE verifier.
        let exchange = provider
            .client
            .exchange_code(AuthorizationCode::new(code))
            .context("the IdP's discovery document lists no token_endpoint")?
            .set_pkce_verifier(pending.pkce_verifier);
        let token_response = match &self.dpop {
            Some(key) => {
                let send = |r| key.send(&self.http, r);
                exchange.request_async(&send).await.map_err(|err| describe_token_error(&err))
            }
            None => exchange.request_async(&self.http).await.map_err(|err| describe_token_error(&err)),
        }
        .map_err(|err| anyhow!("token request failed: {err}"))?;
        // token_type is case-insensitive (RFC 6749 §7.1); the crate hands it back lower-cased.
        if self.dpop.is_some() && !token_response.token_type().as_ref().eq_ignore_ascii_case("DPoP") {
            return Err(anyhow!("DPoP is on but the IdP issued a {} token", token_response.token_type().as_ref()));
        }

        let id_token =
            token_response.id_token().ok_or_else(|| anyhow!("the token response contains no id_token"))?.clone();

        let (provider, claims) = match verify_id_token(&provider, &id_token, &pending.nonce) {
            // An unknown key id, or a known one whose key no longer verifies
            // (an IdP that regenerated its key under the same id), both mean
            // the cached JWKS may be stale: fetch it again and retry once.
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey | SignatureVerificationError::CryptoError(_),
            )) => {
                eprintln!(
                    "callback: ID token signature did not verify with the cached keys; \
                     re-fetching the IdP's discovery document and keys"
                );
                let provider = self.refresh().await?;
                let claims =
                    verify_id_token(&provider, &id_token, &pending.nonce).context("ID token verification failed")?;
                (provider, claims)
            }
            other => (provider, other.context("ID token verification failed")?),
        };

        // The at_hash check binds the access token to this ID token, so a
        // substituted access token (e.g. one issued for another user) is caught.
        if let Some(expected) = claims.access_token_hash() {
            let verifier = id_token_verifier(&provider);
            let actual = AccessTokenHash::from_token(
                token_response.access_token(),
                id_token.signing_alg().context("ID token algorithm")?,
                id_token.signing_key(&verifier).context("ID token signing key")?,
            )
            .context("cannot compute at_hash")?;
            if actual != *expected {
                return Err(anyhow!("the ID token's at_hash does not match the access token"));
            }
        }

        let userinfo = self.userinfo(&provider, &token_response, &claims).await.map_err(|err| format!("{err:#}"));
        if let Err(err) = &userinfo {
            eprintln!("callback: userinfo request failed: {err}");
        }

        Ok(SignedIn { id_token, claims, userinfo })
    }

    /// Calls the userinfo endpoint with the access token. The expected
    /// subject is passed so the library rejects a response about anyone other
    /// than the user the ID token names.
    async fn userinfo(
        &self,
        provider: &Provider,
        token_response: &RpTokenResponse,
        claims: &RpIdTokenClaims,
    ) -> anyhow::Result<serde_json::Value> {
        let request = provider
            .client
            .user_info(token_response.access_token().clone(), Some(claims.subject().clone()))
            .context("the IdP's discovery document lists no userinfo_endpoint")?;
        let info: UserInfoClaims<AllOtherClaims, CoreGenderClaim> = match &self.dpop {
            Some(key) => {
                let send = |r| key.send(&self.http, r);
                request.request_async(&send).await.map_err(|err| anyhow!("{}", error_chain(&err)))?
            }
            None => request.request_async(&self.http).await.map_err(|err| anyhow!("{}", error_chain(&err)))?,
        };
        serde_json::to_value(&info).context("cannot serialise the userinfo claims")
    }

    /// The IdP's end-session URL for RP-initiated logout, or `None` if
    /// discovery did not advertise one.
    pub fn logout_url(&self, id_token: Option<&RpIdToken>, state: CsrfToken) -> Option<Url> {
        let provider = self.provider();
        let endpoint = provider.end_session_endpoint.clone()?;
        let mut request = LogoutRequest::from(endpoint)
            // client_id lets the IdP check post_logout_redirect_uri even when
            // there is no ID token to hint with.
            .set_client_id(self.config.client_id.clone())
            .set_post_logout_redirect_uri(PostLogoutRedirectUrl::from_url(self.config.post_logout_url()))
            .set_state(state);
        if let Some(id_token) = id_token {
            request = request.set_id_token_hint(id_token);
        }
        Some(request.http_get_url())
    }
}

/// Fetches the discovery document and JWKS and builds the client.
async fn fetch_provider(http: &reqwest::Client, config: &Config) -> anyhow::Result<Provider> {
    let metadata = RpProviderMetadata::discover_async(config.issuer.clone(), http).await.map_err(|err| {
        anyhow!(
            "OpenID Connect discovery at {} failed: {}",
            config
                .issuer
                .join(".well-known/openid-configuration")
                .map(String::from)
                .unwrap_or_else(|_| config.issuer.to_string()),
            error_chain(&err)
        )
    })?;
    let end_session_endpoint = metadata.additional_metadata().end_session_endpoint.clone();
    let iss_parameter_required = metadata
        .additional_metadata()
        .additional_metadata
        .authorization_response_iss_parameter_supported
        .unwrap_or(false);
    let par_endpoint = metadata.additional_metadata().additional_metadata.pushed_authorization_request_endpoint.clone();
    let redirect = RedirectUrl::from_url(config.redirect_url()?);
    let client = RpClient::from_provider_metadata(metadata, config.client_id.clone(), config.client_secret.clone())
        .set_redirect_uri(redirect);
    Ok(Provider { client, end_session_endpoint, iss_parameter_required, par_endpoint })
}

fn id_token_verifier(provider: &Provider) -> openidconnect::IdTokenVerifier<'_, CoreJsonWebKey> {
    provider.client.id_token_verifier().set_allowed_algs(ALLOWED_ID_TOKEN_ALGS)
}

/// Checks signature, issuer, audience, expiry and nonce.
fn verify_id_token(
    provider: &Provider,
    id_token: &RpIdToken,
    nonce: &Nonce,
) -> Result<RpIdTokenClaims, ClaimsVerificationError> {
    id_token.claims(&id_token_verifier(provider), nonce).cloned()
}

/// Describes a token endpoint failure without echoing the response body,
/// which may contain tokens.
fn describe_token_error<RE, T>(err: &RequestTokenError<RE, T>) -> String
where
    RE: std::error::Error + 'static,
    T: openidconnect::ErrorResponse + 'static,
{
    match err {
        RequestTokenError::Parse(parse, _body) => {
            format!("cannot parse the token response (at `{}`)", parse.path())
        }
        other => error_chain(other),
    }
}

/// Joins an error and its sources into one line, so the root cause (such as
/// "connection refused") is visible and not just "Request failed".
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Some errors repeat their source's text in their own message.
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn additional_claims_are_kept() -> Result<(), serde_json::Error> {
        let claims: RpIdTokenClaims = serde_json::from_value(serde_json::json!({
            "iss": "http://127.0.0.1:8080",
            "aud": "client",
            "exp": 2_000_000_000,
            "iat": 1_700_000_000,
            "sub": "user-1",
            "name": "王小明",
            "acr": "urn:example:mfa",
            "amr": ["pwd", "otp"],
            "auth_time": 1_700_000_000,
            "sid": "session-9",
            "groups": ["a", "b"],
        }))?;
        assert_eq!(claims.subject().as_str(), "user-1");
        let extra = &claims.additional_claims().claims;
        assert_eq!(extra.get("sid"), Some(&serde_json::json!("session-9")));
        assert_eq!(extra.get("groups"), Some(&serde_json::json!(["a", "b"])));
        // Standard claims are not duplicated into the extras.
        assert!(!extra.contains_key("name"));
        assert!(!extra.contains_key("iss"));
        assert!(!extra.contains_key("acr"));
        Ok(())
    }

    #[test]
    fn discovery_extras_are_read() -> Result<(), serde_json::Error> {
        let metadata: RpProviderMetadata = serde_json::from_value(serde_json::json!({
            "issuer": "http://127.0.0.1:8080",
            "authorization_endpoint": "http://127.0.0.1:8080/authorize",
            "token_endpoint": "http://127.0.0.1:8080/token",
            "jwks_uri": "http://127.0.0.1:8080/jwks.json",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256", "RS256"],
            "end_session_endpoint": "http://127.0.0.1:8080/logout",
            "authorization_response_iss_parameter_supported": true,
        }))?;
        let extra = metadata.additional_metadata();
        assert_eq!(extra.end_session_endpoint.as_ref().map(|u| u.as_str()), Some("http://127.0.0.1:8080/logout"));
        assert_eq!(extra.additional_metadata.authorization_response_iss_parameter_supported, Some(true));
        Ok(())
    }
}
