//! Accounts (P4): a phone number proven by an SMS code signs in, or creates the account
//! when the number has none. The number is stored encrypted under the subject's key for
//! the `account` purpose, found again through a blind index, and changed only after the
//! old number (re-authentication) and the new one are both proven.

use std::net::IpAddr;

use custos_core::{AgeStatus, GateContext, SubjectId};
use custos_store::identity as store;
use custos_store::personal::Field;
use serde::Serialize;

use super::challenge::{Challenge, ChallengePurpose};
use super::phone::PhoneNumber;
use super::sessions::{NewSession, Reauthenticated};
use super::Identity;
use crate::{AppError, AppResult};

/// Blind-index domain of account phone numbers.
pub const PHONE_DOMAIN: &str = "phone";
/// The purpose under which a guardian consents for a minor.
pub const GUARDIAN_PURPOSE: &str = "minors_guardian";
const PHONE_CATEGORY: &str = "user.contact.phone_number";
const PHONE_FIELD: &str = "phone";

/// The result of a successful sign-in.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub session: NewSession,
    /// Whether this sign-in created the account.
    pub created: bool,
}

/// What the account holder sees about their account (no personal values).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AccountView {
    pub subject: SubjectId,
    pub created_at_ms: i64,
    /// `adult`, `minor` or `child`.
    pub age_band: String,
    pub guardian_consent: bool,
}

