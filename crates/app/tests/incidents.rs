//! Security incidents through their use cases, on SQLite and PostgreSQL (P25, L11): every
//! notice field is required, affected users come from the data map by category, window,
//! store and sessions, they are told once by inbox message, an announcement is public, the
//! timeline is append-only, and the 72-hour regulator alarm follows a fake clock.

use std::sync::Arc;

use custos_app::config::MasterKeySource;
use custos_app::ops::incidents::{AffectedQuery, IncidentInput};
use custos_app::ops::Actor;
use custos_app::{App, AppError, Config};
use custos_core::{Clock, FakeClock, GateContext, Personal, SubjectId};
use custos_crypto::{MasterKey, OsRng};
use custos_store::personal::Field;

struct Env {
    app: App,
    clock: Arc<FakeClock>,
    _dir: tempfile::TempDir,
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
                ..Default::default()
            };
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
    fn advance_hours(&self, h: i64) {
        self.clock.advance(time::Duration::hours(h));
    }
    /// A nickname (profile purpose, contract basis) written now.
    async fn nickname(&self, s: SubjectId) {
        self.app
            .kernel
            .store_field(
                s,
                "profile",
                &Field::new("nickname", "user.name"),
                &Personal::new(b"Xiao Ming".to_vec()),
                &GateContext::default(),
            )
            .await
            .unwrap();
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
    an_incident_needs_every_l11_field_and_names_the_missing_one,
    affected_users_come_from_the_data_map_and_are_told_once_with_every_l11_field,
    an_announcement_is_public_when_individual_notice_is_impractical,
    the_alarm_rings_72_hours_after_detection_until_a_regulator_report_is_recorded,
    the_scheduled_alarm_job_raises_each_overdue_incident_once_with_an_audit_entry,
);

fn complete(detected_ms: i64) -> IncidentInput {
    IncidentInput {
        title: "Nickname table exposed".into(),
        cause: "A misconfigured backup bucket was readable for six hours.".into(),
        categories: vec!["user.name".into()],
        stores: vec!["database".into()],
        possible_harm: "Nicknames could be linked to accounts by someone who downloaded it.".into(),
        remedies: "The bucket was closed and the backup destroyed; keys were rotated.".into(),
        user_actions: "Change your nickname if it reveals who you are.".into(),
        contact: "security@vistafinds.example, +86 571 0000 0000".into(),
        detected_ms: Some(detected_ms),
    }
}

/// Empties one field of a complete report.
type Blank = Box<dyn Fn(&mut IncidentInput)>;

fn code(e: AppError) -> (String, String) {
    (e.code().to_owned(), e.to_string())
}

async fn an_incident_needs_every_l11_field_and_names_the_missing_one(env: Env) {
    let ops = &env.app.ops;
    let now = env.clock.now_ms();
    let blanks: Vec<(&str, Blank)> = vec![
        ("cause", Box::new(|i| i.cause = " ".into())),
        ("categories", Box::new(|i| i.categories.clear())),
        ("stores", Box::new(|i| i.stores.clear())),
        ("possible_harm", Box::new(|i| i.possible_harm.clear())),
        ("remedies", Box::new(|i| i.remedies.clear())),
        ("user_actions", Box::new(|i| i.user_actions.clear())),
        ("contact", Box::new(|i| i.contact.clear())),
        ("detected_at", Box::new(|i| i.detected_ms = None)),
    ];
    for (field, blank) in blanks {
        let mut input = complete(now);
        blank(&mut input);
        let (c, message) = code(ops.record_incident(&Actor::Cli, &input).await.unwrap_err());
        assert_eq!(c, "missing_field", "{field}");
        assert!(
            message.contains(&format!("`{field}`")),
            "{field}: {message}"
        );
    }
    let mut bad = complete(now);
    bad.categories = vec!["user.shoe_size".into()];
    let (c, _) = code(ops.record_incident(&Actor::Cli, &bad).await.unwrap_err());
    assert_eq!(c, "unknown_category");
    let mut bad = complete(now);
    bad.stores = vec!["floppy_disk".into()];
    let (c, _) = code(ops.record_incident(&Actor::Cli, &bad).await.unwrap_err());
    assert_eq!(c, "unknown_store");
    assert!(ops.incidents().await.unwrap().is_empty());

    let i = ops
        .record_incident(&Actor::Cli, &complete(now - HOUR))
        .await
        .unwrap();
    assert_eq!(i.regulator_due_ms, now - HOUR + 72 * HOUR);
    assert_eq!(i.timeline.len(), 1);
    assert_eq!(i.timeline[0].action, "recorded");
    assert_eq!(i.timeline[0].actor, "cli");
}

