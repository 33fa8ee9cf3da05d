//! Minors (P36, L12). An account holder gives their birth date; it is turned into an age
//! band at once. Adults' birth dates are not kept (the band is all the service needs).
//! Under 18 the account stays limited, since the gate refuses every purpose but those
//! the law itself requires, until a guardian proves their own phone with an SMS code,
//! sees what the minor's account will use, and agrees. That agreement is a separate
//! consent to `minors_guardian`, recorded in the ledger for the minor's subject with a
//! signed receipt; only then are the birth date and the guardian's number stored,
//! encrypted under the minor's key. The guardian, signed in with that number and freshly
//! re-authenticated, can later see the minor's data, correct or delete profile fields,
//! and withdraw. Under 14 the band is `child`: the gate treats every
//! consent-based purpose of the account as needing the guardian, and `minors_guardian`
//! is declared sensitive, so the receipt says so. Withdrawing that consent limits the
//! account again at once and deletes what it allowed to be stored.

use std::net::IpAddr;

use custos_core::{AgeStatus, ConsentMethod, Decision, GateContext, Personal, SubjectId};
use custos_store::identity as store;
use custos_store::personal::Field;
use serde::Serialize;
use time::Date;

use super::account::GUARDIAN_PURPOSE;
use super::challenge::{Challenge, ChallengePurpose};
use super::phone::PhoneNumber;
use super::sessions::Reauthenticated;
use super::Identity;
use crate::consent::{DecisionInput, Receipt};
use crate::{AppError, AppResult};

const BIRTH_DATE: (&str, &str) = ("birth_date", "user.demographic.date_of_birth");
const GUARDIAN_PHONE: (&str, &str) = ("guardian_phone", "user.contact.phone_number");
/// Blind-index domain of guardians' phone numbers (apart from account phones).
const GUARDIAN_DOMAIN: &str = "guardian-phone";

/// A minor as their guardian sees them.
#[derive(Debug, Clone, Serialize)]
pub struct MinorView {
    pub subject: SubjectId,
    pub age_band: String,
    pub birth_date: Option<String>,
    pub nickname: Option<String>,
    pub has_avatar: bool,
    pub has_password: bool,
    /// Every stored field's name.
    pub fields: Vec<String>,
}

/// A birth date, parsed from `YYYY-MM-DD`.
#[derive(Debug, Clone, Copy)]
pub struct BirthDate(Date);

impl BirthDate {
    /// Parses the date; one in the future or more than 130 years back is refused.
    pub fn parse(input: &str, today: Date) -> AppResult<BirthDate> {
        let bad = || AppError::bad("invalid_birth_date", "give the birth date as YYYY-MM-DD");
        let fmt = time::macros::format_description!("[year]-[month]-[day]");
        let d = Date::parse(input.trim(), &fmt).map_err(|_| bad())?;
        if d > today || today.year() - d.year() > 130 {
            return Err(bad());
        }
        Ok(BirthDate(d))
    }

    /// Full years of age on `today`.
    pub fn age_on(&self, today: Date) -> i32 {
        let mut age = today.year() - self.0.year();
        if (today.month() as u8, today.day()) < (self.0.month() as u8, self.0.day()) {
            age -= 1;
        }
        age
    }

    /// `adult` (18 and over), `minor` (14 to 17) or `child` (under 14).
    pub fn band(&self, today: Date) -> &'static str {
        match self.age_on(today) {
            a if a >= 18 => "adult",
            a if a >= 14 => "minor",
            _ => "child",
        }
    }

    fn text(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}",
            self.0.year(),
            self.0.month() as u8,
            self.0.day()
        )
    }
}

/// What a guardian is shown before agreeing: what the minor's account will use.
#[derive(Debug, Clone, Serialize)]
pub struct GuardianScreen {
    pub age_band: String,
    /// Sensitive personal information (under 14, L12).
    pub sensitive: bool,
    /// The purposes a minor's account may be used for once the guardian agrees, with
    /// the data categories each uses; optional ones still need their own consent later.
    pub purposes: Vec<ScreenPurpose>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScreenPurpose {
    pub purpose: String,
    pub name_en: String,
    pub name_zh: String,
    pub basic: bool,
    pub categories: Vec<String>,
}

fn rank(band: &str) -> u8 {
    match band {
        "child" => 0,
        "minor" => 1,
        _ => 2,
    }
}

impl Identity {
    fn today(&self) -> Date {
        self.kernel.clock.now().date()
    }

