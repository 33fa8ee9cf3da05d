//! Preference profiles (P12): traits derived incrementally from consented service-log
//! events, audience segments defined by rules in configuration, and the ranking boosts the
//! feed and search use (L5).
//!
//! A trait is an affinity for a catalog tag (`tag:<tag>`) or category
//! (`category:<category>`), kept as the encrypted personal field `trait:<key>` under the
//! `personalized_feed` purpose, which is its lineage: withdrawing that purpose deletes
//! every trait (the kernel deletes a purpose's fields on withdrawal). Segments are never
//! stored: membership is computed from the traits when asked, so it follows every trait
//! deletion, reset and withdrawal at once.

use std::collections::HashMap;

use custos_core::{GateContext, SubjectId};
use custos_search::Boosts;
use serde::{Deserialize, Serialize};

use super::{EventInput, Signals, Trait, TRAITS_PURPOSE, TRAIT_CATEGORY};
use crate::{AppError, AppResult};

/// Most distinct traits one batch may change: the strongest are kept, so a batch naming
/// a thousand items costs a bounded number of writes.
pub const MAX_TRAITS_PER_BATCH: usize = 64;
/// Traits that rank a feed or a search: the strongest ones.
pub const RANKING_TRAITS: usize = 32;
/// Boost of the strongest trait in relevance points (a title match of one query word
/// scores a few points); weaker traits get a proportional share.
pub const RANKING_BOOST: f32 = 2.0;
/// Most segments a configuration may define.
pub const MAX_SEGMENTS: usize = 100;

/// How much one event adds to the affinities of the item it concerns; `None` for kinds
/// that do not concern an item (searches: their words are not kept as traits).
pub fn event_weight(kind: &str) -> Option<f64> {
    match kind {
        "browse" | "click" => Some(1.0),
        "share" | "download" => Some(2.0),
        "bookmark" => Some(3.0),
        _ => None,
    }
}

/// The catalog item an event's target names: `42`, `item:42` or `item-42`.
pub fn item_target(target: &str) -> Option<i64> {
    let t = target.trim();
    let id = t
        .strip_prefix("item:")
        .or_else(|| t.strip_prefix("item-"))
        .unwrap_or(t);
    id.parse::<i64>().ok().filter(|i| *i > 0)
}

/// Whether `key` is a well-formed trait key: 1–64 characters, none blank or control.
pub fn valid_trait_key(key: &str) -> bool {
    !key.is_empty()
        && key.chars().count() <= 64
        && !key.chars().any(|c| c.is_control() || c.is_whitespace())
}

/// One condition of a segment rule: the trait's weight is at least `min`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// A trait key, e.g. `tag:连衣裙` or `category:clothing`.
    #[serde(rename = "trait")]
    pub key: String,
    pub min: f64,
}

/// One audience segment as `custos.toml` defines it:
///
/// ```toml
/// [[signals.segments]]
/// id = "dress_fans"
/// name = "Dress fans"
/// rule = [{ trait = "tag:dress", min = 3.0 }, { trait = "category:clothing", min = 1.0 }]
/// ```
///
/// A subject is in the segment when every condition of `rule` holds.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentConfig {
    /// `[a-z0-9_]`, 1–64 characters, unique.
    pub id: String,
    /// What users are shown.
    pub name: String,
    /// Conditions that must all hold (at least one).
    pub rule: Vec<Condition>,
}

/// Checks the configured segments; the error names the offending entry and the fix.
pub fn validate_segments(segments: &[SegmentConfig]) -> anyhow::Result<()> {
    if segments.len() > MAX_SEGMENTS {
        anyhow::bail!("signals.segments: at most {MAX_SEGMENTS} segments may be defined");
    }
    let mut seen = std::collections::HashSet::new();
    for (i, s) in segments.iter().enumerate() {
        let at = format!("signals.segments[{i}] (id `{}`)", s.id);
        if s.id.is_empty()
            || s.id.len() > 64
            || !s
                .id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            anyhow::bail!("{at}: `id` must be 1–64 characters of a-z, 0-9 and _");
        }
        if !seen.insert(s.id.as_str()) {
            anyhow::bail!("{at}: `id` is used by an earlier segment; ids must be unique");
        }
        if s.name.trim().is_empty() || s.name.chars().count() > 128 {
            anyhow::bail!("{at}: `name` must be 1–128 characters");
        }
        if s.rule.is_empty() {
            anyhow::bail!(
                "{at}: `rule` is empty; give at least one {{ trait = \"tag:…\", min = … }}"
            );
        }
        for (j, c) in s.rule.iter().enumerate() {
            if !valid_trait_key(&c.key)
                || !(c.key.starts_with("tag:") || c.key.starts_with("category:"))
            {
                anyhow::bail!(
                    "{at}: rule[{j}]: trait `{}` must be `tag:<tag>` or `category:<category>` \
                     (1–64 characters, no spaces)",
                    c.key
                );
            }
            if !c.min.is_finite() || c.min <= 0.0 {
                anyhow::bail!("{at}: rule[{j}]: `min` must be a number above 0");
            }
        }
    }
    Ok(())
}

