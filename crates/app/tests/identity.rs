//! Accounts and identity through the service API, on SQLite and PostgreSQL, with a fake
//! clock and the outbox gateway: SMS codes, throttles, sessions, phone change (P4, L15,
//! DESIGN invariants 4 and 8). The provider gateway is tested against a local stand-in.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use custos_app::config::MasterKeySource;
use custos_app::identity::profile::{NewPassword, Nickname};
use custos_app::identity::sms::{HttpGateway, Outbox, SmsGateway, SmsMessage};
use custos_app::identity::{ChallengePurpose, Identity, IdentityConfig, PhoneNumber};
use custos_app::{AppError, Config, Kernel};
use custos_core::{FakeClock, Personal};
use custos_crypto::{MasterKey, OsRng};

const PHONE: &str = "13912345678";
const PHONE_E164: &str = "+8613912345678";
const OTHER: &str = "+8613800138000";
const IP: Option<IpAddr> = Some(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7)));

struct Env {
    kernel: Arc<Kernel>,
    id: Arc<Identity>,
    clock: FakeClock,
    dir: tempfile::TempDir,
    pg: Option<(String, String)>,
}

impl Env {
    async fn open(pg: Option<(String, String)>, icfg: IdentityConfig) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let cfg =
            Config {
                data_dir: dir.path().to_path_buf(),
                database_url: pg.as_ref().map(|p| p.0.clone()).unwrap_or_else(|| {
                    format!("sqlite://{}", dir.path().join("custos.db").display())
                }),
                vault_url: pg.as_ref().map(|p| p.1.clone()).unwrap_or_else(|| {
                    format!("sqlite://{}", dir.path().join("keys.db").display())
                }),
                master_key: MasterKeySource::Inline(MasterKey::generate(&mut OsRng).to_base64()),
                policy: None,
                identity: icfg.clone(),
                ..Default::default()
            };
        let clock = FakeClock::default();
        let kernel = Kernel::open(&cfg, Arc::new(clock.clone())).await.unwrap();
        let id = Identity::open(kernel.clone(), &icfg, dir.path())
            .await
            .unwrap();
        Env {
            kernel,
            id,
            clock,
            dir,
            pg,
        }
    }
    async fn sqlite() -> Option<Env> {
        Some(Env::open(None, IdentityConfig::default()).await)
    }
    async fn postgres() -> Option<Env> {
        let data = custos_testkit::postgres_database().await?;
        let vault = custos_testkit::postgres_database().await?;
        Some(Env::open(Some((data, vault)), IdentityConfig::default()).await)
    }
    async fn finish(self) {
        self.kernel.shutdown().await;
        if let Some((a, b)) = &self.pg {
            custos_testkit::drop_postgres_database(a).await;
            custos_testkit::drop_postgres_database(b).await;
        }
    }
    fn outbox(&self) -> PathBuf {
        self.dir.path().join("sms-outbox.jsonl")
    }
    /// The code of the newest text to `e164`.
    fn last_code(&self, e164: &str) -> String {
        let entries = Outbox::read(&self.outbox());
        let e = entries
            .iter()
            .rev()
            .find(|e| e.to == e164)
            .unwrap_or_else(|| panic!("no text to the number in the outbox"));
        e.text
            .split(|c: char| !c.is_ascii_digit())
            .find(|w| w.len() == 6)
            .expect("a six-digit code in the text")
            .to_owned()
    }
    fn tick(&self, secs: i64) {
        self.clock.advance(time::Duration::seconds(secs));
    }
    /// Every byte of the data store (the outbox excluded: it is the gateway's).
    fn dump(&self) -> Vec<u8> {
        match &self.pg {
            None => std::fs::read_dir(self.dir.path())
                .unwrap()
                .flatten()
                .filter(|e| e.path() != self.outbox())
                .flat_map(|e| std::fs::read(e.path()).unwrap_or_default())
                .collect(),
            Some((data, vault)) => [data, vault].iter().flat_map(|u| pg_dump(u)).collect(),
        }
    }
}

fn pg_dump(url: &str) -> Vec<u8> {
    let out = Command::new("pg_dump")
        .arg("--dbname")
        .arg(url)
        .output()
        .expect("pg_dump runs");
    assert!(
        out.status.success(),
        "pg_dump failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn phone(s: &str) -> PhoneNumber {
    PhoneNumber::parse(s).unwrap()
}

fn code_of(e: AppError) -> &'static str {
    e.code()
}

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { if let Some(env) = super::Env::sqlite().await { super::$name(env).await } } )* }
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { if let Some(env) = super::Env::postgres().await { super::$name(env).await } } )* }
    };
}

on_both!(
    a_proven_phone_creates_one_account_and_signs_in_to_it_again,
    a_code_works_once_and_a_replay_is_refused,
    one_code_verified_many_times_at_once_signs_in_exactly_once,
    a_code_older_than_ten_minutes_is_refused,
    a_code_only_proves_the_challenge_it_was_sent_for,
    five_wrong_codes_kill_the_challenge_even_for_the_right_code,
    texts_to_one_number_are_limited_per_minute_and_per_day,
    texts_are_limited_per_client_address_and_per_account,
    starting_a_sign_in_looks_and_acts_the_same_for_known_and_unknown_numbers,
    sessions_end_when_idle_at_their_absolute_limit_and_on_logout,
    a_user_can_neither_see_nor_revoke_another_users_sessions,
    changing_the_phone_needs_a_fresh_code_to_the_old_number_and_one_to_the_new,
    phone_numbers_codes_and_tokens_never_appear_in_the_database_or_its_dump,
    an_erased_account_has_no_sessions_and_its_number_signs_up_afresh,
    the_profile_is_optional_and_each_field_is_stored_encrypted_and_removable,
    a_password_signs_in_only_with_the_right_number_and_is_throttled_per_number,
    a_minor_is_limited_until_a_guardian_proves_their_phone_and_consents,
    a_childs_guardian_consent_is_separate_sensitive_and_withdrawable,
    an_adults_birth_date_is_not_kept_and_a_declared_minor_cannot_turn_adult,
    expired_codes_sessions_throttle_events_and_texts_are_purged,
    two_sign_ups_of_one_new_number_at_once_make_one_account,
    a_guardian_signed_in_with_their_phone_sees_corrects_and_deletes_the_minors_data_and_withdraws,
    a_minor_with_a_known_birth_date_becomes_an_adult_on_their_eighteenth_birthday,
    guessing_codes_across_challenges_is_limited_per_client_address,
    a_minors_own_consent_to_minors_guardian_is_refused_and_never_unlocks_the_account,
    a_minor_can_neither_replace_their_guardian_nor_raise_their_age_through_the_guardian_flow,
    a_birth_date_given_at_sign_up_sets_the_age_band_of_the_new_account_only,
    parallel_wrong_passwords_beyond_the_limit_never_reach_verification,
    texts_go_only_to_allowed_countries_and_within_a_global_hourly_budget,
    a_guardians_text_says_it_approves_a_minors_account,
    a_password_or_phone_change_signs_the_other_sessions_out,
    erasing_a_guardians_account_ends_their_guardianships,
);

async fn sign_in(env: &Env, p: &str) -> custos_app::identity::SignedIn {
    let c = env.id.start_sign_in(&phone(p), IP).await.unwrap();
    let e164 = phone(p).e164().to_owned();
    env.id
        .sign_in(&c.challenge_id, &env.last_code(&e164), IP)
        .await
        .unwrap()
}

async fn a_proven_phone_creates_one_account_and_signs_in_to_it_again(env: Env) {
    let first = sign_in(&env, PHONE).await;
    assert!(first.created);
    let s = first.session.subject;
    let a = env.id.account(s).await.unwrap();
    assert_eq!(a.age_band, "adult");
    assert_eq!(env.id.account_phone(s).await.unwrap().e164(), PHONE_E164);
    env.tick(61);
    // The same number in another spelling reaches the same account.
    let again = sign_in(&env, "+86 139-1234-5678").await;
    assert!(!again.created);
    assert_eq!(again.session.subject, s);
    assert_ne!(again.session.id, first.session.id);
    let auth = env
        .id
        .authenticate(again.session.token.expose())
        .await
        .unwrap();
    assert_eq!(auth.subject, s);
    env.finish().await;
}

async fn a_code_works_once_and_a_replay_is_refused(env: Env) {
    let c = env.id.start_sign_in(&phone(PHONE), IP).await.unwrap();
    let code = env.last_code(PHONE_E164);
    env.id.sign_in(&c.challenge_id, &code, IP).await.unwrap();
    let replay = env
        .id
        .sign_in(&c.challenge_id, &code, IP)
        .await
        .unwrap_err();
    assert_eq!(code_of(replay), "code_used");
    env.finish().await;
}

