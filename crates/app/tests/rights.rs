//! Rights tickets through their use cases, on SQLite and PostgreSQL (P17, L6): deadlines
//! from a configurable working-day calendar under a fake clock, status history, refusals
//! that need a reason and a legal basis and name the complaint route, operators' list of
//! overdue and near-due tickets, and tickets scoped to their subject.

use std::sync::Arc;

use custos_app::catalog::input::Format;
use custos_app::config::MasterKeySource;
use custos_app::rights::{Decision, RightsConfig, TicketKind};
use custos_app::{App, AppError, Config};
use custos_core::GateContext;
use custos_core::{Clock, FakeClock, SubjectId};
use custos_crypto::{MasterKey, OsRng};

struct Env {
    app: App,
    clock: Arc<FakeClock>,
    _dir: tempfile::TempDir,
}

const DAY: i64 = 86_400_000;
/// 2026-01-01T00:00:00Z, a Thursday (08:00 in China), where the fake clock starts.
const START: i64 = 1_767_225_600_000;

fn config(dir: &std::path::Path, pg: Option<&(String, String)>, rights: RightsConfig) -> Config {
    Config {
        data_dir: dir.to_path_buf(),
        database_url: pg
            .map(|p| p.0.clone())
            .unwrap_or_else(|| format!("sqlite://{}", dir.join("custos.db").display())),
        vault_url: pg
            .map(|p| p.1.clone())
            .unwrap_or_else(|| format!("sqlite://{}", dir.join("keys.db").display())),
        master_key: MasterKeySource::Inline(MasterKey::generate(&mut OsRng).to_base64()),
        rights,
        ..Default::default()
    }
}

fn holidays() -> RightsConfig {
    RightsConfig {
        holidays: Some(vec!["2026-01-02".into(), "2026-01-05".into()]),
        ..Default::default()
    }
}

impl Env {
    async fn open(pg: Option<(String, String)>) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path(), pg.as_ref(), holidays());
        let clock = Arc::new(FakeClock::default());
        let app = App::open(&cfg, clock.clone()).await.unwrap();
        Env {
            app,
            clock,
            _dir: dir,
        }
    }
    async fn sqlite() -> Option<Env> {
        Some(Env::open(None).await)
    }
    async fn postgres() -> Option<Env> {
        let data = custos_testkit::postgres_database().await?;
        let vault = custos_testkit::postgres_database().await?;
        Some(Env::open(Some((data, vault))).await)
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
    every_request_is_a_ticket_with_a_deadline_from_the_working_day_calendar,
    a_refusal_needs_a_reason_and_a_legal_basis_and_names_the_complaint_route,
    operators_see_overdue_and_near_due_tickets_as_the_clock_moves,
    a_ticket_is_visible_to_its_subject_alone,
    a_cancellation_can_be_revoked_during_cooling_off_and_then_erases_the_account,
    an_export_holds_all_the_users_data_and_follows_the_published_schema,
);

/// The instant local (UTC+8) day `y-m-d` ends.
fn end_of_local_day(y: i32, m: u8, d: u8) -> i64 {
    let date = time::Date::from_calendar_date(y, time::Month::try_from(m).unwrap(), d).unwrap();
    let next = date
        .next_day()
        .unwrap()
        .midnight()
        .assume_offset(time::macros::offset!(+8));
    (next.unix_timestamp_nanos() / 1_000_000) as i64
}