async fn affected_users_come_from_the_data_map_and_are_told_once_with_every_l11_field(env: Env) {
    let app = &env.app;
    let (before, inside, session_only, other_category) = (
        SubjectId::random(),
        SubjectId::random(),
        SubjectId::random(),
        SubjectId::random(),
    );
    env.nickname(before).await;
    env.advance_hours(48);
    let from = env.clock.now_ms();
    env.nickname(inside).await;
    app.identity
        .create_session(session_only, true)
        .await
        .unwrap();
    app.kernel
        .store_field(
            other_category,
            "profile",
            &Field::new("password", "user.authorization.password"),
            &Personal::new(b"$argon2id$stub".to_vec()),
            &GateContext::default(),
        )
        .await
        .unwrap();
    env.advance_hours(1);
    let to = env.clock.now_ms();

    let i = app
        .ops
        .record_incident(&Actor::OperatorToken, &complete(to))
        .await
        .unwrap();
    let q = AffectedQuery {
        from_ms: from,
        to_ms: to,
        ..Default::default()
    };
    let a = app.ops.affected_subjects(i.id, &q).await.unwrap();
    assert_eq!(a.subjects, vec![inside]);
    // Everything stored up to `to`, and sessions in the window.
    let wide = AffectedQuery {
        from_ms: 0,
        sessions: true,
        ..q.clone()
    };
    let mut expected = vec![before, inside, session_only];
    expected.sort();
    assert_eq!(
        app.ops
            .affected_subjects(i.id, &wide)
            .await
            .unwrap()
            .subjects,
        expected
    );
    // Stores without personal data yield nobody; a partner that never received data either.
    for store in ["object_storage", "xingyao_brands"] {
        let q = AffectedQuery {
            stores: vec![store.into()],
            from_ms: 0,
            ..q.clone()
        };
        assert_eq!(
            app.ops.affected_subjects(i.id, &q).await.unwrap().count,
            0,
            "{store}"
        );
    }
    // The data map says where names live.
    let map = app.ops.data_map().await.unwrap();
    let profile = map
        .iter()
        .find(|e| e.store == "database" && e.purpose == "profile")
        .unwrap();
    assert!(profile.categories.contains(&"user.name".to_owned()));
    assert!(profile
        .fields
        .iter()
        .any(|f| f.field == "nickname" && f.subjects == 2));

    let r = app
        .ops
        .notify_affected(&Actor::OperatorToken, i.id, &wide)
        .await
        .unwrap();
    assert_eq!((r.notified, r.already_notified), (3, 0));
    let inbox = app.signals.inbox(inside).await.unwrap();
    assert_eq!(inbox.len(), 1);
    for text in [
        &i.cause,
        &i.possible_harm,
        &i.remedies,
        &i.user_actions,
        &i.contact,
        &"昵称".to_owned(),
    ] {
        assert!(
            inbox[0].body.contains(text.as_str()),
            "{text} missing from the notice"
        );
    }
    assert!(inbox[0].title.contains(&i.title));
    assert!(app.signals.inbox(other_category).await.unwrap().is_empty());
    // A second round tells nobody twice.
    let r = app
        .ops
        .notify_affected(&Actor::OperatorToken, i.id, &wide)
        .await
        .unwrap();
    assert_eq!((r.notified, r.already_notified), (0, 3));
    assert_eq!(app.signals.inbox(inside).await.unwrap().len(), 1);
    let i = app.ops.incident(i.id).await.unwrap();
    assert_eq!(i.notified, 3);
    let actions: Vec<&str> = i.timeline.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        ["recorded", "notified_individually", "notified_individually"]
    );
}

async fn an_announcement_is_public_when_individual_notice_is_impractical(env: Env) {
    let ops = &env.app.ops;
    let i = ops
        .record_incident(&Actor::Cli, &complete(env.clock.now_ms()))
        .await
        .unwrap();
    assert!(ops.announcements(50).await.unwrap().is_empty());
    let a = ops.announce_incident(&Actor::Cli, i.id).await.unwrap();
    let list = ops.announcements(50).await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].id, a.id);
    assert_eq!(list[0].incident_id, Some(i.id));
    for text in [
        &i.cause,
        &i.possible_harm,
        &i.remedies,
        &i.user_actions,
        &i.contact,
    ] {
        assert!(list[0].body.contains(text.as_str()));
    }
    let step = ops
        .add_incident_action(&Actor::Cli, i.id, "keys_rotated", "rotated the backup key")
        .await
        .unwrap();
    let i = ops.incident(i.id).await.unwrap();
    assert_eq!(i.timeline.last().unwrap().seq, step.seq);
    assert_eq!(i.timeline[1].action, "announced");
    // The timeline is append-only: the database refuses to change or remove an entry.
    let db = &env.app.kernel.db;
    let upd = custos_store::on_db!(db, p => sqlx::query("UPDATE incident_timeline SET detail = 'nothing happened'")
        .execute(p).await.map(|_| ()));
    assert!(upd.is_err());
    let del = custos_store::on_db!(db, p => sqlx::query("DELETE FROM incident_timeline")
        .execute(p).await.map(|_| ()));
    assert!(del.is_err());
    assert_eq!(ops.incident(i.id).await.unwrap().timeline.len(), 3);
}

