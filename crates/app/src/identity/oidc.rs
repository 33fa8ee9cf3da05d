//! Third-party sign-in through OpenID Connect (P7, P15): discovery, authorization code
//! with PKCE (S256), `state` and `nonce` checked, the ID token's signature, issuer,
//! audience and expiry verified by the `openidconnect` crate.
//!
//! Linking is done from a signed-in account. Before it, the user sees which fields the
//! provider could give (nickname, avatar) and agrees to each; linking records a consent
//! to `external_login` (ledger and signed receipt) and stores, encrypted for that purpose,
//! the provider's subject identifier and only the agreed fields. Later the provider
//! signs in to the linked account. Unlinking deletes the link and what it pulled; when it
//! was the last link, the consent is withdrawn.
//!
//! A flow is bound to the browser (or client) that started it by a random binding value
//! it must present at the callback, so nobody can finish someone else's flow (login
//! CSRF); its state works once and for ten minutes.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine;
use custos_core::{ConsentMethod, Decision, Personal, SubjectId};
use custos_crypto::OsRng;
use custos_store::identity::{self as store, OidcFlow};
use custos_store::personal::Field;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use rand_core::RngCore;
use serde::{Deserialize, Serialize};

use super::profile::normalize_avatar;
use super::{Identity, SignedIn};
use crate::consent::{DecisionInput, Receipt};
use crate::{AppError, AppResult};

/// The purpose that covers everything pulled from a provider.
pub const PURPOSE: &str = "external_login";
const SUBJECT_CATEGORY: &str = "user.unique_id.pseudonymous";
const FLOW_TTL_MS: i64 = 10 * 60_000;

/// `[[identity.oidc]]` in `custos.toml`: one identity provider.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcProviderConfig {
    /// Short name used in paths (`/api/v1/auth/oidc/{name}/…`): lower-case letters,
    /// digits, `-` and `_`.
    pub name: String,
    /// The issuer URL; `/.well-known/openid-configuration` is discovered under it.
    pub issuer: String,
    pub client_id: String,
    /// The client secret, or `client_secret_file` naming a file that holds it.
    pub client_secret: Option<String>,
    pub client_secret_file: Option<PathBuf>,
    /// This server's callback URL registered at the provider.
    pub redirect_uri: String,
}

/// A field a provider may give, which the user agrees to one by one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum PullField {
    Nickname,
    Avatar,
}

impl PullField {
    pub const ALL: [PullField; 2] = [PullField::Nickname, PullField::Avatar];

    pub fn parse(s: &str) -> AppResult<PullField> {
        match s {
            "nickname" => Ok(PullField::Nickname),
            "avatar" => Ok(PullField::Avatar),
            _ => Err(AppError::bad(
                "unknown_field",
                "a provider can give `nickname` and `avatar` only",
            )),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            PullField::Nickname => "nickname",
            PullField::Avatar => "avatar",
        }
    }
    pub fn category(self) -> &'static str {
        match self {
            PullField::Nickname => "user.name",
            PullField::Avatar => "user.content.self_image",
        }
    }
}

/// The consent screen shown before linking.
#[derive(Debug, Clone, Serialize)]
pub struct OidcScreen {
    pub provider: String,
    pub purpose: String,
    pub purpose_name_en: String,
    pub purpose_name_zh: String,
    /// Always received: the provider's identifier of the user, to sign in with.
    pub always: Vec<&'static str>,
    /// Received only if agreed, each separately, with its data category.
    pub optional: Vec<(&'static str, &'static str)>,
}

/// Where to send the user, and the binding value the callback must present.
#[derive(Debug, Clone)]
pub struct OidcStart {
    pub authorize_url: String,
    /// Secret; set as the `__Host-custos-oidc` cookie or kept by the API client.
    pub binding: Personal<String>,
}

/// What a completed flow did.
#[derive(Debug)]
pub enum OidcOutcome {
    Linked {
        provider: String,
        /// The fields that were agreed to and received.
        stored: Vec<&'static str>,
        receipt: Box<Receipt>,
    },
    SignedIn(SignedIn),
}

/// The configured providers, their discovered metadata, and an HTTP client that does
/// not follow redirects (SSRF).
#[derive(Debug)]
pub struct Providers {
    configs: Vec<OidcProviderConfig>,
    secrets: HashMap<String, Personal<String>>,
    http: openidconnect::reqwest::Client,
    metadata: Mutex<HashMap<String, CoreProviderMetadata>>,
}

