//! Self-service rights through their use cases, on SQLite and PostgreSQL (P21, P33, P34,
//! P37, P39, L7, L8): corrections of every user-provided field, each an answered
//! correction ticket; deletion of each kind of item, effective on the next read in every
//! store, another user's id answering `not_found`; background exports with progress,
//! a link that works for its owner only and expires (the job deleted with it); the
//! export's signals data under the published schema; complaints and reports answered by
//! operators and read by anonymous filers with their secret; erasure unlinking the
//! service log and deleting export jobs.

use std::sync::Arc;

use custos_app::catalog::input::Format;
use custos_app::config::MasterKeySource;
use custos_app::consent::DecisionInput;
use custos_app::identity::sms::Outbox;
use custos_app::identity::{PhoneNumber, Reauthenticated};
use custos_app::rights::complaints::ComplaintInput;
use custos_app::rights::correction::Correction;
use custos_app::rights::deletion::Item;
use custos_app::rights::export::ExportJobView;
use custos_app::rights::{RightsConfig, TicketKind};
use custos_app::signals::device::DeviceReport;
use custos_app::signals::{EventInput, EVENTS_DOMAIN, LOGS_PURPOSE};
use custos_app::{App, AppError, Config};
use custos_core::{Clock, ConsentMethod, Decision, FakeClock, GateContext, Personal, SubjectId};
use custos_crypto::{MasterKey, OsRng};
use custos_store::rights::exports::Rendering;
use custos_store::signals::StoredEvent;

struct Env {
    app: App,
    clock: Arc<FakeClock>,
    dir: tempfile::TempDir,
}

const HOUR: i64 = 3_600_000;

impl Env {
    async fn open(pg: Option<(String, String)>) -> Env {
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
                rights: RightsConfig {
                    export_link_ttl_secs: Some(6 * 3_600),
                    ..Default::default()
                },
                ..Default::default()
            };
        let clock = Arc::new(FakeClock::default());
        let app = App::open(&cfg, clock.clone()).await.unwrap();
        Env { app, clock, dir }
    }
    async fn sqlite() -> Option<Env> {
        Some(Env::open(None).await)
    }
    async fn postgres() -> Option<Env> {
        let data = custos_testkit::postgres_database().await?;
        let vault = custos_testkit::postgres_database().await?;
        Some(Env::open(Some((data, vault))).await)
    }

    /// Signs a number up by SMS code, as a user would.
    async fn account(&self, phone: &str) -> SubjectId {
        let id = &self.app.identity;
        let p = PhoneNumber::parse(phone).unwrap();
        let c = id.start_sign_in(&p, None).await.unwrap();
        let entries = Outbox::read(&self.dir.path().join("sms-outbox.jsonl"));
        let text = &entries
            .iter()
            .rev()
            .find(|e| e.to == p.e164())
            .unwrap()
            .text;
        let code = text
            .split(|c: char| !c.is_ascii_digit())
            .find(|w| w.len() == 6)
            .unwrap()
            .to_owned();
        id.sign_in(&c.challenge_id, &code, None)
            .await
            .unwrap()
            .session
            .subject
    }

    async fn proof(&self, subject: SubjectId) -> Reauthenticated {
        let id = &self.app.identity;
        let s = id.create_session(subject, true).await.unwrap();
        let auth = id.authenticate(s.token.expose()).await.unwrap();
        id.reauthenticated(&auth).unwrap()
    }

    /// Gives consent to each purpose, one decision at a time (separate consents stay apart).
    async fn consent(&self, subject: SubjectId, purposes: &[&str]) {
        for p in purposes {
            self.app
                .kernel
                .record_decisions(
                    subject,
                    false,
                    &[DecisionInput {
                        purpose: (*p).into(),
                        decision: Decision::Given,
                    }],
                    ConsentMethod::Dialog,
                )
                .await
                .unwrap();
        }
    }

    async fn items(&self) -> Vec<i64> {
        self.app
            .catalog
            .import_text(
                "external_id,title_zh,title_en,description_zh,description_en,category,tags,price_min,price_max,currency\n\
                 sku-1,夏季连衣裙,Summer dress,轻薄透气,Light and airy,clothing,summer|red,199,259,CNY\n\
                 sku-2,运动鞋,Running shoes,轻便,Light,shoes,sport,299,399,CNY\n",
                Format::Csv,
                false,
                &mut |_| {},
            )
            .await
            .unwrap()
            .ids
    }

    /// Appends `n` service-log events under the subject's pseudonym, as ingestion stores them.
    async fn events(&self, subject: SubjectId, n: usize, target: &str) {
        let pseudonym = self
            .app
            .kernel
            .ring
            .pseudonym(EVENTS_DOMAIN, subject.to_string().as_bytes());
        let now = self.clock.now_ms();
        let rows: Vec<StoredEvent> = (0..n)
            .map(|i| StoredEvent {
                pseudonym,
                purpose: LOGS_PURPOSE.into(),
                kind: "browse".into(),
                target: Some(target.into()),
                ip_prefix: Some("203.0.113.0".into()),
                carrier: None,
                language: Some("zh-CN".into()),
                at_ms: now - 1_000 - i as i64,
                expires_at_ms: Some(now + 180 * 24 * HOUR),
            })
            .collect();
        self.app.signals.events.append(&rows).await.unwrap();
    }
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
    every_user_provided_field_is_corrected_and_each_correction_is_an_answered_ticket,
    each_kind_of_item_is_deleted_everywhere_on_the_next_read_and_another_users_id_is_not_found,
    a_background_export_shows_progress_and_serves_its_owner_until_the_link_expires,
    the_export_holds_signals_data_and_follows_the_published_schema,
    complaints_are_tickets_answered_by_operators_and_read_with_the_follow_up_secret,
    erasure_unlinks_the_service_log_and_deletes_export_jobs,
);