async fn every_request_is_a_ticket_with_a_deadline_from_the_working_day_calendar(env: Env) {
    let rights = &env.app.rights;
    let user = SubjectId::random();
    assert_eq!(env.clock.now_ms(), START);
    // Cancellation: 15 working days, Thursday 2026-01-01 not counted; the weekends and the
    // listed holidays (Friday 2nd, Monday 5th) are skipped: Monday 26 January.
    let t = rights
        .open_ticket(user, TicketKind::Cancellation, "")
        .await
        .unwrap();
    assert_eq!(t.due_ms, end_of_local_day(2026, 1, 26));
    assert_eq!(t.status, "open");
    assert_eq!(t.history.len(), 1);
    assert_eq!(t.history[0].status, "open");
    assert_eq!(t.history[0].at_ms, START);
    // Every other kind: one calendar month.
    for kind in TicketKind::ALL {
        if kind == TicketKind::Cancellation {
            continue;
        }
        let t = rights.open_ticket(user, kind, "please").await.unwrap();
        assert_eq!(t.kind, kind);
        assert_eq!(t.due_ms, end_of_local_day(2026, 2, 1), "{kind:?}");
    }
    assert_eq!(rights.tickets(user).await.unwrap().len(), 6);

    // The calendar itself: month ends clamp; make-up working days count; without the
    // holidays the same cancellation is due on Thursday 22 January.
    let cal = rights.calendar();
    let jan31 = end_of_local_day(2026, 1, 30) + 3_600_000;
    assert_eq!(cal.add_months(jan31, 1), end_of_local_day(2026, 2, 28));
    let plain = custos_app::rights::Calendar::from_config(&RightsConfig::default()).unwrap();
    assert_eq!(
        plain.add_working_days(START, 15),
        end_of_local_day(2026, 1, 22)
    );
    let makeup = custos_app::rights::Calendar::from_config(&RightsConfig {
        extra_working_days: Some(vec!["2026-01-03".into()]),
        ..holidays()
    })
    .unwrap();
    assert_eq!(
        makeup.add_working_days(START, 15),
        end_of_local_day(2026, 1, 23)
    );
    // Configured durations.
    let short = custos_app::rights::Calendar::from_config(&RightsConfig {
        weekend: Some(vec!["sun".into()]),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(
        short.add_working_days(START, 2),
        end_of_local_day(2026, 1, 3)
    );
    assert!(custos_app::rights::Calendar::from_config(&RightsConfig {
        holidays: Some(vec!["2026-13-01".into()]),
        ..Default::default()
    })
    .is_err());

    // Too long a detail is refused with a stable code.
    let err = rights
        .open_ticket(user, TicketKind::Access, &"x".repeat(4001))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        AppError::BadRequest {
            code: "detail_too_long",
            ..
        }
    ));
}

