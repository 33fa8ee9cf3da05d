//! The operator console (`/console`, P24, P25, P29, L6): staff sign in with password and
//! TOTP into their own cookie; each role sees exactly the pages its permissions allow
//! (a table over every role); page views of user data land in the audit log; the
//! dashboard's SVG charts show the ledger's counts; incidents are recorded and notified
//! through the console; console POSTs need the staff session's CSRF token; a user
//! session never opens the console. The dashboard aggregates are checked on SQLite and
//! PostgreSQL.

mod common;

use axum::http::StatusCode;
use custos_app::consent::DecisionInput;
use custos_app::ops::{Actor, Permission, Role};
use custos_core::{ConsentMethod, Decision, SubjectId};

use common::WebApp;

const STAFF: &str = "__Host-custos-staff";

/// A signed-in staff member: the session cookie value and the console CSRF token.
struct StaffLogin {
    token: String,
    csrf: String,
}

impl StaffLogin {
    fn cookie(&self) -> (&'static str, &str) {
        (STAFF, self.token.as_str())
    }
}

async fn totp_now(w: &WebApp, username: &str) -> String {
    let t = w.app.ops.staff_totp(username).await.unwrap();
    t.generate((w.app.kernel.clock.now_ms() / 1000) as u64)
}

/// The value of the first `name="_csrf"` field of a page.
fn csrf_of(body: &str) -> String {
    let at = body.find("name=\"_csrf\"").expect("a CSRF field");
    let rest = &body[at..];
    let v = rest.find("value=\"").unwrap() + 7;
    let end = rest[v..].find('"').unwrap();
    rest[v..v + end].to_owned()
}

/// Creates a staff account with `role` and signs it in through the console's form.
async fn staff(w: &WebApp, username: &str, role: Role) -> StaffLogin {
    let created = w
        .app
        .ops
        .create_staff(&Actor::Cli, username, role, None)
        .await
        .unwrap();
    let code = totp_now(w, username).await;
    let r = w
        .post_form(
            "/console/signin",
            &[],
            &[
                ("username", username),
                ("password", created.password.expose()),
                ("totp", &code),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let token = r
        .cookies()
        .into_iter()
        .find(|(k, _)| k == STAFF)
        .expect("a staff cookie")
        .1;
    let page = w.get("/console", &[(STAFF, &token)]).await;
    assert_eq!(page.status, StatusCode::OK);
    StaffLogin {
        csrf: csrf_of(&page.body),
        token,
    }
}

async fn audit(w: &WebApp) -> Vec<custos_store::audit::Entry> {
    custos_store::audit::entries(&w.app.kernel.db, 0, 100_000, None)
        .await
        .unwrap()
}

#[tokio::test]
async fn staff_sign_in_needs_the_totp_code_and_sets_its_own_strict_cookie() {
    let w = common::spawn().await;
    let created = w
        .app
        .ops
        .create_staff(&Actor::Cli, "olga", Role::Admin, None)
        .await
        .unwrap();
    let pw = created.password.expose().clone();

    let page = w.get("/console", &[]).await;
    assert_eq!(page.status, StatusCode::OK);
    for id in [
        "staff-username",
        "staff-password",
        "staff-totp",
        "staff-signin",
    ] {
        assert!(page.body.contains(&format!("id=\"{id}\"")), "{id}");
    }
    assert!(!page.body.contains("id=\"dashboard\""));

    // Password alone is not enough.
    let r = w
        .post_form(
            "/console/signin",
            &[],
            &[("username", "olga"), ("password", &pw), ("totp", "")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("one-time code"), "{}", r.body);
    assert!(r.cookies().is_empty());

    // A wrong code is refused with a readable message.
    let good = totp_now(&w, "olga").await;
    let wrong = if good == "000000" { "111111" } else { "000000" };
    let r = w
        .post_form(
            "/console/signin",
            &[],
            &[("username", "olga"), ("password", &pw), ("totp", wrong)],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.body.contains("id=\"staff-signin-error\""));
    assert!(r.cookies().is_empty());

    // Password and code: a staff cookie, HttpOnly, Secure, SameSite=Strict, Path=/.
    let r = w
        .post_form(
            "/console/signin",
            &[],
            &[("username", "olga"), ("password", &pw), ("totp", &good)],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), Some("/console"));
    let set = r
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with("__Host-custos-staff="))
        .expect("staff cookie");
    for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "{set} lacks {attr}");
    }
    assert!(!set.contains("__Host-custos-session"));
    let token = r.cookies().into_iter().find(|(k, _)| k == STAFF).unwrap().1;
    let dash = w.get("/console", &[(STAFF, &token)]).await;
    assert!(dash.body.contains("id=\"dashboard\""));
    for link in [
        "/console/tickets",
        "/console/incidents",
        "/console/partners",
        "/console/policy",
        "/console/staff",
        "/console/audit",
    ] {
        assert!(dash.body.contains(&format!("href=\"{link}\"")), "{link}");
    }

    // The same code again is a replay.
    let r = w
        .post_form(
            "/console/signin",
            &[],
            &[("username", "olga"), ("password", &pw), ("totp", &good)],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.body.contains("already used"), "{}", r.body);

    // Repeated failures lock the account, and the page says for how long.
    let mut last = StatusCode::OK;
    for _ in 0..8 {
        let r = w
            .post_form(
                "/console/signin",
                &[],
                &[
                    ("username", "olga"),
                    ("password", "wrong-password-123"),
                    ("totp", "123456"),
                ],
            )
            .await;
        last = r.status;
        if last == StatusCode::TOO_MANY_REQUESTS {
            assert!(r.body.contains("locked"), "{}", r.body);
            assert!(r.headers.get("retry-after").is_some());
            break;
        }
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);

    // Sign out ends the session.
    let csrf = csrf_of(&dash.body);
    let r = w
        .post_form("/console/signout", &[(STAFF, &token)], &[("_csrf", &csrf)])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let after = w.get("/console/audit", &[(STAFF, &token)]).await;
    assert_eq!(after.status, StatusCode::SEE_OTHER);
    assert!(after.location().unwrap().starts_with("/console?next="));
}

