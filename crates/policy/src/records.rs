//! Records of processing as CSV and HTML, impact assessment records per purpose (L10),
//! declared cross-border transfers (P20), and the rendered changes between two versions
//! users read before they agree to a revision (P35, L4).
//!
//! Like [`crate::render`], nothing here decides anything; every value comes from the
//! declaration, and declared text is escaped before it reaches Markdown or CSV.

use serde_json::{json, Value};

use crate::diff::{PolicyDiff, PurposeChange};
use crate::model::{Assessment, Lang, Transfer};
use crate::render::{document, escape_markdown as t, text_json};
use crate::Policy;

/// One impact assessment record as JSON.
pub fn assessment_json(a: &Assessment) -> Value {
    json!({
        "id": a.id,
        "assessed_on": a.assessed_on,
        "assessor": a.assessor,
        "lawfulness": text_json(&a.lawfulness),
        "risks": text_json(&a.risks),
        "measures": text_json(&a.measures),
        "residual_risk": a.residual_risk.as_str(),
    })
}

/// One declared cross-border transfer as JSON.
pub fn transfer_json(tr: &Transfer) -> Value {
    json!({
        "sink": tr.sink,
        "region": tr.region,
        "purposes": tr.purposes,
        "recipient": text_json(&tr.recipient),
        "security_measures": text_json(&tr.security_measures),
        "risks": text_json(&tr.risks),
        "consent_purpose": tr.consent_purpose,
    })
}

/// The paragraph of the policy page that tells users about one transfer abroad.
pub(crate) fn transfer_markdown(p: &Policy, tr: &Transfer, lang: Lang) -> String {
    let names: Vec<String> = tr
        .purposes
        .iter()
        .map(|id| {
            p.purpose(id)
                .map_or_else(|| t(id), |pp| t(pp.name.get(lang)))
        })
        .collect();
    match lang {
        Lang::En => format!(
            "**Transfer abroad ({region}).** For {purposes}, data goes to {recipient}. \
             Safeguards: {measures} Risks: {risks} This happens only after your separate \
             consent, which you can withdraw at any time.",
            region = t(&tr.region),
            purposes = names.join(", "),
            recipient = t(tr.recipient.get(lang)),
            measures = t(tr.security_measures.get(lang)),
            risks = t(tr.risks.get(lang)),
        ),
        Lang::Zh => format!(
            "**向境外提供（{region}）。** 为{purposes}，个人信息将提供给{recipient}。\
             保护措施：{measures}风险：{risks}仅在您单独同意后进行，您可以随时撤回。",
            region = t(&tr.region),
            purposes = names.join("、"),
            recipient = t(tr.recipient.get(lang)),
            measures = t(tr.security_measures.get(lang)),
            risks = t(tr.risks.get(lang)),
        ),
    }
}

/// Columns of [`records_csv`], in order.
pub const RECORDS_CSV_COLUMNS: &[&str] = &[
    "purpose",
    "name_en",
    "name_zh",
    "basis",
    "tier",
    "categories",
    "methods",
    "recipients",
    "retention_days",
    "retention_from",
    "separate_consent",
    "sensitive",
    "cross_border",
    "impact_assessment",
    "assessed_on",
    "residual_risk",
];

