//! Sign-in and sign-up pages (P4, P6, P7, P36): SMS code end to end, password, the
//! optional birth-date and profile steps, the guardian flow for users under 18,
//! third-party linking with per-field consent against a real OpenID Connect server
//! process, and sign-out. Nothing tells whether a number has an account.

mod common;

use axum::http::{header, StatusCode};
use custos_app::identity::profile::NewPassword;

const SESSION: &str = "__Host-custos-session";
const CHALLENGE: &str = "__Host-custos-challenge";

fn cookie_of(r: &common::Resp, name: &str) -> Option<String> {
    r.cookies()
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

fn set_cookie_line(r: &common::Resp, name: &str) -> String {
    r.headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .unwrap_or_default()
        .to_owned()
}

/// Phone step of the web flow; returns the challenge cookie.
async fn send_code(w: &common::WebApp, phone: &str, next: &str) -> String {
    let r = w
        .post_form("/signin", &[], &[("phone", phone), ("next", next)])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(
        r.location().unwrap(),
        format!("/signin/code?next={}", custos_web::forms::encode(next))
    );
    cookie_of(&r, CHALLENGE).expect("challenge cookie")
}

/// Signs up `e164` through the web pages; returns the session token and where it went.
async fn web_sign_up(w: &common::WebApp, e164: &str, next: &str) -> (String, String) {
    let ch = send_code(w, e164, next).await;
    let code = w.last_sms_code(e164).unwrap();
    let r = w
        .post_form(
            "/signin/code",
            &[(CHALLENGE, &ch)],
            &[("code", &code), ("next", next)],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let token = cookie_of(&r, SESSION).expect("session cookie");
    (token, r.location().unwrap().to_owned())
}

async fn csrf_of(w: &common::WebApp, token: &str) -> String {
    w.app.identity.authenticate(token).await.unwrap().csrf_token
}

#[tokio::test]
async fn sms_sign_up_runs_end_to_end_with_the_optional_steps_skippable() {
    let w = common::spawn().await;
    let page = w.get("/signin?next=/contact", &[]).await;
    assert_eq!(page.status, StatusCode::OK);
    for id in [
        "id=\"phone\"",
        "id=\"send-code\"",
        "id=\"password\"",
        "id=\"password-submit\"",
        "<label for=\"phone\"",
    ] {
        assert!(page.body.contains(id), "{id}");
    }
    assert!(!page.body.contains("oidc-start"), "no provider configured");

    let ch = send_code(&w, "139 1234 5678", "/contact").await;
    let code_page = w
        .get("/signin/code?next=%2Fcontact", &[(CHALLENGE, &ch)])
        .await;
    assert!(code_page.body.contains("id=\"code\""));
    assert!(code_page.body.contains("id=\"verify-code\""));
    // Without the challenge cookie the code step sends back to the phone step.
    let r = w.get("/signin/code", &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);

    // A wrong code: a readable error, no session.
    let code = w.last_sms_code("+8613912345678").unwrap();
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let r = w
        .post_form(
            "/signin/code",
            &[(CHALLENGE, &ch)],
            &[("code", wrong), ("next", "/contact")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("role=\"alert\""));
    assert!(r.body.contains("That code is not right"), "{}", r.body);
    assert!(cookie_of(&r, SESSION).is_none());

    let r = w
        .post_form(
            "/signin/code",
            &[(CHALLENGE, &ch)],
            &[("code", &code), ("next", "/contact")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), Some("/signin/birthdate?next=%2Fcontact"));
    let token = cookie_of(&r, SESSION).unwrap();
    let line = set_cookie_line(&r, SESSION);
    for attr in ["Path=/", "Secure", "HttpOnly", "SameSite=Lax", "Max-Age="] {
        assert!(line.contains(attr), "{line}");
    }
    assert!(set_cookie_line(&r, CHALLENGE).contains("Max-Age=0"));
    let subject = w.app.identity.authenticate(&token).await.unwrap().subject;

    // The birth date step is optional.
    let bd = w
        .get("/signin/birthdate?next=%2Fcontact", &[(SESSION, &token)])
        .await;
    for id in [
        "id=\"birth-date\"",
        "id=\"birth-date-submit\"",
        "id=\"birth-date-skip\"",
    ] {
        assert!(bd.body.contains(id), "{id}");
    }
    let csrf = csrf_of(&w, &token).await;
    let r = w
        .post_form(
            "/signin/birthdate",
            &[(SESSION, &token)],
            &[("_csrf", &csrf), ("action", "skip"), ("next", "/contact")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), Some("/signin/profile?next=%2Fcontact"));
    assert_eq!(
        w.app.identity.account(subject).await.unwrap().age_band,
        "adult"
    );

    // The profile: an invalid nickname is explained, a valid one is stored.
    let long = "n".repeat(40);
    let r = w
        .post_form(
            "/signin/profile",
            &[(SESSION, &token)],
            &[
                ("_csrf", &csrf),
                ("nickname", &long),
                ("action", "save"),
                ("next", "/contact"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("1 to 32 characters"));
    let r = w
        .post_form(
            "/signin/profile",
            &[(SESSION, &token)],
            &[
                ("_csrf", &csrf),
                ("nickname", "Lin"),
                ("password", ""),
                ("action", "save"),
                ("next", "/contact"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.location(), Some("/contact"));
    let p = w.app.identity.profile(subject).await.unwrap();
    assert_eq!(p.nickname.as_deref(), Some("Lin"));
    assert!(!p.has_password);

    // Signed in: the nav offers the privacy center; /signin goes straight on.
    let home = w.get("/contact", &[(SESSION, &token)]).await;
    assert!(home.body.contains("href=\"/me\""));
    let r = w.get("/signin?next=/contact", &[(SESSION, &token)]).await;
    assert_eq!(r.location(), Some("/contact"));

    // Signing in again to an existing account skips the sign-up steps.
    w.clock.advance(time::Duration::minutes(2));
    let (_, to) = web_sign_up(&w, "+8613912345678", "/contact").await;
    assert_eq!(to, "/contact");
}

#[tokio::test]
async fn the_phone_step_reveals_nothing_about_accounts_and_throttles_with_a_readable_wait() {
    let w = common::spawn().await;
    w.sign_in_user("+8613900000001").await;
    w.clock.advance(time::Duration::minutes(2));
    let known = w
        .post_form(
            "/signin",
            &[],
            &[("phone", "+8613900000001"), ("next", "/")],
        )
        .await;
    let unknown = w
        .post_form(
            "/signin",
            &[],
            &[("phone", "+8613900000002"), ("next", "/")],
        )
        .await;
    assert_eq!(known.status, unknown.status);
    assert_eq!(known.location(), unknown.location());
    assert_eq!(known.body, unknown.body);

    // A second code for the same number within the minute: 429 with the wait.
    let r = w
        .post_form(
            "/signin",
            &[],
            &[("phone", "+8613900000002"), ("next", "/")],
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers.contains_key(header::RETRY_AFTER));
    assert!(r.body.contains("please wait about"), "{}", r.body);
    assert!(r.body.contains("id=\"phone\""), "the form is still there");

    let r = w
        .post_form("/signin", &[], &[("phone", "not a phone"), ("next", "/")])
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("does not look like a mobile number"));

    // Forms from another site are refused.
    let req = axum::http::Request::post("/signin")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header("sec-fetch-site", "cross-site")
        .body(axum::body::Body::from("phone=%2B8613900000003"))
        .unwrap();
    assert_eq!(w.request(req).await.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn password_sign_in_works_refuses_alike_and_never_redirects_off_site() {
    let w = common::spawn().await;
    let u = w.sign_in_user("+8613912340000").await;
    let session = w.app.identity.authenticate(&u.token).await.unwrap();
    let proof = w.app.identity.reauthenticated(&session).unwrap();
    w.app
        .identity
        .set_password(&proof, &NewPassword::parse("violet-harbor-1987").unwrap())
        .await
        .unwrap();

    let wrong = w
        .post_form(
            "/signin/password",
            &[],
            &[
                ("phone", "+8613912340000"),
                ("password", "not-the-password"),
                ("next", "/"),
            ],
        )
        .await;
    let nobody = w
        .post_form(
            "/signin/password",
            &[],
            &[
                ("phone", "+8613912349999"),
                ("password", "not-the-password"),
                ("next", "/"),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(wrong.status, nobody.status);
    assert_eq!(
        wrong.body, nobody.body,
        "no hint whether the number has an account"
    );
    assert!(cookie_of(&wrong, SESSION).is_none());

    let r = w
        .post_form(
            "/signin/password",
            &[],
            &[
                ("phone", "+8613912340000"),
                ("password", "violet-harbor-1987"),
                ("next", "//evil.example/"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), Some("/"), "next=//evil is ignored");
    let token = cookie_of(&r, SESSION).unwrap();
    assert_eq!(
        w.app.identity.authenticate(&token).await.unwrap().subject,
        u.subject
    );

    // Too many wrong passwords: 429 with the wait.
    let mut last = StatusCode::OK;
    for _ in 0..8 {
        last = w
            .post_form(
                "/signin/password",
                &[],
                &[
                    ("phone", "+8613912340000"),
                    ("password", "still-wrong-1"),
                    ("next", "/"),
                ],
            )
            .await
            .status;
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn sign_out_ends_the_session_and_clears_the_cookie_only_with_the_csrf_token() {
    let w = common::spawn().await;
    let u = w.sign_in_user("+8613912341111").await;
    let r = w.post_form("/signout", &[u.cookie()], &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "no CSRF token");
    assert!(w.app.identity.authenticate(&u.token).await.is_ok());

    let r = w
        .post_form("/signout", &[u.cookie()], &[("_csrf", &u.csrf)])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), Some("/"));
    let line = set_cookie_line(&r, SESSION);
    assert!(line.contains("Max-Age=0"), "{line}");
    assert!(w.app.identity.authenticate(&u.token).await.is_err());
    // The stale cookie now just means signed out.
    let page = w.get("/contact", &[u.cookie()]).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("href=\"/signin\""));
}

#[tokio::test]
async fn a_minor_is_told_a_guardian_must_agree_and_the_guardian_agrees_by_code() {
    let w = common::spawn().await;
    let (token, to) = web_sign_up(&w, "+8613912342222", "/contact").await;
    assert_eq!(to, "/signin/birthdate?next=%2Fcontact");
    let subject = w.app.identity.authenticate(&token).await.unwrap().subject;
    let csrf = csrf_of(&w, &token).await;
    let cookies = [(SESSION, token.as_str())];

    let r = w
        .post_form(
            "/signin/birthdate",
            &cookies,
            &[
                ("_csrf", &csrf),
                ("birth_date", "not-a-date"),
                ("action", "save"),
                ("next", "/contact"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = w
        .post_form(
            "/signin/birthdate",
            &cookies,
            &[
                ("_csrf", &csrf),
                ("birth_date", "2010-05-01"),
                ("action", "save"),
                ("next", "/contact"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), Some("/signin/guardian?next=%2Fcontact"));
    let page = w.get("/signin/guardian?next=%2Fcontact", &cookies).await;
    assert!(page.body.contains("id=\"guardian-needed\""));
    assert!(page.body.contains("under 18"));
    let account = w.app.identity.account(subject).await.unwrap();
    assert_eq!(account.age_band, "minor");
    assert!(!account.guardian_consent);

    // The guardian's own number, not the minor's.
    let r = w
        .post_form(
            "/signin/guardian",
            &cookies,
            &[
                ("_csrf", &csrf),
                ("phone", "+8613912342222"),
                ("next", "/contact"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("guardian's number, not your own"));
    let r = w
        .post_form(
            "/signin/guardian",
            &cookies,
            &[
                ("_csrf", &csrf),
                ("phone", "+8613800001234"),
                ("next", "/contact"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let gch = cookie_of(&r, "__Host-custos-guardian").unwrap();
    let code = w.last_sms_code("+8613800001234").unwrap();
    let with_g = [
        (SESSION, token.as_str()),
        ("__Host-custos-guardian", gch.as_str()),
    ];
    let page = w
        .get("/signin/guardian/verify?next=%2Fcontact", &with_g)
        .await;
    assert!(page.body.contains("id=\"guardian-agree\""));

    // Not ticking the agreement changes nothing.
    let r = w
        .post_form(
            "/signin/guardian/verify",
            &with_g,
            &[
                ("_csrf", &csrf),
                ("code", &code),
                ("birth_date", "2010-05-01"),
                ("next", "/contact"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        !w.app
            .identity
            .account(subject)
            .await
            .unwrap()
            .guardian_consent
    );

    let r = w
        .post_form(
            "/signin/guardian/verify",
            &with_g,
            &[
                ("_csrf", &csrf),
                ("code", &code),
                ("birth_date", "2010-05-01"),
                ("agree", "yes"),
                ("next", "/contact"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let done = r.location().unwrap().to_owned();
    assert!(done.starts_with("/signin/guardian/done?receipt="), "{done}");
    let page = w.get(&done, &cookies).await;
    assert!(page.body.contains("id=\"receipt-link\""));
    assert!(
        w.app
            .identity
            .account(subject)
            .await
            .unwrap()
            .guardian_consent
    );
}

/// Follows the provider's authorization URL as a browser would (the mock approves at
/// once) and returns the query of its redirect back.
async fn authorize(url: &str) -> String {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = client.get(url).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 302);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with("http://localhost/signin/oidc/mock/callback?"),
        "{location}"
    );
    location.split_once('?').unwrap().1.to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linking_a_provider_records_only_the_ticked_field_and_then_signs_in() {
    use custos_app::identity::oidc::OidcProviderConfig;
    let Some(mut idp) = custos_testkit::oidc::MockIdp::start() else {
        return;
    };
    let issuer = idp.issuer.clone();
    let w = common::spawn_with(move |cfg| {
        cfg.identity.oidc = vec![OidcProviderConfig {
            name: "mock".into(),
            issuer,
            client_id: "custos-web-test".into(),
            client_secret: Some("test-secret".into()),
            client_secret_file: None,
            redirect_uri: "http://localhost/signin/oidc/mock/callback".into(),
        }];
    })
    .await;
    // The provider offers a picture too; it is not ticked, so it is never fetched.
    idp.say("picture http://127.0.0.1:9/never-fetched.png");

    let signin = w.get("/signin", &[]).await;
    assert!(signin.body.contains("id=\"oidc-start\""));
    assert!(signin.body.contains("href=\"/signin/oidc/mock?next=%2F\""));

    let u = w.sign_in_user("+8613912343333").await;
    let screen = w.get("/signin/oidc/mock", &[u.cookie()]).await;
    assert_eq!(screen.status, StatusCode::OK);
    for f in ["nickname", "avatar"] {
        let tag =
            format!("<input type=\"checkbox\" name=\"field\" value=\"{f}\" id=\"oidc-field-{f}\">");
        assert!(screen.body.contains(&tag), "{f}: a separate, unchecked box");
        assert!(screen
            .body
            .contains(&format!("<label for=\"oidc-field-{f}\"")));
    }
    assert_eq!(
        w.get("/signin/oidc/nope", &[u.cookie()]).await.status,
        StatusCode::NOT_FOUND
    );

    // Without the agreement nothing starts.
    let r = w
        .post_form(
            "/signin/oidc/mock",
            &[u.cookie()],
            &[("_csrf", &u.csrf), ("field", "nickname")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);

    let r = w
        .post_form(
            "/signin/oidc/mock",
            &[u.cookie()],
            &[
                ("_csrf", &u.csrf),
                ("field", "nickname"),
                ("agree", "yes"),
                ("next", "/contact"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let binding = cookie_of(&r, "__Host-custos-oidc").unwrap();
    let next_cookie = cookie_of(&r, "__Host-custos-oidc-next").unwrap();
    let query = authorize(r.location().unwrap()).await;
    let flow = [
        u.cookie(),
        ("__Host-custos-oidc", binding.as_str()),
        ("__Host-custos-oidc-next", next_cookie.as_str()),
    ];
    let r = w
        .get(&format!("/signin/oidc/mock/callback?{query}"), &flow)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("id=\"oidc-stored\""));
    assert!(r.body.contains("data-field=\"nickname\""));
    assert!(!r.body.contains("data-field=\"avatar\""));
    assert!(r.body.contains("id=\"receipt-link\""));
    let links = w.app.identity.oidc_links(u.subject).await.unwrap();
    assert_eq!(links.len(), 1);
    assert!(links[0].1.iter().any(|f| f == "nickname"), "{links:?}");
    assert!(!links[0].1.iter().any(|f| f == "avatar"), "{links:?}");

    // Replaying the callback fails readably.
    let r = w
        .get(&format!("/signin/oidc/mock/callback?{query}"), &flow)
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);

    // Signed out, the linked account signs in.
    let r = w
        .post_form("/signin/oidc/mock", &[], &[("next", "/contact")])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let binding = cookie_of(&r, "__Host-custos-oidc").unwrap();
    let next_cookie = cookie_of(&r, "__Host-custos-oidc-next").unwrap();
    let query = authorize(r.location().unwrap()).await;
    let r = w
        .get(
            &format!("/signin/oidc/mock/callback?{query}"),
            &[
                ("__Host-custos-oidc", binding.as_str()),
                ("__Host-custos-oidc-next", next_cookie.as_str()),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.location(), Some("/contact"));
    let token = cookie_of(&r, SESSION).unwrap();
    assert_eq!(
        w.app.identity.authenticate(&token).await.unwrap().subject,
        u.subject
    );
}

#[tokio::test]
async fn next_never_leaves_the_site_even_with_control_characters() {
    let w = common::spawn().await;
    let u = w.sign_in_user("+8613912342222").await;
    // Browsers drop tabs and newlines inside a URL, so `/<TAB>/evil.example` would be
    // `//evil.example`; CR/LF must not reach a header (nor make a 500).
    for next in [
        "/\t/evil.example/",
        "/\n/evil.example/",
        "/\r\n/evil.example/",
        "/\\evil.example/",
        "//evil.example/",
        "javascript:alert(1)",
        "https://evil.example/",
    ] {
        let q = custos_web::forms::encode(next);
        // Signed in, the sign-in page sends the user straight on to `next`.
        let r = w.get(&format!("/signin?next={q}"), &[u.cookie()]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{next:?}: {}", r.body);
        assert_eq!(r.location(), Some("/"), "{next:?}");
        // The password form's `next`.
        let r = w
            .post_form(
                "/signin/password",
                &[],
                &[
                    ("phone", "+8613912342222"),
                    ("password", "x"),
                    ("next", next),
                ],
            )
            .await;
        assert!(r.status.is_client_error(), "{next:?}: {}", r.status);
        assert!(
            !r.body.contains("evil.example"),
            "{next:?} is echoed into the form"
        );
    }
}

#[tokio::test]
async fn signing_in_again_in_the_same_browser_ends_the_previous_session() {
    let w = common::spawn().await;
    let a = w.sign_in_user("+8613912343333").await;
    // With A's session cookie still set, sign in to B through the pages.
    let b_phone = "+8613912344444";
    let r = w
        .post_form(
            "/signin",
            &[a.cookie()],
            &[("_csrf", &a.csrf), ("phone", b_phone), ("next", "/")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let ch = cookie_of(&r, CHALLENGE).unwrap();
    let code = w.last_sms_code(b_phone).unwrap();
    let r = w
        .post_form(
            "/signin/code",
            &[a.cookie(), (CHALLENGE, &ch)],
            &[("_csrf", &a.csrf), ("code", &code), ("next", "/")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let b_token = cookie_of(&r, SESSION).expect("a new session cookie");
    assert_ne!(b_token, a.token, "a new session id on sign-in");
    assert!(
        w.app.identity.authenticate(&a.token).await.is_err(),
        "the replaced session must end"
    );
    let b = w.app.identity.authenticate(&b_token).await.unwrap();
    assert_ne!(b.subject, a.subject);

    // Password sign-in over B's cookie ends B's session too.
    let proof = w.app.identity.reauthenticated(&b).unwrap();
    w.app
        .identity
        .set_password(&proof, &NewPassword::parse("amber-lantern-2011").unwrap())
        .await
        .unwrap();
    let r = w
        .post_form(
            "/signin/password",
            &[(SESSION, &b_token)],
            &[
                ("_csrf", &b.csrf_token),
                ("phone", b_phone),
                ("password", "amber-lantern-2011"),
                ("next", "/me"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let again = cookie_of(&r, SESSION).unwrap();
    assert_ne!(again, b_token);
    assert!(w.app.identity.authenticate(&b_token).await.is_err());
    assert!(w.app.identity.authenticate(&again).await.is_ok());
}
