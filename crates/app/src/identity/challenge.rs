//! One-time SMS codes (P4, L15). A code is six digits from the operating system's
//! CSPRNG, stored only as a keyed hash bound to its challenge id, valid for
//! `code_ttl_secs` (10 minutes), used at most once, and dead after `code_max_attempts`
//! tries. Starting a challenge does the same work whether or not the number belongs to
//! an account: nothing is looked up until the code is proven.

use std::net::IpAddr;

use base64::Engine;
use custos_core::{Personal, SubjectId};
use custos_crypto::OsRng;
use custos_store::identity::{self as store, NewChallenge};
use rand_core::RngCore;
use serde::Serialize;

use super::phone::PhoneNumber;
use super::sms::SmsMessage;
use super::throttle::ip_key;
use super::Identity;
use crate::{AppError, AppResult};

/// What a challenge is for; a code proves only what its challenge was started for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengePurpose {
    /// Sign in, or sign up when the number has no account yet.
    SignIn,
    /// Prove the account's own phone again before a sensitive action.
    Reauth,
    /// Prove a new number for the account.
    NewPhone,
    /// A guardian proves their phone.
    Guardian,
}

impl ChallengePurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            ChallengePurpose::SignIn => "sign_in",
            ChallengePurpose::Reauth => "reauth",
            ChallengePurpose::NewPhone => "new_phone",
            ChallengePurpose::Guardian => "guardian",
        }
    }
}

/// The answer to starting a challenge; the same whether or not the number is registered.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Challenge {
    /// Send it back with the code.
    pub challenge_id: String,
    pub expires_in_secs: u64,
    /// When another code may be asked for the same number.
    pub resend_after_secs: u64,
}

fn code_invalid() -> AppError {
    AppError::bad(
        "code_invalid",
        "the code is wrong or belongs to another request",
    )
}