async fn one_code_verified_many_times_at_once_signs_in_exactly_once(env: Env) {
    let c = env.id.start_sign_in(&phone(PHONE), IP).await.unwrap();
    let code = env.last_code(PHONE_E164);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (id, challenge, code) = (env.id.clone(), c.challenge_id.clone(), code.clone());
        tasks.push(tokio::spawn(async move {
            id.sign_in(&challenge, &code, IP).await
        }));
    }
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => won += 1,
            // Each attempt is counted before comparing, so late ones may find the
            // challenge out of tries rather than used: refused either way.
            Err(e) => assert!(
                ["code_used", "code_exhausted"].contains(&code_of(e)),
                "unexpected refusal"
            ),
        }
    }
    assert_eq!(
        won, 1,
        "a code is single use even under concurrent verification"
    );
    env.finish().await;
}

async fn a_code_older_than_ten_minutes_is_refused(env: Env) {
    let c = env.id.start_sign_in(&phone(PHONE), IP).await.unwrap();
    assert_eq!(c.expires_in_secs, 600);
    let code = env.last_code(PHONE_E164);
    env.tick(600);
    let late = env
        .id
        .sign_in(&c.challenge_id, &code, IP)
        .await
        .unwrap_err();
    assert_eq!(code_of(late), "code_expired");
    // Just inside the window it works.
    env.tick(1);
    let c = env.id.start_sign_in(&phone(PHONE), IP).await.unwrap();
    let code = env.last_code(PHONE_E164);
    env.tick(599);
    env.id.sign_in(&c.challenge_id, &code, IP).await.unwrap();
    env.finish().await;
}

async fn a_code_only_proves_the_challenge_it_was_sent_for(env: Env) {
    let a = env.id.start_sign_in(&phone(PHONE), IP).await.unwrap();
    let code_a = env.last_code(PHONE_E164);
    let b = env.id.start_sign_in(&phone(OTHER), IP).await.unwrap();
    let code_b = env.last_code(OTHER);
    assert_ne!(code_a, code_b, "two draws from a million rarely collide");
    let wrong = env
        .id
        .sign_in(&b.challenge_id, &code_a, IP)
        .await
        .unwrap_err();
    assert_eq!(code_of(wrong), "code_invalid");
    let unknown = env
        .id
        .sign_in("no-such-challenge", &code_a, IP)
        .await
        .unwrap_err();
    assert_eq!(code_of(unknown), "code_invalid");
    // A sign-in challenge does not re-authenticate a session, even with its own code.
    let signed = env.id.sign_in(&b.challenge_id, &code_b, IP).await.unwrap();
    let auth = env
        .id
        .authenticate(signed.session.token.expose())
        .await
        .unwrap();
    let as_reauth = env
        .id
        .finish_reauth(&auth, &a.challenge_id, &code_a, IP)
        .await
        .unwrap_err();
    assert_eq!(code_of(as_reauth), "code_invalid");
    // …and the sign-in challenge it was sent for still works.
    env.id.sign_in(&a.challenge_id, &code_a, IP).await.unwrap();
    env.finish().await;
}

async fn five_wrong_codes_kill_the_challenge_even_for_the_right_code(env: Env) {
    let c = env.id.start_sign_in(&phone(PHONE), IP).await.unwrap();
    let code = env.last_code(PHONE_E164);
    let wrong = if code == "000000" { "000001" } else { "000000" };
    for _ in 0..5 {
        let e = env
            .id
            .sign_in(&c.challenge_id, wrong, IP)
            .await
            .unwrap_err();
        assert_eq!(code_of(e), "code_invalid");
    }
    let e = env
        .id
        .sign_in(&c.challenge_id, &code, IP)
        .await
        .unwrap_err();
    assert_eq!(code_of(e), "code_exhausted");
    // Malformed input counts as a try as well and never matches.
    let c = {
        env.tick(61);
        env.id.start_sign_in(&phone(PHONE), IP).await.unwrap()
    };
    let e = env
        .id
        .sign_in(&c.challenge_id, "12345x", IP)
        .await
        .unwrap_err();
    assert_eq!(code_of(e), "code_invalid");
    env.finish().await;
}

async fn texts_to_one_number_are_limited_per_minute_and_per_day(env: Env) {
    let p = phone(PHONE);
    env.id.start_sign_in(&p, None).await.unwrap();
    let e = env.id.start_sign_in(&p, None).await.unwrap_err();
    match &e {
        AppError::Throttled {
            code,
            retry_after_secs,
        } => {
            assert_eq!(*code, "too_many_codes");
            assert_eq!(*retry_after_secs, 60);
        }
        other => panic!("expected a throttle, got {other:?}"),
    }
    // Another number is not held back by this one.
    env.id.start_sign_in(&phone(OTHER), None).await.unwrap();
    env.tick(30);
    assert_eq!(
        code_of(env.id.start_sign_in(&p, None).await.unwrap_err()),
        "too_many_codes"
    );
    env.tick(31);
    env.id.start_sign_in(&p, None).await.unwrap();
    // Ten a day: eight more at one a minute, then the eleventh is refused all day.
    for _ in 0..8 {
        env.tick(61);
        env.id.start_sign_in(&p, None).await.unwrap();
    }
    env.tick(61);
    let e = env.id.start_sign_in(&p, None).await.unwrap_err();
    assert_eq!(code_of(e), "too_many_codes");
    env.tick(12 * 3600);
    assert_eq!(
        code_of(env.id.start_sign_in(&p, None).await.unwrap_err()),
        "too_many_codes"
    );
    env.tick(12 * 3600);
    env.id.start_sign_in(&p, None).await.unwrap();
    // Refused requests sent no text.
    let texts = Outbox::read(&env.outbox());
    assert_eq!(
        texts.iter().filter(|t| t.to == PHONE_E164).count(),
        1,
        "older texts purged"
    );
    env.finish().await;
}

async fn texts_are_limited_per_client_address_and_per_account(env: Env) {
    // Thirty an hour from one address, whatever the numbers.
    for i in 0..30 {
        let p = phone(&format!("+86139000{i:05}"));
        env.id.start_sign_in(&p, IP).await.unwrap();
    }
    let e = env
        .id
        .start_sign_in(&phone("+8613900099999"), IP)
        .await
        .unwrap_err();
    assert_eq!(code_of(e), "too_many_codes");
    // Another address is not affected.
    let other_ip = Some(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)));
    let signed = {
        let c = env.id.start_sign_in(&phone(PHONE), other_ip).await.unwrap();
        env.id
            .sign_in(&c.challenge_id, &env.last_code(PHONE_E164), other_ip)
            .await
            .unwrap()
    };
    // Ten texts a day per account, even spread over hours (the per-phone limit raised
    // so that only the per-account one can refuse).
    let id = Identity::with_gateway(
        env.kernel.clone(),
        IdentityConfig {
            sms_per_phone_per_day: 100,
            ..IdentityConfig::default()
        },
        env.id.gateway.clone(),
    )
    .unwrap();
    let auth = id
        .authenticate(signed.session.token.expose())
        .await
        .unwrap();
    for _ in 0..10 {
        env.tick(3600);
        id.start_reauth(&auth, None).await.unwrap();
    }
    env.tick(3600);
    let e = id.start_reauth(&auth, None).await.unwrap_err();
    assert_eq!(code_of(e), "too_many_codes");
    // Another account on the same address is not held back by it.
    let other = sign_in(&env, OTHER).await.session;
    let other = id.authenticate(other.token.expose()).await.unwrap();
    env.tick(61);
    id.start_reauth(&other, None).await.unwrap();
    env.finish().await;
}

async fn starting_a_sign_in_looks_and_acts_the_same_for_known_and_unknown_numbers(env: Env) {
    sign_in(&env, PHONE).await;
    let known = env.id.start_sign_in(&phone(PHONE), None).await.unwrap_err();
    let unknown_first = env.id.start_sign_in(&phone(OTHER), None).await.unwrap();
    let unknown = env.id.start_sign_in(&phone(OTHER), None).await.unwrap_err();
    // Same refusal for both while throttled…
    assert_eq!(format!("{known:?}"), format!("{unknown:?}"));
    env.tick(61);
    let known = env.id.start_sign_in(&phone(PHONE), None).await.unwrap();
    // …and the same answer, but for the random id, when not.
    assert_eq!(known.expires_in_secs, unknown_first.expires_in_secs);
    assert_eq!(known.resend_after_secs, unknown_first.resend_after_secs);
    assert_eq!(known.challenge_id.len(), unknown_first.challenge_id.len());
    // Starting creates no account for the unknown number.
    assert!(env
        .kernel
        .personal
        .find("phone", OTHER.as_bytes())
        .await
        .unwrap()
        .is_none());
    env.finish().await;
}