/// A CSV field, quoted when it holds a separator, quote or line break; a leading
/// `=`, `+`, `-` or `@` is prefixed with `'` so spreadsheets never run it as a formula.
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// Records of processing as CSV (RFC 4180, CRLF line ends), one row per purpose, lists
/// joined with `|`.
pub fn records_csv(p: &Policy) -> String {
    let d = p.declaration();
    let mut out = RECORDS_CSV_COLUMNS.join(",");
    out.push_str("\r\n");
    for pp in &d.purposes {
        let assessment = p.assessment_for(&pp.id);
        let cross_border = pp
            .recipients
            .iter()
            .filter_map(|r| p.partner(r))
            .any(|x| x.cross_border || x.region != d.region)
            || p.transfers_for(&pp.id).next().is_some();
        let row = [
            pp.id.clone(),
            pp.name.en.clone(),
            pp.name.zh.clone(),
            pp.basis.as_str().to_owned(),
            pp.tier.as_str().to_owned(),
            pp.categories.join("|"),
            pp.methods
                .iter()
                .map(|m| m.as_str())
                .collect::<Vec<_>>()
                .join("|"),
            pp.recipients.join("|"),
            pp.retention.map(|r| r.days.to_string()).unwrap_or_default(),
            pp.retention
                .map(|r| r.from.as_str().to_owned())
                .unwrap_or_default(),
            pp.separate_consent.to_string(),
            crate::validate::is_effectively_sensitive(d, pp).to_string(),
            cross_border.to_string(),
            pp.impact_assessment.clone().unwrap_or_default(),
            assessment
                .map(|a| a.assessed_on.clone())
                .unwrap_or_default(),
            assessment
                .map(|a| a.residual_risk.as_str().to_owned())
                .unwrap_or_default(),
        ];
        out.push_str(
            &row.iter()
                .map(|f| csv_field(f))
                .collect::<Vec<_>>()
                .join(","),
        );
        out.push_str("\r\n");
    }
    out
}

fn cell(s: &str) -> String {
    t(s)
}

/// Records of processing and the impact assessment record of each purpose, as Markdown.
pub fn records_markdown(p: &Policy, lang: Lang) -> String {
    let d = p.declaration();
    let en = lang == Lang::En;
    let mut out = String::new();
    let mut line = |s: &str| {
        out.push_str(s);
        out.push('\n');
    };
    line(&if en {
        format!("# Records of processing — {}", t(&d.app.en))
    } else {
        format!("# 个人信息处理活动记录 — {}", t(&d.app.zh))
    });
    line("");
    line(&format!(
        "{} {} · {} {} · {} `{}`",
        if en {
            "Controller:"
        } else {
            "个人信息处理者："
        },
        t(d.controller.name.get(lang)),
        if en { "Region:" } else { "存储地区：" },
        t(&d.region),
        if en {
            "Policy version:"
        } else {
            "政策版本："
        },
        p.hash().as_str()
    ));
    line("");
    line(if en {
        "| Purpose | Legal basis | Categories | Recipients | Retention | Impact assessment |"
    } else {
        "| 处理目的 | 法律依据 | 个人信息种类 | 接收方 | 保存期限 | 影响评估 |"
    });
    line("| --- | --- | --- | --- | --- | --- |");
    for pp in &d.purposes {
        let retention = pp
            .retention
            .as_ref()
            .map(crate::diff::retention_label)
            .unwrap_or_default();
        line(&format!(
            "| {} (`{}`) | {} | {} | {} | {} | {} |",
            cell(pp.name.get(lang)),
            pp.id,
            pp.basis.as_str(),
            cell(&pp.categories.join(", ")),
            cell(&pp.recipients.join(", ")),
            cell(&retention),
            cell(pp.impact_assessment.as_deref().unwrap_or("—")),
        ));
    }
    line("");
    line(if en {
        "## Impact assessment per purpose"
    } else {
        "## 各处理目的的个人信息保护影响评估"
    });
    line("");
    for pp in &d.purposes {
        line(&format!("### {} (`{}`)", cell(pp.name.get(lang)), pp.id));
        line("");
        match p.assessment_for(&pp.id) {
            None => line(if en {
                "No assessment record."
            } else {
                "无评估记录。"
            }),
            Some(a) => {
                let rows: [(&str, &str, String); 6] = [
                    ("Record", "记录编号", cell(&a.id)),
                    ("Assessed on", "评估日期", cell(&a.assessed_on)),
                    ("Assessor", "评估人", cell(&a.assessor)),
                    (
                        "Lawful, legitimate, necessary",
                        "合法、正当、必要",
                        cell(a.lawfulness.get(lang)),
                    ),
                    (
                        "Risks to individuals",
                        "对个人权益的影响及安全风险",
                        cell(a.risks.get(lang)),
                    ),
                    ("Measures", "保护措施", cell(a.measures.get(lang))),
                ];
                for (l_en, l_zh, v) in rows {
                    line(&format!("- **{}**: {v}", if en { l_en } else { l_zh }));
                }
                line(&format!(
                    "- **{}**: {}",
                    if en { "Residual risk" } else { "剩余风险" },
                    a.residual_risk.as_str()
                ));
            }
        }
        line("");
    }
    out
}

