//! The feed and personalized search ranking (P12, L5, L13).
//!
//! Both ask [`Signals::profile_for_ranking`] first: with the personalization switch on and
//! `personalized_feed` consented it reads the traits and the catalog ranks with them (the
//! answer says `personalized: true`); otherwise no profile is read at all and the answer
//! is the plain one (`personalized: false`). Ranking changes only the order: items, their
//! prices and terms come from the same catalog summaries for everyone (L13).

use custos_core::{GateContext, SubjectId};
use custos_search::{Filters, SearchRequest, Sort, MAX_LIMIT};

use super::{profile, Signals};
use crate::catalog::{Catalog, SearchOutcome};
use crate::{AppError, AppResult};

/// Items per feed page unless asked otherwise.
pub const DEFAULT_FEED_LIMIT: usize = 20;

impl Signals {
    /// One page of the feed: every catalog item, newest first, or, personalized, the
    /// items matching the subject's strongest traits first. `cursor` is the previous
    /// page's `next_cursor`; one from a personalized page after personalization was
    /// switched off (or the reverse) starts the feed over rather than failing.
    pub async fn feed(
        &self,
        catalog: &Catalog,
        subject: Option<SubjectId>,
        ctx: &GateContext<'_>,
        cursor: Option<String>,
        limit: usize,
    ) -> AppResult<SearchOutcome> {
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(AppError::bad(
                "invalid_limit",
                format!("limit must be 1 to {MAX_LIMIT}"),
            ));
        }
        let profile = self.profile_for_ranking(subject, ctx).await?;
        let req = SearchRequest {
            q: None,
            filters: Filters::default(),
            sort: Some(if profile.is_some() {
                Sort::Relevance
            } else {
                Sort::Newest
            }),
            cursor,
            limit,
        };
        let boosts = profile.as_deref().map(profile::boosts);
        catalog.search_boosted(&req, boosts.as_ref()).await
    }

    /// A catalog search, ranked with the subject's traits when its order is relevance and
    /// the subject's responses may be personalized. An order by newest is never
    /// personalized and reads no profile.
    pub async fn search(
        &self,
        catalog: &Catalog,
        subject: Option<SubjectId>,
        ctx: &GateContext<'_>,
        req: &SearchRequest,
    ) -> AppResult<SearchOutcome> {
        let has_query = req.q.as_deref().is_some_and(|q| !q.trim().is_empty());
        let relevance = req.sort.unwrap_or(if has_query {
            Sort::Relevance
        } else {
            Sort::Newest
        }) == Sort::Relevance;
        let profile = match relevance {
            true => self.profile_for_ranking(subject, ctx).await?,
            false => None,
        };
        let boosts = profile.as_deref().map(profile::boosts);
        catalog.search_boosted(req, boosts.as_ref()).await
    }
}