impl Identity {
    /// The gate context of an account's subject: its age band, and whether a guardian's
    /// consent (`minors_guardian`, read from the gate's view of the ledger, so a
    /// withdrawal counts at once) covers a minor.
    pub async fn gate_context(&self, subject: SubjectId) -> AppResult<GateContext<'static>> {
        let band = match store::account(&self.kernel.db, subject).await? {
            Some(a) => self.current_band(subject, a.age_band).await?,
            None => String::new(),
        };
        // Both the ledger's standing consent and the guardianship recorded by the
        // guardian's own flow: a consent to `minors_guardian` that reached the ledger any
        // other way does not unlock the account.
        let guardian = || async {
            if !store::has_guardianship(&self.kernel.db, subject).await? {
                return Ok(false);
            }
            self.kernel.fresh(subject).await?;
            Ok::<bool, AppError>(
                self.kernel
                    .gate
                    .check_named(subject, GUARDIAN_PURPOSE, &[], &GateContext::default())
                    .is_ok(),
            )
        };
        let age = match band.as_str() {
            "minor" => AgeStatus::Minor {
                guardian_consent: guardian().await?,
            },
            "child" => AgeStatus::Child {
                guardian_consent: guardian().await?,
            },
            _ => AgeStatus::Adult,
        };
        Ok(GateContext {
            age,
            ..GateContext::default()
        })
    }

    /// Texts a sign-in code. The answer and the work done are the same for a number with
    /// an account and one without.
    pub async fn start_sign_in(
        &self,
        phone: &PhoneNumber,
        ip: Option<IpAddr>,
    ) -> AppResult<Challenge> {
        self.start_challenge(ChallengePurpose::SignIn, phone, None, ip)
            .await
    }

    /// Proves the code; signs in to the number's account, creating it if needed.
    pub async fn sign_in(
        &self,
        challenge_id: &str,
        code: &str,
        ip: Option<IpAddr>,
    ) -> AppResult<SignedIn> {
        self.sign_up(challenge_id, code, None, ip).await
    }

    /// Like [`Identity::sign_in`], with the birth date sign-up asks for: when this
    /// creates the account, its age band is set from it before the session exists (an
    /// adult's date itself is not kept; a minor's is kept only once a guardian consents,
    /// like `PUT /me/birth-date`). For an existing account it is ignored: the band of an
    /// existing account changes only through [`Identity::declare_birth_date`]. An invalid
    /// date is refused before the code is checked.
    pub async fn sign_up(
        &self,
        challenge_id: &str,
        code: &str,
        birth_date: Option<&str>,
        ip: Option<IpAddr>,
    ) -> AppResult<SignedIn> {
        let band = match birth_date {
            Some(b) => Some(
                super::minors::BirthDate::parse(b, self.kernel.clock.now().date())?
                    .band(self.kernel.clock.now().date()),
            ),
            None => None,
        };
        let phone = self
            .verify_challenge(ChallengePurpose::SignIn, challenge_id, code, None, ip)
            .await?;
        let found = self
            .kernel
            .personal
            .find(PHONE_DOMAIN, phone.e164().as_bytes())
            .await?;
        let (subject, created) = match found {
            Some(s) => (s, false),
            None => self.create_account(&phone).await?,
        };
        if let (true, Some(band)) = (created, band) {
            if band != "adult" {
                store::set_age_band(&self.kernel.db, subject, band).await?;
            }
        }
        Ok(SignedIn {
            session: self.create_session(subject, true).await?,
            created,
        })
    }

    /// Creates the account of a new number. The number's lookup is claimed first: when
    /// two sign-ups of one number race, the loser signs in to the winner's account.
    async fn create_account(&self, phone: &PhoneNumber) -> AppResult<(SubjectId, bool)> {
        let subject = SubjectId::random();
        let ctx = GateContext::default();
        if !self.claim_phone(subject, phone, &ctx).await? {
            let winner = self
                .kernel
                .personal
                .find(PHONE_DOMAIN, phone.e164().as_bytes())
                .await?
                .ok_or_else(|| AppError::Internal("claimed phone has no account".into()))?;
            return Ok((winner, false));
        }
        store::create_account(&self.kernel.db, subject, self.kernel.clock.now_ms()).await?;
        self.kernel
            .store_field(
                subject,
                "account",
                &Field::new(PHONE_FIELD, PHONE_CATEGORY),
                &phone.personal_bytes(),
                &ctx,
            )
            .await?;
        Ok((subject, true))
    }

    /// Indexes `phone` for `subject` through the gate (`account` purpose) unless another
    /// account holds it. Returns whether `subject` holds it now.
    async fn claim_phone(
        &self,
        subject: SubjectId,
        phone: &PhoneNumber,
        ctx: &GateContext<'_>,
    ) -> AppResult<bool> {
        let k = &self.kernel;
        let permit = k.permit(subject, "account", &[PHONE_CATEGORY], ctx)?;
        let blind = k.ring.blind_index(PHONE_DOMAIN, phone.e164().as_bytes());
        Ok(store::claim_lookup(
            &k.db,
            &permit,
            PHONE_CATEGORY,
            PHONE_DOMAIN,
            &blind,
            k.clock.now_ms(),
        )
        .await?)
    }

    /// The account's phone number, decrypted.
    pub async fn account_phone(&self, subject: SubjectId) -> AppResult<PhoneNumber> {
        let raw = self
            .kernel
            .personal
            .get(subject, PHONE_FIELD, self.kernel.clock.now_ms())
            .await?
            .ok_or(AppError::NotFound)?;
        let text = std::str::from_utf8(raw.expose())
            .map_err(|_| AppError::Internal("stored phone is not text".into()))?;
        PhoneNumber::parse(text)
            .map_err(|_| AppError::Internal("stored phone does not parse".into()))
    }

    /// The account as its holder sees it.
    pub async fn account(&self, subject: SubjectId) -> AppResult<AccountView> {
        let a = store::account(&self.kernel.db, subject)
            .await?
            .ok_or(AppError::NotFound)?;
        let guardian_consent = matches!(
            self.gate_context(subject).await?.age,
            AgeStatus::Minor {
                guardian_consent: true
            } | AgeStatus::Child {
                guardian_consent: true
            }
        );
        Ok(AccountView {
            subject: a.subject,
            created_at_ms: a.created_at_ms,
            age_band: a.age_band,
            guardian_consent,
        })
    }

    /// Texts a code to the new number; the old one was proven by re-authentication.
    pub async fn start_phone_change(
        &self,
        proof: &Reauthenticated,
        new_phone: &PhoneNumber,
        ip: Option<IpAddr>,
    ) -> AppResult<Challenge> {
        self.start_challenge(
            ChallengePurpose::NewPhone,
            new_phone,
            Some(proof.subject()),
            ip,
        )
        .await
    }

    /// Proves the new number and moves the account to it. A number that already belongs
    /// to another account is refused (`phone_in_use`); its holder just proved it is theirs.
    pub async fn finish_phone_change(
        &self,
        proof: &Reauthenticated,
        challenge_id: &str,
        code: &str,
        ip: Option<IpAddr>,
    ) -> AppResult<()> {
        let subject = proof.subject();
        let new_phone = self
            .verify_challenge(
                ChallengePurpose::NewPhone,
                challenge_id,
                code,
                Some(subject),
                ip,
            )
            .await?;
        let k = &self.kernel;
        match k
            .personal
            .find(PHONE_DOMAIN, new_phone.e164().as_bytes())
            .await?
        {
            Some(s) if s == subject => return Ok(()),
            Some(_) => {
                return Err(AppError::bad(
                    "phone_in_use",
                    "this number belongs to another account",
                ))
            }
            None => {}
        }
        let old = self.account_phone(subject).await?;
        let ctx = self.gate_context(subject).await?;
        if !self.claim_phone(subject, &new_phone, &ctx).await? {
            return Err(AppError::bad(
                "phone_in_use",
                "this number belongs to another account",
            ));
        }
        k.store_field(
            subject,
            "account",
            &Field::new(PHONE_FIELD, PHONE_CATEGORY),
            &new_phone.personal_bytes(),
            &ctx,
        )
        .await?;
        let old_blind = k.ring.blind_index(PHONE_DOMAIN, old.e164().as_bytes());
        store::delete_lookup(&k.db, PHONE_DOMAIN, &old_blind, subject).await?;
        // Sessions signed in with the old number end; this one stays.
        store::delete_other_sessions(&k.db, subject, &proof.session().id).await?;
        Ok(())
    }

    /// Erases the account: its sessions, pending challenges and account row, then every
    /// personal field, lookup and the subject's key (crypto-shredding).
    pub async fn erase_account(&self, subject: SubjectId) -> AppResult<()> {
        // Where the erased account was a guardian, its guardianships end with it (the
        // minors are limited again until a guardian consents anew).
        if let Ok(phone) = self.account_phone(subject).await {
            let blind = self.guardian_phone_blind(&phone);
            store::delete_guardianships_of(&self.kernel.db, &blind).await?;
        }
        store::delete_account(&self.kernel.db, subject).await?;
        self.kernel.erase_subject(subject).await?;
        Ok(())
    }
}