    /// The band a minor's account has today: minors grow up. The birth date is known
    /// (stored) only after a guardian's consent; until then the declared band holds.
    pub(crate) async fn current_band(
        &self,
        subject: SubjectId,
        stored: String,
    ) -> AppResult<String> {
        if stored == "adult" {
            return Ok(stored);
        }
        let Some(text) = self.birth_date(subject).await? else {
            return Ok(stored);
        };
        let Ok(bd) = BirthDate::parse(&text, self.today()) else {
            return Ok(stored);
        };
        let now = bd.band(self.today());
        if now != stored {
            store::set_age_band(&self.kernel.db, subject, now).await?;
        }
        Ok(now.to_owned())
    }

    /// Marks, for a minor's account still waiting for a guardian, every purpose the gate
    /// refuses for that reason, so the purpose list tells the truth.
    pub async fn mark_guardian_required(
        &self,
        subject: SubjectId,
        statuses: &mut [crate::consent::PurposeStatus],
    ) -> AppResult<()> {
        let ctx = self.gate_context(subject).await?;
        if matches!(
            ctx.age,
            AgeStatus::Minor {
                guardian_consent: false
            } | AgeStatus::Child {
                guardian_consent: false
            }
        ) {
            for st in statuses.iter_mut() {
                if let Err(AppError::Denied(custos_core::Denial::GuardianConsentRequired)) =
                    self.kernel.permit(subject, &st.purpose, &[], &ctx)
                {
                    st.status = "guardian_consent_required";
                }
            }
        }
        Ok(())
    }

    /// Records the account holder's age band from their birth date. Returns the band.
    pub async fn declare_birth_date(&self, subject: SubjectId, input: &str) -> AppResult<String> {
        let bd = BirthDate::parse(input, self.today())?;
        let band = bd.band(self.today());
        let current = store::account(&self.kernel.db, subject)
            .await?
            .ok_or(AppError::NotFound)?
            .age_band;
        // Declaring a younger age is always accepted; an older one is not, once under 18
        // was declared, or the guardian's role could be dropped by a second answer.
        if current != "adult" && rank(band) > rank(&current) {
            return Err(AppError::bad(
                "birth_date_locked",
                "the age already given cannot be raised; ask support to correct it",
            ));
        }
        store::set_age_band(&self.kernel.db, subject, band).await?;
        Ok(band.to_owned())
    }

    /// Refuses decisions a minor may not make alone: giving consent to anything but the
    /// guardian's own purpose before the guardian agreed (refusals and withdrawals are
    /// always accepted).
    pub async fn check_minor_decisions(
        &self,
        subject: SubjectId,
        decisions: &[DecisionInput],
    ) -> AppResult<()> {
        check_guardian_decisions(decisions)?;
        let needs_guardian = matches!(
            self.gate_context(subject).await?.age,
            AgeStatus::Minor {
                guardian_consent: false
            } | AgeStatus::Child {
                guardian_consent: false
            }
        );
        if needs_guardian
            && decisions
                .iter()
                .any(|d| d.decision == Decision::Given && d.purpose != GUARDIAN_PURPOSE)
        {
            return Err(custos_core::Denial::GuardianConsentRequired.into());
        }
        Ok(())
    }

    /// What the guardian agrees to, from the current declaration.
    pub async fn guardian_screen(&self, subject: SubjectId) -> AppResult<GuardianScreen> {
        let a = self.account(subject).await?;
        let regime = self.kernel.gate.regime();
        let policy = regime.current();
        let purposes = policy
            .declaration()
            .purposes
            .iter()
            .filter(|p| p.id != GUARDIAN_PURPOSE)
            .map(|p| ScreenPurpose {
                purpose: p.id.clone(),
                name_en: p.name.en.clone(),
                name_zh: p.name.zh.clone(),
                basic: p.tier == custos_policy::Tier::Basic,
                categories: p.categories.clone(),
            })
            .collect();
        Ok(GuardianScreen {
            sensitive: a.age_band == "child"
                || policy
                    .purpose(GUARDIAN_PURPOSE)
                    .is_some_and(|p| p.sensitive),
            age_band: a.age_band,
            purposes,
        })
    }

