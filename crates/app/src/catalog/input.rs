//! Items as operators supply them (JSON array or CSV), parsed and validated row by row
//! into [`NewItem`]s, each error naming its line.

use custos_store::catalog::NewItem;
use serde::Deserialize;

/// Longest title, in characters.
pub const MAX_TITLE: usize = 200;
/// Longest description, in characters.
pub const MAX_DESCRIPTION: usize = 5_000;
/// Most tags per item.
pub const MAX_TAGS: usize = 20;
/// Longest tag or category, in characters.
pub const MAX_LABEL: usize = 40;
/// Highest price accepted, in yuan.
const MAX_PRICE_YUAN: i64 = 100_000_000;

/// One item as written in an import file or an operator request.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemInput {
    #[serde(default)]
    pub external_id: Option<String>,
    #[serde(default)]
    pub title_zh: Option<String>,
    #[serde(default)]
    pub title_en: Option<String>,
    #[serde(default)]
    pub description_zh: Option<String>,
    #[serde(default)]
    pub description_en: Option<String>,
    #[serde(default)]
    pub category: Option<String>,
    /// A list in JSON; in CSV one cell with tags separated by `|`.
    #[serde(default)]
    pub tags: Vec<String>,
    /// In yuan, a number or a decimal string (`"199.00"`).
    #[serde(default)]
    pub price_min: Option<serde_json::Value>,
    /// Defaults to `price_min`.
    #[serde(default)]
    pub price_max: Option<serde_json::Value>,
    /// ISO 4217; default `CNY`.
    #[serde(default)]
    pub currency: Option<String>,
}

/// A row that could not be imported.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RowError {
    /// 1-based line of the file where the row starts.
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// One row of a file: its line, and the item or why it is invalid.
pub type Row = (usize, Result<NewItem, String>);

/// What an import file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
}

impl Format {
    /// From a file name: `.csv` is CSV, everything else JSON.
    pub fn from_path(path: &std::path::Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("csv") => Format::Csv,
            _ => Format::Json,
        }
    }
}

/// Parses a whole file into rows, each with its line number and either an item or the
/// reason it is invalid. A file that is not JSON/CSV at all is one error.
pub fn parse_file(text: &str, format: Format) -> Result<Vec<Row>, RowError> {
    match format {
        Format::Json => parse_json(text),
        Format::Csv => parse_csv(text),
    }
}

fn parse_json(text: &str) -> Result<Vec<Row>, RowError> {
    let values: Vec<serde_json::Value> = serde_json::from_str(text).map_err(|e| RowError {
        line: e.line().max(1),
        message: format!("not a JSON array of items: {e}"),
    })?;
    let lines = element_lines(text);
    Ok(values
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let line = lines.get(i).copied().unwrap_or(1);
            let item = serde_json::from_value::<ItemInput>(v)
                .map_err(|e| e.to_string())
                .and_then(validate);
            (line, item)
        })
        .collect())
}

/// The line on which each element of a top-level JSON array starts.
fn element_lines(text: &str) -> Vec<usize> {
    let mut out = Vec::new();
    let (mut depth, mut line, mut in_str, mut escaped, mut expect) =
        (0usize, 1usize, false, false, false);
    for c in text.chars() {
        if c == '\n' {
            line += 1;
        }
        if in_str {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_str = false,
                _ => {}
            }
            continue;
        }
        if depth == 1 && expect && !c.is_whitespace() && c != ',' && c != ']' {
            out.push(line);
            expect = false;
        }
        match c {
            '"' => in_str = true,
            '[' | '{' => {
                depth += 1;
                if depth == 1 {
                    expect = true;
                }
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            ',' if depth == 1 => expect = true,
            _ => {}
        }
    }
    out
}

const CSV_COLUMNS: [&str; 10] = [
    "external_id",
    "title_zh",
    "title_en",
    "description_zh",
    "description_en",
    "category",
    "tags",
    "price_min",
    "price_max",
    "currency",
];

fn parse_csv(text: &str) -> Result<Vec<Row>, RowError> {
    let mut r = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(text.as_bytes());
    let headers = r
        .headers()
        .map_err(|e| RowError {
            line: 1,
            message: format!("unreadable CSV header: {e}"),
        })?
        .clone();
    for h in headers.iter() {
        if !CSV_COLUMNS.contains(&h.trim()) {
            return Err(RowError {
                line: 1,
                message: format!(
                    "unknown column `{h}`; columns are {}",
                    CSV_COLUMNS.join(", ")
                ),
            });
        }
    }
    let mut out = Vec::new();
    for rec in r.records() {
        let (line, row) = match rec {
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line() as usize);
                (line, Err(format!("malformed CSV row: {e}")))
            }
            Ok(rec) => {
                let line = rec.position().map_or(0, |p| p.line() as usize);
                let mut input = ItemInput::default();
                for (h, v) in headers.iter().zip(rec.iter()) {
                    let v = v.trim();
                    let opt = (!v.is_empty()).then(|| v.to_owned());
                    match h.trim() {
                        "external_id" => input.external_id = opt,
                        "title_zh" => input.title_zh = opt,
                        "title_en" => input.title_en = opt,
                        "description_zh" => input.description_zh = opt,
                        "description_en" => input.description_en = opt,
                        "category" => input.category = opt,
                        "tags" => {
                            input.tags = v
                                .split('|')
                                .map(str::trim)
                                .filter(|t| !t.is_empty())
                                .map(str::to_owned)
                                .collect()
                        }
                        "price_min" => input.price_min = opt.map(serde_json::Value::String),
                        "price_max" => input.price_max = opt.map(serde_json::Value::String),
                        _ => input.currency = opt,
                    }
                }
                (line, validate(input))
            }
        };
        out.push((line, row));
    }
    Ok(out)
}