async fn sessions_end_when_idle_at_their_absolute_limit_and_on_logout(env: Env) {
    let s = sign_in(&env, PHONE).await.session;
    let token = s.token.expose().clone();
    assert!(token.len() >= 43, "at least 256 bits, base64url");
    // Used every 29 days, it lives until day 90, not longer.
    for _ in 0..3 {
        env.tick(29 * 86_400);
        env.id.authenticate(&token).await.unwrap();
    }
    env.tick(3 * 86_400);
    assert_eq!(
        code_of(env.id.authenticate(&token).await.unwrap_err()),
        "unauthenticated"
    );
    // Idle for 30 days ends it.
    env.tick(61);
    let s = sign_in(&env, PHONE).await.session;
    env.tick(30 * 86_400);
    assert_eq!(
        code_of(env.id.authenticate(s.token.expose()).await.unwrap_err()),
        "unauthenticated"
    );
    // Logout ends it at once.
    env.tick(61);
    let s = sign_in(&env, PHONE).await.session;
    let auth = env.id.authenticate(s.token.expose()).await.unwrap();
    env.id.logout(&auth).await.unwrap();
    assert!(env.id.authenticate(s.token.expose()).await.is_err());
    // Garbage is refused the same way.
    assert!(env.id.authenticate("x").await.is_err());
    env.finish().await;
}

async fn a_user_can_neither_see_nor_revoke_another_users_sessions(env: Env) {
    let a = sign_in(&env, PHONE).await.session;
    let b = sign_in(&env, OTHER).await.session;
    let a_auth = env.id.authenticate(a.token.expose()).await.unwrap();
    let b_auth = env.id.authenticate(b.token.expose()).await.unwrap();
    let listed = env.id.list_sessions(&b_auth).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, b.id);
    assert!(listed[0].current);
    let e = env
        .id
        .revoke_session(b_auth.subject, &a.id)
        .await
        .unwrap_err();
    assert!(matches!(e, AppError::NotFound));
    env.id.authenticate(a.token.expose()).await.unwrap();
    // The owner can.
    env.id.revoke_session(a_auth.subject, &a.id).await.unwrap();
    assert!(env.id.authenticate(a.token.expose()).await.is_err());
    env.finish().await;
}

async fn changing_the_phone_needs_a_fresh_code_to_the_old_number_and_one_to_the_new(env: Env) {
    let s = sign_in(&env, PHONE).await.session;
    // Signing in with a code is itself a fresh proof, for the re-authentication window.
    let auth = env.id.authenticate(s.token.expose()).await.unwrap();
    env.id.reauthenticated(&auth).unwrap();
    env.tick(300);
    let auth = env.id.authenticate(s.token.expose()).await.unwrap();
    assert_eq!(
        code_of(env.id.reauthenticated(&auth).unwrap_err()),
        "reauthentication_required"
    );
    let c = env.id.start_reauth(&auth, IP).await.unwrap();
    let proof = env
        .id
        .finish_reauth(&auth, &c.challenge_id, &env.last_code(PHONE_E164), IP)
        .await
        .unwrap();
    // The session now carries the proof, for the re-authentication window only.
    let auth = env.id.authenticate(s.token.expose()).await.unwrap();
    env.id.reauthenticated(&auth).unwrap();
    let c = env
        .id
        .start_phone_change(&proof, &phone(OTHER), IP)
        .await
        .unwrap();
    // Someone else's code (to the old number, for another challenge) does not prove it.
    let bad = env
        .id
        .finish_phone_change(&proof, &c.challenge_id, "000000", IP)
        .await;
    assert!(bad.is_err());
    env.id
        .finish_phone_change(&proof, &c.challenge_id, &env.last_code(OTHER), IP)
        .await
        .unwrap();
    assert_eq!(
        env.id.account_phone(auth.subject).await.unwrap().e164(),
        OTHER
    );
    let k = &env.kernel;
    assert_eq!(
        k.personal.find("phone", OTHER.as_bytes()).await.unwrap(),
        Some(auth.subject)
    );
    assert_eq!(
        k.personal
            .find("phone", PHONE_E164.as_bytes())
            .await
            .unwrap(),
        None
    );
    env.tick(301);
    let auth = env.id.authenticate(s.token.expose()).await.unwrap();
    assert_eq!(
        code_of(env.id.reauthenticated(&auth).unwrap_err()),
        "reauthentication_required"
    );
    env.finish().await;
}

async fn phone_numbers_codes_and_tokens_never_appear_in_the_database_or_its_dump(env: Env) {
    let c = env.id.start_sign_in(&phone(PHONE), IP).await.unwrap();
    let code = env.last_code(PHONE_E164);
    let signed = env.id.sign_in(&c.challenge_id, &code, IP).await.unwrap();
    // A pending challenge too.
    env.tick(61);
    env.id.start_sign_in(&phone(PHONE), IP).await.unwrap();
    let pending = env.last_code(PHONE_E164);
    let dump = env.dump();
    let token = signed.session.token.expose().clone();
    for needle in [
        PHONE_E164.as_bytes(),
        PHONE.as_bytes(),
        &PHONE.as_bytes()[3..],
        format!("\"{code}\"").as_bytes(),
        format!("\"{pending}\"").as_bytes(),
        token.as_bytes(),
        signed.session.csrf_token.as_bytes(),
        b"203.0.113",
    ] {
        assert!(
            !custos_testkit::contains(&dump, needle),
            "{} found in the data store",
            String::from_utf8_lossy(needle)
        );
    }
    env.finish().await;
}

async fn an_erased_account_has_no_sessions_and_its_number_signs_up_afresh(env: Env) {
    let s = sign_in(&env, PHONE).await.session;
    env.id.erase_account(s.subject).await.unwrap();
    assert!(env.id.authenticate(s.token.expose()).await.is_err());
    assert!(matches!(
        env.id.account(s.subject).await,
        Err(AppError::NotFound)
    ));
    env.tick(61);
    let again = sign_in(&env, PHONE).await;
    assert!(again.created);
    assert_ne!(again.session.subject, s.subject);
    env.finish().await;
}

// ---------------------------------------------------------------------------------------
// Gateways (no database)
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn the_outbox_is_owner_only_and_forgets_messages_past_its_retention() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.jsonl");
    let outbox = Outbox::new(path.clone(), Duration::from_secs(600));
    let msg = SmsMessage {
        to: phone(PHONE),
        text: Personal::new("code 123456".into()),
    };
    outbox.send(&msg, 1_000).await.unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    outbox.send(&msg, 300_000).await.unwrap();
    assert_eq!(Outbox::read(&path).len(), 2);
    assert_eq!(outbox.purge(601_000 + 1).unwrap(), 1);
    assert_eq!(Outbox::read(&path).len(), 1);
    assert_eq!(outbox.purge(900_001).unwrap(), 1);
    assert!(Outbox::read(&path).is_empty());
}

