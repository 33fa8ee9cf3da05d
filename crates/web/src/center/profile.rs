//! `/me/profile` (P33): correcting what the user provided. Nickname, avatar and birth date
//! go through the correction use case (`POST /api/v1/me/corrections`), so each change is
//! recorded as an answered correction ticket and follows the same rules (a birth date
//! once under 18 only moves younger). The avatar is an upload (`multipart/form-data`),
//! checked for origin and CSRF here because [`crate::forms::WebForm`] reads only
//! url-encoded forms. Setting the password needs a fresh re-authentication
//! (`PUT /api/v1/me/profile/password`).

use crate::extract::Query;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Multipart, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use custos_app::identity::profile::NewPassword;
use custos_app::rights::correction::Correction;
use custos_app::AppError;
use custos_core::Personal;
use custos_http::AppState;
use maud::html;
use serde::Deserialize;

use super::reauth::{is_fresh, reauth_url};
use super::{notice, page, see_other, WebResult};
use crate::ctx::Ctx;
use crate::error::WebError;
use crate::forms::{
    cross_origin, csrf_failed, csrf_input, ct_eq, same_origin, Empty, WebForm, CSRF_FIELD,
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/me/profile", get(profile_page))
        .route("/me/profile/nickname", post(set_nickname))
        .route("/me/profile/birth-date", post(set_birth_date))
        .route("/me/profile/password", post(set_password))
        .route(
            "/me/profile/avatar",
            get(avatar).post(upload_avatar).layer(DefaultBodyLimit::max(
                custos_http::identity::AVATAR_BODY_LIMIT,
            )),
        )
        .route("/me/profile/avatar/delete", post(delete_avatar))
}

#[derive(Debug, Deserialize)]
struct ProfileQuery {
    saved: Option<String>,
}

async fn profile_page(
    State(s): State<AppState>,
    ctx: Ctx,
    Query(q): Query<ProfileQuery>,
) -> Result<Response, WebError> {
    let session = ctx.require_user()?;
    let p = s.identity.profile(session.subject).await.web(&ctx)?;
    let fresh = is_fresh(&s, &ctx);
    let body = html! {
        @if q.saved.is_some() { (notice(ctx.t("已保存。更正已记入您的请求记录。", "Saved. The correction is recorded among your requests."))) }
        p { (ctx.t("这些资料都是可选的，只在您填写后保存。", "All of these are optional and kept only if you give them.")) }

        section aria-labelledby="p-nick" {
            h2 id="p-nick" { (ctx.t("昵称", "Nickname")) }
            form method="post" action="/me/profile/nickname" class="stack" {
                (csrf_input(&ctx))
                label for="nickname" { (ctx.t("昵称（1 至 32 个字符）", "Nickname (1 to 32 characters)")) }
                input type="text" id="nickname" name="nickname" maxlength="32" required
                    value=(p.nickname.as_deref().unwrap_or(""));
                button type="submit" id="nickname-submit" { (ctx.t("保存昵称", "Save the nickname")) }
            }
        }

        section aria-labelledby="p-avatar" {
            h2 id="p-avatar" { (ctx.t("头像", "Avatar")) }
            @if p.has_avatar {
                img class="avatar" src="/me/profile/avatar" width="96" height="96"
                    alt=(ctx.t("您当前的头像", "Your current avatar"));
                form method="post" action="/me/profile/avatar/delete" class="inline" {
                    (csrf_input(&ctx))
                    button type="submit" id="avatar-delete" { (ctx.t("删除头像", "Remove the avatar")) }
                }
            } @else {
                p class="empty" { (ctx.t("没有头像。", "No avatar.")) }
            }
            form method="post" action="/me/profile/avatar" enctype="multipart/form-data" class="stack" {
                (csrf_input(&ctx))
                label for="avatar" { (ctx.t("选择图片（PNG、JPEG、WebP 或 GIF）", "Choose a picture (PNG, JPEG, WebP or GIF)")) }
                input type="file" id="avatar" name="avatar" accept="image/png,image/jpeg,image/webp,image/gif" required;
                button type="submit" id="avatar-submit" { (ctx.t("上传头像", "Upload the avatar")) }
            }
        }

        section aria-labelledby="p-birth" {
            h2 id="p-birth" { (ctx.t("出生日期", "Birth date")) }
            p { (ctx.t("我们只保留由出生日期得出的年龄段。若曾填写未满 18 岁，只能改为更小的年龄。",
                       "We keep only the age band it implies. Once a date under 18 was given, it can only be changed to a younger age.")) }
            form method="post" action="/me/profile/birth-date" class="stack" {
                (csrf_input(&ctx))
                label for="profile-birth-date" { (ctx.t("出生日期", "Birth date")) }
                input type="date" id="profile-birth-date" name="birth_date" required;
                button type="submit" id="birth-date-save" { (ctx.t("保存出生日期", "Save the birth date")) }
            }
        }

        section aria-labelledby="p-password" {
            h2 id="p-password" { (ctx.t("密码", "Password")) }
            p {
                @if p.has_password { (ctx.t("您已设置密码。", "You have a password.")) }
                @else { (ctx.t("您还没有设置密码，可以一直用短信验证码登录。", "You have no password; you can always sign in with a code by text message.")) }
            }
            @if fresh {
                form method="post" action="/me/profile/password" class="stack" {
                    (csrf_input(&ctx))
                    label for="new-password" { (ctx.t("新密码（8 至 128 个字符，不能是常见密码）", "New password (8 to 128 characters, not a common one)")) }
                    input type="password" id="new-password" name="password" minlength="8" maxlength="128"
                        autocomplete="new-password" required;
                    button type="submit" id="password-save" { (ctx.t("保存密码", "Save the password")) }
                }
            } @else {
                p { a class="button" href=(reauth_url("/me/profile")) {
                    (ctx.t("先确认身份，再设置密码", "Confirm it's you to set a password"))
                } }
            }
        }
    };
    Ok(page(
        &ctx,
        "/me/profile",
        ctx.t("个人资料", "Profile"),
        body,
    ))
}

