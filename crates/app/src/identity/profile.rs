//! The optional profile (P6): nickname, avatar and password, each stored only when the
//! user sets it, encrypted under the subject's key for the `profile` purpose, and
//! removable at any time. Avatars are sniffed, size- and dimension-limited, decoded and
//! re-encoded as PNG (which also drops metadata such as EXIF positions) or refused.
//! Passwords are checked against length limits and a list of common passwords and kept
//! only as an Argon2id hash (19 MiB, t=2, p=1, L15). Password sign-in is throttled per
//! client address and per number, and does the same work for unknown numbers.

use std::io::Cursor;
use std::net::IpAddr;
use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use custos_core::{Personal, SubjectId};
use custos_store::identity as store;
use custos_store::personal::Field;
use serde::Serialize;

use super::account::PHONE_DOMAIN;
use super::phone::PhoneNumber;
use super::sessions::Reauthenticated;
use super::throttle::{ip_key, Limit, HOUR_MS};
use super::{Identity, SignedIn};
use crate::{AppError, AppResult};

const NICKNAME: (&str, &str) = ("nickname", "user.name");
const AVATAR: (&str, &str) = ("avatar", "user.content.self_image");
const PASSWORD: (&str, &str) = ("password", "user.authorization.password");

/// Longest nickname, in characters.
pub const NICKNAME_MAX_CHARS: usize = 32;
/// Password length limits, in characters (NIST 800-63B: at least 8; allow at least 64).
pub const PASSWORD_MIN_CHARS: usize = 8;
pub const PASSWORD_MAX_CHARS: usize = 128;
/// Largest avatar side accepted for decoding, and the side it is scaled down to.
pub const AVATAR_MAX_INPUT_SIDE: u32 = 4096;
pub const AVATAR_SIDE: u32 = 512;

static COMMON_PASSWORDS: &str = include_str!("common-passwords.txt");

fn common_passwords() -> &'static std::collections::HashSet<&'static str> {
    static SET: OnceLock<std::collections::HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| {
        COMMON_PASSWORDS
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect()
    })
}

/// A nickname: 1 to 32 characters after trimming, no control characters.
#[derive(Debug, Clone)]
pub struct Nickname(Personal<String>);

impl Nickname {
    pub fn parse(input: &str) -> AppResult<Nickname> {
        let t = input.trim();
        let n = t.chars().count();
        if n == 0 || n > NICKNAME_MAX_CHARS || t.chars().any(char::is_control) {
            return Err(AppError::bad(
                "invalid_nickname",
                format!(
                    "a nickname has 1 to {NICKNAME_MAX_CHARS} characters and no control characters"
                ),
            ));
        }
        Ok(Nickname(Personal::new(t.to_owned())))
    }

    /// The nickname's text (personal).
    pub fn as_str(&self) -> &str {
        self.0.expose()
    }
}

/// A password acceptable to set: long enough, not too long, not a common one.
#[derive(Debug, Clone)]
pub struct NewPassword(Personal<String>);

impl NewPassword {
    pub fn parse(input: &str) -> AppResult<NewPassword> {
        let n = input.chars().count();
        if n < PASSWORD_MIN_CHARS {
            return Err(AppError::bad(
                "password_too_short",
                format!("use at least {PASSWORD_MIN_CHARS} characters"),
            ));
        }
        if n > PASSWORD_MAX_CHARS {
            return Err(AppError::bad(
                "password_too_long",
                format!("use at most {PASSWORD_MAX_CHARS} characters"),
            ));
        }
        if common_passwords().contains(input.to_lowercase().as_str()) {
            return Err(AppError::bad(
                "password_too_common",
                "this password is among the most common ones; choose another",
            ));
        }
        Ok(NewPassword(Personal::new(input.to_owned())))
    }
}

