//! # custos-web — the web app
//!
//! Server-rendered pages served by `custos serve` beside the JSON API: the first-visit
//! consent dialog, browse and search, sign-in, the privacy center and the operator
//! console. Pages are [`maud`] markup built in Rust (escaped by construction); every
//! asset (CSS, the small script, icons) is compiled into the binary, so the app works
//! offline and never loads anything from another origin.
//!
//! Handlers call the same use cases as the API (`custos_app`), so a page can never do
//! what the API would refuse. Forms post back to the page's own routes; a state change
//! must come from this origin ([`forms::same_origin`]) and, when signed in, carry the
//! session's CSRF token ([`forms::CSRF_FIELD`]).
//!
//! ## Layout
//! - [`ctx`]: [`ctx::Ctx`], who is asking and in which language (every handler takes it).
//! - [`layout`]: the page shell (header, navigation, language switch, footer).
//! - [`error`]: [`error::WebError`], errors rendered as pages with the right status.
//! - [`extract`]: `Query` and `Path` whose rejections are pages too.
//! - [`forms`]: origin and CSRF checks for posted forms.
//! - [`assets`]: `/assets/*`, embedded with `include_str!`/`include_bytes!`.
//! - [`public`]: home feed, search, item pages, the first-visit consent dialog.
//! - [`policy`]: the policy page with version history and diff, the re-consent dialog.
//! - [`account`]: sign-in and sign-up (SMS code, password, third-party, birth date,
//!   guardian).
//! - [`center`]: the privacy center.
//! - [`console`]: the operator console.
//!
//! Must not import: SQL.

pub mod account;
pub mod assets;
pub mod center;
pub mod console;
pub mod ctx;
pub mod error;
pub mod extract;
pub mod forms;
pub mod layout;
pub mod policy;
pub mod public;

use axum::Router;
use custos_app::App;
use custos_http::{AppState, HttpOptions};

/// Every web route, to merge beside the API's.
pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(assets::routes())
        .merge(layout::routes())
        .merge(public::routes())
        .merge(policy::routes())
        .merge(account::routes())
        .merge(center::routes())
        .merge(console::routes())
}

/// The whole server: the API and the web app under the same middleware.
pub fn app_with(app: App, opts: HttpOptions) -> Router {
    custos_http::app_with_routes(app, opts, routes())
}

/// [`app_with`] with default settings; tests call it without a socket.
pub fn app(app: App) -> Router {
    app_with(app, HttpOptions::default())
}
