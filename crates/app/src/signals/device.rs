//! Device information (P9): model, OS version, app version, device settings, device
//! identifier and push token, each accepted only for a purpose whose declaration lists the
//! field's category and which the gate allows for the subject (one decision per field).
//! Every accepted field is a personal field, encrypted under the subject's key, kept for
//! the purpose's declared retention; nothing is stored for a refused field.

use std::collections::BTreeMap;

use custos_core::{GateContext, Personal, SubjectId};
use custos_store::personal::Field;
use serde::{Deserialize, Serialize};

use super::Signals;
use crate::{AppError, AppResult};

/// The purpose device details and identifiers are collected under.
pub const DEVICE_PURPOSE: &str = "device_info";
/// The basic purpose a push token is kept under to deliver service notices.
pub const NOTICES_PURPOSE: &str = "service_notices";
/// The consent purpose of personalized pushes.
pub const PUSH_PURPOSE: &str = "personalized_push";
/// The category of device details.
pub const DEVICE_CATEGORY: &str = "user.device";
/// The category of device identifiers and push tokens.
pub const DEVICE_ID_CATEGORY: &str = "user.device.device_id";

const FIELD_PREFIX: &str = "device:";

/// Each reportable field: its category and the purposes it may be kept under, in order of
/// preference. The gate checks the declaration lists the category for the purpose, and the
/// subject's consent where the purpose rests on consent.
pub const DEVICE_FIELDS: &[(&str, &str, &[&str])] = &[
    ("model", DEVICE_CATEGORY, &[DEVICE_PURPOSE]),
    ("os_version", DEVICE_CATEGORY, &[DEVICE_PURPOSE]),
    ("app_version", DEVICE_CATEGORY, &[DEVICE_PURPOSE]),
    ("settings", DEVICE_CATEGORY, &[DEVICE_PURPOSE]),
    ("device_id", DEVICE_ID_CATEGORY, &[DEVICE_PURPOSE]),
    (
        "push_token",
        DEVICE_ID_CATEGORY,
        &[NOTICES_PURPOSE, PUSH_PURPOSE],
    ),
];

const MAX_TEXT: usize = 128;
const MAX_ID: usize = 256;
const MAX_TOKEN: usize = 4_096;
const MAX_SETTINGS: usize = 32;
const MAX_SETTINGS_BYTES: usize = 4_096;

/// What a client reports about one device. Every field is optional; at least one is sent.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceReport {
    pub model: Option<String>,
    pub os_version: Option<String>,
    pub app_version: Option<String>,
    /// Device settings the app reads (e.g. `{"notifications": true, "theme": "dark"}`):
    /// at most 32 entries of booleans, numbers or short strings.
    pub settings: Option<BTreeMap<String, serde_json::Value>>,
    pub device_id: Option<String>,
    pub push_token: Option<String>,
}

/// A stored device as its owner sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Device {
    pub id: String,
    pub model: Option<String>,
    pub os_version: Option<String>,
    pub app_version: Option<String>,
    pub settings: Option<serde_json::Value>,
    pub device_id: Option<String>,
    pub push_token: Option<String>,
    /// The purpose each stored field is kept under.
    pub purposes: BTreeMap<String, String>,
    pub updated_at_ms: i64,
    /// The earliest time one of its fields expires, if retention runs from collection.
    pub expires_at_ms: Option<i64>,
}

/// A field the gate refused, with the denial code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefusedField {
    pub field: String,
    pub code: String,
}

/// What a report stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceOutcome {
    pub id: String,
    /// Fields stored, each under its purpose.
    pub stored: BTreeMap<String, String>,
    /// Fields not stored because no purpose allowed them.
    pub refused: Vec<RefusedField>,
}

fn bad(message: impl Into<String>) -> AppError {
    AppError::bad("invalid_device", message)
}

fn check_text(field: &str, v: &str, max: usize) -> AppResult<()> {
    if v.trim().is_empty() || v.chars().count() > max || v.chars().any(char::is_control) {
        return Err(bad(format!(
            "`{field}` must be 1 to {max} visible characters"
        )));
    }
    Ok(())
}

