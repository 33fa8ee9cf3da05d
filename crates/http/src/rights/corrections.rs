//! Correction of user-provided fields and deletion of single items over HTTP (P21, P33,
//! P39). Each change that takes effect answers with its audit ticket (kind `correction` or
//! `deletion`, already `completed`); another user's row is a 404 like a missing one.

use axum::extract::State;
use axum::Json;
use base64::Engine;
use custos_app::rights::correction::{Correction, FIELDS};
use custos_app::rights::deletion::Item;
use custos_app::AppError;
use custos_core::Personal;
use serde::Deserialize;
use utoipa::ToSchema;

use super::{doc, now, TicketDoc, TicketList};
use crate::error::{ApiJson, ApiPath, ApiResult, ErrorBody};
use crate::session::Session;
use crate::AppState;

/// A correction of one field.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CorrectionRequest {
    /// `nickname`, `avatar` (value: the picture, base64), `birth_date` (`YYYY-MM-DD`),
    /// `comment` (with `id`) or `bookmark_collection` (with `id`, the bookmark's).
    pub field: String,
    /// The corrected value.
    #[schema(value_type = String)]
    pub value: Personal<String>,
    /// The row, for `comment` and `bookmark_collection`.
    pub id: Option<i64>,
    /// For `comment`: the author may share what it says about someone (P14).
    #[serde(default)]
    pub attest_may_share: bool,
}

fn parse(r: CorrectionRequest) -> Result<Correction, AppError> {
    let id = |r: &CorrectionRequest| {
        r.id.filter(|i| *i > 0).ok_or_else(|| {
            AppError::bad("id_required", format!("`{}` needs the row's `id`", r.field))
        })
    };
    Ok(match r.field.as_str() {
        "nickname" => Correction::Nickname(r.value),
        "birth_date" => Correction::BirthDate(r.value),
        "avatar" => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(r.value.expose().trim())
                .map_err(|_| AppError::bad("invalid_avatar", "send the picture base64-encoded"))?;
            Correction::Avatar(Personal::new(bytes))
        }
        "comment" => Correction::CommentBody {
            id: id(&r)?,
            body: r.value,
            attest_may_share: r.attest_may_share,
        },
        "bookmark_collection" => Correction::CollectionName {
            bookmark_id: id(&r)?,
            name: r.value,
        },
        other => {
            return Err(AppError::bad(
                "unknown_field",
                format!(
                    "`{other}` cannot be corrected here; fields: {}",
                    FIELDS.join(", ")
                ),
            ))
        }
    })
}

#[utoipa::path(post, path = "/api/v1/me/corrections", tag = "rights", request_body = CorrectionRequest,
    responses((status = 200, description = "corrected; the answered correction ticket that records it", body = TicketDoc),
              (status = 400, description = "malformed body", body = ErrorBody),
              (status = 401, body = ErrorBody),
              (status = 404, description = "no such row of the caller's", body = ErrorBody),
              (status = 422, description = "`unknown_field`, `id_required`, `invalid_nickname`, `invalid_birth_date`, `birth_date_locked`, `invalid_comment`, `attestation_required`, `invalid_collection`, `invalid_avatar`, `avatar_*`", body = ErrorBody)))]
pub async fn correct(
    State(s): State<AppState>,
    session: Session,
    ApiJson(r): ApiJson<CorrectionRequest>,
) -> ApiResult<Json<TicketDoc>> {
    let c = parse(r)?;
    let t = s.rights.correct(session.0.subject, &c).await?;
    Ok(Json(doc(t, now(&s))))
}

#[utoipa::path(get, path = "/api/v1/me/corrections", tag = "rights",
    responses((status = 200, description = "the caller's correction tickets, newest first", body = TicketList),
              (status = 401, body = ErrorBody)))]
pub async fn list_corrections(
    State(s): State<AppState>,
    session: Session,
) -> ApiResult<Json<TicketList>> {
    let n = now(&s);
    let tickets = s.rights.corrections(session.0.subject).await?;
    Ok(Json(TicketList {
        tickets: tickets.into_iter().map(|t| doc(t, n)).collect(),
    }))
}

#[utoipa::path(delete, path = "/api/v1/me/data/{kind}/{id}", tag = "rights",
    params(("kind" = String, Path, description = "`bookmark`, `comment`, `download`, `share`, `trait` or `device`"),
           ("id" = String, Path, description = "the item's id (a trait's key, a device's id)")),
    responses((status = 200, description = "deleted everywhere; the answered deletion ticket that records it", body = TicketDoc),
              (status = 401, body = ErrorBody),
              (status = 404, description = "no such item of the caller's", body = ErrorBody),
              (status = 422, description = "`unknown_item_kind`, `invalid_id`", body = ErrorBody)))]
pub async fn delete_item(
    State(s): State<AppState>,
    session: Session,
    ApiPath((kind, id)): ApiPath<(String, String)>,
) -> ApiResult<Json<TicketDoc>> {
    let item = Item::parse(&kind, &id)?;
    let t = s.rights.delete_item(session.0.subject, &item).await?;
    Ok(Json(doc(t, now(&s))))
}