/// The segments whose every condition `traits` meet, in configuration order.
pub fn segments_matching<'a>(
    segments: &'a [SegmentConfig],
    traits: &[Trait],
) -> Vec<&'a SegmentConfig> {
    let weights: HashMap<&str, f64> = traits.iter().map(|t| (t.key.as_str(), t.weight)).collect();
    segments
        .iter()
        .filter(|s| {
            s.rule
                .iter()
                .all(|c| weights.get(c.key.as_str()).is_some_and(|w| *w >= c.min))
        })
        .collect()
}

/// Ranking boosts from a profile: the [`RANKING_TRAITS`] strongest positive traits, the
/// strongest worth [`RANKING_BOOST`], the others in proportion.
pub fn boosts(traits: &[Trait]) -> Boosts {
    let mut strong: Vec<&Trait> = traits
        .iter()
        .filter(|t| t.weight.is_finite() && t.weight > 0.0)
        .collect();
    strong.sort_by(|a, b| b.weight.total_cmp(&a.weight).then(a.key.cmp(&b.key)));
    strong.truncate(RANKING_TRAITS);
    let max = strong.first().map_or(1.0, |t| t.weight);
    let mut out = Boosts::default();
    for t in strong {
        let w = (t.weight / max) as f32 * RANKING_BOOST;
        if let Some(c) = t.key.strip_prefix("category:") {
            out.categories.push((c.to_owned(), w));
        } else if let Some(tag) = t.key.strip_prefix("tag:") {
            out.tags.push((tag.to_owned(), w));
        }
    }
    out
}

impl Signals {
    /// Updates the subject's traits from a batch of (validated) events (P12): only while
    /// personalization is on and `personalized_feed` is consented, only from events whose
    /// category that purpose declares, and only for events about catalog items. Affinities
    /// are summed per batch and each changed trait is written once. Returns how many
    /// traits were written. A withdrawal racing with the batch stops it quietly.
    pub async fn derive_traits(
        &self,
        subject: SubjectId,
        batch: &[EventInput],
        ctx: &GateContext<'_>,
    ) -> AppResult<usize> {
        // The gate's in-memory view first: most subjects never consented, and then the
        // switch need not be read.
        if self
            .kernel
            .permit(subject, TRAITS_PURPOSE, &[TRAIT_CATEGORY], ctx)
            .is_err()
            || !self.personalized(Some(subject), ctx).await?
        {
            return Ok(0);
        }
        let mut verdicts: Vec<(&str, bool)> = Vec::new();
        let mut per_item: HashMap<i64, f64> = HashMap::new();
        for e in batch {
            let (Some(weight), Some(category), Some(item)) = (
                event_weight(&e.kind),
                super::event_category(&e.kind),
                e.target.as_deref().and_then(item_target),
            ) else {
                continue;
            };
            let ok = match verdicts.iter().find(|(c, _)| *c == category) {
                Some((_, ok)) => *ok,
                None => {
                    let ok = self
                        .kernel
                        .permit(subject, TRAITS_PURPOSE, &[TRAIT_CATEGORY, category], ctx)
                        .is_ok();
                    verdicts.push((category, ok));
                    ok
                }
            };
            if ok {
                *per_item.entry(item).or_default() += weight;
            }
        }
        if per_item.is_empty() {
            return Ok(0);
        }
        let ids: Vec<i64> = per_item.keys().copied().collect();
        let facets = custos_store::signals::item_facets(&self.kernel.db, &ids).await?;
        let mut deltas: HashMap<String, f64> = HashMap::new();
        for (id, category, tags) in facets {
            let w = per_item[&id];
            let keys = std::iter::once(format!("category:{category}"))
                .chain(tags.iter().map(|t| format!("tag:{t}")));
            for key in keys.filter(|k| valid_trait_key(k)) {
                *deltas.entry(key).or_default() += w;
            }
        }
        let mut deltas: Vec<(String, f64)> = deltas.into_iter().collect();
        deltas.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        deltas.truncate(MAX_TRAITS_PER_BATCH);
        let mut written = 0;
        for (key, delta) in deltas {
            match self.add_affinity(subject, &key, delta, ctx).await {
                Ok(_) => written += 1,
                // Withdrawn (or switched off) while the batch was being taken.
                Err(AppError::Denied(_)) => break,
                Err(e) => return Err(e),
            }
        }
        Ok(written)
    }