fn text(v: Option<String>, what: &str, max: usize) -> Result<String, String> {
    let s = v.unwrap_or_default().trim().to_owned();
    if s.chars().count() > max {
        return Err(format!("{what} is longer than {max} characters"));
    }
    if s.chars().any(|c| c.is_control() && c != '\n') {
        return Err(format!("{what} contains control characters"));
    }
    Ok(s)
}

fn label(v: &str, what: &str) -> Result<String, String> {
    let s = v.trim();
    if s.is_empty() || s.chars().count() > MAX_LABEL {
        return Err(format!("{what} must have 1 to {MAX_LABEL} characters"));
    }
    if s.chars().any(|c| c.is_control() || c == ',' || c == '/') {
        return Err(format!(
            "{what} `{s}` may not contain commas, slashes or control characters"
        ));
    }
    Ok(s.to_owned())
}

/// Parses a price in yuan (`199`, `199.5`, `"199.00"`) into fen.
pub fn parse_price(v: &serde_json::Value) -> Result<i64, String> {
    let s = match v {
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::String(s) => s.trim().to_owned(),
        _ => return Err("a price must be a number or a decimal string".into()),
    };
    let (whole, frac) = s.split_once('.').unwrap_or((&s, ""));
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > 2
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || whole.len() > 10
    {
        return Err(format!(
            "`{s}` is not a price in yuan with at most two decimals"
        ));
    }
    let yuan: i64 = whole.parse().map_err(|_| format!("`{s}` is not a price"))?;
    if yuan > MAX_PRICE_YUAN {
        return Err(format!("`{s}` is above the highest price accepted"));
    }
    let fen: i64 = format!("{frac:0<2}").parse().unwrap_or(0);
    Ok(yuan * 100 + fen)
}

/// Checks one item and turns it into what the store keeps.
pub fn validate(i: ItemInput) -> Result<NewItem, String> {
    let title_zh = text(i.title_zh, "title_zh", MAX_TITLE)?;
    let title_en = text(i.title_en, "title_en", MAX_TITLE)?;
    if title_zh.is_empty() && title_en.is_empty() {
        return Err("an item needs title_zh or title_en".into());
    }
    let category = label(i.category.as_deref().unwrap_or(""), "category")?;
    if i.tags.len() > MAX_TAGS {
        return Err(format!("at most {MAX_TAGS} tags"));
    }
    let mut tags = Vec::with_capacity(i.tags.len());
    for t in &i.tags {
        let t = label(t, "a tag")?;
        if !tags.contains(&t) {
            tags.push(t);
        }
    }
    let price_min = match &i.price_min {
        Some(v) => parse_price(v)?,
        None => return Err("price_min is required".into()),
    };
    let price_max = match &i.price_max {
        Some(v) => parse_price(v)?,
        None => price_min,
    };
    if price_max < price_min {
        return Err("price_max is below price_min".into());
    }
    let currency = i.currency.unwrap_or_else(|| "CNY".into());
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(format!(
            "currency `{currency}` is not an ISO 4217 code such as CNY"
        ));
    }
    let external_id = match i.external_id {
        Some(e) => Some(label(&e, "external_id")?),
        None => None,
    };
    Ok(NewItem {
        external_id,
        title_zh,
        title_en,
        description_zh: text(i.description_zh, "description_zh", MAX_DESCRIPTION)?,
        description_en: text(i.description_en, "description_en", MAX_DESCRIPTION)?,
        category,
        tags,
        price_min,
        price_max,
        currency,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_are_read_in_yuan_and_kept_in_fen() {
        assert_eq!(parse_price(&serde_json::json!(199)), Ok(19_900));
        assert_eq!(parse_price(&serde_json::json!("19.9")), Ok(1_990));
        assert_eq!(parse_price(&serde_json::json!(0.05)), Ok(5));
        for bad in [
            serde_json::json!(-1),
            serde_json::json!("1.234"),
            serde_json::json!("abc"),
            serde_json::json!(true),
            serde_json::json!("1e9"),
        ] {
            assert!(parse_price(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn each_json_element_is_reported_at_the_line_it_starts_on() {
        let text = "[\n  {\"a\": \"[x,\\\"y\"},\n\n  {\"b\": [1, 2]}, {\"c\": 3}\n]";
        assert_eq!(element_lines(text), vec![2, 4, 4]);
    }
}