#[derive(Serialize, Deserialize)]
struct FlowSecrets {
    verifier: String,
    nonce: String,
}

fn random_b64() -> String {
    let mut raw = [0u8; 32];
    OsRng.fill_bytes(&mut raw);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn state_invalid() -> AppError {
    AppError::bad(
        "oidc_state_invalid",
        "this sign-in attempt is unknown, expired, already used or was started elsewhere",
    )
}

fn unavailable(e: impl std::fmt::Display) -> AppError {
    AppError::IdpUnavailable(e.to_string())
}

impl Providers {
    pub fn new(configs: Vec<OidcProviderConfig>) -> anyhow::Result<Providers> {
        let mut secrets = HashMap::new();
        for c in &configs {
            if c.name.is_empty()
                || !c
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
            {
                anyhow::bail!(
                    "[[identity.oidc]] name {:?}: use lower-case letters, digits, - and _",
                    c.name
                );
            }
            let secret = match (&c.client_secret, &c.client_secret_file) {
                (Some(s), None) => s.clone(),
                (None, Some(p)) => std::fs::read_to_string(p)
                    .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))?
                    .trim()
                    .to_owned(),
                (None, None) => String::new(),
                (Some(_), Some(_)) => anyhow::bail!(
                    "[[identity.oidc]] {}: give client_secret or client_secret_file, not both",
                    c.name
                ),
            };
            secrets.insert(c.name.clone(), Personal::new(secret));
        }
        let http = openidconnect::reqwest::ClientBuilder::new()
            .redirect(openidconnect::reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| anyhow::anyhow!("cannot build the OpenID Connect HTTP client: {e}"))?;
        Ok(Providers {
            configs,
            secrets,
            http,
            metadata: Mutex::new(HashMap::new()),
        })
    }

    fn config(&self, name: &str) -> AppResult<&OidcProviderConfig> {
        self.configs
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| AppError::bad("unknown_provider", "no such identity provider"))
    }

    pub fn names(&self) -> Vec<String> {
        self.configs.iter().map(|c| c.name.clone()).collect()
    }

    /// Discovers (once) and builds the client of a provider.
    async fn client(
        &self,
        name: &str,
    ) -> AppResult<
        CoreClient<
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointMaybeSet,
            openidconnect::EndpointMaybeSet,
        >,
    > {
        let cfg = self.config(name)?;
        let cached = self
            .metadata
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned();
        let metadata = match cached {
            Some(m) => m,
            None => {
                let issuer = IssuerUrl::new(cfg.issuer.clone())
                    .map_err(|e| AppError::Internal(format!("issuer URL of {name}: {e}")))?;
                let m = CoreProviderMetadata::discover_async(issuer, &self.http)
                    .await
                    .map_err(|e| unavailable(format!("discovery at {name}: {e}")))?;
                self.metadata
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(name.to_owned(), m.clone());
                m
            }
        };
        let secret = self
            .secrets
            .get(name)
            .map(|s| s.expose().clone())
            .filter(|s| !s.is_empty())
            .map(ClientSecret::new);
        let redirect = RedirectUrl::new(cfg.redirect_uri.clone())
            .map_err(|e| AppError::Internal(format!("redirect URI of {name}: {e}")))?;
        Ok(CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(cfg.client_id.clone()),
            secret,
        )
        .set_redirect_uri(redirect))
    }
}

impl Identity {
    fn idp_field(provider: &str, what: &str) -> String {
        format!("idp/{provider}/{what}")
    }

    fn idp_domain(provider: &str) -> String {
        format!("idp/{provider}")
    }

    fn flow_label(state_hash: &[u8]) -> String {
        format!("oidc-flow/{}", hex::encode(state_hash))
    }

    /// What linking `provider` would pull, for the consent screen.
    pub fn oidc_screen(&self, provider: &str) -> AppResult<OidcScreen> {
        self.oidc.config(provider)?;
        let regime = self.kernel.gate.regime();
        let p = regime
            .current()
            .purpose(PURPOSE)
            .ok_or(custos_core::Denial::UnknownPurpose)?;
        Ok(OidcScreen {
            provider: provider.to_owned(),
            purpose: PURPOSE.to_owned(),
            purpose_name_en: p.name.en.clone(),
            purpose_name_zh: p.name.zh.clone(),
            always: vec![SUBJECT_CATEGORY],
            optional: PullField::ALL
                .iter()
                .map(|f| (f.as_str(), f.category()))
                .collect(),
        })
    }