impl DeviceReport {
    /// The report's values as (field, bytes), validated; a malformed report is refused
    /// whole with `invalid_device`.
    pub fn values(&self) -> AppResult<Vec<(&'static str, Vec<u8>)>> {
        let mut out = Vec::new();
        for (name, v, max) in [
            ("model", &self.model, MAX_TEXT),
            ("os_version", &self.os_version, MAX_TEXT),
            ("app_version", &self.app_version, MAX_TEXT),
            ("device_id", &self.device_id, MAX_ID),
            ("push_token", &self.push_token, MAX_TOKEN),
        ] {
            if let Some(v) = v {
                check_text(name, v, max)?;
                out.push((name, v.clone().into_bytes()));
            }
        }
        if let Some(settings) = &self.settings {
            if settings.len() > MAX_SETTINGS {
                return Err(bad(format!(
                    "`settings` holds at most {MAX_SETTINGS} entries"
                )));
            }
            for (k, v) in settings {
                if k.is_empty()
                    || k.len() > 64
                    || !k
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
                {
                    return Err(bad(
                        "a `settings` key is 1 to 64 letters, digits, `_`, `.` or `-`",
                    ));
                }
                match v {
                    serde_json::Value::Bool(_) | serde_json::Value::Number(_) => {}
                    serde_json::Value::String(s) => check_text("settings", s, MAX_TEXT)?,
                    _ => {
                        return Err(bad(
                            "a `settings` value is a boolean, a number or a short text",
                        ))
                    }
                }
            }
            let json = serde_json::to_vec(settings).map_err(|e| bad(e.to_string()))?;
            if json.len() > MAX_SETTINGS_BYTES {
                return Err(bad("`settings` is too large"));
            }
            out.push(("settings", json));
        }
        if out.is_empty() {
            return Err(bad("report at least one field"));
        }
        out.sort_by_key(|(name, _)| {
            DEVICE_FIELDS
                .iter()
                .position(|(n, _, _)| n == name)
                .unwrap_or(usize::MAX)
        });
        Ok(out)
    }
}

/// A device id is 32 lowercase hexadecimal characters (128 random bits).
fn valid_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn new_id() -> String {
    let mut raw = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut custos_crypto::OsRng, &mut raw);
    hex::encode(raw)
}

fn field_name(id: &str, field: &str) -> String {
    format!("{FIELD_PREFIX}{id}:{field}")
}

/// (device id, field) of a stored field name.
fn parse_field(name: &str) -> Option<(&str, &str)> {
    let rest = name.strip_prefix(FIELD_PREFIX)?;
    let (id, field) = rest.split_once(':')?;
    valid_id(id).then_some((id, field))
}

impl Signals {
    /// Registers a device: a new id, and each reported field stored under the first purpose
    /// the gate allows for it. If the gate allows no field, nothing is stored and the first
    /// field's denial is the answer (P9).
    pub async fn register_device(
        &self,
        subject: SubjectId,
        report: &DeviceReport,
        ctx: &GateContext<'_>,
    ) -> AppResult<DeviceOutcome> {
        let values = report.values()?;
        self.kernel.fresh(subject).await?;
        self.store_device_fields(subject, &new_id(), &values, ctx)
            .await
    }

    /// Replaces the fields of one of the subject's devices: fields not reported are deleted.
    /// `not_found` for an unknown id or another subject's device.
    pub async fn update_device(
        &self,
        subject: SubjectId,
        id: &str,
        report: &DeviceReport,
        ctx: &GateContext<'_>,
    ) -> AppResult<DeviceOutcome> {
        let values = report.values()?;
        let existing = self.device_fields(subject, id).await?;
        if existing.is_empty() {
            return Err(AppError::NotFound);
        }
        self.kernel.fresh(subject).await?;
        let out = self.store_device_fields(subject, id, &values, ctx).await;
        for name in existing {
            let kept = matches!(&out, Ok(o) if parse_field(&name)
                .is_some_and(|(_, f)| o.stored.contains_key(f)));
            if !kept {
                self.kernel.personal.delete(subject, &name).await?;
            }
        }
        out
    }