/// Six decimal digits, uniformly: `u32` values at or above the largest multiple of
/// 1,000,000 are drawn again.
fn six_digits() -> String {
    const LIMIT: u32 = u32::MAX - (u32::MAX % 1_000_000);
    loop {
        let v = OsRng.next_u32();
        if v < LIMIT {
            return format!("{:06}", v % 1_000_000);
        }
    }
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Identity {
    fn code_mac(&self, challenge_id: &str, code: &str) -> Vec<u8> {
        let mut v = challenge_id.as_bytes().to_vec();
        v.push(b':');
        v.extend_from_slice(code.as_bytes());
        self.kernel.ring.blind_index("sms-code", &v).to_vec()
    }

    fn seal_label(challenge_id: &str) -> String {
        format!("sms-challenge/{challenge_id}")
    }

    /// Issues a code for `phone` and texts it. `subject` binds the challenge to an account
    /// (re-authentication, new phone, guardian); throttles run before anything is sent.
    pub async fn start_challenge(
        &self,
        purpose: ChallengePurpose,
        phone: &PhoneNumber,
        subject: Option<SubjectId>,
        ip: Option<IpAddr>,
    ) -> AppResult<Challenge> {
        let phone_key = phone.e164().as_bytes();
        let allowed = &self.cfg.sms_allowed_country_codes;
        if !allowed.is_empty()
            && !allowed
                .iter()
                .any(|cc| phone.e164()[1..].starts_with(cc.trim_start_matches('+')))
        {
            return Err(AppError::bad(
                "phone_country_not_allowed",
                "texts cannot be sent to numbers of this country",
            ));
        }
        if let Some(ip) = ip {
            self.hit(self.limit_ip_hour(), &ip_key(ip)).await?;
        }
        if let Some(s) = subject {
            self.hit(self.limit_account_day(), s.as_bytes()).await?;
        }
        self.hit(self.limit_phone_minute(), phone_key).await?;
        self.hit(self.limit_phone_day(), phone_key).await?;
        // Last, so texts refused by another limit do not use the service's budget.
        self.hit(self.limit_global_hour(), b"").await?;

        let mut raw = [0u8; 16];
        OsRng.fill_bytes(&mut raw);
        let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        let code = Personal::new(six_digits());
        let now = self.kernel.clock.now_ms();
        let ttl_ms = i64::try_from(self.cfg.code_ttl_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        store::insert_challenge(
            &self.kernel.db,
            &NewChallenge {
                id: id.clone(),
                purpose: purpose.as_str().to_owned(),
                subject,
                phone_blind: self
                    .kernel
                    .ring
                    .blind_index(super::account::PHONE_DOMAIN, phone_key)
                    .to_vec(),
                phone_sealed: self.kernel.ring.wrap_secret(
                    &Identity::seal_label(&id),
                    phone_key,
                    &mut OsRng,
                ),
                code_mac: self.code_mac(&id, code.expose()),
                created_at_ms: now,
                expires_at_ms: now.saturating_add(ttl_ms),
            },
        )
        .await?;
        let template = match purpose {
            ChallengePurpose::Guardian => &self.cfg.sms_guardian_template,
            _ => &self.cfg.sms_template,
        };
        let text = template.replace("{code}", code.expose()).replace(
            "{minutes}",
            &self.cfg.code_ttl_secs.div_ceil(60).to_string(),
        );
        self.gateway
            .send(
                &SmsMessage {
                    to: phone.clone(),
                    text: Personal::new(text),
                },
                now,
            )
            .await
            .map_err(|e| AppError::GatewayUnavailable(e.to_string()))?;
        Ok(Challenge {
            challenge_id: id,
            expires_in_secs: self.cfg.code_ttl_secs,
            resend_after_secs: if self.cfg.sms_per_phone_per_minute > 0 {
                60
            } else {
                0
            },
        })
    }

    /// Checks a code against its challenge and consumes it; returns the number it proved.
    /// Refusals: `code_invalid` (unknown challenge, another purpose or account, wrong
    /// code), `code_expired`, `code_used`, `code_exhausted` (too many tries).
    pub async fn verify_challenge(
        &self,
        purpose: ChallengePurpose,
        challenge_id: &str,
        code: &str,
        subject: Option<SubjectId>,
        ip: Option<IpAddr>,
    ) -> AppResult<PhoneNumber> {
        if let Some(ip) = ip {
            self.hit(self.limit_verify_ip_hour(), &ip_key(ip)).await?;
        }
        if challenge_id.len() > 64 {
            return Err(code_invalid());
        }
        let db = &self.kernel.db;
        let now = self.kernel.clock.now_ms();
        let Some(row) = store::challenge(db, challenge_id).await? else {
            return Err(code_invalid());
        };
        if row.purpose != purpose.as_str() || row.subject != subject {
            return Err(code_invalid());
        }
        let max = i32::try_from(self.cfg.code_max_attempts).unwrap_or(i32::MAX);
        if !store::claim_attempt(db, challenge_id, max, now).await? {
            return Err(if row.consumed {
                AppError::bad("code_used", "this code was already used; ask for a new one")
            } else if row.expires_at_ms <= now {
                AppError::bad("code_expired", "the code has expired; ask for a new one")
            } else {
                AppError::bad("code_exhausted", "too many wrong codes; ask for a new one")
            });
        }
        let well_formed = code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit());
        if !well_formed || !ct_eq(&self.code_mac(challenge_id, code), &row.code_mac) {
            return Err(code_invalid());
        }
        if !store::consume_challenge(db, challenge_id, now).await? {
            return Err(AppError::bad(
                "code_used",
                "this code was already used; ask for a new one",
            ));
        }
        let phone = self
            .kernel
            .ring
            .unwrap_secret(&Identity::seal_label(challenge_id), &row.phone_sealed)
            .map_err(|e| AppError::Internal(format!("sealed challenge phone: {e}")))?;
        let phone = String::from_utf8(phone)
            .map_err(|_| AppError::Internal("sealed challenge phone is not text".into()))?;
        PhoneNumber::parse(&phone)
            .map_err(|_| AppError::Internal("sealed challenge phone does not parse".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits_and_vary() {
        let codes: std::collections::HashSet<String> = (0..200).map(|_| six_digits()).collect();
        assert!(codes
            .iter()
            .all(|c| c.len() == 6 && c.bytes().all(|b| b.is_ascii_digit())));
        assert!(codes.len() > 190, "200 draws from a million collide rarely");
    }

    #[test]
    fn constant_time_comparison_tells_equal_from_different() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }
}