#[tokio::test]
async fn each_role_sees_exactly_the_console_pages_its_permissions_allow() {
    let w = common::spawn().await;
    let pages: [(&str, Permission); 7] = [
        ("/console/tickets", Permission::RightsTicketsRead),
        ("/console/subjects", Permission::SubjectDataRead),
        ("/console/incidents", Permission::IncidentsManage),
        ("/console/partners", Permission::PartnersShare),
        ("/console/policy", Permission::PolicyManage),
        ("/console/staff", Permission::StaffRead),
        ("/console/audit", Permission::AuditRead),
    ];
    // The expected table, written out (and checked against the matrix below).
    let expected: [(Role, &[&str]); 5] = [
        (Role::Support, &["/console/tickets", "/console/subjects"]),
        (Role::Analyst, &[]),
        (
            Role::SecurityOfficer,
            &["/console/incidents", "/console/staff", "/console/audit"],
        ),
        (
            Role::PrivacyOfficer,
            &[
                "/console/tickets",
                "/console/subjects",
                "/console/incidents",
                "/console/partners",
                "/console/policy",
                "/console/audit",
            ],
        ),
        (
            Role::Admin,
            &["/console/policy", "/console/staff", "/console/audit"],
        ),
    ];
    for (role, allowed) in expected {
        let name = format!("u-{}", role.as_str().replace('_', "-"));
        let s = staff(&w, &name, role).await;
        let dash = w.get("/console", &[s.cookie()]).await;
        assert_eq!(dash.status, StatusCode::OK, "{role:?} dashboard");
        assert!(dash.body.contains("id=\"dashboard\""));
        for (path, perm) in pages {
            let r = w.get(path, &[s.cookie()]).await;
            let want = allowed.contains(&path);
            assert_eq!(
                want,
                role.can(perm),
                "table and matrix disagree: {role:?} {path}"
            );
            let status = if want {
                StatusCode::OK
            } else {
                StatusCode::FORBIDDEN
            };
            assert_eq!(r.status, status, "{role:?} {path}: {}", r.body);
            if !want {
                assert!(r.body.contains("permission_denied"));
            }
        }
        // Every decision, allowed or denied, is in the audit log under the staff name.
        let log = audit(&w).await;
        for (path, perm) in pages {
            let outcome = if allowed.contains(&path) {
                "allowed"
            } else {
                "denied"
            };
            assert!(
                log.iter().any(|e| e.actor == format!("staff:{name}")
                    && e.action == format!("operator.{}", perm.as_str())
                    && e.target == format!("GET {path}")
                    && e.outcome == outcome),
                "{role:?} {path} {outcome} not audited"
            );
        }
    }
}