    /// Texts a code to the guardian's phone. Only a minor's account asks, and not with
    /// its own number.
    pub async fn start_guardian_consent(
        &self,
        subject: SubjectId,
        guardian_phone: &PhoneNumber,
        ip: Option<IpAddr>,
    ) -> AppResult<Challenge> {
        let a = self.account(subject).await?;
        if a.age_band == "adult" {
            return Err(AppError::bad(
                "guardian_not_needed",
                "only accounts of users under 18 need a guardian's consent",
            ));
        }
        // A standing guardian's consent is not replaced by a second guardian the minor
        // picks; it ends only by its withdrawal.
        if self.guardian_consents(subject).await? {
            return Err(AppError::bad(
                "guardian_exists",
                "a guardian already consented for this account",
            ));
        }
        if self.account_phone(subject).await?.e164() == guardian_phone.e164() {
            return Err(AppError::bad(
                "guardian_phone_is_own",
                "the guardian's number must not be the account's own",
            ));
        }
        self.start_challenge(
            ChallengePurpose::Guardian,
            guardian_phone,
            Some(subject),
            ip,
        )
        .await
    }

    /// The guardian proves their phone and agrees: a separate consent to
    /// `minors_guardian` for the minor, with its signed receipt; then the birth date and
    /// the guardian's number are stored through the gate.
    pub async fn finish_guardian_consent(
        &self,
        subject: SubjectId,
        challenge_id: &str,
        code: &str,
        birth_date: &str,
        ip: Option<IpAddr>,
    ) -> AppResult<Receipt> {
        let bd = BirthDate::parse(birth_date, self.today())?;
        let band = bd.band(self.today());
        if band == "adult" {
            return Err(AppError::bad(
                "guardian_not_needed",
                "only accounts of users under 18 need a guardian's consent",
            ));
        }
        // The birth date sent here must not make the account older than the band already
        // declared (a child must not become a minor by the client's say-so).
        let current = self.account(subject).await?.age_band;
        if rank(band) > rank(&current) {
            return Err(AppError::bad(
                "birth_date_locked",
                "the age already given cannot be raised; ask support to correct it",
            ));
        }
        let guardian = self
            .verify_challenge(
                ChallengePurpose::Guardian,
                challenge_id,
                code,
                Some(subject),
                ip,
            )
            .await?;
        store::set_age_band(&self.kernel.db, subject, band).await?;
        let receipt = self
            .kernel
            .record_decisions(
                subject,
                false,
                &[DecisionInput {
                    purpose: GUARDIAN_PURPOSE.to_owned(),
                    decision: Decision::Given,
                }],
                ConsentMethod::Dialog,
            )
            .await?;
        let ctx = GateContext {
            age: if band == "child" {
                AgeStatus::Child {
                    guardian_consent: true,
                }
            } else {
                AgeStatus::Minor {
                    guardian_consent: true,
                }
            },
            ..GateContext::default()
        };
        let k = &self.kernel;
        k.store_field(
            subject,
            GUARDIAN_PURPOSE,
            &Field::new(BIRTH_DATE.0, BIRTH_DATE.1),
            &Personal::new(bd.text().into_bytes()),
            &ctx,
        )
        .await?;
        k.store_field(
            subject,
            GUARDIAN_PURPOSE,
            &Field::new(GUARDIAN_PHONE.0, GUARDIAN_PHONE.1),
            &guardian.personal_bytes(),
            &ctx,
        )
        .await?;
        let permit = k.permit(subject, GUARDIAN_PURPOSE, &[GUARDIAN_PHONE.1], &ctx)?;
        store::put_guardianship(
            &k.db,
            &permit,
            GUARDIAN_PHONE.1,
            &k.ring
                .blind_index(GUARDIAN_DOMAIN, guardian.e164().as_bytes()),
            k.clock.now_ms(),
        )
        .await?;
        Ok(receipt)
    }

    /// The guardian index of a phone number.
    pub(crate) fn guardian_phone_blind(&self, phone: &PhoneNumber) -> [u8; 16] {
        self.kernel
            .ring
            .blind_index(GUARDIAN_DOMAIN, phone.e164().as_bytes())
    }

    /// The guardian's phone index, from the guardian's own (re-authenticated) account.
    async fn guardian_blind(&self, proof: &Reauthenticated) -> AppResult<[u8; 16]> {
        let phone = self.account_phone(proof.subject()).await?;
        Ok(self
            .kernel
            .ring
            .blind_index(GUARDIAN_DOMAIN, phone.e164().as_bytes()))
    }

    /// Checks that the signed-in guardian consented for `minor` and that the consent
    /// stands; anything else is `not_found`, like a minor that does not exist.
    async fn guarded(&self, proof: &Reauthenticated, minor: SubjectId) -> AppResult<()> {
        let blind = self.guardian_blind(proof).await?;
        if !store::is_guardian(&self.kernel.db, &blind, minor).await?
            || !self.guardian_consents(minor).await?
        {
            return Err(AppError::NotFound);
        }
        Ok(())
    }

