//! Charts drawn on the server as inline SVG (no script, no library): grouped bars with
//! a `<title>` and `<desc>`, the value written above every bar, series told apart by
//! position, label and fill pattern (not only colour), and the same figures as a data
//! table for screen readers and text browsers.

use maud::{html, Markup};

/// One series of a chart: its label and one value per category (`None` = suppressed,
/// shown as `<5`).
pub struct Series {
    /// Stable key (`given`, `refused`, …), used in `data-*` attributes.
    pub key: &'static str,
    pub label: String,
    pub values: Vec<Option<i64>>,
}

const W: i64 = 640;
const H: i64 = 220;
const TOP: i64 = 24;
const BOTTOM: i64 = 40;
const LEFT: i64 = 8;

fn shown(v: Option<i64>, suppressed: &str) -> String {
    v.map_or_else(|| suppressed.to_owned(), |n| n.to_string())
}

/// A grouped bar chart. `id` must be unique on the page; `categories` are the x labels
/// (e.g. days); `suppressed` is the text for a suppressed value.
pub fn bars(
    id: &str,
    title: &str,
    desc: &str,
    category_header: &str,
    categories: &[String],
    series: &[Series],
    suppressed: &str,
) -> Markup {
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .copied()
        .max()
        .unwrap_or(0)
        .max(1);
    let groups = categories.len().max(1) as i64;
    let group_w = (W - LEFT * 2) / groups;
    let n = series.len().max(1) as i64;
    let bar_w = ((group_w - 6) / n).max(2);
    let plot_h = H - TOP - BOTTOM;
    // Label every category when they fit, else every k-th.
    let label_every = (groups / 10).max(1);
    let title_id = format!("{id}-title");
    let desc_id = format!("{id}-desc");
    html! {
        figure class="chart-figure" {
            svg class="chart" id=(id) role="img" viewBox={ "0 0 " (W) " " (H) }
                aria-labelledby={ (title_id) " " (desc_id) } xmlns="http://www.w3.org/2000/svg" {
                title id=(title_id) { (title) }
                desc id=(desc_id) { (desc) }
                defs {
                    pattern id={ (id) "-hatch" } width="6" height="6" patternUnits="userSpaceOnUse"
                        patternTransform="rotate(45)" {
                        rect class="hatch-bg" width="6" height="6" {}
                        line class="hatch-line" x1="0" y1="0" x2="0" y2="6" stroke-width="3" {}
                    }
                }
                line class="axis" x1=(LEFT) y1=(H - BOTTOM) x2=(W - LEFT) y2=(H - BOTTOM) {}
                @for (gi, cat) in categories.iter().enumerate() {
                    @let x0 = LEFT + gi as i64 * group_w + 3;
                    g class="group" data-category=(cat)
                        data-values=(series.iter().map(|s| format!("{}={}", s.key, shown(s.values.get(gi).copied().flatten(), "suppressed"))).collect::<Vec<_>>().join(",")) {
                        @for (si, s) in series.iter().enumerate() {
                            @let v = s.values.get(gi).copied().flatten();
                            @let h = v.map_or(0, |v| v * plot_h / max);
                            @let x = x0 + si as i64 * bar_w;
                            @let y = H - BOTTOM - h;
                            rect class={ "bar s" (si) } x=(x) y=(y) width=(bar_w - 1) height=(h)
                                fill=[(si % 2 == 1).then(|| format!("url(#{id}-hatch)"))]
                                data-series=(s.key) {
                                title { (cat) " · " (s.label) ": " (shown(v, suppressed)) }
                            }
                            @if bar_w >= 10 || v.is_some_and(|v| v > 0) {
                                text class="value" x=(x + bar_w / 2) y=(y - 3) text-anchor="middle" {
                                    (shown(v, suppressed))
                                }
                            }
                        }
                        @if gi as i64 % label_every == 0 {
                            text class="label" x=(x0 + group_w / 2) y=(H - BOTTOM + 16) text-anchor="middle" {
                                (cat.get(5..).unwrap_or(cat))
                            }
                        }
                    }
                }
                g class="legend" {
                    @for (si, s) in series.iter().enumerate() {
                        @let lx = LEFT + si as i64 * 180;
                        rect class={ "bar s" (si) } x=(lx) y=(H - 14) width="12" height="12"
                            fill=[(si % 2 == 1).then(|| format!("url(#{id}-hatch)"))] {}
                        text class="legend-label" x=(lx + 16) y=(H - 4) { (s.label) }
                    }
                }
            }
            table class="chart-data" {
                caption { (title) }
                thead {
                    tr {
                        th scope="col" { (category_header) }
                        @for s in series { th scope="col" { (s.label) } }
                    }
                }
                tbody {
                    @for (gi, cat) in categories.iter().enumerate() {
                        tr {
                            th scope="row" { (cat) }
                            @for s in series {
                                td { (shown(s.values.get(gi).copied().flatten(), suppressed)) }
                            }
                        }
                    }
                }
            }
        }
    }
}