/// Argon2id with the parameters L15 asks for (m = 19 MiB, t = 2, p = 1).
fn argon2() -> AppResult<Argon2<'static>> {
    let params = Params::new(19 * 1024, 2, 1, None)
        .map_err(|e| AppError::Internal(format!("argon2 parameters: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

fn hash_password(pw: &str) -> AppResult<String> {
    let salt = SaltString::generate(&mut rand_core::OsRng);
    Ok(argon2()?
        .hash_password(pw.as_bytes(), &salt)
        .map_err(|e| AppError::Internal(format!("argon2: {e}")))?
        .to_string())
}

fn verify_password(pw: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    argon2().is_ok_and(|a| a.verify_password(pw.as_bytes(), &parsed).is_ok())
}

/// A hash of a random password, verified against when the number or its password does
/// not exist, so that case costs the same time as a wrong password.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        let mut raw = [0u8; 16];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut raw);
        hash_password(&hex::encode(raw)).unwrap_or_default()
    })
}

fn invalid_credentials() -> AppError {
    AppError::bad("invalid_credentials", "the number or the password is wrong")
}

/// Decodes an uploaded picture and re-encodes it as PNG of at most 512 × 512, or refuses.
pub fn normalize_avatar(bytes: &[u8], max_bytes: usize) -> AppResult<Vec<u8>> {
    use image::ImageFormat;
    if bytes.len() > max_bytes {
        return Err(AppError::bad(
            "avatar_too_large",
            format!("an avatar may have at most {max_bytes} bytes"),
        ));
    }
    let unsupported = || {
        AppError::bad(
            "avatar_unsupported",
            "send a PNG, JPEG, WebP or GIF picture",
        )
    };
    let format = image::guess_format(bytes).map_err(|_| unsupported())?;
    if !matches!(
        format,
        ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::WebP | ImageFormat::Gif
    ) {
        return Err(unsupported());
    }
    let mut reader = image::ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(AVATAR_MAX_INPUT_SIDE);
    limits.max_image_height = Some(AVATAR_MAX_INPUT_SIDE);
    limits.max_alloc = Some(128 * 1024 * 1024);
    reader.limits(limits);
    let img = reader
        .decode()
        .map_err(|_| AppError::bad("avatar_unreadable", "the picture cannot be decoded"))?;
    let img = if img.width() > AVATAR_SIDE || img.height() > AVATAR_SIDE {
        img.thumbnail(AVATAR_SIDE, AVATAR_SIDE)
    } else {
        img
    };
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
        .map_err(|e| AppError::Internal(format!("png encoding: {e}")))?;
    Ok(out)
}

/// What the owner sees of their profile.
#[derive(Debug, Clone, Serialize)]
pub struct ProfileView {
    /// The owner's own nickname (a personal value, shown to its owner only).
    pub nickname: Option<String>,
    pub has_avatar: bool,
    pub has_password: bool,
}

impl Identity {
    async fn put_profile_field(
        &self,
        subject: SubjectId,
        (name, category): (&str, &str),
        value: Personal<Vec<u8>>,
    ) -> AppResult<()> {
        let ctx = self.gate_context(subject).await?;
        self.kernel
            .store_field(
                subject,
                "profile",
                &Field::new(name, category),
                &value,
                &ctx,
            )
            .await
    }

    async fn get_field(
        &self,
        subject: SubjectId,
        name: &str,
    ) -> AppResult<Option<Personal<Vec<u8>>>> {
        Ok(self
            .kernel
            .personal
            .get(subject, name, self.kernel.clock.now_ms())
            .await?)
    }

    pub async fn profile(&self, subject: SubjectId) -> AppResult<ProfileView> {
        let nickname = self
            .get_field(subject, NICKNAME.0)
            .await?
            .map(|v| String::from_utf8_lossy(v.expose()).into_owned());
        let fields = self.kernel.personal.list(subject).await?;
        let has = |n: &str| fields.iter().any(|f| f.field == n);
        Ok(ProfileView {
            nickname,
            has_avatar: has(AVATAR.0),
            has_password: has(PASSWORD.0),
        })
    }