    async fn guardian_consents(&self, minor: SubjectId) -> AppResult<bool> {
        Ok(matches!(
            self.gate_context(minor).await?.age,
            AgeStatus::Minor {
                guardian_consent: true
            } | AgeStatus::Child {
                guardian_consent: true
            }
        ))
    }

    /// The minors the signed-in guardian consented for, with their data (P36). Needs a
    /// fresh proof of the guardian's phone.
    pub async fn guarded_minors(&self, proof: &Reauthenticated) -> AppResult<Vec<MinorView>> {
        let blind = self.guardian_blind(proof).await?;
        let mut out = Vec::new();
        for minor in store::minors_of(&self.kernel.db, &blind).await? {
            if !self.guardian_consents(minor).await? {
                continue;
            }
            let a = self.account(minor).await?;
            let p = self.profile(minor).await?;
            out.push(MinorView {
                subject: minor,
                age_band: a.age_band,
                birth_date: self.birth_date(minor).await?,
                nickname: p.nickname,
                has_avatar: p.has_avatar,
                has_password: p.has_password,
                fields: self
                    .kernel
                    .personal
                    .list(minor)
                    .await?
                    .into_iter()
                    .map(|f| f.field)
                    .collect(),
            });
        }
        Ok(out)
    }

    /// The guardian corrects the minor's nickname.
    pub async fn guardian_set_nickname(
        &self,
        proof: &Reauthenticated,
        minor: SubjectId,
        nickname: &super::profile::Nickname,
    ) -> AppResult<()> {
        self.guarded(proof, minor).await?;
        self.set_nickname(minor, nickname).await
    }

    /// The guardian deletes one of the minor's profile fields.
    pub async fn guardian_delete_field(
        &self,
        proof: &Reauthenticated,
        minor: SubjectId,
        field: &str,
    ) -> AppResult<()> {
        self.guarded(proof, minor).await?;
        self.delete_profile_field(minor, field).await
    }

    /// The guardian withdraws their consent: the account is limited again at once and
    /// what the consent allowed is deleted.
    pub async fn guardian_withdraw(
        &self,
        proof: &Reauthenticated,
        minor: SubjectId,
    ) -> AppResult<Receipt> {
        self.guarded(proof, minor).await?;
        let r = self
            .kernel
            .withdraw(minor, false, GUARDIAN_PURPOSE, ConsentMethod::Settings)
            .await?;
        store::delete_guardianship(&self.kernel.db, minor).await?;
        Ok(r)
    }

    /// The stored birth date (only after a guardian's consent), for the account holder.
    pub async fn birth_date(&self, subject: SubjectId) -> AppResult<Option<String>> {
        Ok(self
            .kernel
            .personal
            .get(subject, BIRTH_DATE.0, self.kernel.clock.now_ms())
            .await?
            .map(|v| String::from_utf8_lossy(v.expose()).into_owned()))
    }
}

/// Refuses giving consent to `minors_guardian` through the generic consent endpoint, for
/// every caller: only the guardian's own flow ([`Identity::finish_guardian_consent`],
/// after the guardian proved their phone) may record it, or a minor could unlock their
/// own account.
pub fn check_guardian_decisions(decisions: &[DecisionInput]) -> AppResult<()> {
    if decisions
        .iter()
        .any(|d| d.purpose == GUARDIAN_PURPOSE && d.decision == Decision::Given)
    {
        return Err(AppError::bad(
            "guardian_flow_required",
            "a guardian's consent is given only by the guardian, with a code to their phone",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn ages_count_full_years_and_give_the_band() {
        let today = date!(2026 - 06 - 15);
        let bd = |s: &str| BirthDate::parse(s, today).unwrap();
        assert_eq!(bd("2008-06-15").age_on(today), 18);
        assert_eq!(bd("2008-06-15").band(today), "adult");
        assert_eq!(bd("2008-06-16").band(today), "minor");
        assert_eq!(bd("2012-06-15").band(today), "minor");
        assert_eq!(bd("2012-06-16").band(today), "child");
        assert_eq!(bd("2024-02-29").age_on(today), 2);
    }

    #[test]
    fn impossible_birth_dates_are_refused() {
        let today = date!(2026 - 06 - 15);
        for s in ["2026-06-16", "1890-01-01", "2010-02-30", "15/06/2010", ""] {
            assert_eq!(
                BirthDate::parse(s, today).unwrap_err().code(),
                "invalid_birth_date",
                "{s}"
            );
        }
    }
}