/// Records of processing and assessments as a standalone HTML document.
pub fn records_html(p: &Policy, lang: Lang) -> String {
    let title = match lang {
        Lang::En => "Records of processing",
        Lang::Zh => "个人信息处理活动记录",
    };
    document(&records_markdown(p, lang), lang, title, p.hash().as_str())
}

fn change_line(p: &Policy, c: &PurposeChange, lang: Lang) -> String {
    let en = lang == Lang::En;
    let name = p
        .purpose(&c.purpose)
        .map_or_else(|| t(&c.purpose), |pp| t(pp.name.get(lang)));
    let status = match (c.status, en) {
        (crate::ChangeStatus::Added, true) => "new",
        (crate::ChangeStatus::Added, false) => "新增",
        (crate::ChangeStatus::Removed, true) => "removed",
        (crate::ChangeStatus::Removed, false) => "已删除",
        (crate::ChangeStatus::Changed, true) => "changed",
        (crate::ChangeStatus::Changed, false) => "已变更",
    };
    let mut s = format!("- **{name}** (`{}`): {status}", c.purpose);
    for f in &c.changes {
        s.push_str(&format!("; {}", t(&f.to_string())));
    }
    if c.needs_consent {
        s.push_str(if en {
            " — **paused until you agree**"
        } else {
            " — **在您同意前暂停**"
        });
    }
    s
}

/// What changed from `old` to `new`, purpose by purpose, as Markdown.
pub fn changes_markdown(old: &Policy, new: &Policy, diff: &PolicyDiff, lang: Lang) -> String {
    let en = lang == Lang::En;
    let mut out = String::new();
    let mut line = |s: &str| {
        out.push_str(s);
        out.push('\n');
    };
    line(if en {
        "# What changed in our privacy policy"
    } else {
        "# 隐私政策变更说明"
    });
    line("");
    line(&format!(
        "{} `{}` ({}) → `{}` ({})",
        if en { "From" } else { "版本" },
        old.hash().short(),
        t(&old.declaration().revision),
        new.hash().short(),
        t(&new.declaration().revision)
    ));
    line("");
    if diff.is_empty() {
        line(if en {
            "Nothing you agreed to changed."
        } else {
            "您已同意的内容没有变化。"
        });
    }
    for g in &diff.general {
        if g.field == "controller" {
            let c = &new.declaration().controller;
            line(&if en {
                format!(
                    "- **The controller changed** to {} ({}). It is bound to this same policy: \
                     every consent you gave and every commitment in it stay in force.",
                    t(c.name.get(lang)),
                    t(c.address.get(lang))
                )
            } else {
                format!(
                    "- **个人信息处理者变更为**{}（{}）。新的处理者受本政策同等约束：您作出的同意和本政策的各项承诺继续有效。",
                    t(c.name.get(lang)),
                    t(c.address.get(lang))
                )
            });
        } else {
            line(&format!("- {}", t(&g.to_string())));
        }
    }
    for c in &diff.purposes {
        line(&change_line(new, c, lang));
    }
    out
}

/// [`changes_markdown`] as a standalone HTML document.
pub fn changes_html(old: &Policy, new: &Policy, diff: &PolicyDiff, lang: Lang) -> String {
    let title = match lang {
        Lang::En => "What changed in our privacy policy",
        Lang::Zh => "隐私政策变更说明",
    };
    document(
        &changes_markdown(old, new, diff, lang),
        lang,
        title,
        new.hash().as_str(),
    )
}