async fn a_refusal_needs_a_reason_and_a_legal_basis_and_names_the_complaint_route(env: Env) {
    let rights = &env.app.rights;
    let user = SubjectId::random();
    let t = rights
        .open_ticket(user, TicketKind::Deletion, "my comments")
        .await
        .unwrap();
    env.clock.advance(time::Duration::hours(1));
    let t = rights
        .decide(
            t.id,
            &Decision::InProgress {
                note: "checking".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(t.status, "in_progress");
    for (reason, basis, code) in [
        ("", "PIPL art. 47", "refusal_reason_required"),
        ("  ", "PIPL art. 47", "refusal_reason_required"),
        ("kept for a dispute", "", "refusal_basis_required"),
    ] {
        let err = rights
            .decide(
                t.id,
                &Decision::Refused {
                    reason: reason.into(),
                    legal_basis: basis.into(),
                },
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, AppError::BadRequest { code: c, .. } if c == code),
            "{err:?}"
        );
    }
    env.clock.advance(time::Duration::hours(1));
    let t = rights
        .decide(
            t.id,
            &Decision::Refused {
                reason: "kept for a pending dispute".into(),
                legal_basis: "PIPL art. 13(3): legal obligation".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(t.status, "refused");
    assert_eq!(t.closed_ms, Some(START + 2 * 3_600_000));
    assert_eq!(
        t.refusal_reason.as_deref(),
        Some("kept for a pending dispute")
    );
    assert_eq!(
        t.refusal_basis.as_deref(),
        Some("PIPL art. 13(3): legal obligation")
    );
    let regime = env.app.kernel.gate.regime();
    let route = &regime.current().declaration().controller.complaint_route;
    let got = t.complaint_route.clone().unwrap();
    assert!(!route.en.is_empty());
    assert_eq!(
        (got.en.as_str(), got.zh.as_str()),
        (route.en.as_str(), route.zh.as_str())
    );
    let statuses: Vec<&str> = t.history.iter().map(|e| e.status.as_str()).collect();
    assert_eq!(statuses, ["open", "in_progress", "refused"]);
    // The subject reads the same answer.
    let mine = rights.ticket(user, t.id).await.unwrap();
    assert_eq!(mine, t);
    // A closed ticket stays closed.
    let err = rights
        .decide(
            t.id,
            &Decision::Completed {
                note: String::new(),
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        AppError::BadRequest {
            code: "ticket_closed",
            ..
        }
    ));
    assert!(matches!(
        rights
            .decide(
                i64::MAX,
                &Decision::Completed {
                    note: String::new()
                }
            )
            .await
            .unwrap_err(),
        AppError::NotFound
    ));
}

async fn operators_see_overdue_and_near_due_tickets_as_the_clock_moves(env: Env) {
    let rights = &env.app.rights;
    let user = SubjectId::random();
    let cancel = rights
        .open_ticket(user, TicketKind::Cancellation, "")
        .await
        .unwrap();
    let access = rights
        .open_ticket(user, TicketKind::Access, "")
        .await
        .unwrap();
    let done = rights
        .open_ticket(user, TicketKind::Explanation, "")
        .await
        .unwrap();
    rights
        .decide(
            done.id,
            &Decision::Completed {
                note: "answered".into(),
            },
        )
        .await
        .unwrap();
    assert!(rights.due_soon(None).await.unwrap().is_empty());

    // Two days before the cancellation deadline it is near due (default window: 3 days).
    env.clock.advance(time::Duration::milliseconds(
        cancel.due_ms - START - 2 * DAY,
    ));
    let ids: Vec<i64> = rights
        .due_soon(None)
        .await
        .unwrap()
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(ids, [cancel.id]);
    assert!(!rights.due_soon(None).await.unwrap()[0].overdue(env.clock.now_ms()));
    // A wider window also shows the access request.
    let wide: Vec<i64> = rights
        .due_soon(Some(30 * DAY))
        .await
        .unwrap()
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(wide, [cancel.id, access.id]);

    // Past it, it is overdue; the closed ticket never shows.
    env.clock.advance(time::Duration::days(3));
    let due = rights.due_soon(None).await.unwrap();
    assert_eq!(due.len(), 1);
    assert!(due[0].overdue(env.clock.now_ms()));
    env.clock.advance(time::Duration::days(30));
    let due = rights.due_soon(None).await.unwrap();
    let ids: Vec<i64> = due.iter().map(|t| t.id).collect();
    assert_eq!(ids, [cancel.id, access.id]);
    assert!(due.iter().all(|t| t.overdue(env.clock.now_ms())));
    // Answering it takes it off the list.
    rights
        .decide(
            cancel.id,
            &Decision::Completed {
                note: String::new(),
            },
        )
        .await
        .unwrap();
    let ids: Vec<i64> = rights
        .due_soon(None)
        .await
        .unwrap()
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(ids, [access.id]);
}

async fn a_ticket_is_visible_to_its_subject_alone(env: Env) {
    let rights = &env.app.rights;
    let (alice, bob) = (SubjectId::random(), SubjectId::random());
    let t = rights
        .open_ticket(alice, TicketKind::Correction, "my nickname")
        .await
        .unwrap();
    assert_eq!(t.subject, Some(alice));
    assert!(matches!(
        rights.ticket(bob, t.id).await.unwrap_err(),
        AppError::NotFound
    ));
    assert!(rights.tickets(bob).await.unwrap().is_empty());
    assert_eq!(
        rights.ticket(alice, t.id).await.unwrap().detail,
        "my nickname"
    );
}

async fn a_cancellation_can_be_revoked_during_cooling_off_and_then_erases_the_account(env: Env) {
    let rights = &env.app.rights;
    let identity = &env.app.identity;
    let catalog = &env.app.catalog;
    let ids = catalog
        .import_text(
            "external_id,title_zh,title_en,description_zh,description_en,category,tags,price_min,price_max,currency\n\
             sku-1,夏季连衣裙,Summer dress,轻薄透气,Light and airy,clothing,summer,199,259,CNY\n",
            Format::Csv,
            false,
            &mut |_| {},
        )
        .await
        .unwrap()
        .ids;
    let user = SubjectId::random();
    let ctx = GateContext::default();
    catalog
        .bookmark(user, &ctx, ids[0], Some("Secret-Collection-9182"))
        .await
        .unwrap();
    catalog
        .comment(user, &ctx, ids[0], "Mine-4471", false)
        .await
        .unwrap();
    let access = rights
        .open_ticket(user, TicketKind::Access, "Private-Words-3390")
        .await
        .unwrap();

    // Without a fresh proof there is no cancellation.
    let stale = identity.create_session(user, false).await.unwrap();
    let stale = identity.authenticate(stale.token.expose()).await.unwrap();
    assert!(matches!(
        identity.reauthenticated(&stale).unwrap_err(),
        AppError::ReauthenticationRequired
    ));
    let fresh = identity.create_session(user, true).await.unwrap();
    let fresh = identity.authenticate(fresh.token.expose()).await.unwrap();
    let who = identity.reauthenticated(&fresh).unwrap();

    // Request, then revoke within the cooling-off period (default: 7 days).
    let c = rights.request_cancellation(&who).await.unwrap();
    assert_eq!(c.effective_ms, START + 7 * DAY);
    assert!(c
        .kept_deidentified
        .iter()
        .any(|k| k.what == "consent ledger records"));
    assert!(c
        .kept_deidentified
        .iter()
        .any(|k| k.what == "security logs"));
    // Asking again returns the pending one.
    assert_eq!(rights.request_cancellation(&who).await.unwrap(), c);
    env.clock.advance(time::Duration::days(6));
    assert!(rights.run_due_cancellations().await.unwrap().is_empty());
    rights.revoke_cancellation(user).await.unwrap();
    assert!(rights.cancellation(user).await.unwrap().is_none());
    let t = rights.ticket(user, c.ticket_id).await.unwrap();
    assert_eq!(t.status, "withdrawn");
    env.clock.advance(time::Duration::days(2));
    assert!(rights.run_due_cancellations().await.unwrap().is_empty());
    assert_eq!(catalog.bookmarks(user).await.unwrap().len(), 1);
    assert!(matches!(
        rights.revoke_cancellation(user).await.unwrap_err(),
        AppError::NotFound
    ));

    // The user agreed to sharing with a brand partner: that partner is owed a notice.
    env.app
        .kernel
        .record_decisions(
            user,
            false,
            &[custos_app::consent::DecisionInput {
                purpose: "partner_sharing".into(),
                decision: custos_core::Decision::Given,
            }],
            custos_core::ConsentMethod::Dialog,
        )
        .await
        .unwrap();

    let hits = custos_store::rights::scan(
        &env.app.kernel.db,
        &[user.as_bytes().to_vec()],
        &[user.to_string()],
    )
    .await
    .unwrap();
    assert!(hits.iter().any(|h| h.table == "bookmarks"), "{hits:?}");

    // Request again and let the cooling-off period pass: the account is erased.
    let token = identity.create_session(user, true).await.unwrap();
    let fresh = identity.authenticate(token.token.expose()).await.unwrap();
    let who = identity.reauthenticated(&fresh).unwrap();
    let c = rights.request_cancellation(&who).await.unwrap();
    assert_eq!(c.effective_ms, env.clock.now_ms() + 7 * DAY);
    env.clock.advance(time::Duration::days(7));
    assert!(matches!(
        rights.revoke_cancellation(user).await.unwrap_err(),
        AppError::BadRequest {
            code: "cooling_off_over",
            ..
        }
    ));
    let reports = rights.run_due_cancellations().await.unwrap();
    assert_eq!(reports.len(), 1);
    let r = &reports[0];
    assert_eq!((r.subject, r.ticket_id), (user, c.ticket_id));
    assert!(!r.kept_deidentified.is_empty());
    assert!(
        r.partners_to_notify.contains(&"xingyao_brands".to_owned()),
        "{:?}",
        r.partners_to_notify
    );
    let owed =
        custos_store::rights::pending_partner_notifications(&env.app.kernel.db, &r.erasure_ref)
            .await
            .unwrap();
    assert_eq!(owed, r.partners_to_notify);
    assert!(rights.run_due_cancellations().await.unwrap().is_empty());

    // Every store forgot the subject: interactions, sessions, tickets (kept unlinked).
    assert!(catalog.bookmarks(user).await.unwrap().is_empty());
    assert!(catalog.comments_on(ids[0]).await.unwrap().is_empty());
    assert!(identity.authenticate(token.token.expose()).await.is_err());
    assert!(rights.tickets(user).await.unwrap().is_empty());
    assert!(rights.cancellation(user).await.unwrap().is_none());
    let kept = rights.ticket_for_operator(access.id).await.unwrap();
    assert_ne!(kept.subject, Some(user));
    assert_eq!(kept.detail, "");
    // The scan behind `custos erasure verify`: only the ledger keeps the random id.
    let texts = vec![user.to_string(), user.to_string().replace('-', "")];
    let bytes = vec![user.as_bytes().to_vec()];
    for db in [&env.app.kernel.db, env.app.kernel.vault.db()] {
        let hits = custos_store::rights::scan(db, &bytes, &texts)
            .await
            .unwrap();
        assert!(hits.iter().all(|h| h.table == "consent_ledger"), "{hits:?}");
    }
    let done = rights.ticket_for_operator(c.ticket_id).await.unwrap();
    assert_eq!(done.status, "completed");
    assert!(done.history.last().unwrap().note.contains(&r.erasure_ref));
}

async fn an_export_holds_all_the_users_data_and_follows_the_published_schema(env: Env) {
    let (rights, identity, catalog) = (&env.app.rights, &env.app.identity, &env.app.catalog);
    let ids = catalog
        .import_text(
            "external_id,title_zh,title_en,description_zh,description_en,category,tags,price_min,price_max,currency\n\
             sku-1,夏季连衣裙,Summer dress,轻薄透气,Light and airy,clothing,summer,199,259,CNY\n",
            Format::Csv,
            false,
            &mut |_| {},
        )
        .await
        .unwrap()
        .ids;
    let user = SubjectId::random();
    let ctx = GateContext::default();
    catalog
        .bookmark(user, &ctx, ids[0], Some("夏天"))
        .await
        .unwrap();
    catalog
        .comment(user, &ctx, ids[0], "好看", false)
        .await
        .unwrap();
    catalog.share(user, &ctx, ids[0]).await.unwrap();
    env.app
        .kernel
        .record_decisions(
            user,
            false,
            &[custos_app::consent::DecisionInput {
                purpose: "partner_sharing".into(),
                decision: custos_core::Decision::Given,
            }],
            custos_core::ConsentMethod::Dialog,
        )
        .await
        .unwrap();
    let other = SubjectId::random();
    catalog
        .comment(other, &ctx, ids[0], "别人的", false)
        .await
        .unwrap();
    let token = identity.create_session(user, true).await.unwrap();
    let session = identity.authenticate(token.token.expose()).await.unwrap();
    let who = identity.reauthenticated(&session).unwrap();

    let export = rights.export(&who).await.unwrap();
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
    assert_eq!(export["subject"], user.to_string());
    assert_eq!(export["bookmarks"].as_array().unwrap().len(), 1);
    assert_eq!(export["shares"].as_array().unwrap().len(), 1);
    let comments = export["comments"].as_array().unwrap();
    assert_eq!(comments.len(), 1);
    assert!(export.to_string().contains("好看"));
    assert!(!export.to_string().contains("别人的"));
    assert_eq!(export["consents"][0]["purpose"], "partner_sharing");
    assert_eq!(export["receipts"].as_array().unwrap().len(), 1);
    // The export is itself an answered access ticket.
    assert_eq!(export["rights_tickets"][0]["kind"], "access");
    assert_eq!(export["rights_tickets"][0]["status"], "completed");
    // A document that breaks the schema is caught.
    let mut broken = export.clone();
    broken["consents"] = serde_json::json!([{"purpose": 1}]);
    assert!(!validator.is_valid(&broken));

    let html = custos_app::rights::export_html(&export);
    assert!(html.contains("<h2>Bookmarks</h2>") && html.contains("好看"));
    assert!(!html.contains("<script"));
}
