//! # custos-testkit — what tests need and production must not have
//!
//! - [`postgres_database`]: a fresh, uniquely named PostgreSQL database per test on the
//!   server named by `CUSTOS_TEST_POSTGRES` (default `postgres://postgres@127.0.0.1:5432/postgres`).
//!   When the server is unreachable the PostgreSQL half of a suite is skipped with a
//!   message, unless `CUSTOS_REQUIRE_POSTGRES=1` (set by CI), which turns it into a failure.
//! - [`file_contains`] / [`files_contain`]: byte search in database files and dumps.
//! - [`oidc::MockIdp`]: a real OpenID Connect provider process (oauth2-mock-server).
//!
//! Must not be a dependency of anything but tests.

pub mod oidc;

use std::path::Path;

use sqlx::Connection;

/// The admin URL of the test PostgreSQL server.
pub fn postgres_admin_url() -> String {
    std::env::var("CUSTOS_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

fn required() -> bool {
    std::env::var("CUSTOS_REQUIRE_POSTGRES").is_ok_and(|v| v == "1")
}

/// Creates a fresh database and returns its URL, or `None` (skip) when the server is
/// unreachable and not required.
pub async fn postgres_database() -> Option<String> {
    let admin = postgres_admin_url();
    let mut conn = match sqlx::PgConnection::connect(&admin).await {
        Ok(c) => c,
        Err(e) if required() => panic!(
            "PostgreSQL is required (CUSTOS_REQUIRE_POSTGRES=1) but unreachable at {admin}: {e}"
        ),
        Err(e) => {
            eprintln!("skipping the PostgreSQL half of this test: {admin} unreachable ({e})");
            return None;
        }
    };
    let name = format!("custos_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let _ = conn.close().await;
    let base = admin
        .rsplit_once('/')
        .map(|(b, _)| b.to_owned())
        .unwrap_or(admin);
    Some(format!("{base}/{name}"))
}

/// Drops a database made by [`postgres_database`] (best effort).
pub async fn drop_postgres_database(url: &str) {
    let Some((_, name)) = url.rsplit_once('/') else {
        return;
    };
    if let Ok(mut conn) = sqlx::PgConnection::connect(&postgres_admin_url()).await {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut conn)
            .await;
    }
}

/// Whether `needle` occurs in the file's bytes (missing file: false).
pub fn file_contains(path: &Path, needle: &[u8]) -> bool {
    std::fs::read(path).is_ok_and(|hay| contains(&hay, needle))
}

/// Whether `needle` occurs in any file directly inside `dir`.
pub fn files_contain(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut hits = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if file_contains(&e.path(), needle) {
                hits.push(e.file_name().to_string_lossy().into_owned());
            }
        }
    }
    hits
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}