#[derive(Debug, Deserialize)]
struct NicknameForm {
    nickname: String,
}

/// `POST /api/v1/me/corrections` with `field: nickname`.
async fn set_nickname(
    State(s): State<AppState>,
    ctx: Ctx,
    WebForm(f): WebForm<NicknameForm>,
) -> Result<Response, WebError> {
    let session = ctx.require_user()?;
    s.rights
        .correct(
            session.subject,
            &Correction::Nickname(Personal::new(f.nickname)),
        )
        .await
        .web(&ctx)?;
    Ok(see_other("/me/profile?saved=nickname"))
}

#[derive(Debug, Deserialize)]
struct BirthDateForm {
    birth_date: String,
}

/// `POST /api/v1/me/corrections` with `field: birth_date`.
async fn set_birth_date(
    State(s): State<AppState>,
    ctx: Ctx,
    WebForm(f): WebForm<BirthDateForm>,
) -> Result<Response, WebError> {
    let session = ctx.require_user()?;
    s.rights
        .correct(
            session.subject,
            &Correction::BirthDate(Personal::new(f.birth_date.trim().to_owned())),
        )
        .await
        .web(&ctx)?;
    Ok(see_other("/me/profile?saved=birth_date"))
}

#[derive(Debug, Deserialize)]
struct PasswordForm {
    password: String,
}

/// `PUT /api/v1/me/profile/password`: needs a fresh re-authentication.
async fn set_password(
    State(s): State<AppState>,
    ctx: Ctx,
    WebForm(f): WebForm<PasswordForm>,
) -> Result<Response, WebError> {
    let session = ctx.require_user()?;
    let Ok(proof) = s.identity.reauthenticated(session) else {
        return Ok(see_other(&reauth_url("/me/profile")));
    };
    let pw = NewPassword::parse(&f.password).web(&ctx)?;
    s.identity.set_password(&proof, &pw).await.web(&ctx)?;
    Ok(see_other("/me/profile?saved=password"))
}

/// `GET /api/v1/me/profile/avatar`: the owner's avatar, never cached.
async fn avatar(State(s): State<AppState>, ctx: Ctx) -> Result<Response, WebError> {
    let session = ctx.require_user()?;
    let png = s.identity.avatar(session.subject).await.web(&ctx)?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/png"),
            (header::CACHE_CONTROL, "private, no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        png.into_inner(),
    )
        .into_response())
}

/// `POST /api/v1/me/corrections` with `field: avatar`, from a `multipart/form-data` upload.
async fn upload_avatar(State(s): State<AppState>, req: Request) -> Result<Response, WebError> {
    let (mut parts, body) = req.into_parts();
    let ctx = Ctx::from_request_parts(&mut parts, &s).await?;
    let session = ctx.require_user()?.clone();
    if !same_origin(&parts) {
        return Err(cross_origin(&ctx));
    }
    let bad = |ctx: &Ctx| {
        WebError::bad_request(ctx.t("上传的内容无法读取。", "The upload could not be read."))
            .lang(ctx.lang)
    };
    let mut form = Multipart::from_request(Request::from_parts(parts, body), &s)
        .await
        .map_err(|_| bad(&ctx))?;
    let (mut csrf, mut picture): (Option<String>, Option<Bytes>) = (None, None);
    while let Some(field) = form.next_field().await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            WebError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                ctx.t("图片太大。", "The picture is too large."),
            )
            .lang(ctx.lang)
        } else {
            bad(&ctx)
        }
    })? {
        match field.name() {
            Some(CSRF_FIELD) => csrf = Some(field.text().await.map_err(|_| bad(&ctx))?),
            Some("avatar") => picture = Some(field.bytes().await.map_err(|_| bad(&ctx))?),
            _ => {}
        }
    }
    if !ct_eq(
        csrf.unwrap_or_default().as_bytes(),
        session.csrf_token.as_bytes(),
    ) {
        return Err(csrf_failed(&ctx));
    }
    let picture = picture
        .filter(|p| !p.is_empty())
        .ok_or_else(|| AppError::bad("invalid_avatar", "choose a picture to upload"))
        .web(&ctx)?;
    s.rights
        .correct(
            session.subject,
            &Correction::Avatar(Personal::new(picture.to_vec())),
        )
        .await
        .web(&ctx)?;
    Ok(see_other("/me/profile?saved=avatar"))
}

/// `DELETE /api/v1/me/profile/avatar`.
async fn delete_avatar(
    State(s): State<AppState>,
    ctx: Ctx,
    WebForm(_): WebForm<Empty>,
) -> Result<Response, WebError> {
    let session = ctx.require_user()?;
    s.identity
        .delete_profile_field(session.subject, "avatar")
        .await
        .web(&ctx)?;
    Ok(see_other("/me/profile?saved=avatar"))
}