    pub async fn set_nickname(&self, subject: SubjectId, nickname: &Nickname) -> AppResult<()> {
        self.put_profile_field(
            subject,
            NICKNAME,
            Personal::new(nickname.0.expose().as_bytes().to_vec()),
        )
        .await
    }

    /// Decodes, re-encodes and stores the avatar; returns the stored PNG's size in bytes.
    pub async fn set_avatar(&self, subject: SubjectId, upload: Vec<u8>) -> AppResult<usize> {
        let max = self.cfg.avatar_max_bytes;
        let png = tokio::task::spawn_blocking(move || normalize_avatar(&upload, max))
            .await
            .map_err(|e| AppError::Internal(format!("avatar task: {e}")))??;
        let n = png.len();
        self.put_profile_field(subject, AVATAR, Personal::new(png))
            .await?;
        Ok(n)
    }

    /// The stored avatar (PNG), for its owner.
    pub async fn avatar(&self, subject: SubjectId) -> AppResult<Personal<Vec<u8>>> {
        self.get_field(subject, AVATAR.0)
            .await?
            .ok_or(AppError::NotFound)
    }

    /// Sets or replaces the password; needs a recent re-authentication.
    pub async fn set_password(&self, proof: &Reauthenticated, pw: &NewPassword) -> AppResult<()> {
        let plain = pw.0.clone();
        let _permit = self
            .argon2
            .acquire()
            .await
            .map_err(|e| AppError::Internal(format!("argon2 permits: {e}")))?;
        let phc = tokio::task::spawn_blocking(move || hash_password(plain.expose()))
            .await
            .map_err(|e| AppError::Internal(format!("hash task: {e}")))??;
        self.put_profile_field(proof.subject(), PASSWORD, Personal::new(phc.into_bytes()))
            .await?;
        // Whoever else held a session (maybe with the old password) is signed out.
        store::delete_other_sessions(&self.kernel.db, proof.subject(), &proof.session().id).await?;
        Ok(())
    }

    /// Removes one profile field (`nickname`, `avatar` or `password`).
    pub async fn delete_profile_field(&self, subject: SubjectId, field: &str) -> AppResult<()> {
        if ![NICKNAME.0, AVATAR.0, PASSWORD.0].contains(&field) {
            return Err(AppError::NotFound);
        }
        if !self.kernel.personal.delete(subject, field).await? {
            return Err(AppError::NotFound);
        }
        Ok(())
    }

    fn limit_password_failures(&self) -> Limit {
        Limit {
            name: "password/phone/hour",
            max: self.cfg.password_failures_per_phone_per_hour,
            window_ms: HOUR_MS,
            code: "too_many_attempts",
        }
    }