fn code(e: AppError) -> &'static str {
    e.code()
}

fn png() -> Vec<u8> {
    let img = image::RgbImage::from_fn(40, 30, |x, y| image::Rgb([x as u8, y as u8, 9]));
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

fn p(s: &str) -> Personal<String> {
    Personal::new(s.to_owned())
}

async fn every_user_provided_field_is_corrected_and_each_correction_is_an_answered_ticket(
    env: Env,
) {
    let (rights, identity, catalog) = (&env.app.rights, &env.app.identity, &env.app.catalog);
    let ids = env.items().await;
    let user = env.account("13912345678").await;
    let other = env.account("13912345679").await;
    let ctx = GateContext::default();
    identity
        .set_nickname(
            user,
            &custos_app::identity::profile::Nickname::parse("小龙").unwrap(),
        )
        .await
        .unwrap();
    let comment = catalog
        .comment(user, &ctx, ids[0], "颜色很正", false)
        .await
        .unwrap();
    let bookmark = catalog
        .bookmark(user, &ctx, ids[1], Some("Shoes"))
        .await
        .unwrap();
    let theirs = catalog
        .comment(other, &ctx, ids[0], "别人的评论", false)
        .await
        .unwrap();

    let cases = [
        (Correction::Nickname(p("小虎")), "nickname"),
        (Correction::Avatar(Personal::new(png())), "avatar"),
        (Correction::BirthDate(p("1990-05-17")), "birth_date"),
        (
            Correction::CommentBody {
                id: comment.id,
                body: p("颜色很正，尺码偏小"),
                attest_may_share: false,
            },
            "comment",
        ),
        (
            Correction::CollectionName {
                bookmark_id: bookmark.id,
                name: p("Running"),
            },
            "bookmark_collection",
        ),
    ];
    for (c, field) in &cases {
        let t = rights.correct(user, c).await.unwrap();
        assert_eq!(t.kind, TicketKind::Correction);
        assert_eq!(t.status, "completed");
        assert!(t.closed_ms.is_some());
        assert!(t.detail.starts_with(field), "{}", t.detail);
        let statuses: Vec<&str> = t.history.iter().map(|e| e.status.as_str()).collect();
        assert_eq!(statuses, ["open", "completed"]);
        assert!(t.history[1].note.contains(field));
    }
    // Every change took effect.
    assert_eq!(
        identity.profile(user).await.unwrap().nickname.as_deref(),
        Some("小虎")
    );
    let avatar = identity.avatar(user).await.unwrap();
    assert_eq!(&avatar.expose()[1..4], b"PNG");
    assert_eq!(identity.account(user).await.unwrap().age_band, "adult");
    let mine = catalog.my_comments(user).await.unwrap();
    assert_eq!(mine[0].body, "颜色很正，尺码偏小");
    let marks = catalog.bookmarks(user).await.unwrap();
    assert_eq!(marks.len(), 1);
    assert_eq!(marks[0].collection, "Running");
    // The user sees every correction, and no ticket holds a corrected value.
    let corrections = rights.corrections(user).await.unwrap();
    assert_eq!(corrections.len(), 5);
    for t in &corrections {
        for v in ["小虎", "1990", "尺码", "Running"] {
            assert!(!t.detail.contains(v) && !t.history.iter().any(|e| e.note.contains(v)));
        }
    }

    // Refused corrections change nothing and record nothing.
    let refused = [
        (Correction::Nickname(p("  ")), "invalid_nickname"),
        (Correction::BirthDate(p("2090-01-01")), "invalid_birth_date"),
        (
            Correction::Avatar(Personal::new(b"not a picture".to_vec())),
            "avatar_unsupported",
        ),
        (
            Correction::CommentBody {
                id: comment.id,
                body: p("ask 王女士 about it"),
                attest_may_share: false,
            },
            "attestation_required",
        ),
        (
            Correction::CommentBody {
                id: theirs.id,
                body: p("hijacked"),
                attest_may_share: false,
            },
            "not_found",
        ),
        (
            Correction::CollectionName {
                bookmark_id: 999_999,
                name: p("x"),
            },
            "not_found",
        ),
    ];
    for (c, expected) in &refused {
        assert_eq!(code(rights.correct(user, c).await.unwrap_err()), *expected);
    }
    assert_eq!(rights.corrections(user).await.unwrap().len(), 5);
    assert!(catalog
        .comments_on(ids[0])
        .await
        .unwrap()
        .iter()
        .any(|c| c.body == "别人的评论"));
    // Where allowed: a minor cannot raise the age they gave.
    let minor = env.account("13912345670").await;
    let y = 2026 - 15;
    rights
        .correct(minor, &Correction::BirthDate(p(&format!("{y}-01-01"))))
        .await
        .unwrap();
    assert_eq!(
        code(
            rights
                .correct(minor, &Correction::BirthDate(p("1990-01-01")))
                .await
                .unwrap_err()
        ),
        "birth_date_locked"
    );
    assert_eq!(identity.account(minor).await.unwrap().age_band, "minor");
}

async fn each_kind_of_item_is_deleted_everywhere_on_the_next_read_and_another_users_id_is_not_found(
    env: Env,
) {
    let (rights, catalog, signals) = (&env.app.rights, &env.app.catalog, &env.app.signals);
    let ids = env.items().await;
    let media = catalog.add_media(ids[0], png()).await.unwrap();
    let (alice, bob) = (SubjectId::random(), SubjectId::random());
    let ctx = GateContext::default();
    for s in [alice, bob] {
        env.consent(s, &["personalized_feed", "device_info"]).await;
    }
    let bookmark = catalog
        .bookmark(alice, &ctx, ids[0], Some("Secret-Collection-5521"))
        .await
        .unwrap();
    let comment = catalog
        .comment(alice, &ctx, ids[0], "Comment-Text-7734", false)
        .await
        .unwrap();
    let download = catalog.download(alice, &ctx, media.id).await.unwrap();
    let (share, share_token) = catalog.share(alice, &ctx, ids[0]).await.unwrap();
    signals
        .add_affinity(alice, "tag:summer", 2.0, &ctx)
        .await
        .unwrap();
    signals
        .add_affinity(alice, "category:shoes", 1.0, &ctx)
        .await
        .unwrap();
    let device = signals
        .register_device(
            alice,
            &DeviceReport {
                model: Some("Device-Model-X91".into()),
                os_version: Some("HarmonyOS 4".into()),
                ..Default::default()
            },
            &ctx,
        )
        .await
        .unwrap();
    // Bob has one of each too, which must survive Alice's deletions.
    let bob_bookmark = catalog.bookmark(bob, &ctx, ids[0], None).await.unwrap();
    signals
        .add_affinity(bob, "tag:red", 1.0, &ctx)
        .await
        .unwrap();

    let items = [
        Item::Bookmark(bookmark.id),
        Item::Comment(comment.id),
        Item::Download(download.record.id),
        Item::Share(share.id),
        Item::Trait("tag:summer".into()),
        Item::Device(device.id.clone()),
    ];
    // Another user's id (and a missing one) is not found, and nothing is deleted or recorded.
    for it in &items {
        assert_eq!(
            code(rights.delete_item(bob, it).await.unwrap_err()),
            "not_found"
        );
    }
    assert!(rights.tickets(bob).await.unwrap().is_empty());
    assert_eq!(
        code(
            rights
                .delete_item(alice, &Item::Bookmark(bob_bookmark.id + 1_000))
                .await
                .unwrap_err()
        ),
        "not_found"
    );
    assert_eq!(catalog.bookmarks(alice).await.unwrap().len(), 1);
    assert_eq!(signals.devices(alice).await.unwrap().len(), 1);

    for it in &items {
        let t = rights.delete_item(alice, it).await.unwrap();
        assert_eq!(
            (t.kind, t.status.as_str()),
            (TicketKind::Deletion, "completed")
        );
        assert!(t.detail.starts_with(it.kind()));
        // The very next read no longer sees it, wherever it was kept.
        match it {
            Item::Bookmark(_) => assert!(catalog.bookmarks(alice).await.unwrap().is_empty()),
            Item::Comment(_) => {
                assert!(catalog.my_comments(alice).await.unwrap().is_empty());
                assert!(catalog.comments_on(ids[0]).await.unwrap().is_empty());
            }
            Item::Download(_) => assert!(catalog.downloads(alice).await.unwrap().is_empty()),
            Item::Share(_) => {
                assert!(catalog.shares(alice).await.unwrap().is_empty());
                assert_eq!(
                    code(catalog.open_share(&share_token).await.unwrap_err()),
                    "not_found"
                );
            }
            Item::Trait(_) => {
                let keys: Vec<String> = signals
                    .traits(alice)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|t| t.key)
                    .collect();
                assert_eq!(keys, ["category:shoes"]);
                // The derived profile ranking reads is the same.
                let profile = signals
                    .profile_for_ranking(Some(alice), &ctx)
                    .await
                    .unwrap()
                    .unwrap();
                assert!(profile.iter().all(|t| t.key != "tag:summer"));
            }
            Item::Device(_) => assert!(signals.devices(alice).await.unwrap().is_empty()),
        }
        // Deleting it again: not found, and no second ticket.
        assert_eq!(
            code(rights.delete_item(alice, it).await.unwrap_err()),
            "not_found"
        );
    }
    let tickets = rights.tickets(alice).await.unwrap();
    assert_eq!(tickets.len(), items.len());
    assert!(tickets.iter().all(|t| t.kind == TicketKind::Deletion));
    // No personal field is left but the other trait (the device's fields went).
    assert_eq!(
        env.app.kernel.personal.list(alice).await.unwrap().len(),
        1,
        "only the remaining trait"
    );
    // The export (the user's own view of every store) agrees.
    let export = rights.export(&env.proof(alice).await).await.unwrap();
    for key in ["bookmarks", "comments", "downloads", "shares", "devices"] {
        assert!(export[key].as_array().unwrap().is_empty(), "{key}");
    }
    assert_eq!(export["traits"].as_array().unwrap().len(), 1);
    // Bob's things are all there.
    assert_eq!(catalog.bookmarks(bob).await.unwrap().len(), 1);
    assert_eq!(signals.traits(bob).await.unwrap().len(), 1);
    // Bad input is refused with stable codes.
    for (k, i, c) in [
        ("photo", "1", "unknown_item_kind"),
        ("bookmark", "abc", "invalid_id"),
        ("comment", "-3", "invalid_id"),
        ("trait", "", "invalid_id"),
    ] {
        assert_eq!(code(Item::parse(k, i).unwrap_err()), c);
    }
}