    /// The configured segments the subject is in, read from its profile (a profile read),
    /// or `None` (and no read) when the subject's responses must not be personalized.
    pub async fn segments_of(
        &self,
        subject: SubjectId,
        ctx: &GateContext<'_>,
    ) -> AppResult<Option<Vec<SegmentConfig>>> {
        let Some(traits) = self.profile_for_ranking(Some(subject), ctx).await? else {
            return Ok(None);
        };
        Ok(Some(
            segments_matching(&self.segments, &traits)
                .into_iter()
                .cloned()
                .collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(key: &str, weight: f64) -> Trait {
        Trait {
            key: key.into(),
            weight,
            purpose: TRAITS_PURPOSE.into(),
            updated_at_ms: 0,
        }
    }

    fn seg(id: &str, rule: &[(&str, f64)]) -> SegmentConfig {
        SegmentConfig {
            id: id.into(),
            name: format!("Segment {id}"),
            rule: rule
                .iter()
                .map(|(k, m)| Condition {
                    key: (*k).into(),
                    min: *m,
                })
                .collect(),
        }
    }

    #[test]
    fn item_targets_and_event_weights_are_recognised() {
        assert_eq!(item_target("42"), Some(42));
        assert_eq!(item_target("item:42"), Some(42));
        assert_eq!(item_target("item-7"), Some(7));
        assert_eq!(item_target("dress"), None);
        assert_eq!(item_target("-3"), None);
        assert_eq!(event_weight("bookmark"), Some(3.0));
        assert_eq!(event_weight("search"), None);
    }

    #[test]
    fn segment_configuration_is_validated_with_errors_naming_the_entry() {
        assert!(validate_segments(&[seg("dress_fans", &[("tag:dress", 2.0)])]).is_ok());
        let cases: Vec<(Vec<SegmentConfig>, &str)> = vec![
            (vec![seg("Bad Id", &[("tag:a", 1.0)])], "`id` must be"),
            (
                vec![seg("a", &[("tag:a", 1.0)]), seg("a", &[("tag:b", 1.0)])],
                "signals.segments[1] (id `a`): `id` is used",
            ),
            (vec![seg("a", &[])], "`rule` is empty"),
            (
                vec![seg("a", &[("color:red", 1.0)])],
                "rule[0]: trait `color:red`",
            ),
            (vec![seg("a", &[("tag:two words", 1.0)])], "no spaces"),
            (
                vec![seg("a", &[("tag:a", 0.0)])],
                "`min` must be a number above 0",
            ),
            (vec![seg("a", &[("tag:a", f64::NAN)])], "`min` must be"),
        ];
        for (segments, want) in cases {
            let e = validate_segments(&segments).unwrap_err().to_string();
            assert!(e.contains(want), "`{e}` should contain `{want}`");
        }
    }

    #[test]
    fn a_subject_is_in_a_segment_when_every_condition_holds() {
        let segments = [
            seg("dress", &[("tag:dress", 2.0)]),
            seg("both", &[("tag:dress", 2.0), ("category:shoes", 1.0)]),
            seg("bags", &[("tag:bag", 1.0)]),
        ];
        let traits = [t("tag:dress", 2.0), t("category:shoes", 0.5)];
        let ids: Vec<&str> = segments_matching(&segments, &traits)
            .iter()
            .map(|s| s.id.as_str())
            .collect();
        assert_eq!(ids, ["dress"]);
        let traits = [t("tag:dress", 5.0), t("category:shoes", 1.0)];
        assert_eq!(segments_matching(&segments, &traits).len(), 2);
        assert!(segments_matching(&segments, &[]).is_empty());
    }

    #[test]
    fn boosts_keep_the_strongest_positive_traits_in_proportion() {
        let mut traits = vec![
            t("tag:dress", 4.0),
            t("category:shoes", 2.0),
            t("tag:x", -1.0),
        ];
        traits.extend((0..40).map(|i| t(&format!("tag:t{i}"), 0.5)));
        let b = boosts(&traits);
        assert_eq!(b.tags.len() + b.categories.len(), RANKING_TRAITS);
        assert_eq!(b.tags[0], ("dress".to_owned(), RANKING_BOOST));
        assert_eq!(
            b.categories,
            vec![("shoes".to_owned(), RANKING_BOOST / 2.0)]
        );
        assert!(b.tags.iter().all(|(k, _)| k != "x"));
        assert!(boosts(&[]).is_empty());
    }
}