    async fn store_device_fields(
        &self,
        subject: SubjectId,
        id: &str,
        values: &[(&'static str, Vec<u8>)],
        ctx: &GateContext<'_>,
    ) -> AppResult<DeviceOutcome> {
        let mut stored = BTreeMap::new();
        let mut refused = Vec::new();
        let mut first_denial: Option<AppError> = None;
        for (name, value) in values {
            let Some((_, category, purposes)) = DEVICE_FIELDS.iter().find(|(n, _, _)| n == name)
            else {
                continue;
            };
            let field = Field::new(&field_name(id, name), category);
            let mut last = None;
            for purpose in *purposes {
                match self
                    .kernel
                    .store_field(subject, purpose, &field, &Personal::new(value.clone()), ctx)
                    .await
                {
                    Ok(()) => {
                        stored.insert((*name).to_owned(), (*purpose).to_owned());
                        last = None;
                        break;
                    }
                    Err(e @ AppError::Denied(_)) => last = Some(e),
                    Err(e) => return Err(e),
                }
            }
            if let Some(e) = last {
                let code = match &e {
                    AppError::Denied(d) => d.code().to_owned(),
                    _ => "denied".to_owned(),
                };
                refused.push(RefusedField {
                    field: (*name).to_owned(),
                    code,
                });
                first_denial.get_or_insert(e);
            }
        }
        if stored.is_empty() {
            return Err(first_denial.unwrap_or(AppError::NotFound));
        }
        Ok(DeviceOutcome {
            id: id.to_owned(),
            stored,
            refused,
        })
    }

    /// Stored field names of one device of the subject.
    async fn device_fields(&self, subject: SubjectId, id: &str) -> AppResult<Vec<String>> {
        if !valid_id(id) {
            return Ok(Vec::new());
        }
        let now = self.kernel.clock.now_ms();
        Ok(self
            .kernel
            .personal
            .list(subject)
            .await?
            .into_iter()
            .filter(|f| f.expires_at_ms.is_none_or(|e| e > now))
            .filter(|f| parse_field(&f.field).is_some_and(|(d, _)| d == id))
            .map(|f| f.field)
            .collect())
    }

    /// The subject's devices with what is stored about each and under which purpose (for
    /// `GET /api/v1/me/devices` and the export).
    pub async fn devices(&self, subject: SubjectId) -> AppResult<Vec<Device>> {
        let now = self.kernel.clock.now_ms();
        let mut by_id: BTreeMap<String, Device> = BTreeMap::new();
        for info in self.kernel.personal.list(subject).await? {
            let Some((id, field)) = parse_field(&info.field) else {
                continue;
            };
            let Some(v) = self.kernel.personal.get(subject, &info.field, now).await? else {
                continue;
            };
            let text = String::from_utf8_lossy(v.expose()).into_owned();
            let d = by_id.entry(id.to_owned()).or_insert_with(|| Device {
                id: id.to_owned(),
                model: None,
                os_version: None,
                app_version: None,
                settings: None,
                device_id: None,
                push_token: None,
                purposes: BTreeMap::new(),
                updated_at_ms: info.updated_at_ms,
                expires_at_ms: None,
            });
            match field {
                "model" => d.model = Some(text),
                "os_version" => d.os_version = Some(text),
                "app_version" => d.app_version = Some(text),
                "device_id" => d.device_id = Some(text),
                "push_token" => d.push_token = Some(text),
                "settings" => d.settings = serde_json::from_str(&text).ok(),
                _ => continue,
            }
            d.purposes.insert(field.to_owned(), info.purpose);
            d.updated_at_ms = d.updated_at_ms.max(info.updated_at_ms);
            d.expires_at_ms = match (d.expires_at_ms, info.expires_at_ms) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        let mut out: Vec<Device> = by_id.into_values().collect();
        out.sort_by(|a, b| b.updated_at_ms.cmp(&a.updated_at_ms).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Deletes one of the subject's devices and everything stored about it; `not_found`
    /// for an unknown id or another subject's device.
    pub async fn delete_device(&self, subject: SubjectId, id: &str) -> AppResult<()> {
        let fields = self.device_fields(subject, id).await?;
        if fields.is_empty() {
            return Err(AppError::NotFound);
        }
        for f in fields {
            self.kernel.personal.delete(subject, &f).await?;
        }
        Ok(())
    }

    /// The push tokens of the subject's devices with the purpose each is kept under.
    pub(crate) async fn push_tokens(
        &self,
        subject: SubjectId,
    ) -> AppResult<Vec<(Personal<String>, String)>> {
        let now = self.kernel.clock.now_ms();
        let mut out = Vec::new();
        for info in self.kernel.personal.list(subject).await? {
            if parse_field(&info.field).is_none_or(|(_, f)| f != "push_token") {
                continue;
            }
            if let Some(v) = self.kernel.personal.get(subject, &info.field, now).await? {
                out.push((
                    Personal::new(String::from_utf8_lossy(v.expose()).into_owned()),
                    info.purpose,
                ));
            }
        }
        Ok(out)
    }
}