/// A provider stand-in on 127.0.0.1:0 that fails its first `fail_first` calls with
/// `fail_status` (or hangs when that is 0), then accepts.
async fn provider(
    fail_first: usize,
    fail_status: u16,
) -> (
    String,
    Arc<AtomicUsize>,
    Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
) {
    use axum::http::StatusCode;
    let calls = Arc::new(AtomicUsize::new(0));
    let bodies = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (c, b) = (calls.clone(), bodies.clone());
    let app = axum::Router::new().route(
        "/send",
        axum::routing::post(move |axum::Json(v): axum::Json<serde_json::Value>| {
            let (c, b) = (c.clone(), b.clone());
            async move {
                let n = c.fetch_add(1, Ordering::SeqCst);
                b.lock().unwrap().push(v);
                if n < fail_first {
                    if fail_status == 0 {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                    }
                    return StatusCode::from_u16(fail_status)
                        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                }
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/send"), calls, bodies)
}

fn gateway(url: String, retries: u32) -> HttpGateway {
    HttpGateway::new(
        url,
        None,
        Duration::from_millis(300),
        retries,
        Duration::from_millis(20),
    )
    .unwrap()
}

fn message() -> SmsMessage {
    SmsMessage {
        to: phone(PHONE),
        text: Personal::new("验证码 654321".into()),
    }
}

#[tokio::test]
async fn the_http_gateway_posts_the_number_and_text_and_retries_passing_failures() {
    let (url, calls, bodies) = provider(2, 503).await;
    gateway(url, 2).send(&message(), 0).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let last = bodies.lock().unwrap().last().cloned().unwrap();
    assert_eq!(last["to"], PHONE_E164);
    assert_eq!(last["text"], "验证码 654321");
}

#[tokio::test]
async fn the_http_gateway_gives_up_after_its_retries_with_an_unavailable_error() {
    let (url, calls, _) = provider(usize::MAX, 500).await;
    let e = gateway(url, 2).send(&message(), 0).await.unwrap_err();
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let text = e.to_string();
    assert!(text.contains("500"), "{text}");
    assert!(!text.contains("1391234"), "no number in errors");
}

#[tokio::test]
async fn the_http_gateway_does_not_retry_a_refusal_and_does_not_hang_on_a_silent_provider() {
    // A refusal (4xx but 408 and 429) is not transient: one call only.
    let (url, calls, _) = provider(usize::MAX, 422).await;
    gateway(url, 3).send(&message(), 0).await.unwrap_err();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // A provider that never answers: three attempts of 300 ms, then an error, well under 5 s.
    let (url, calls, _) = provider(usize::MAX, 0).await;
    let started = Instant::now();
    let e = gateway(url, 2).send(&message(), 0).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(e.to_string().contains("timed out"), "{e}");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    // Nothing listening at all.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let e = gateway(format!("http://{dead}/send"), 1)
        .send(&message(), 0)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("unreachable"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_provider_makes_sign_in_answer_unavailable_not_hang() {
    let (url, _, _) = provider(usize::MAX, 502).await;
    let cfg = IdentityConfig {
        sms_gateway: "http".into(),
        sms_http_url: Some(url),
        sms_http_timeout_ms: 300,
        sms_http_retries: 1,
        sms_http_backoff_ms: 10,
        ..IdentityConfig::default()
    };
    let env = Env::open(None, cfg).await;
    let e = env.id.start_sign_in(&phone(PHONE), IP).await.unwrap_err();
    assert_eq!(code_of(e), "sms_unavailable");
    env.finish().await;
}

#[test]
fn challenge_purposes_have_distinct_names() {
    let names = [
        ChallengePurpose::SignIn,
        ChallengePurpose::Reauth,
        ChallengePurpose::NewPhone,
        ChallengePurpose::Guardian,
    ]
    .map(|p| p.as_str());
    let set: std::collections::HashSet<_> = names.iter().collect();
    assert_eq!(set.len(), names.len());
}

// ---------------------------------------------------------------------------------------
// Profile and password (P6)
// ---------------------------------------------------------------------------------------

const NICK: &str = "ZhangSan-Nick-9931";
const SECRET: &str = "violet-Harbor-1977-kite";

fn avatar_png() -> Vec<u8> {
    let img = image_rgb(96, 96);
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

fn image_rgb(w: u32, h: u32) -> image::DynamicImage {
    image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([x as u8, y as u8, 99])
    }))
}

async fn the_profile_is_optional_and_each_field_is_stored_encrypted_and_removable(env: Env) {
    let s = sign_in(&env, PHONE).await.session;
    let p = env.id.profile(s.subject).await.unwrap();
    assert_eq!(
        (p.nickname, p.has_avatar, p.has_password),
        (None, false, false)
    );
    env.id
        .set_nickname(s.subject, &Nickname::parse(NICK).unwrap())
        .await
        .unwrap();
    env.id.set_avatar(s.subject, avatar_png()).await.unwrap();
    let auth = env.id.authenticate(s.token.expose()).await.unwrap();
    let proof = env.id.reauthenticated(&auth).unwrap();
    env.id
        .set_password(&proof, &NewPassword::parse(SECRET).unwrap())
        .await
        .unwrap();
    let p = env.id.profile(s.subject).await.unwrap();
    assert_eq!(p.nickname.as_deref(), Some(NICK));
    assert!(p.has_avatar && p.has_password);
    let stored = env.id.avatar(s.subject).await.unwrap();
    assert_eq!(
        image::load_from_memory(stored.expose()).unwrap().width(),
        96
    );
    // Nothing of it is readable in the data store.
    let dump = env.dump();
    for needle in [
        NICK.as_bytes(),
        SECRET.as_bytes(),
        b"$argon2id$",
        b"\x89PNG\r\n",
    ] {
        assert!(
            !custos_testkit::contains(&dump, needle),
            "{} found in the data store",
            String::from_utf8_lossy(needle)
        );
    }
    // Each field goes on its own; another user's fields are not theirs to remove.
    let other = sign_in(&env, OTHER).await.session;
    assert!(matches!(
        env.id.delete_profile_field(other.subject, "nickname").await,
        Err(AppError::NotFound)
    ));
    env.id
        .delete_profile_field(s.subject, "nickname")
        .await
        .unwrap();
    env.id
        .delete_profile_field(s.subject, "avatar")
        .await
        .unwrap();
    let p = env.id.profile(s.subject).await.unwrap();
    assert_eq!(
        (p.nickname, p.has_avatar, p.has_password),
        (None, false, true)
    );
    assert!(matches!(
        env.id.avatar(s.subject).await,
        Err(AppError::NotFound)
    ));
    assert!(matches!(
        env.id.delete_profile_field(s.subject, "phone").await,
        Err(AppError::NotFound)
    ));
    env.finish().await;
}

async fn a_password_signs_in_only_with_the_right_number_and_is_throttled_per_number(env: Env) {
    let s = sign_in(&env, PHONE).await.session;
    let auth = env.id.authenticate(s.token.expose()).await.unwrap();
    let proof = env.id.reauthenticated(&auth).unwrap();
    env.id
        .set_password(&proof, &NewPassword::parse(SECRET).unwrap())
        .await
        .unwrap();
    let pw = |p: &str| Personal::new(p.to_owned());
    let signed = env
        .id
        .sign_in_with_password(&phone(PHONE), &pw(SECRET), IP)
        .await
        .unwrap();
    assert_eq!(signed.session.subject, s.subject);
    // A password sign-in is not a fresh proof of the phone.
    let pw_auth = env
        .id
        .authenticate(signed.session.token.expose())
        .await
        .unwrap();
    assert_eq!(
        code_of(env.id.reauthenticated(&pw_auth).unwrap_err()),
        "reauthentication_required"
    );
    // Unknown number, account without password, wrong password: one answer.
    let unknown = env
        .id
        .sign_in_with_password(&phone("+8613700000000"), &pw(SECRET), IP)
        .await;
    assert_eq!(code_of(unknown.unwrap_err()), "invalid_credentials");
    sign_in(&env, OTHER).await;
    let no_pw = env
        .id
        .sign_in_with_password(&phone(OTHER), &pw(SECRET), IP)
        .await;
    assert_eq!(code_of(no_pw.unwrap_err()), "invalid_credentials");
    for _ in 0..5 {
        let e = env
            .id
            .sign_in_with_password(&phone(PHONE), &pw("wrong-password"), IP)
            .await;
        assert_eq!(code_of(e.unwrap_err()), "invalid_credentials");
    }
    // Five failures an hour pause the number, even for the right password.
    let e = env
        .id
        .sign_in_with_password(&phone(PHONE), &pw(SECRET), IP)
        .await;
    assert_eq!(code_of(e.unwrap_err()), "too_many_attempts");
    env.tick(3601);
    env.id
        .sign_in_with_password(&phone(PHONE), &pw(SECRET), IP)
        .await
        .unwrap();
    env.finish().await;
}

// ---------------------------------------------------------------------------------------
// Minors (P36, L12)
// ---------------------------------------------------------------------------------------

const GUARDIAN: &str = "+8613600136000";

/// A birth date `years` years and a day before the fake clock's today.
fn born_years_ago(env: &Env, years: i32) -> String {
    let today = env.kernel.clock.now().date();
    let d = today
        .replace_year(today.year() - years)
        .unwrap()
        .previous_day()
        .unwrap();
    format!("{:04}-{:02}-{:02}", d.year(), d.month() as u8, d.day())
}

async fn a_minor_is_limited_until_a_guardian_proves_their_phone_and_consents(env: Env) {
    use custos_core::AgeStatus;
    let s = sign_in(&env, PHONE).await.session;
    let birth = born_years_ago(&env, 15);
    assert_eq!(
        env.id.declare_birth_date(s.subject, &birth).await.unwrap(),
        "minor"
    );
    let ctx = env.id.gate_context(s.subject).await.unwrap();
    assert_eq!(
        ctx.age,
        AgeStatus::Minor {
            guardian_consent: false
        }
    );
    // Limited: no profile, no optional consent of their own, no profiling.
    let nick = Nickname::parse("kid").unwrap();
    assert_eq!(
        code_of(env.id.set_nickname(s.subject, &nick).await.unwrap_err()),
        "guardian_consent_required"
    );
    let ads = [custos_app::consent::DecisionInput {
        purpose: "personalized_ads".into(),
        decision: custos_core::Decision::Given,
    }];
    assert_eq!(
        code_of(
            env.id
                .check_minor_decisions(s.subject, &ads)
                .await
                .unwrap_err()
        ),
        "guardian_consent_required"
    );
    assert!(env
        .kernel
        .permit(s.subject, "personalized_feed", &[], &ctx)
        .is_err());
    // The guardian's number cannot be the minor's own.
    let e = env
        .id
        .start_guardian_consent(s.subject, &phone(PHONE), IP)
        .await
        .unwrap_err();
    assert_eq!(code_of(e), "guardian_phone_is_own");
    let screen = env.id.guardian_screen(s.subject).await.unwrap();
    assert!(screen
        .purposes
        .iter()
        .any(|p| p.purpose == "personalized_ads" && !p.basic));
    let c = env
        .id
        .start_guardian_consent(s.subject, &phone(GUARDIAN), IP)
        .await
        .unwrap();
    // A wrong code does not consent.
    let bad = env
        .id
        .finish_guardian_consent(s.subject, &c.challenge_id, "000000", &birth, IP)
        .await;
    assert!(bad.is_err());
    let receipt = env
        .id
        .finish_guardian_consent(
            s.subject,
            &c.challenge_id,
            &env.last_code(GUARDIAN),
            &birth,
            IP,
        )
        .await
        .unwrap();
    // A ledger record with a signed receipt, for the minor's subject.
    let vk = custos_crypto::verifying_key_from_jwk(&env.kernel.signer.public_jwk()).unwrap();
    let payload: serde_json::Value =
        serde_json::from_slice(&custos_crypto::verify_jws(&vk, &receipt.jws).unwrap()).unwrap();
    assert_eq!(payload["piiPrincipalId"], s.subject.to_string());
    assert_eq!(
        payload["custos"]["decisions"][0]["purpose"],
        "minors_guardian"
    );
    assert_eq!(payload["sensitive"], true);
    let history = env.kernel.consent_history(s.subject).await.unwrap();
    assert_eq!(history.len(), 1);
    // No longer limited; the birth date is kept now, encrypted.
    assert_eq!(
        env.id.gate_context(s.subject).await.unwrap().age,
        AgeStatus::Minor {
            guardian_consent: true
        }
    );
    env.id.set_nickname(s.subject, &nick).await.unwrap();
    env.id.check_minor_decisions(s.subject, &ads).await.unwrap();
    assert_eq!(
        env.id.birth_date(s.subject).await.unwrap().as_deref(),
        Some(birth.as_str())
    );
    assert!(env.id.account(s.subject).await.unwrap().guardian_consent);
    let dump = env.dump();
    for needle in [
        birth.as_bytes(),
        GUARDIAN.as_bytes(),
        &GUARDIAN.as_bytes()[3..],
    ] {
        assert!(
            !custos_testkit::contains(&dump, needle),
            "{} found in the data store",
            String::from_utf8_lossy(needle)
        );
    }
    env.finish().await;
}

async fn a_childs_guardian_consent_is_separate_sensitive_and_withdrawable(env: Env) {
    use custos_core::AgeStatus;
    let s = sign_in(&env, PHONE).await.session;
    let birth = born_years_ago(&env, 10);
    assert_eq!(
        env.id.declare_birth_date(s.subject, &birth).await.unwrap(),
        "child"
    );
    let screen = env.id.guardian_screen(s.subject).await.unwrap();
    assert!(screen.sensitive);
    // L1: the guardian's consent is never bundled with another.
    let bundled = env
        .kernel
        .check_decisions(
            false,
            &[
                custos_app::consent::DecisionInput {
                    purpose: "minors_guardian".into(),
                    decision: custos_core::Decision::Given,
                },
                custos_app::consent::DecisionInput {
                    purpose: "personalized_feed".into(),
                    decision: custos_core::Decision::Given,
                },
            ],
        )
        .unwrap_err();
    assert_eq!(code_of(bundled), "separate_consent_bundled");
    let c = env
        .id
        .start_guardian_consent(s.subject, &phone(GUARDIAN), IP)
        .await
        .unwrap();
    let r = env
        .id
        .finish_guardian_consent(
            s.subject,
            &c.challenge_id,
            &env.last_code(GUARDIAN),
            &birth,
            IP,
        )
        .await
        .unwrap();
    assert_eq!(
        r.receipt["custos"]["decisions"].as_array().unwrap().len(),
        1
    );
    assert_eq!(
        env.id.gate_context(s.subject).await.unwrap().age,
        AgeStatus::Child {
            guardian_consent: true
        }
    );
    // Withdrawal limits the account again at once and deletes what it allowed.
    env.kernel
        .withdraw(
            s.subject,
            false,
            "minors_guardian",
            custos_core::ConsentMethod::Settings,
        )
        .await
        .unwrap();
    assert_eq!(
        env.id.gate_context(s.subject).await.unwrap().age,
        AgeStatus::Child {
            guardian_consent: false
        }
    );
    assert_eq!(env.id.birth_date(s.subject).await.unwrap(), None);
    assert!(env
        .id
        .set_nickname(s.subject, &Nickname::parse("kid").unwrap())
        .await
        .is_err());
    env.finish().await;
}

async fn an_adults_birth_date_is_not_kept_and_a_declared_minor_cannot_turn_adult(env: Env) {
    let s = sign_in(&env, PHONE).await.session;
    let adult = born_years_ago(&env, 30);
    assert_eq!(
        env.id.declare_birth_date(s.subject, &adult).await.unwrap(),
        "adult"
    );
    assert_eq!(env.id.birth_date(s.subject).await.unwrap(), None);
    assert!(!custos_testkit::contains(&env.dump(), adult.as_bytes()));
    let e = env
        .id
        .start_guardian_consent(s.subject, &phone(GUARDIAN), IP)
        .await
        .unwrap_err();
    assert_eq!(code_of(e), "guardian_not_needed");
    // Once under 18 is declared, a second answer cannot make the account adult.
    assert_eq!(
        env.id
            .declare_birth_date(s.subject, &born_years_ago(&env, 16))
            .await
            .unwrap(),
        "minor"
    );
    let e = env
        .id
        .declare_birth_date(s.subject, &adult)
        .await
        .unwrap_err();
    assert_eq!(code_of(e), "birth_date_locked");
    assert_eq!(
        env.id
            .declare_birth_date(s.subject, &born_years_ago(&env, 12))
            .await
            .unwrap(),
        "child"
    );
    env.finish().await;
}

// ---------------------------------------------------------------------------------------
// Third-party sign-in (P7, P15) against a real OpenID Connect server process
// ---------------------------------------------------------------------------------------

use custos_testkit::oidc::MockIdp;

/// Follows the authorization URL the way a browser would (the mock provider approves at
/// once) and returns the `code` and `state` of the redirect.
async fn authorize(url: &str) -> (String, String) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = client.get(url).send().await.unwrap();
    assert_eq!(
        resp.status().as_u16(),
        302,
        "{}",
        resp.text().await.unwrap_or_default()
    );
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let query = location.split_once('?').unwrap().1.to_owned();
    let get = |k: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
            .unwrap()
            .to_owned()
    };
    (get("code"), get("state"))
}

/// Serves one PNG at `/avatar.png` on 127.0.0.1:0.
async fn picture_server() -> String {
    let png = avatar_png();
    let app = axum::Router::new().route(
        "/avatar.png",
        axum::routing::get(move || {
            let png = png.clone();
            async move { ([("content-type", "image/png")], png) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/avatar.png")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identity_provider_links_with_per_field_consent_signs_in_refuses_tampering_and_unlinks()
{
    use custos_app::identity::oidc::{OidcOutcome, OidcProviderConfig, PullField};
    let Some(mut idp) = MockIdp::start() else {
        return;
    };
    let cfg = IdentityConfig {
        oidc: vec![OidcProviderConfig {
            name: "mock".into(),
            issuer: idp.issuer.clone(),
            client_id: "custos-test".into(),
            client_secret: Some("test-secret".into()),
            client_secret_file: None,
            redirect_uri: "http://127.0.0.1:9/callback".into(),
        }],
        avatar_fetch_allow_insecure: true,
        ..IdentityConfig::default()
    };
    let env = Env::open(None, cfg).await;
    let me = sign_in(&env, PHONE).await.session.subject;
    let picture = picture_server().await;
    idp.say(&format!("picture {picture}"));

    // The consent screen names what is always received and what only if agreed.
    let screen = env.id.oidc_screen("mock").unwrap();
    assert_eq!(screen.always, vec!["user.unique_id.pseudonymous"]);
    assert_eq!(screen.optional.len(), 2);

    // Link, agreeing to the nickname only: the avatar is offered by the provider but not kept.
    let start = env
        .id
        .oidc_start("mock", Some(me), &[PullField::Nickname])
        .await
        .unwrap();
    for p in [
        "code_challenge=",
        "code_challenge_method=S256",
        "nonce=",
        "state=",
    ] {
        assert!(start.authorize_url.contains(p), "{p} missing");
    }
    let (code, state) = authorize(&start.authorize_url).await;
    let out = env
        .id
        .oidc_finish("mock", &code, &state, start.binding.expose())
        .await
        .unwrap();
    let OidcOutcome::Linked {
        stored, receipt, ..
    } = out
    else {
        panic!("expected a link");
    };
    assert_eq!(stored, vec!["nickname"]);
    assert_eq!(
        receipt.receipt["custos"]["decisions"][0]["purpose"],
        "external_login"
    );
    let now = env.kernel.clock.now_ms();
    let nick = env
        .kernel
        .personal
        .get(me, "idp/mock/nickname", now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(nick.expose(), b"Mock-Nick-5521");
    assert!(env
        .kernel
        .personal
        .get(me, "idp/mock/avatar", now)
        .await
        .unwrap()
        .is_none());
    // The state works once.
    let replay = env
        .id
        .oidc_finish("mock", &code, &state, start.binding.expose())
        .await;
    assert_eq!(code_of(replay.unwrap_err()), "oidc_state_invalid");

    // Sign in with the provider: the linked account, nothing pulled.
    let start = env.id.oidc_start("mock", None, &[]).await.unwrap();
    let (code, state) = authorize(&start.authorize_url).await;
    // Someone else's browser (another binding) cannot finish it…
    let stolen = env
        .id
        .oidc_finish("mock", &code, &state, "not-the-binding")
        .await;
    assert_eq!(code_of(stolen.unwrap_err()), "oidc_state_invalid");
    let start = env.id.oidc_start("mock", None, &[]).await.unwrap();
    let (code, state) = authorize(&start.authorize_url).await;
    match env
        .id
        .oidc_finish("mock", &code, &state, start.binding.expose())
        .await
        .unwrap()
    {
        OidcOutcome::SignedIn(s) => assert_eq!(s.session.subject, me),
        other => panic!("expected a sign-in, got {other:?}"),
    }

    // A tampered ID token is refused.
    idp.say("tamper");
    let start = env.id.oidc_start("mock", None, &[]).await.unwrap();
    let (code, state) = authorize(&start.authorize_url).await;
    let e = env
        .id
        .oidc_finish("mock", &code, &state, start.binding.expose())
        .await;
    assert_eq!(code_of(e.unwrap_err()), "id_token_invalid");
    idp.say("honest");

    // A second account links another provider identity, agreeing to the avatar too.
    idp.say("sub idp-user-0042");
    let other = sign_in(&env, OTHER).await.session.subject;
    let start = env
        .id
        .oidc_start(
            "mock",
            Some(other),
            &[PullField::Nickname, PullField::Avatar],
        )
        .await
        .unwrap();
    let (code, state) = authorize(&start.authorize_url).await;
    match env
        .id
        .oidc_finish("mock", &code, &state, start.binding.expose())
        .await
        .unwrap()
    {
        OidcOutcome::Linked { stored, .. } => assert_eq!(stored, vec!["nickname", "avatar"]),
        other => panic!("expected a link, got {other:?}"),
    }
    let avatar = env
        .kernel
        .personal
        .get(other, "idp/mock/avatar", now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        image::guess_format(avatar.expose()).unwrap(),
        image::ImageFormat::Png
    );
    // …and cannot take the first account's provider identity.
    idp.say("sub idp-user-4711");
    let start = env.id.oidc_start("mock", Some(other), &[]).await.unwrap();
    let (code, state) = authorize(&start.authorize_url).await;
    let e = env
        .id
        .oidc_finish("mock", &code, &state, start.binding.expose())
        .await;
    assert_eq!(code_of(e.unwrap_err()), "identity_linked_elsewhere");

    // Nothing from the provider is readable in the data store.
    let dump = env.dump();
    for needle in [&b"idp-user-4711"[..], b"Mock-Nick-5521"] {
        assert!(
            !custos_testkit::contains(&dump, needle),
            "{} found",
            String::from_utf8_lossy(needle)
        );
    }

    // Unlinking removes the link and what it pulled, and withdraws the consent.
    assert_eq!(env.id.oidc_links(me).await.unwrap().len(), 1);
    env.id.oidc_unlink(me, "mock").await.unwrap();
    assert!(env.id.oidc_links(me).await.unwrap().is_empty());
    assert!(env
        .kernel
        .personal
        .get(me, "idp/mock/nickname", now)
        .await
        .unwrap()
        .is_none());
    let status = env.kernel.purpose_statuses(me).await.unwrap();
    let ext = status
        .iter()
        .find(|p| p.purpose == "external_login")
        .unwrap();
    assert_eq!(ext.status, "consent_withdrawn");
    let start = env.id.oidc_start("mock", None, &[]).await.unwrap();
    let (code, state) = authorize(&start.authorize_url).await;
    let e = env
        .id
        .oidc_finish("mock", &code, &state, start.binding.expose())
        .await;
    assert_eq!(code_of(e.unwrap_err()), "identity_not_linked");
    assert!(matches!(
        env.id.oidc_unlink(me, "mock").await,
        Err(AppError::NotFound)
    ));
    env.finish().await;
}

async fn expired_codes_sessions_throttle_events_and_texts_are_purged(env: Env) {
    use custos_store::identity as store;
    let c = env.id.start_sign_in(&phone(PHONE), IP).await.unwrap();
    let signed = env
        .id
        .sign_in(&c.challenge_id, &env.last_code(PHONE_E164), IP)
        .await
        .unwrap();
    let pending = env.id.start_sign_in(&phone(OTHER), IP).await.unwrap();
    let db = &env.kernel.db;
    assert!(store::challenge(db, &pending.challenge_id)
        .await
        .unwrap()
        .is_some());
    assert_eq!(Outbox::read(&env.outbox()).len(), 2);
    // Nothing live is purged.
    env.id.purge_expired().await.unwrap();
    assert!(store::challenge(db, &pending.challenge_id)
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        store::sessions_of(db, signed.session.subject)
            .await
            .unwrap()
            .len(),
        1
    );
    env.tick(31 * 86_400);
    let n = env.id.purge_expired().await.unwrap();
    assert!(
        n >= 2 + 1 + 2,
        "challenges, session, texts and throttle events: {n}"
    );
    assert!(store::challenge(db, &c.challenge_id)
        .await
        .unwrap()
        .is_none());
    assert!(store::challenge(db, &pending.challenge_id)
        .await
        .unwrap()
        .is_none());
    assert!(store::sessions_of(db, signed.session.subject)
        .await
        .unwrap()
        .is_empty());
    assert!(Outbox::read(&env.outbox()).is_empty());
    // The throttle forgot the old texts.
    env.id.start_sign_in(&phone(PHONE), IP).await.unwrap();
    env.finish().await;
}

async fn two_sign_ups_of_one_new_number_at_once_make_one_account(env: Env) {
    let a = env.id.start_sign_in(&phone(PHONE), IP).await.unwrap();
    let code_a = env.last_code(PHONE_E164);
    env.tick(61);
    let b = env.id.start_sign_in(&phone(PHONE), IP).await.unwrap();
    let code_b = env.last_code(PHONE_E164);
    let (x, y) = tokio::join!(
        env.id.sign_in(&a.challenge_id, &code_a, IP),
        env.id.sign_in(&b.challenge_id, &code_b, IP)
    );
    let (x, y) = (x.unwrap(), y.unwrap());
    assert_eq!(x.session.subject, y.session.subject);
    assert_eq!(
        u8::from(x.created) + u8::from(y.created),
        1,
        "exactly one created it"
    );
    env.finish().await;
}

async fn a_guardian_signed_in_with_their_phone_sees_corrects_and_deletes_the_minors_data_and_withdraws(
    env: Env,
) {
    use custos_core::AgeStatus;
    let minor = sign_in(&env, PHONE).await.session.subject;
    let birth = born_years_ago(&env, 15);
    env.id.declare_birth_date(minor, &birth).await.unwrap();
    let c = env
        .id
        .start_guardian_consent(minor, &phone(GUARDIAN), IP)
        .await
        .unwrap();
    env.id
        .finish_guardian_consent(minor, &c.challenge_id, &env.last_code(GUARDIAN), &birth, IP)
        .await
        .unwrap();
    env.id
        .set_nickname(minor, &Nickname::parse("kid-nick").unwrap())
        .await
        .unwrap();
    env.tick(61);
    let proof_of = |s: custos_app::identity::NewSession| {
        let id = env.id.clone();
        async move {
            let auth = id.authenticate(s.token.expose()).await.unwrap();
            id.reauthenticated(&auth).unwrap()
        }
    };
    let guardian = proof_of(sign_in(&env, GUARDIAN).await.session).await;
    let stranger = proof_of(sign_in(&env, OTHER).await.session).await;

    let seen = env.id.guarded_minors(&guardian).await.unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].subject, minor);
    assert_eq!(seen[0].birth_date.as_deref(), Some(birth.as_str()));
    assert_eq!(seen[0].nickname.as_deref(), Some("kid-nick"));
    // Nobody else reaches the minor.
    assert!(env.id.guarded_minors(&stranger).await.unwrap().is_empty());
    let nick = Nickname::parse("fixed").unwrap();
    for e in [
        env.id
            .guardian_set_nickname(&stranger, minor, &nick)
            .await
            .err(),
        env.id
            .guardian_delete_field(&stranger, minor, "nickname")
            .await
            .err(),
        env.id.guardian_withdraw(&stranger, minor).await.err(),
    ] {
        assert!(matches!(e, Some(AppError::NotFound)), "{e:?}");
    }
    // The guardian corrects, deletes and withdraws.
    env.id
        .guardian_set_nickname(&guardian, minor, &nick)
        .await
        .unwrap();
    assert_eq!(
        env.id.profile(minor).await.unwrap().nickname.as_deref(),
        Some("fixed")
    );
    env.id
        .guardian_delete_field(&guardian, minor, "nickname")
        .await
        .unwrap();
    assert_eq!(env.id.profile(minor).await.unwrap().nickname, None);
    let r = env.id.guardian_withdraw(&guardian, minor).await.unwrap();
    assert_eq!(r.receipt["custos"]["decisions"][0]["decision"], "withdrawn");
    assert_eq!(
        env.id.gate_context(minor).await.unwrap().age,
        AgeStatus::Minor {
            guardian_consent: false
        }
    );
    assert_eq!(env.id.birth_date(minor).await.unwrap(), None);
    assert!(env.id.guarded_minors(&guardian).await.unwrap().is_empty());
    env.finish().await;
}

async fn a_minor_with_a_known_birth_date_becomes_an_adult_on_their_eighteenth_birthday(env: Env) {
    use custos_core::AgeStatus;
    let minor = sign_in(&env, PHONE).await.session.subject;
    // Seventeen, eighteen tomorrow.
    let birth = born_years_ago(&env, 18);
    let birth = {
        let d = time::Date::parse(
            &birth,
            time::macros::format_description!("[year]-[month]-[day]"),
        )
        .unwrap()
        .next_day()
        .unwrap()
        .next_day()
        .unwrap();
        format!("{:04}-{:02}-{:02}", d.year(), d.month() as u8, d.day())
    };
    assert_eq!(
        env.id.declare_birth_date(minor, &birth).await.unwrap(),
        "minor"
    );
    let c = env
        .id
        .start_guardian_consent(minor, &phone(GUARDIAN), IP)
        .await
        .unwrap();
    env.id
        .finish_guardian_consent(minor, &c.challenge_id, &env.last_code(GUARDIAN), &birth, IP)
        .await
        .unwrap();
    assert_eq!(
        env.id.gate_context(minor).await.unwrap().age,
        AgeStatus::Minor {
            guardian_consent: true
        }
    );
    env.tick(86_400);
    assert_eq!(
        env.id.gate_context(minor).await.unwrap().age,
        AgeStatus::Adult
    );
    assert_eq!(env.id.account(minor).await.unwrap().age_band, "adult");
    env.finish().await;
}

async fn guessing_codes_across_challenges_is_limited_per_client_address(env: Env) {
    // Sixty verifications an hour from one address, whatever the challenge.
    for i in 0..60 {
        let e = env
            .id
            .sign_in(&format!("guess-{i}"), "000000", IP)
            .await
            .unwrap_err();
        assert_eq!(code_of(e), "code_invalid");
    }
    let c = env.id.start_sign_in(&phone(PHONE), IP).await.unwrap();
    let code = env.last_code(PHONE_E164);
    let e = env
        .id
        .sign_in(&c.challenge_id, &code, IP)
        .await
        .unwrap_err();
    assert_eq!(code_of(e), "too_many_attempts", "even the right code waits");
    let elsewhere = Some(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 9)));
    env.id
        .sign_in(&c.challenge_id, &code, elsewhere)
        .await
        .unwrap();
    env.finish().await;
}

async fn a_minors_own_consent_to_minors_guardian_is_refused_and_never_unlocks_the_account(
    env: Env,
) {
    use custos_core::AgeStatus;
    let limited = AgeStatus::Minor {
        guardian_consent: false,
    };
    let minor = sign_in(&env, PHONE).await.session.subject;
    let birth = born_years_ago(&env, 15);
    env.id.declare_birth_date(minor, &birth).await.unwrap();
    let own = [custos_app::consent::DecisionInput {
        purpose: "minors_guardian".into(),
        decision: custos_core::Decision::Given,
    }];
    // Refused for the minor, and for anyone else through the generic path.
    assert_eq!(
        code_of(env.id.check_minor_decisions(minor, &own).await.unwrap_err()),
        "guardian_flow_required"
    );
    assert_eq!(
        code_of(custos_app::identity::minors::check_guardian_decisions(&own).unwrap_err()),
        "guardian_flow_required"
    );
    // Even a `minors_guardian` consent that reached the ledger without the guardian's
    // flow does not unlock the account.
    env.kernel
        .record_decisions(minor, false, &own, custos_core::ConsentMethod::Dialog)
        .await
        .unwrap();
    assert_eq!(env.id.gate_context(minor).await.unwrap().age, limited);
    assert!(!env.id.account(minor).await.unwrap().guardian_consent);
    // The guardian consents, then withdraws: the minor cannot give it back themselves.
    let c = env
        .id
        .start_guardian_consent(minor, &phone(GUARDIAN), IP)
        .await
        .unwrap();
    env.id
        .finish_guardian_consent(minor, &c.challenge_id, &env.last_code(GUARDIAN), &birth, IP)
        .await
        .unwrap();
    assert!(env.id.account(minor).await.unwrap().guardian_consent);
    env.tick(61);
    let guardian = fresh_proof(&env, GUARDIAN).await;
    env.id.guardian_withdraw(&guardian, minor).await.unwrap();
    assert_eq!(env.id.gate_context(minor).await.unwrap().age, limited);
    assert_eq!(
        code_of(env.id.check_minor_decisions(minor, &own).await.unwrap_err()),
        "guardian_flow_required"
    );
    env.kernel
        .record_decisions(minor, false, &own, custos_core::ConsentMethod::Dialog)
        .await
        .unwrap();
    assert_eq!(env.id.gate_context(minor).await.unwrap().age, limited);
    env.finish().await;
}

async fn a_minor_can_neither_replace_their_guardian_nor_raise_their_age_through_the_guardian_flow(
    env: Env,
) {
    use custos_core::AgeStatus;
    let minor = sign_in(&env, PHONE).await.session.subject;
    let child = born_years_ago(&env, 10);
    assert_eq!(
        env.id.declare_birth_date(minor, &child).await.unwrap(),
        "child"
    );
    let c = env
        .id
        .start_guardian_consent(minor, &phone(GUARDIAN), IP)
        .await
        .unwrap();
    // A birth date that would make the child a minor is refused.
    let e = env
        .id
        .finish_guardian_consent(
            minor,
            &c.challenge_id,
            &env.last_code(GUARDIAN),
            &born_years_ago(&env, 16),
            IP,
        )
        .await
        .unwrap_err();
    assert_eq!(code_of(e), "birth_date_locked");
    assert_eq!(env.id.account(minor).await.unwrap().age_band, "child");
    env.id
        .finish_guardian_consent(minor, &c.challenge_id, &env.last_code(GUARDIAN), &child, IP)
        .await
        .unwrap();
    assert_eq!(
        env.id.gate_context(minor).await.unwrap().age,
        AgeStatus::Child {
            guardian_consent: true
        }
    );
    // A second guardian cannot take the first one's place.
    let e = env
        .id
        .start_guardian_consent(minor, &phone(OTHER), IP)
        .await
        .unwrap_err();
    assert_eq!(code_of(e), "guardian_exists");
    env.tick(61);
    let guardian = fresh_proof(&env, GUARDIAN).await;
    assert_eq!(env.id.guarded_minors(&guardian).await.unwrap().len(), 1);
    env.finish().await;
}

/// Signs `p` in and proves it afresh (the guardian's routes need it).
async fn fresh_proof(env: &Env, p: &str) -> custos_app::identity::Reauthenticated {
    let s = sign_in(env, p).await.session;
    let auth = env.id.authenticate(s.token.expose()).await.unwrap();
    env.id.reauthenticated(&auth).unwrap()
}

async fn a_birth_date_given_at_sign_up_sets_the_age_band_of_the_new_account_only(env: Env) {
    use custos_core::AgeStatus;
    let child = born_years_ago(&env, 10);
    let c = env.id.start_sign_in(&phone(PHONE), IP).await.unwrap();
    let e = env
        .id
        .sign_up(
            &c.challenge_id,
            &env.last_code(PHONE_E164),
            Some("2010-02-30"),
            IP,
        )
        .await
        .unwrap_err();
    assert_eq!(code_of(e), "invalid_birth_date");
    let s = env
        .id
        .sign_up(
            &c.challenge_id,
            &env.last_code(PHONE_E164),
            Some(&child),
            IP,
        )
        .await
        .unwrap();
    assert!(s.created);
    let subject = s.session.subject;
    assert_eq!(env.id.account(subject).await.unwrap().age_band, "child");
    assert_eq!(
        env.id.gate_context(subject).await.unwrap().age,
        AgeStatus::Child {
            guardian_consent: false
        }
    );
    // The date itself is not kept before a guardian consents.
    assert_eq!(env.id.birth_date(subject).await.unwrap(), None);
    assert!(!custos_testkit::contains(&env.dump(), child.as_bytes()));
    // Signing in again with another date does not change an existing account.
    env.tick(61);
    let c = env.id.start_sign_in(&phone(PHONE), IP).await.unwrap();
    let again = env
        .id
        .sign_up(
            &c.challenge_id,
            &env.last_code(PHONE_E164),
            Some(&born_years_ago(&env, 30)),
            IP,
        )
        .await
        .unwrap();
    assert!(!again.created);
    assert_eq!(env.id.account(subject).await.unwrap().age_band, "child");
    env.finish().await;
}

async fn parallel_wrong_passwords_beyond_the_limit_never_reach_verification(env: Env) {
    let s = sign_in(&env, PHONE).await.session;
    let auth = env.id.authenticate(s.token.expose()).await.unwrap();
    let proof = env.id.reauthenticated(&auth).unwrap();
    env.id
        .set_password(&proof, &NewPassword::parse(SECRET).unwrap())
        .await
        .unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let id = env.id.clone();
            tokio::spawn(async move {
                id.sign_in_with_password(
                    &phone(PHONE),
                    &Personal::new("wrong-password".to_owned()),
                    None,
                )
                .await
                .map(|_| ())
                .unwrap_err()
                .code()
            })
        })
        .collect();
    let mut verified = 0;
    for t in tasks {
        match t.await.unwrap() {
            "invalid_credentials" => verified += 1,
            "too_many_attempts" => {}
            other => panic!("unexpected {other}"),
        }
    }
    // Five failures an hour: never more reach Argon2, however many run at once.
    // (Under contention the store's limit may refuse more than necessary, never fewer.)
    assert!(verified <= 5, "{verified} reached verification");
    if verified == 5 {
        let e = env
            .id
            .sign_in_with_password(&phone(PHONE), &Personal::new(SECRET.to_owned()), None)
            .await
            .unwrap_err();
        assert_eq!(code_of(e), "too_many_attempts");
    }
    env.finish().await;
}

async fn texts_go_only_to_allowed_countries_and_within_a_global_hourly_budget(env: Env) {
    let sent = || Outbox::read(&env.outbox()).len();
    // Outside the allowed country codes: refused before anything is sent.
    let e = env
        .id
        .start_sign_in(&phone("+447700900123"), IP)
        .await
        .unwrap_err();
    assert_eq!(code_of(e), "phone_country_not_allowed");
    assert_eq!(sent(), 0);
    let id = Identity::with_gateway(
        env.kernel.clone(),
        IdentityConfig {
            sms_per_hour_global: 3,
            sms_allowed_country_codes: vec!["86".into(), "44".into()],
            ..IdentityConfig::default()
        },
        env.id.gateway.clone(),
    )
    .unwrap();
    id.start_sign_in(&phone("+447700900123"), None)
        .await
        .unwrap();
    // Three texts an hour for the whole service, from any address to any number.
    for n in ["+8613800000001", "+8613800000002"] {
        id.start_sign_in(&phone(n), None).await.unwrap();
    }
    assert_eq!(sent(), 3);
    let e = id
        .start_sign_in(&phone("+8613800000003"), None)
        .await
        .unwrap_err();
    assert_eq!(code_of(e), "too_many_codes");
    assert_eq!(sent(), 3);
    env.tick(3601);
    id.start_sign_in(&phone("+8613800000003"), None)
        .await
        .unwrap();
    assert_eq!(
        Outbox::read(&env.outbox()).last().unwrap().to,
        "+8613800000003"
    );
    env.finish().await;
}

async fn a_guardians_text_says_it_approves_a_minors_account(env: Env) {
    let minor = sign_in(&env, PHONE).await.session.subject;
    env.id
        .declare_birth_date(minor, &born_years_ago(&env, 15))
        .await
        .unwrap();
    env.id
        .start_guardian_consent(minor, &phone(GUARDIAN), IP)
        .await
        .unwrap();
    let entries = Outbox::read(&env.outbox());
    let sign_in_text = &entries.iter().find(|e| e.to == PHONE_E164).unwrap().text;
    let guardian_text = &entries.iter().find(|e| e.to == GUARDIAN).unwrap().text;
    assert_ne!(
        sign_in_text.replace(|c: char| c.is_ascii_digit(), ""),
        guardian_text.replace(|c: char| c.is_ascii_digit(), "")
    );
    assert!(guardian_text.contains("监护人"), "{guardian_text}");
    assert!(guardian_text.contains("未成年人"), "{guardian_text}");
    assert!(!sign_in_text.contains("监护人"));
    env.finish().await;
}

/// Serves `body` once per connection without a `Content-Length` (read to the close).
async fn unsized_server(body: Vec<u8>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf).await;
                let head =
                    "HTTP/1.1 200 OK\r\ncontent-type: image/png\r\nconnection: close\r\n\r\n";
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(&body).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    format!("http://{addr}/avatar.png")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_providers_picture_comes_only_over_https_from_public_addresses_and_within_the_cap() {
    // Default settings: plain http, and https to a loopback address, are refused.
    let env = Env::open(None, IdentityConfig::default()).await;
    let picture = picture_server().await;
    assert_eq!(env.id.fetch_avatar(&picture).await, None);
    let https_loopback = picture.replace("http://", "https://");
    assert_eq!(env.id.fetch_avatar(&https_loopback).await, None);
    assert_eq!(env.id.fetch_avatar("ftp://example.com/a.png").await, None);
    env.finish().await;
    // With the test override, the cap holds even without a Content-Length.
    let png = avatar_png();
    let env = Env::open(
        None,
        IdentityConfig {
            avatar_fetch_allow_insecure: true,
            avatar_max_bytes: png.len() + 16,
            ..IdentityConfig::default()
        },
    )
    .await;
    assert!(env
        .id
        .fetch_avatar(&unsized_server(png.clone()).await)
        .await
        .is_some());
    let mut big = png.clone();
    big.resize(png.len() + 64 * 1024, 0);
    let big_url = unsized_server(big).await;
    assert_eq!(env.id.fetch_avatar(&big_url).await, None);
    env.finish().await;
    // The same picture is fine under a larger cap: the cap, not the bytes, refused it.
    let env = Env::open(
        None,
        IdentityConfig {
            avatar_fetch_allow_insecure: true,
            ..IdentityConfig::default()
        },
    )
    .await;
    assert!(env.id.fetch_avatar(&big_url).await.is_some());
    env.finish().await;
}

async fn a_password_or_phone_change_signs_the_other_sessions_out(env: Env) {
    let other = sign_in(&env, PHONE).await.session;
    env.tick(61);
    let mine = fresh_proof(&env, PHONE).await;
    env.id
        .set_password(&mine, &NewPassword::parse(SECRET).unwrap())
        .await
        .unwrap();
    assert!(env.id.authenticate(other.token.expose()).await.is_err());
    assert_eq!(env.id.list_sessions(mine.session()).await.unwrap().len(), 1);
    // The same after a phone change.
    env.tick(61);
    let other = sign_in(&env, PHONE).await.session;
    env.tick(61);
    let mine = fresh_proof(&env, PHONE).await;
    let c = env
        .id
        .start_phone_change(&mine, &phone(OTHER), IP)
        .await
        .unwrap();
    env.id
        .finish_phone_change(&mine, &c.challenge_id, &env.last_code(OTHER), IP)
        .await
        .unwrap();
    assert!(env.id.authenticate(other.token.expose()).await.is_err());
    assert_eq!(env.id.list_sessions(mine.session()).await.unwrap().len(), 1);
    env.finish().await;
}

async fn erasing_a_guardians_account_ends_their_guardianships(env: Env) {
    use custos_core::AgeStatus;
    let minor = sign_in(&env, PHONE).await.session.subject;
    let birth = born_years_ago(&env, 15);
    env.id.declare_birth_date(minor, &birth).await.unwrap();
    let c = env
        .id
        .start_guardian_consent(minor, &phone(GUARDIAN), IP)
        .await
        .unwrap();
    env.id
        .finish_guardian_consent(minor, &c.challenge_id, &env.last_code(GUARDIAN), &birth, IP)
        .await
        .unwrap();
    env.tick(61);
    let guardian = fresh_proof(&env, GUARDIAN).await;
    assert_eq!(env.id.guarded_minors(&guardian).await.unwrap().len(), 1);
    env.id.erase_account(guardian.subject()).await.unwrap();
    // The same number signing up afresh is no one's guardian, and the minor is limited.
    env.tick(61);
    let again = fresh_proof(&env, GUARDIAN).await;
    assert!(env.id.guarded_minors(&again).await.unwrap().is_empty());
    assert_eq!(
        env.id.gate_context(minor).await.unwrap().age,
        AgeStatus::Minor {
            guardian_consent: false
        }
    );
    env.finish().await;
}