#[tokio::test]
async fn a_user_session_does_not_open_the_console() {
    let w = common::spawn().await;
    let user = w.sign_in_user("+8613800138000").await;
    for path in ["/console/tickets", "/console/audit", "/console/staff"] {
        let r = w.get(path, &[user.cookie()]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{path}");
        assert!(
            r.location().unwrap().starts_with("/console?next="),
            "{path}"
        );
    }
    let r = w.get("/console", &[user.cookie()]).await;
    assert!(r.body.contains("id=\"staff-signin\""));
    assert!(!r.body.contains("id=\"dashboard\""));
    // Nor does the user's token in the staff cookie, nor the user's CSRF token on a POST.
    let r = w.get("/console/audit", &[(STAFF, &user.token)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let r = w
        .post_form(
            "/console/incidents",
            &[user.cookie()],
            &[("_csrf", &user.csrf), ("title", "x")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn console_posts_need_the_staff_sessions_csrf_token() {
    let w = common::spawn().await;
    let s = staff(&w, "sofia", Role::SecurityOfficer).await;
    let fields = [
        ("title", "Lost laptop"),
        ("cause", "A laptop with a database dump was stolen"),
        ("categories", "user.contact.phone_number"),
        ("stores", "database"),
        ("possible_harm", "Phone numbers may be misused"),
        ("remedies", "Credentials rotated"),
        ("user_actions", "Be wary of unexpected calls"),
        ("contact", "security@example.org"),
        ("detected_at", "2020-01-01T10:00"),
    ];
    let r = w
        .post_form("/console/incidents", &[s.cookie()], &fields)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(r.body.contains("csrf_failed"));
    let mut wrong = fields.to_vec();
    wrong.push(("_csrf", "0000"));
    let r = w
        .post_form("/console/incidents", &[s.cookie()], &wrong)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(w.app.ops.incidents().await.unwrap().is_empty());
    // Without a staff session at all: 401, nothing recorded.
    let mut with = fields.to_vec();
    with.push(("_csrf", &s.csrf));
    let r = w.post_form("/console/incidents", &[], &with).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(w.app.ops.incidents().await.unwrap().is_empty());
    // With it: recorded.
    let r = w
        .post_form("/console/incidents", &[s.cookie()], &with)
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(w.app.ops.incidents().await.unwrap().len(), 1);
}

#[tokio::test]
async fn console_views_of_user_data_are_audited_with_their_purpose() {
    let w = common::spawn().await;
    let user = w.sign_in_user("+8613800138001").await;
    let ticket = w
        .app
        .rights
        .open_ticket(
            user.subject,
            custos_app::rights::TicketKind::Access,
            "Please send me a copy of my data",
        )
        .await
        .unwrap();
    let s = staff(&w, "sam", Role::Support).await;

    // The ticket list shows what the user wrote: an audited permission decision.
    let r = w.get("/console/tickets", &[s.cookie()]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("Please send me a copy of my data"));
    assert!(r.body.contains(&format!("id=\"ticket-{}\"", ticket.id)));
    let log = audit(&w).await;
    assert!(log.iter().any(|e| e.actor == "staff:sam"
        && e.action == "operator.rights.tickets.read"
        && e.target == "GET /console/tickets"
        && e.outcome == "allowed"));

    // Reading one user's data without a reason is refused and nothing is read.
    let subject = user.subject.to_string();
    let r = w
        .post_form(
            "/console/subjects",
            &[s.cookie()],
            &[("_csrf", &s.csrf), ("subject", &subject)],
        )
        .await;
    assert!(r.status.is_client_error(), "{}", r.status);
    assert!(r.body.contains("purpose_required"), "{}", r.body);
    assert!(!audit(&w)
        .await
        .iter()
        .any(|e| e.action == "subject.data.read"));

    // With a purpose: shown, and the read is in the log with that purpose.
    let r = w
        .post_form(
            "/console/subjects",
            &[s.cookie()],
            &[
                ("_csrf", &s.csrf),
                ("subject", &subject),
                ("purpose", "checking a billing dispute"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("id=\"subject-data\""));
    let reads: Vec<_> = audit(&w)
        .await
        .into_iter()
        .filter(|e| e.action == "subject.data.read")
        .collect();
    assert_eq!(reads.len(), 1);
    assert_eq!(reads[0].actor, "staff:sam");
    assert_eq!(reads[0].reason, "checking a billing dispute");
    assert!(reads[0].target.starts_with("subject:"));
    assert!(
        !reads[0].target.contains(&subject),
        "the log names no user id"
    );

    // With the user's ticket: the reason is the ticket.
    let r = w
        .post_form(
            "/console/subjects",
            &[s.cookie()],
            &[
                ("_csrf", &s.csrf),
                ("subject", &subject),
                ("ticket", &ticket.id.to_string()),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(audit(&w)
        .await
        .iter()
        .any(|e| e.action == "subject.data.read" && e.reason == format!("ticket {}", ticket.id)));

    // Completing the ticket through the console closes it.
    let r = w
        .post_form(
            &format!("/console/tickets/{}/decide", ticket.id),
            &[s.cookie()],
            &[
                ("_csrf", &s.csrf),
                ("status", "completed"),
                ("note", "sent by email"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let t = w.app.rights.ticket(user.subject, ticket.id).await.unwrap();
    assert_eq!(t.status, "completed");
}

async fn decide(w: &WebApp, purpose: &str, decision: Decision, n: usize) {
    for _ in 0..n {
        w.app
            .kernel
            .record_decisions(
                SubjectId::random(),
                false,
                &[DecisionInput {
                    purpose: purpose.to_owned(),
                    decision,
                }],
                ConsentMethod::Dialog,
            )
            .await
            .unwrap();
    }
}

/// The `data-values` of today's bar group in the chart `chart_id`.
fn todays_values(body: &str, chart_id: &str, today: &str) -> String {
    let chart = &body[body.find(&format!("id=\"{chart_id}\"")).expect(chart_id)..];
    let chart = &chart[..chart.find("</svg>").unwrap()];
    let g = &chart[chart
        .find(&format!("data-category=\"{today}\""))
        .expect("today's group")..];
    let v = g.find("data-values=\"").unwrap() + 13;
    g[v..v + g[v..].find('"').unwrap()].to_owned()
}

#[tokio::test]
async fn the_dashboard_charts_show_todays_consent_counts_as_svg() {
    let w = common::spawn().await;
    decide(&w, "device_info", Decision::Given, 6).await;
    decide(&w, "device_info", Decision::Refused, 3).await;
    decide(&w, "device_info", Decision::Withdrawn, 2).await;
    decide(&w, "location", Decision::Given, 1).await;
    let s = staff(&w, "ana", Role::Analyst).await;
    let r = w.get("/console", &[s.cookie()]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("id=\"dashboard\""));
    assert!(r.body.contains("<svg class=\"chart\""));
    assert!(r.body.contains("<title"), "charts have a title");
    assert!(r.body.contains("<desc"), "charts have a description");
    assert!(r.body.contains("class=\"chart-data\""), "and a data table");
    let today = {
        let ms = w.app.kernel.clock.now_ms();
        let t = time::OffsetDateTime::from_unix_timestamp(ms / 1000).unwrap();
        format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day())
    };
    assert_eq!(
        todays_values(&r.body, "chart-consent-device_info", &today),
        "given=6,refused=5"
    );
    // A single decision is not shown: it would point at one person.
    assert_eq!(
        todays_values(&r.body, "chart-consent-location", &today),
        "given=suppressed,refused=0"
    );
    // Ingest: the demo catalog was imported today.
    assert_eq!(
        todays_values(&r.body, "chart-ingest", &today),
        format!("items={}", common::DEMO_ITEMS)
    );
    // The analyst does not see ticket or incident figures.
    assert!(!r.body.contains("stat-open-tickets"));
    // The privacy officer sees them all.
    let p = staff(&w, "pia", Role::PrivacyOfficer).await;
    let r = w.get("/console", &[p.cookie()]).await;
    assert!(r.body.contains("stat-open-tickets"));
    assert!(r.body.contains("stat-alarmed-incidents"));
    assert!(r.body.contains("chart-consent-device_info"));
}

#[tokio::test]
async fn an_incident_is_recorded_and_notified_through_the_console() {
    let w = common::spawn().await;
    // A user whose phone number is in the database: affected by the incident below.
    let user = w.sign_in_user("+8613800138005").await;
    let s = staff(&w, "sec", Role::SecurityOfficer).await;
    let page = w.get("/console/incidents", &[s.cookie()]).await;
    assert_eq!(page.status, StatusCode::OK);
    // A missing notice field is refused, naming it.
    let r = w
        .post_form(
            "/console/incidents",
            &[s.cookie()],
            &[("_csrf", &s.csrf), ("title", "Leak")],
        )
        .await;
    assert!(r.status.is_client_error(), "{}", r.status);
    assert!(r.body.contains("missing_field"), "{}", r.body);
    assert!(w.app.ops.incidents().await.unwrap().is_empty());

    let r = w
        .post_form(
            "/console/incidents",
            &[s.cookie()],
            &[
                ("_csrf", &s.csrf),
                ("title", "Exposed backup"),
                ("cause", "A backup bucket was publicly readable"),
                ("categories", "user.contact.phone_number"),
                ("stores", "database"),
                ("possible_harm", "Phone numbers may be misused"),
                ("remedies", "The bucket is private again"),
                ("user_actions", "Ignore calls asking for codes"),
                ("contact", "security@example.org"),
                ("detected_at", "2020-01-01T08:00"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let loc = r.location().unwrap().to_owned();
    assert!(loc.starts_with("/console/incidents/"), "{loc}");
    let id = w.app.ops.incidents().await.unwrap()[0].id;

    // Detected long ago, unreported: the alarm shows in words.
    let detail = w
        .get(&format!("/console/incidents/{id}"), &[s.cookie()])
        .await;
    assert_eq!(detail.status, StatusCode::OK);
    assert!(detail.body.contains("data-alarm=\"overdue\""));
    assert!(detail.body.contains("72 hours"));
    let list = w.get("/console/incidents", &[s.cookie()]).await;
    assert!(list.body.contains("Alarm: "));

    // Affected users, then tell them individually.
    let r = w
        .post_form(
            &format!("/console/incidents/{id}/affected"),
            &[s.cookie()],
            &[("_csrf", &s.csrf)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("id=\"affected-count\">1<"), "{}", r.body);
    let r = w
        .post_form(
            &format!("/console/incidents/{id}/notify"),
            &[s.cookie()],
            &[("_csrf", &s.csrf), ("mode", "individual")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let shown = w.get(r.location().unwrap(), &[s.cookie()]).await;
    assert!(shown.body.contains("id=\"notify-result\""));
    assert!(
        shown.body.contains("Users told now: <strong>1</strong>"),
        "{}",
        shown.body
    );
    let inbox = w.app.signals.inbox(user.subject).await.unwrap();
    assert!(
        inbox
            .iter()
            .any(|m| m.body.contains("Ignore calls asking for codes")),
        "the notice carries what users can do: {inbox:?}"
    );
    assert!(shown.body.contains("data-action=\"notified_individually\""));

    // Or announce publicly.
    let r = w
        .post_form(
            &format!("/console/incidents/{id}/notify"),
            &[s.cookie()],
            &[("_csrf", &s.csrf), ("mode", "announcement")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let ann = w.app.ops.announcements(10).await.unwrap();
    assert_eq!(ann.len(), 1);
    assert_eq!(ann[0].incident_id, Some(id));

    // Reporting to the regulator ends the alarm.
    let r = w
        .post_form(
            &format!("/console/incidents/{id}/regulator-report"),
            &[s.cookie()],
            &[("_csrf", &s.csrf), ("reference", "REG-2020-7")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let detail = w
        .get(&format!("/console/incidents/{id}"), &[s.cookie()])
        .await;
    assert!(detail.body.contains("data-alarm=\"reported\""));
}

#[tokio::test]
async fn admins_manage_staff_and_the_new_account_signs_in_with_the_credentials_shown_once() {
    let w = common::spawn().await;
    let a = staff(&w, "root-admin", Role::Admin).await;
    let r = w
        .post_form(
            "/console/staff",
            &[a.cookie()],
            &[
                ("_csrf", &a.csrf),
                ("username", "newbie"),
                ("role", "support"),
                ("password", ""),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let grab = |id: &str| {
        let at = r.body.find(&format!("id=\"{id}\">")).expect(id) + id.len() + 6;
        r.body[at..at + r.body[at..].find('<').unwrap()].to_owned()
    };
    let pw = grab("new-staff-password-value");
    let secret = grab("new-staff-totp-secret");
    assert!(pw.len() >= 12);
    // The authenticator app computes the code from the secret shown.
    let totp = totp_rs::TOTP::new(
        totp_rs::Algorithm::SHA1,
        6,
        1,
        30,
        totp_rs::Secret::Encoded(secret).to_bytes().unwrap(),
        Some("Custos".to_owned()),
        "newbie".to_owned(),
    )
    .unwrap();
    let code = totp.generate((w.app.kernel.clock.now_ms() / 1000) as u64);
    let r = w
        .post_form(
            "/console/signin",
            &[],
            &[("username", "newbie"), ("password", &pw), ("totp", &code)],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    // Never shown again.
    let list = w.get("/console/staff", &[a.cookie()]).await;
    assert!(!list.body.contains(&pw));
    // Change role, then disable.
    let r = w
        .post_form(
            "/console/staff/newbie",
            &[a.cookie()],
            &[("_csrf", &a.csrf), ("action", "role"), ("role", "analyst")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let r = w
        .post_form(
            "/console/staff/newbie",
            &[a.cookie()],
            &[("_csrf", &a.csrf), ("action", "disable")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let v = w.app.ops.list_staff().await.unwrap();
    let n = v.iter().find(|s| s.username == "newbie").unwrap();
    assert_eq!(n.role, Role::Analyst);
    assert!(n.disabled);
    // A security officer sees the list but cannot change it.
    let so = staff(&w, "seco", Role::SecurityOfficer).await;
    let list = w.get("/console/staff", &[so.cookie()]).await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(!list.body.contains("id=\"staff-create\""));
    let r = w
        .post_form(
            "/console/staff",
            &[so.cookie()],
            &[
                ("_csrf", &so.csrf),
                ("username", "sneaky"),
                ("role", "admin"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_audit_page_shows_the_chain_status_and_filters() {
    let w = common::spawn().await;
    let a = staff(&w, "auditor", Role::SecurityOfficer).await;
    let r = w.get("/console/audit", &[a.cookie()]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("id=\"audit-status\""));
    assert!(r.body.contains("data-status=\"intact\""), "{}", r.body);
    let r = w
        .get("/console/audit?action=staff.sign_in", &[a.cookie()])
        .await;
    assert!(r.body.contains("data-action=\"staff.sign_in\""));
    assert!(!r.body.contains("data-action=\"operator.audit.read\""));
}

#[tokio::test]
async fn the_policy_page_lists_versions_and_refuses_an_invalid_declaration() {
    let w = common::spawn().await;
    let p = staff(&w, "polly", Role::PrivacyOfficer).await;
    let r = w.get("/console/policy", &[p.cookie()]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("id=\"console-policy-versions\""));
    let before = w.app.policy_ops.versions().await.unwrap().len();
    let r = w
        .post_form(
            "/console/policy",
            &[p.cookie()],
            &[("_csrf", &p.csrf), ("declaration", "not = [valid")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("id=\"policy-error\""));
    assert_eq!(w.app.policy_ops.versions().await.unwrap().len(), before);
    // The current declaration again: accepted, nothing announced twice.
    let current = w.app.kernel.gate.regime().current().source().to_owned();
    let r = w
        .post_form(
            "/console/policy",
            &[p.cookie()],
            &[("_csrf", &p.csrf), ("declaration", &current)],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(r.location().unwrap().contains("again=true"));
    // A new revision: published through the same use case, listed with a diff link.
    let next = current.replacen("revision = \"2026-11\"", "revision = \"2026-12\"", 1);
    assert_ne!(next, current, "the test declaration has a revision line");
    let r = w
        .post_form(
            "/console/policy",
            &[p.cookie()],
            &[("_csrf", &p.csrf), ("declaration", &next)],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(r.location().unwrap().contains("again=false"));
    let versions = w.app.policy_ops.versions().await.unwrap();
    assert_eq!(versions.len(), before + 1);
    let page = w.get(r.location().unwrap(), &[p.cookie()]).await;
    assert!(page.body.contains("id=\"policy-published\""));
    assert!(page.body.contains("/privacy/policy/diff?from="));
    // The admin holds the same permission as in the API; the support role does not.
    let sup = staff(&w, "sup", Role::Support).await;
    let r = w
        .post_form(
            "/console/policy",
            &[sup.cookie()],
            &[("_csrf", &sup.csrf), ("declaration", &next)],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

/// The dashboard aggregates on one backend: raw store counts and the app's figures.
async fn dashboard_aggregates_on(w: &WebApp) {
    decide(w, "device_info", Decision::Given, 3).await;
    decide(w, "device_info", Decision::Refused, 1).await;
    decide(w, "personalized_feed", Decision::Given, 5).await;
    let now = w.app.kernel.clock.now_ms();
    let today = now.div_euclid(86_400_000);
    let raw = custos_store::dashboard::decisions_per_day(&w.app.kernel.db, today * 86_400_000)
        .await
        .unwrap();
    let count = |p: &str, d: &str| {
        raw.iter()
            .filter(|r| r.purpose == p && r.decision == d && r.day == today)
            .map(|r| r.count)
            .sum::<i64>()
    };
    assert_eq!(count("device_info", "given"), 3);
    assert_eq!(count("device_info", "refused"), 1);
    assert_eq!(count("personalized_feed", "given"), 5);
    let user = w.sign_in_user("+8613800138009").await;
    w.app
        .rights
        .open_ticket(
            user.subject,
            custos_app::rights::TicketKind::Access,
            "copy please",
        )
        .await
        .unwrap();
    let d = w.app.ops.dashboard(7).await.unwrap();
    assert_eq!(d.days, 7);
    assert_eq!(d.ingest.len(), 7);
    assert_eq!(d.ingest.last().unwrap().items, common::DEMO_ITEMS as i64);
    assert_eq!((d.open_tickets, d.overdue_tickets), (1, 0));
    let feed = d
        .consents
        .iter()
        .find(|s| s.purpose == "personalized_feed")
        .unwrap();
    assert_eq!(feed.days.last().unwrap().given, Some(5));
    let dev = d
        .consents
        .iter()
        .find(|s| s.purpose == "device_info")
        .unwrap();
    assert_eq!(
        dev.days.last().unwrap().given,
        None,
        "3 is below the reporting floor"
    );
    assert_eq!(dev.days[0].given, Some(0));
    // Past the deadline, the ticket counts as overdue.
    w.clock.advance(time::Duration::days(60));
    let d = w.app.ops.dashboard(7).await.unwrap();
    assert_eq!((d.open_tickets, d.overdue_tickets), (1, 1));
}

#[tokio::test]
async fn dashboard_aggregates_on_sqlite() {
    let w = common::spawn().await;
    dashboard_aggregates_on(&w).await;
}

#[tokio::test]
async fn dashboard_aggregates_on_postgres() {
    let Some(data) = custos_testkit::postgres_database().await else {
        return;
    };
    let Some(vault) = custos_testkit::postgres_database().await else {
        return;
    };
    let (d2, v2) = (data.clone(), vault.clone());
    let w = common::spawn_with(move |cfg| {
        cfg.database_url = d2;
        cfg.vault_url = v2;
    })
    .await;
    dashboard_aggregates_on(&w).await;
    w.app.shutdown().await;
    custos_testkit::drop_postgres_database(&data).await;
    custos_testkit::drop_postgres_database(&vault).await;
}

#[tokio::test]
async fn signing_in_again_ends_the_browsers_previous_staff_session() {
    let w = common::spawn().await;
    let first = staff(&w, "olga", Role::Analyst).await;
    let created = w
        .app
        .ops
        .create_staff(&Actor::Cli, "pavel", Role::Analyst, None)
        .await
        .unwrap();
    w.clock.advance(time::Duration::seconds(31));
    let code = totp_now(&w, "pavel").await;
    // Same browser: olga's cookie is still set when pavel signs in.
    let r = w
        .post_form(
            "/console/signin",
            &[first.cookie()],
            &[
                ("username", "pavel"),
                ("password", created.password.expose()),
                ("totp", &code),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let token = r
        .cookies()
        .into_iter()
        .find(|(k, _)| k == STAFF)
        .expect("a new staff cookie")
        .1;
    assert_ne!(token, first.token);
    assert!(
        w.app.ops.authenticate_staff(&first.token).await.is_err(),
        "the replaced staff session must end"
    );
    assert_eq!(
        w.app.ops.authenticate_staff(&token).await.unwrap().username,
        "pavel"
    );
}

#[tokio::test]
async fn a_staff_session_never_acts_as_a_user() {
    let w = common::spawn().await;
    let s = staff(&w, "uma", Role::Admin).await;
    // The staff cookie alone is no user session.
    let r = w.get("/me", &[s.cookie()]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r.location().unwrap().starts_with("/signin?next="));
    // Nor is the staff token in the user session cookie.
    let r = w.get("/me", &[("__Host-custos-session", &s.token)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let r = w
        .post_form(
            "/me/consents/personalized_feed/give",
            &[s.cookie(), ("__Host-custos-session", &s.token)],
            &[("_csrf", &s.csrf)],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r.location().unwrap().starts_with("/signin?next="));
}

#[tokio::test]
async fn malformed_console_input_is_a_client_error_never_a_500() {
    let w = common::spawn().await;
    for (name, role) in [
        ("root", Role::Admin),
        ("priv", Role::PrivacyOfficer),
        ("secu", Role::SecurityOfficer),
    ] {
        w.clock.advance(time::Duration::seconds(31));
        let s = staff(&w, name, role).await;
        probe_console(&w, &s).await;
    }
}

async fn probe_console(w: &WebApp, s: &StaffLogin) {
    let big = "9".repeat(30);
    for uri in [
        "/console/incidents/abc".to_owned(),
        format!("/console/incidents/{big}"),
        "/console/incidents/-1".to_owned(),
        "/console/audit?after=-99999999999".to_owned(),
        "/console/audit?after=x".to_owned(),
        "/console/partners?before=-1".to_owned(),
        "/console/tickets?done=%FF".to_owned(),
        "/console?next=%0D%0A".to_owned(),
    ] {
        let r = w.get(&uri, &[s.cookie()]).await;
        assert!(
            !r.status.is_server_error(),
            "{uri}: {} {}",
            r.status,
            r.body
        );
    }
    let posts: Vec<(String, Vec<(&str, &str)>)> = vec![
        (
            format!("/console/tickets/{big}/decide"),
            vec![("status", "completed")],
        ),
        (
            "/console/tickets/1/decide".into(),
            vec![("status", "weird")],
        ),
        (
            "/console/tickets/999/decide".into(),
            vec![("status", "refused")],
        ),
        ("/console/tickets/999/answer".into(), vec![("answer", "")]),
        (
            "/console/subjects".into(),
            vec![("subject", "not-a-subject")],
        ),
        (
            "/console/subjects".into(),
            vec![
                ("subject", "00000000-0000-0000-0000-000000000000"),
                ("ticket", "x"),
            ],
        ),
        (
            "/console/incidents".into(),
            vec![("detected_at", "2020-99-99T99:99")],
        ),
        (
            "/console/incidents/1/affected".into(),
            vec![("from", "yesterday")],
        ),
        ("/console/incidents/999/notify".into(), vec![]),
        (
            "/console/incidents/999/timeline".into(),
            vec![("at", "\u{0}")],
        ),
        (
            "/console/staff".into(),
            vec![("username", "x"), ("role", "king")],
        ),
        ("/console/staff/%FF".into(), vec![("role", "admin")]),
        (
            "/console/policy".into(),
            vec![("declaration", "not toml [[[")],
        ),
        ("/console/signin".into(), vec![("username", "root")]),
    ];
    for (uri, fields) in posts {
        let mut f = vec![("_csrf", s.csrf.as_str())];
        f.extend(fields.iter().copied());
        let r = w.post_form(&uri, &[s.cookie()], &f).await;
        assert!(
            r.status.is_client_error() || r.status.is_redirection(),
            "{uri} {fields:?}: {} {}",
            r.status,
            r.body
        );
    }
}

#[tokio::test]
async fn the_console_names_the_per_address_sign_in_limit_for_what_it_is() {
    use axum::body::Body;
    use axum::extract::ConnectInfo;
    use axum::http::{header, Request};
    let w = common::spawn().await;
    let addr: std::net::SocketAddr = "203.0.113.9:40000".parse().unwrap();
    let mut last = None;
    // Unknown usernames count against the client address as well.
    for i in 0..12 {
        let body = format!("username=nobody{i}&password=wrong-password&totp=123456");
        let mut req = Request::post("/console/signin")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header("sec-fetch-site", "same-origin")
            .header(header::ACCEPT_LANGUAGE, "en")
            .body(Body::from(body))
            .unwrap();
        req.extensions_mut().insert(ConnectInfo(addr));
        let r = w.request(req).await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            last = Some(r);
            break;
        }
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    let r = last.expect("the address is throttled within 12 failures");
    assert!(r.headers.get(header::RETRY_AFTER).is_some());
    assert!(r.body.contains("this network address"), "{}", r.body);
    assert!(!r.body.contains("account is locked"), "{}", r.body);
}