async fn the_alarm_rings_72_hours_after_detection_until_a_regulator_report_is_recorded(env: Env) {
    let ops = &env.app.ops;
    let detected = env.clock.now_ms() - HOUR;
    let i = ops
        .record_incident(&Actor::Cli, &complete(detected))
        .await
        .unwrap();
    let other = ops
        .record_incident(&Actor::Cli, &complete(env.clock.now_ms()))
        .await
        .unwrap();
    assert!(ops.incident_alarms().await.unwrap().is_empty());
    env.advance_hours(70); // 71 h since detection
    assert!(ops.incident_alarms().await.unwrap().is_empty());
    env.advance_hours(1); // exactly 72 h
    let alarms = ops.incident_alarms().await.unwrap();
    assert_eq!(alarms.len(), 1);
    assert_eq!(alarms[0].incident_id, i.id);
    assert_eq!(alarms[0].due_ms, detected + 72 * HOUR);
    env.advance_hours(1);
    let ids: Vec<i64> = ops
        .incident_alarms()
        .await
        .unwrap()
        .iter()
        .map(|a| a.incident_id)
        .collect();
    assert_eq!(ids, vec![i.id, other.id]);

    // A report dated before detection is refused; a proper one ends the alarm.
    let e = ops
        .record_regulator_report(&Actor::Cli, i.id, "CAC-2026-0042", Some(detected - 1))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "invalid_field");
    let done = ops
        .record_regulator_report(&Actor::Cli, i.id, "CAC-2026-0042", None)
        .await
        .unwrap();
    assert_eq!(done.regulator_reference.as_deref(), Some("CAC-2026-0042"));
    assert_eq!(done.timeline.last().unwrap().action, "regulator_reported");
    let ids: Vec<i64> = ops
        .incident_alarms()
        .await
        .unwrap()
        .iter()
        .map(|a| a.incident_id)
        .collect();
    assert_eq!(ids, vec![other.id]);
    let e = ops
        .record_regulator_report(&Actor::Cli, i.id, "again", None)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "already_reported");
}

async fn the_scheduled_alarm_job_raises_each_overdue_incident_once_with_an_audit_entry(env: Env) {
    use custos_app::jobs::{Job, Jobs, JobsConfig, Outcome};
    let ops = &env.app.ops;
    let jobs = Jobs::new(env.app.clone(), JobsConfig::default());
    let i = ops
        .record_incident(&Actor::Cli, &complete(env.clock.now_ms()))
        .await
        .unwrap();
    let alarmed = |o: Outcome| match o {
        Outcome::Alarmed(a) => a.into_iter().map(|a| a.incident_id).collect::<Vec<_>>(),
        other => panic!("not an alarm run: {other:?}"),
    };
    env.advance_hours(71);
    assert!(alarmed(jobs.run(Job::IncidentAlarms).await.unwrap().outcome).is_empty());
    env.advance_hours(2); // 73 h since detection, no regulator report
    assert_eq!(
        alarmed(jobs.run(Job::IncidentAlarms).await.unwrap().outcome),
        vec![i.id]
    );
    // The next run does not raise it again; the timeline and the audit log hold it once.
    env.advance_hours(1);
    assert!(alarmed(jobs.run(Job::IncidentAlarms).await.unwrap().outcome).is_empty());
    let timeline = ops.incident(i.id).await.unwrap().timeline;
    assert_eq!(
        timeline
            .iter()
            .filter(|t| t.action == custos_app::ops::incidents::ALARM_ACTION)
            .count(),
        1
    );
    let audit = custos_store::audit::entries(&env.app.kernel.db, 0, 10_000, None)
        .await
        .unwrap();
    let raised: Vec<_> = audit
        .iter()
        .filter(|e| e.action == "incident.alarm")
        .collect();
    assert_eq!(raised.len(), 1);
    assert_eq!(raised[0].target, format!("incident:{}", i.id));
    assert_eq!(raised[0].outcome, "raised");
    // Nothing from the incident's text (which may describe people) is in the entry.
    assert!(!raised[0].detail.contains("Nickname"));
    assert!(Job::ALL.contains(&Job::IncidentAlarms));
}