    /// Starts a flow: to link `provider` to `link_to` with the agreed `fields`, or, with
    /// `link_to = None`, to sign in with an already linked provider.
    pub async fn oidc_start(
        &self,
        provider: &str,
        link_to: Option<SubjectId>,
        fields: &[PullField],
    ) -> AppResult<OidcStart> {
        let client = self.oidc.client(provider).await?;
        if let Some(s) = link_to {
            // A minor without a guardian's consent cannot consent to linking.
            self.check_minor_decisions(
                s,
                &[DecisionInput {
                    purpose: PURPOSE.to_owned(),
                    decision: Decision::Given,
                }],
            )
            .await?;
        }
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut req = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge);
        if link_to.is_some() && !fields.is_empty() {
            req = req.add_scope(Scope::new("profile".into()));
        }
        let (url, state, nonce) = req.url();
        let state_hash = self
            .kernel
            .ring
            .blind_index("oidc-state", state.secret().as_bytes())
            .to_vec();
        let binding = random_b64();
        let secrets = serde_json::to_vec(&FlowSecrets {
            verifier: verifier.secret().clone(),
            nonce: nonce.secret().clone(),
        })
        .map_err(|e| AppError::Internal(e.to_string()))?;
        let now = self.kernel.clock.now_ms();
        let mut agreed: Vec<&str> = fields.iter().map(|f| f.as_str()).collect();
        agreed.dedup();
        store::insert_oidc_flow(
            &self.kernel.db,
            &OidcFlow {
                secrets_sealed: self.kernel.ring.wrap_secret(
                    &Identity::flow_label(&state_hash),
                    &secrets,
                    &mut OsRng,
                ),
                state_hash,
                provider: provider.to_owned(),
                subject: link_to,
                binding_hash: self
                    .kernel
                    .ring
                    .blind_index("oidc-binding", binding.as_bytes())
                    .to_vec(),
                fields: agreed.join(","),
                expires_at_ms: now + FLOW_TTL_MS,
            },
        )
        .await?;
        Ok(OidcStart {
            authorize_url: url.to_string(),
            binding: Personal::new(binding),
        })
    }

    /// Finishes a flow at the callback: exchanges the code (with the PKCE verifier),
    /// verifies the ID token (signature, issuer, audience, expiry, nonce), then links or
    /// signs in.
    pub async fn oidc_finish(
        &self,
        provider: &str,
        code: &str,
        state: &str,
        binding: &str,
    ) -> AppResult<OidcOutcome> {
        let k = &self.kernel;
        let state_hash = k.ring.blind_index("oidc-state", state.as_bytes()).to_vec();
        let flow = store::take_oidc_flow(&k.db, &state_hash)
            .await?
            .ok_or_else(state_invalid)?;
        let expected = k.ring.blind_index("oidc-binding", binding.as_bytes());
        if flow.provider != provider
            || flow.expires_at_ms <= k.clock.now_ms()
            || flow.binding_hash != expected
        {
            return Err(state_invalid());
        }
        let secrets: FlowSecrets = serde_json::from_slice(
            &k.ring
                .unwrap_secret(&Identity::flow_label(&state_hash), &flow.secrets_sealed)
                .map_err(|e| AppError::Internal(format!("sealed flow: {e}")))?,
        )
        .map_err(|e| AppError::Internal(format!("sealed flow: {e}")))?;
        let client = self.oidc.client(provider).await?;
        let token = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| AppError::Internal(format!("token endpoint of {provider}: {e}")))?
            .set_pkce_verifier(PkceCodeVerifier::new(secrets.verifier))
            .request_async(&self.oidc.http)
            .await
            .map_err(|e| match e {
                openidconnect::RequestTokenError::ServerResponse(_) => AppError::bad(
                    "oidc_code_refused",
                    "the provider refused the authorization code",
                ),
                other => unavailable(format!("token request to {provider}: {other}")),
            })?;
        let id_token = token
            .id_token()
            .ok_or_else(|| AppError::bad("id_token_invalid", "the provider sent no ID token"))?;
        let claims = id_token
            .claims(&client.id_token_verifier(), &Nonce::new(secrets.nonce))
            .map_err(|e| {
                tracing::warn!(provider, error = %e, "ID token refused");
                AppError::bad("id_token_invalid", "the provider's ID token did not verify")
            })?;
        // The access token must be the one the ID token was issued with, when it says so.
        if let Some(expected) = claims.access_token_hash() {
            let verifier = client.id_token_verifier();
            let actual = id_token
                .signing_alg()
                .ok()
                .zip(id_token.signing_key(&verifier).ok())
                .and_then(|(alg, key)| {
                    AccessTokenHash::from_token(token.access_token(), alg, key).ok()
                });
            if actual.as_ref() != Some(expected) {
                return Err(AppError::bad(
                    "id_token_invalid",
                    "the access token does not match the ID token",
                ));
            }
        }
        let sub = claims.subject().as_str().to_owned();
        let domain = Identity::idp_domain(provider);
        let linked = k.personal.find(&domain, sub.as_bytes()).await?;
        let Some(subject) = flow.subject else {
            // Sign-in: only a linked identity signs in; nothing is created or pulled.
            let subject = linked.ok_or_else(|| {
                AppError::bad(
                    "identity_not_linked",
                    "this account at the provider is not linked; sign in with your phone and link it first",
                )
            })?;
            return Ok(OidcOutcome::SignedIn(SignedIn {
                session: self.create_session(subject, false).await?,
                created: false,
            }));
        };
        if linked.is_some_and(|s| s != subject) {
            return Err(AppError::bad(
                "identity_linked_elsewhere",
                "this account at the provider is linked to another account",
            ));
        }
        let receipt = k
            .record_decisions(
                subject,
                false,
                &[DecisionInput {
                    purpose: PURPOSE.to_owned(),
                    decision: Decision::Given,
                }],
                ConsentMethod::Dialog,
            )
            .await?;
        let ctx = self.gate_context(subject).await?;
        let sub_bytes = Personal::new(sub.clone().into_bytes());
        k.store_field(
            subject,
            PURPOSE,
            &Field::new(&Identity::idp_field(provider, "subject"), SUBJECT_CATEGORY),
            &sub_bytes,
            &ctx,
        )
        .await?;
        let permit = k.permit(subject, PURPOSE, &[SUBJECT_CATEGORY], &ctx)?;
        k.personal
            .put_lookup(
                &permit,
                SUBJECT_CATEGORY,
                &domain,
                &sub_bytes,
                k.clock.now_ms(),
            )
            .await?;
        let agreed: Vec<PullField> = flow
            .fields
            .split(',')
            .filter_map(|f| PullField::parse(f).ok())
            .collect();
        let mut stored = Vec::new();
        if agreed.contains(&PullField::Nickname) {
            let nick = claims
                .nickname()
                .and_then(|n| n.get(None))
                .map(|n| n.as_str().to_owned())
                .or_else(|| claims.preferred_username().map(|n| n.as_str().to_owned()));
            if let Some(n) = nick.and_then(|n| super::profile::Nickname::parse(&n).ok()) {
                let f = PullField::Nickname;
                k.store_field(
                    subject,
                    PURPOSE,
                    &Field::new(&Identity::idp_field(provider, f.as_str()), f.category()),
                    &Personal::new(n.as_str().as_bytes().to_vec()),
                    &ctx,
                )
                .await?;
                stored.push(f.as_str());
            }
        }
        if agreed.contains(&PullField::Avatar) {
            let url = claims
                .picture()
                .and_then(|p| p.get(None))
                .map(|p| p.as_str().to_owned());
            if let Some(png) = match url {
                Some(u) => self.fetch_avatar(&u).await,
                None => None,
            } {
                let f = PullField::Avatar;
                k.store_field(
                    subject,
                    PURPOSE,
                    &Field::new(&Identity::idp_field(provider, f.as_str()), f.category()),
                    &Personal::new(png),
                    &ctx,
                )
                .await?;
                stored.push(f.as_str());
            }
        }
        Ok(OidcOutcome::Linked {
            provider: provider.to_owned(),
            stored,
            receipt: Box::new(receipt),
        })
    }

    /// Fetches and re-encodes a provider's picture; a failure just means no avatar.
    /// Only `https://` URLs whose host resolves to public addresses are fetched (the
    /// connection is pinned to the checked address, so a second lookup cannot point
    /// it elsewhere), without redirects, reading at most `avatar_max_bytes` whatever
    /// `Content-Length` says. `avatar_fetch_allow_insecure` (tests only) lifts the
    /// scheme and address checks.
    pub async fn fetch_avatar(&self, url: &str) -> Option<Vec<u8>> {
        let max = self.cfg.avatar_max_bytes;
        let insecure = self.cfg.avatar_fetch_allow_insecure;
        let parsed = reqwest::Url::parse(url).ok()?;
        let allowed = match parsed.scheme() {
            "https" => true,
            "http" => insecure,
            _ => false,
        };
        if !allowed {
            return None;
        }
        let host = parsed.host_str()?.to_owned();
        let port = parsed.port_or_known_default()?;
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10));
        if !insecure {
            let addrs: Vec<std::net::SocketAddr> =
                tokio::net::lookup_host((host.trim_matches(['[', ']']), port))
                    .await
                    .ok()?
                    .collect();
            let first = *addrs.first()?;
            if addrs.iter().any(|a| !is_public(a.ip())) {
                return None;
            }
            builder = builder.resolve(&host, first);
        }
        let client = builder.build().ok()?;
        let mut resp = client.get(parsed).send().await.ok()?;
        if !resp.status().is_success() || resp.content_length().is_some_and(|n| n > max as u64) {
            return None;
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.ok()? {
            if bytes.len() + chunk.len() > max {
                return None;
            }
            bytes.extend_from_slice(&chunk);
        }
        tokio::task::spawn_blocking(move || normalize_avatar(&bytes, max).ok())
            .await
            .ok()
            .flatten()
    }

    /// The providers linked to an account, with the fields pulled from each.
    pub async fn oidc_links(&self, subject: SubjectId) -> AppResult<Vec<(String, Vec<String>)>> {
        let fields = self.kernel.personal.list(subject).await?;
        let mut out = Vec::new();
        for p in self.oidc.names() {
            let prefix = format!("idp/{p}/");
            let mine: Vec<String> = fields
                .iter()
                .filter_map(|f| f.field.strip_prefix(&prefix).map(str::to_owned))
                .collect();
            if mine.iter().any(|f| f == "subject") {
                out.push((p, mine.into_iter().filter(|f| f != "subject").collect()));
            }
        }
        Ok(out)
    }

    /// Removes the link to `provider` and what it pulled; withdraws the consent when no
    /// other provider stays linked.
    pub async fn oidc_unlink(&self, subject: SubjectId, provider: &str) -> AppResult<()> {
        self.oidc.config(provider)?;
        let k = &self.kernel;
        let sub_field = Identity::idp_field(provider, "subject");
        let Some(sub) = k
            .personal
            .get(subject, &sub_field, k.clock.now_ms())
            .await?
        else {
            return Err(AppError::NotFound);
        };
        let blind = k
            .ring
            .blind_index(&Identity::idp_domain(provider), sub.expose());
        store::delete_lookup(&k.db, &Identity::idp_domain(provider), &blind, subject).await?;
        for f in ["subject", "nickname", "avatar"] {
            k.personal
                .delete(subject, &Identity::idp_field(provider, f))
                .await?;
        }
        if self.oidc_links(subject).await?.is_empty() {
            k.withdraw(subject, false, PURPOSE, ConsentMethod::Settings)
                .await?;
        }
        Ok(())
    }

    /// Deletes expired flows. Returns how many.
    pub(crate) async fn purge_oidc_flows(&self) -> AppResult<u64> {
        Ok(store::purge_oidc_flows(&self.kernel.db, self.kernel.clock.now_ms()).await?)
    }
}

/// Whether an address is one a provider's picture may be fetched from: not loopback,
/// private, link-local, unspecified, shared, documentation, multicast or broadcast.
fn is_public(ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    match ip.to_canonical() {
        IpAddr::V4(a) => {
            let o = a.octets();
            !(a.is_loopback()
                || a.is_private()
                || a.is_link_local()
                || a.is_unspecified()
                || a.is_broadcast()
                || a.is_multicast()
                || a.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1]))
                || o[0] >= 240)
        }
        IpAddr::V6(a) => {
            let seg = a.segments();
            !(a.is_loopback()
                || a.is_unspecified()
                || a.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00
                || (seg[0] & 0xffc0) == 0xfe80
                || (seg[0] == 0x2001 && seg[1] == 0x0db8))
        }
    }
}

#[cfg(test)]
mod address_tests {
    #[test]
    fn only_public_addresses_may_serve_a_providers_picture() {
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!super::is_public(bad.parse().unwrap()), "{bad}");
        }
        for good in ["1.1.1.1", "203.0.114.1", "2606:4700::1111"] {
            assert!(super::is_public(good.parse().unwrap()), "{good}");
        }
    }
}