async fn wait_ready(env: &Env, subject: SubjectId, id: &str) -> ExportJobView {
    for _ in 0..3_000 {
        let j = env.app.rights.export_job(subject, id).await.unwrap();
        if j.state != "running" {
            return j;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the export did not finish");
}

async fn a_background_export_shows_progress_and_serves_its_owner_until_the_link_expires(env: Env) {
    let rights = &env.app.rights;
    let (alice, bob) = (SubjectId::random(), SubjectId::random());
    env.events(alice, 25_000, "item-1").await;
    env.events(bob, 10, "Bob-Target-0042").await;
    let who = env.proof(alice).await;
    let job = rights.start_export(&who).await.unwrap();
    assert!(job.token.is_none());
    assert_eq!(job.expires_ms, env.clock.now_ms() + 6 * HOUR);
    let ready = wait_ready(&env, alice, &job.id).await;
    assert_eq!(ready.state, "ready", "{ready:?}");
    // 11 sections, 3 pages of events, the sealing: all done.
    assert_eq!((ready.done, ready.total), (15, 15));
    assert_eq!(ready.expires_ms, ready.ready_ms.unwrap() + 6 * HOUR);
    let token = ready.token.clone().unwrap();
    // Its access ticket is answered.
    let t = rights.ticket(alice, ready.ticket_id).await.unwrap();
    assert_eq!(
        (t.kind, t.status.as_str()),
        (TicketKind::Access, "completed")
    );
    assert_eq!(rights.export_jobs(alice).await.unwrap().len(), 1);

    let json = rights
        .open_export(alice, &token, Rendering::Json)
        .await
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(doc["subject"], alice.to_string());
    assert_eq!(doc["service_events"]["count"], 25_000);
    assert_eq!(
        doc["service_events"]["events"].as_array().unwrap().len(),
        25_000
    );
    assert!(!String::from_utf8_lossy(&json).contains("Bob-Target-0042"));
    let html = rights
        .open_export(alice, &token, Rendering::Html)
        .await
        .unwrap();
    let html = String::from_utf8(html).unwrap();
    assert!(html.contains("25000 events"));
    // The stored export is sealed: not in plain text in the database.
    let hits = custos_store::rights::scan(&env.app.kernel.db, &[], &["custos-export-v1".into()])
        .await
        .unwrap();
    assert!(hits.is_empty(), "{hits:?}");

    // Never another user's: Bob sees neither the job nor the file.
    assert_eq!(
        code(rights.export_job(bob, &job.id).await.unwrap_err()),
        "not_found"
    );
    assert!(rights.export_jobs(bob).await.unwrap().is_empty());
    assert_eq!(
        code(
            rights
                .open_export(bob, &token, Rendering::Json)
                .await
                .unwrap_err()
        ),
        "not_found"
    );
    // A forged or altered token is not found either.
    let mut altered = token.clone().into_bytes();
    let last = altered.len() - 3;
    altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
    for t in [
        String::from_utf8(altered).unwrap(),
        "garbage".into(),
        String::new(),
    ] {
        assert_eq!(
            code(
                rights
                    .open_export(alice, &t, Rendering::Json)
                    .await
                    .unwrap_err()
            ),
            "not_found"
        );
    }

    // Past the link's expiry: expired, and the job with its file is gone.
    env.clock.advance(time::Duration::hours(6));
    assert_eq!(
        code(
            rights
                .open_export(alice, &token, Rendering::Json)
                .await
                .unwrap_err()
        ),
        "export_expired"
    );
    assert_eq!(
        code(rights.export_job(alice, &job.id).await.unwrap_err()),
        "not_found"
    );
    let (n,): (i64,) = match &env.app.kernel.db {
        custos_store::Db::Sqlite(p) => sqlx::query_as("SELECT COUNT(*) FROM export_jobs")
            .fetch_one(p)
            .await
            .unwrap(),
        custos_store::Db::Postgres(p) => sqlx::query_as("SELECT COUNT(*) FROM export_jobs")
            .fetch_one(p)
            .await
            .unwrap(),
    };
    assert_eq!(n, 0);
    // A running job is returned instead of a second one.
    let a = rights.start_export(&env.proof(alice).await).await.unwrap();
    let b = rights.start_export(&env.proof(alice).await).await.unwrap();
    if b.state == "running" {
        assert_eq!(a.id, b.id);
    }
    wait_ready(&env, alice, &b.id).await;
}

async fn the_export_holds_signals_data_and_follows_the_published_schema(env: Env) {
    let (rights, signals) = (&env.app.rights, &env.app.signals);
    let user = env.account("13912345678").await;
    env.consent(
        user,
        &["location", "personalized_feed", "device_info", LOGS_PURPOSE],
    )
    .await;
    let ctx = GateContext::default();
    signals.set_location_enabled(user, true).await.unwrap();
    let area = signals
        .report_location(user, 30.274_084_7, 120.155_070_1, &ctx)
        .await
        .unwrap();
    signals
        .add_affinity(user, "tag:连衣裙", 3.0, &ctx)
        .await
        .unwrap();
    signals
        .register_device(
            user,
            &DeviceReport {
                model: Some("Mate 60".into()),
                ..Default::default()
            },
            &ctx,
        )
        .await
        .unwrap();
    let now = env.clock.now_ms();
    let out = signals
        .ingest(
            Some(user),
            None,
            &[EventInput {
                kind: "search".into(),
                at_ms: now - 1_000,
                target: Some("连衣裙".into()),
                ip: Some("203.0.113.77".into()),
                carrier: None,
                language: Some("zh-CN".into()),
            }],
            &ctx,
        )
        .await
        .unwrap();
    assert_eq!(out.accepted, 1);
    rights
        .file_complaint(
            Some(user),
            &ComplaintInput::parse("complaint", "data_handling", None, "why this ad?").unwrap(),
        )
        .await
        .unwrap();

    let export = rights.export(&env.proof(user).await).await.unwrap();
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/export.schema.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&export)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}\n{export:#}");
    assert_eq!(export["location"]["enabled"], true);
    assert_eq!(export["location"]["geohash"], area.as_str());
    assert_eq!(export["devices"][0]["model"], "Mate 60");
    assert_eq!(export["traits"][0]["key"], "tag:连衣裙");
    assert_eq!(
        export["traits"][0]["lineage"]["purpose"],
        "personalized_feed"
    );
    let events = &export["service_events"];
    assert_eq!(events["count"], 1);
    assert_eq!(events["events"][0]["kind"], "search");
    assert_eq!(events["events"][0]["target"], "连衣裙");
    assert!(!export.to_string().contains("203.0.113.77"));
    assert_eq!(events["pseudonym"].as_str().unwrap().len(), 32);
    assert_eq!(export["complaints"][0]["topic"], "data_handling");
    assert!(export["rights_tickets"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["kind"] == "complaint"));
    // The schema catches a document that breaks it.
    let mut broken = export.clone();
    broken["traits"] = serde_json::json!([{"key": "x"}]);
    assert!(!validator.is_valid(&broken));
    let mut broken = export.clone();
    broken["service_events"]["events"][0]["at"] = serde_json::json!(5);
    assert!(!validator.is_valid(&broken));
    let html = custos_app::rights::export_html(&export);
    assert!(html.contains("Mate 60") && html.contains("Present location"));
}

async fn complaints_are_tickets_answered_by_operators_and_read_with_the_follow_up_secret(env: Env) {
    let rights = &env.app.rights;
    let (alice, bob) = (SubjectId::random(), SubjectId::random());
    let filed = rights
        .file_complaint(
            Some(alice),
            &ComplaintInput::parse("report", "content", Some("comment:12"), "spam comment")
                .unwrap(),
        )
        .await
        .unwrap();
    assert!(filed.follow_up_secret.is_none());
    let c = filed.complaint;
    assert_eq!(c.ticket.kind, TicketKind::Report);
    assert_eq!(c.ticket.status, "open");
    assert_eq!(
        c.ticket.due_ms,
        rights.deadline(TicketKind::Report, env.clock.now_ms())
    );
    assert_eq!(c.about.as_deref(), Some("comment:12"));
    assert!(!c.anonymous);
    // It is a ticket with a deadline: operators see it when it comes near.
    env.clock.advance(time::Duration::days(29));
    assert!(rights
        .due_soon(None)
        .await
        .unwrap()
        .iter()
        .any(|t| t.id == c.ticket.id));
    // Only the filer reads it.
    assert_eq!(rights.complaints(alice).await.unwrap().len(), 1);
    assert!(rights.complaints(bob).await.unwrap().is_empty());
    assert_eq!(
        code(rights.complaint(bob, c.ticket.id).await.unwrap_err()),
        "not_found"
    );

    // Anonymous: a secret reads the answer; nothing links it to anyone.
    let anon = rights
        .file_complaint(
            None,
            &ComplaintInput::parse("complaint", "data_handling", None, "you kept my data").unwrap(),
        )
        .await
        .unwrap();
    let secret = anon.follow_up_secret.clone().unwrap();
    assert!(secret.len() >= 43);
    assert!(anon.complaint.anonymous);
    let id = anon.complaint.ticket.id;
    let read = rights.complaint_by_secret(&secret).await.unwrap();
    assert_eq!((read.ticket.id, read.answer.clone()), (id, None));
    // The secret is kept only as a keyed hash.
    let hits = custos_store::rights::scan(&env.app.kernel.db, &[], std::slice::from_ref(&secret))
        .await
        .unwrap();
    assert!(hits.is_empty(), "{hits:?}");
    for wrong in ["", "nope", &secret[..secret.len() - 1]] {
        assert_eq!(
            code(rights.complaint_by_secret(wrong).await.unwrap_err()),
            "not_found"
        );
    }

    // The operator answers; the filer reads the answer.
    for (a, c) in [
        ("", "answer_required"),
        (&"x".repeat(4001) as &str, "answer_too_long"),
    ] {
        assert_eq!(code(rights.answer_complaint(id, a).await.unwrap_err()), c);
    }
    let answered = rights
        .answer_complaint(id, "We deleted the data on 2 January.")
        .await
        .unwrap();
    assert_eq!(answered.ticket.status, "answered");
    assert!(answered.ticket.closed_ms.is_some());
    let read = rights.complaint_by_secret(&secret).await.unwrap();
    assert_eq!(
        read.answer.as_deref(),
        Some("We deleted the data on 2 January.")
    );
    let statuses: Vec<&str> = read
        .ticket
        .history
        .iter()
        .map(|e| e.status.as_str())
        .collect();
    assert_eq!(statuses, ["open", "answered"]);
    assert_eq!(
        code(rights.answer_complaint(id, "again").await.unwrap_err()),
        "ticket_closed"
    );
    assert_eq!(
        code(rights.answer_complaint(i64::MAX, "x").await.unwrap_err()),
        "not_found"
    );
    // A rights ticket that is not a complaint cannot be answered as one.
    let plain = rights
        .open_ticket(alice, TicketKind::Access, "")
        .await
        .unwrap();
    assert_eq!(
        code(rights.answer_complaint(plain.id, "x").await.unwrap_err()),
        "not_found"
    );
    // Bad input.
    for (k, t, a, d, c) in [
        ("praise", "content", None, "x", "unknown_kind"),
        ("report", "weather", None, "x", "unknown_topic"),
        ("report", "content", Some("item:abc"), "x", "invalid_about"),
        ("report", "content", Some("user:1"), "x", "invalid_about"),
        ("report", "content", None, "  ", "detail_required"),
    ] {
        assert_eq!(code(ComplaintInput::parse(k, t, a, d).unwrap_err()), c);
    }
    assert_eq!(
        code(ComplaintInput::parse("report", "content", None, &"x".repeat(4001)).unwrap_err()),
        "detail_too_long"
    );
    // The contact comes from the declaration.
    let contact = rights.contact();
    let regime = env.app.kernel.gate.regime();
    let ctl = &regime.current().declaration().controller;
    assert_eq!(contact.email, ctl.email);
    assert_eq!(contact.complaint_route.zh, ctl.complaint_route.zh);
}

async fn erasure_unlinks_the_service_log_and_deletes_export_jobs(env: Env) {
    let rights = &env.app.rights;
    let user = env.account("13912345678").await;
    let other = SubjectId::random();
    env.events(user, 1_500, "item-7").await;
    env.events(other, 5, "item-8").await;
    // Three security-log events (kept by law) under the same pseudonym.
    let pseudonym = env
        .app
        .kernel
        .ring
        .pseudonym(EVENTS_DOMAIN, user.to_string().as_bytes());
    let security: Vec<StoredEvent> = (0..3)
        .map(|i| StoredEvent {
            pseudonym,
            purpose: "security".into(),
            kind: "browse".into(),
            target: None,
            ip_prefix: Some("203.0.113.0".into()),
            carrier: None,
            language: None,
            at_ms: env.clock.now_ms() - i,
            expires_at_ms: Some(env.clock.now_ms() + 200 * 24 * HOUR),
        })
        .collect();
    env.app.signals.events.append(&security).await.unwrap();
    let job = rights.start_export(&env.proof(user).await).await.unwrap();
    wait_ready(&env, user, &job.id).await;
    assert_eq!(
        env.app
            .signals
            .events
            .for_pseudonym(&pseudonym)
            .await
            .unwrap()
            .len(),
        1_503
    );

    rights
        .request_cancellation(&env.proof(user).await)
        .await
        .unwrap();
    env.clock.advance(time::Duration::days(7));
    let reports = rights.run_due_cancellations().await.unwrap();
    assert_eq!(reports.len(), 1);
    // No event carries the subject's pseudonym: the analytics ones are gone, the security
    // ones stay under a random pseudonym, with their retention.
    assert!(env
        .app
        .signals
        .events
        .for_pseudonym(&pseudonym)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(env.app.signals.events.count().await.unwrap(), 5 + 3);
    assert_eq!(env.app.signals.purge_expired_events().await.unwrap(), 0);
    // The export job went with the account.
    assert!(rights.export_jobs(user).await.unwrap().is_empty());
    let texts = vec![
        user.to_string(),
        user.to_string().replace('-', ""),
        hex::encode(pseudonym),
    ];
    let hits = custos_store::rights::scan(
        &env.app.kernel.db,
        &[user.as_bytes().to_vec(), pseudonym.to_vec()],
        &texts,
    )
    .await
    .unwrap();
    assert!(hits.iter().all(|h| h.table == "consent_ledger"), "{hits:?}");
}