    /// Signs in with number and password. Unknown numbers, accounts without a password
    /// and wrong passwords all answer `invalid_credentials` after the same Argon2 work.
    pub async fn sign_in_with_password(
        &self,
        phone: &PhoneNumber,
        password: &Personal<String>,
        ip: Option<IpAddr>,
    ) -> AppResult<SignedIn> {
        if let Some(ip) = ip {
            self.hit(self.limit_verify_ip_hour(), &ip_key(ip)).await?;
        }
        let key = phone.e164().as_bytes();
        // The attempt counts before the password is verified: checking first and
        // counting the failure afterwards let parallel attempts all pass the check.
        // A successful attempt takes its event back below.
        self.hit(self.limit_password_failures(), key).await?;
        let subject = self.kernel.personal.find(PHONE_DOMAIN, key).await?;
        let stored = match subject {
            Some(s) => self.get_field(s, PASSWORD.0).await?,
            None => None,
        };
        let phc = stored
            .map(|v| String::from_utf8_lossy(v.expose()).into_owned())
            .unwrap_or_else(|| decoy_hash().to_owned());
        let plain = password.clone();
        let _permit = self
            .argon2
            .acquire()
            .await
            .map_err(|e| AppError::Internal(format!("argon2 permits: {e}")))?;
        let ok = tokio::task::spawn_blocking(move || {
            plain.expose().chars().count() <= PASSWORD_MAX_CHARS
                && verify_password(plain.expose(), &phc)
        })
        .await
        .map_err(|e| AppError::Internal(format!("verify task: {e}")))?;
        match subject {
            Some(s) if ok => {
                self.forget_hit(self.limit_password_failures(), key).await?;
                Ok(SignedIn {
                    session: self.create_session(s, false).await?,
                    created: false,
                })
            }
            _ => Err(invalid_credentials()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_outside_the_length_limits_or_on_the_common_list_are_refused() {
        assert_eq!(
            NewPassword::parse("short1!").unwrap_err().code(),
            "password_too_short"
        );
        assert_eq!(
            NewPassword::parse(&"x".repeat(129)).unwrap_err().code(),
            "password_too_long"
        );
        for common in [
            "password",
            "Password1",
            "12345678",
            "qwertyuiop",
            "woaini1314",
            "iloveyou",
        ] {
            assert_eq!(
                NewPassword::parse(common).unwrap_err().code(),
                "password_too_common",
                "{common}"
            );
        }
        NewPassword::parse("correct horse battery staple").unwrap();
        NewPassword::parse(&"長い合言葉".repeat(12)).unwrap();
        assert!(common_passwords().len() > 900);
    }

    #[test]
    fn password_hashes_are_argon2id_with_the_required_parameters_and_verify() {
        let phc = hash_password("a long passphrase").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify_password("a long passphrase", &phc));
        assert!(!verify_password("a long passphrasf", &phc));
        assert!(!verify_password("a long passphrase", "not a hash"));
    }

    #[test]
    fn nicknames_are_trimmed_and_limited() {
        assert_eq!(Nickname::parse("  小龙 ").unwrap().0.expose(), "小龙");
        assert_eq!(Nickname::parse(" ").unwrap_err().code(), "invalid_nickname");
        assert_eq!(
            Nickname::parse(&"名".repeat(33)).unwrap_err().code(),
            "invalid_nickname"
        );
        assert_eq!(
            Nickname::parse("a\u{0}b").unwrap_err().code(),
            "invalid_nickname"
        );
    }

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let mut out = Vec::new();
        image::DynamicImage::ImageRgb8(img)
            .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn avatars_are_re_encoded_as_png_scaled_down_or_refused() {
        let jpeg = {
            let img = image::RgbImage::from_fn(800, 600, |x, _| image::Rgb([x as u8, 0, 0]));
            let mut out = Vec::new();
            image::DynamicImage::ImageRgb8(img)
                .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Jpeg)
                .unwrap();
            out
        };
        let out = normalize_avatar(&jpeg, 1 << 20).unwrap();
        assert_eq!(image::guess_format(&out).unwrap(), image::ImageFormat::Png);
        let decoded = image::load_from_memory(&out).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (512, 384));
        let small = normalize_avatar(&png(64, 64), 1 << 20).unwrap();
        assert_eq!(image::load_from_memory(&small).unwrap().width(), 64);
        // Not a picture, a picture type we do not take, truncated, too large, too wide.
        assert_eq!(
            normalize_avatar(b"<svg xmlns='http://www.w3.org/2000/svg'/>", 1 << 20)
                .unwrap_err()
                .code(),
            "avatar_unsupported"
        );
        assert_eq!(
            normalize_avatar(b"BM\x00\x00\x00\x00", 1 << 20)
                .unwrap_err()
                .code(),
            "avatar_unsupported"
        );
        let p = png(64, 64);
        assert_eq!(
            normalize_avatar(&p[..p.len() / 2], 1 << 20)
                .unwrap_err()
                .code(),
            "avatar_unreadable"
        );
        assert_eq!(
            normalize_avatar(&p, 100).unwrap_err().code(),
            "avatar_too_large"
        );
        assert_eq!(
            normalize_avatar(&png(5000, 1), 1 << 20).unwrap_err().code(),
            "avatar_unreadable"
        );
    }
}
