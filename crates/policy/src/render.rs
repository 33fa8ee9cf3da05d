//! The policy page and the records of processing, generated from the declaration (P40, L10).
//!
//! Owns every user-facing word of the policy page in both languages: [`markdown`] writes
//! the page, [`html`] turns that Markdown into a standalone, accessible HTML5 document, and
//! [`records_of_processing`] produces the machine-readable register regulators ask for
//! (GDPR art. 30, PIPL 55-56). Nothing here decides anything: what is processed, why, how
//! long and by whom all comes from the [`Policy`]; this module only says it.
//!
//! Declared text is never trusted as markup. Every declared string goes through
//! [`escape_markdown`] before it enters the Markdown, and [`html`] additionally turns any raw
//! HTML that still reached the parser into plain text, so a declaration cannot inject
//! elements, attributes or links into the page.

use std::fmt::Write as _;

use pulldown_cmark::{html as cmark_html, Event, Options, Parser};
use serde_json::{json, Value};

use crate::model::{Category, Lang, LegalBasis, Method, Partner, Purpose, RetentionFrom, Tier};
use crate::validate::{is_effectively_sensitive, is_plain_email};
use crate::Policy;

/// Escapes text so that Markdown shows it literally, in running text and in table cells.
///
/// Characters that are active anywhere (`\`, `` ` ``, `*`, `_`, `[`, `]`, `<`, `&`, `|`,
/// `~`) are always backslash-escaped, which rules out emphasis, code, links, images, raw
/// HTML, entities and cell breaks. Characters that only matter at the start of a line
/// (`#`, `>`, `-`, `+`, `=`, and the `.` or `)` after a leading number) are escaped there.
/// Line breaks and tabs become spaces, so declared text can never start a block of its own.
pub fn escape_markdown(s: &str) -> String {
    #[derive(PartialEq)]
    enum Start {
        Spaces,
        Digits,
        Done,
    }
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    let mut start = Start::Spaces;
    for c in s.chars() {
        let c = if matches!(c, '\r' | '\n' | '\t') {
            ' '
        } else {
            c
        };
        if c.is_control() {
            continue;
        }
        let mut escape = matches!(
            c,
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '&' | '|' | '~'
        );
        start = match start {
            Start::Spaces if c == ' ' => Start::Spaces,
            Start::Spaces if c.is_ascii_digit() => Start::Digits,
            Start::Spaces => {
                escape |= matches!(c, '#' | '>' | '-' | '+' | '=');
                Start::Done
            }
            Start::Digits if c.is_ascii_digit() => Start::Digits,
            Start::Digits => {
                escape |= matches!(c, '.' | ')');
                Start::Done
            }
            Start::Done => Start::Done,
        };
        if escape {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Appends `period` unless the text already ends a sentence.
fn end_sentence(mut s: String, period: &str) -> String {
    if !s.ends_with(['.', '。', '!', '！', '?', '？']) {
        s.push_str(period);
    }
    s
}

/// Escapes text for HTML element content and double-quoted attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Declared text, escaped for Markdown.
fn t(s: &str) -> String {
    escape_markdown(s)
}

/// An identifier shown as code; falls back to escaped text if it could close the span.
fn code(s: &str) -> String {
    if s.is_empty() || s.contains('`') || s.contains(['\n', '\r']) {
        escape_markdown(s)
    } else {
        format!("`{s}`")
    }
}

/// The words of the page that are not declared: headings, labels, fixed explanations.
struct Words {
    title: &'static str,
    intro: &'static str,
    controller_h: &'static str,
    address: &'static str,
    email: &'static str,
    phone: &'static str,
    dpo: &'static str,
    region_h: &'static str,
    region_before: &'static str,
    region_after: &'static str,
    features_h: &'static str,
    features_intro: &'static str,
    col_feature: &'static str,
    col_kind: &'static str,
    col_purposes: &'static str,
    col_data: &'static str,
    basic: &'static str,
    additional: &'static str,
    features_what_h: &'static str,
    purposes_h: &'static str,
    purposes_intro: &'static str,
    what_data: &'static str,
    how: &'static str,
    why_basis: &'static str,
    how_long: &'static str,
    then_deleted: &'static str,
    recipients: &'static str,
    no_recipients: &'static str,
    consent: &'static str,
    consent_separate: &'static str,
    consent_needed: &'static str,
    consent_not_needed: &'static str,
    sensitive: &'static str,
    sensitive_yes: &'static str,
    anonymous: &'static str,
    anonymous_yes: &'static str,
    anonymous_no: &'static str,
    pia: &'static str,
    role_controller: &'static str,
    role_processor: &'static str,
    cross_border: &'static str,
    safeguards: &'static str,
    contact: &'static str,
    categories_h: &'static str,
    col_category: &'static str,
    col_key: &'static str,
    col_dpv: &'static str,
    col_sensitive: &'static str,
    yes: &'static str,
    no: &'static str,
    rights_h: &'static str,
    rights: &'static [&'static str],
    rights_how: &'static str,
    rights_deadline: &'static str,
    complaints_h: &'static str,
    complaints: &'static str,
    minors_h: &'static str,
    minors: &'static str,
    changes_h: &'static str,
    changes: &'static str,
    version_h: &'static str,
    revision: &'static str,
    hash: &'static str,
    version_note: &'static str,
    list_sep: &'static str,
    colon: &'static str,
    period: &'static str,
    /// Between sentences: a space in English, nothing in Chinese.
    sp: &'static str,
}

const EN: Words = Words {
    title: "privacy policy",
    intro: "This page is produced from the same declaration that our servers enforce, so \
            what it says is what the service does. Where it says we need your consent, \
            nothing is collected until you give it.",
    controller_h: "Who is responsible for your data",
    address: "Address",
    email: "Email",
    phone: "Phone",
    dpo: "Personal information protection officer",
    region_h: "Where your data is stored",
    region_before: "We store your personal information in",
    region_after: "It is not moved or made available outside that region unless a purpose \
                   below says so and you have given separate consent for it.",
    features_h: "Features and the data they use",
    features_intro: "Basic features are what the service needs to work; they use only the \
                     data listed for them. Additional features stay off until you switch \
                     them on, and saying no to any of them never changes how a basic feature \
                     works.",
    col_feature: "Feature",
    col_kind: "Type",
    col_purposes: "Purposes",
    col_data: "Data used",
    basic: "Basic",
    additional: "Additional (off until you turn it on)",
    features_what_h: "What each feature does",
    purposes_h: "What we use your data for",
    purposes_intro: "Each purpose below is handled on its own: its data is used only for \
                     it, and switching one off does not affect the others.",
    what_data: "Data used",
    how: "What we do with it",
    why_basis: "Why we may do it",
    how_long: "How long we keep it",
    then_deleted: "then it is deleted or anonymized",
    recipients: "Who receives it",
    no_recipients: "No one outside",
    consent: "Your consent",
    consent_separate: "We ask for your separate consent for this alone; a general \
                       agreement never covers it. You can withdraw it at any time.",
    consent_needed: "Only with your consent. It starts off, and you can withdraw it at \
                     any time as easily as you gave it; processing stops at once.",
    consent_not_needed: "Not asked for, because",
    sensitive: "Sensitive personal information",
    sensitive_yes: "Yes. We use it only for this purpose, with extra protection.",
    anonymous: "Without an account",
    anonymous_yes: "Also applies when you use the app without an account.",
    anonymous_no: "Only applies when you are signed in.",
    pia: "Impact assessment",
    role_controller: "decides on its own use as an independent controller",
    role_processor: "processes it only on our instructions",
    cross_border: "cross-border transfer",
    safeguards: "Safeguards",
    contact: "Contact",
    categories_h: "The kinds of data we process",
    col_category: "Data",
    col_key: "Key",
    col_dpv: "DPV term",
    col_sensitive: "Sensitive",
    yes: "Yes",
    no: "No",
    rights_h: "Your rights and how to use them",
    rights: &[
        "**See and take a copy** of your data: download everything we hold about you, \
         consent receipts included, as a JSON file.",
        "**Correct** anything that is wrong or out of date.",
        "**Delete** your data, or any single item such as a bookmark or a comment.",
        "**Withdraw consent** for any additional feature: it stops straight away, and \
         withdrawing takes no more steps than agreeing did.",
        "**Switch off personalization**: choose a feed, pushes and ads that are not based \
         on your profile, see the traits we derived and delete them.",
        "**Cancel your account**: your data is then deleted or anonymized.",
        "**Ask us to explain** how we process your data, and object to it.",
        "**Send Global Privacy Control**: a browser signal `Sec-GPC: 1` counts as saying no \
         to personalized ads and to sharing with partners.",
    ],
    rights_how: "Use the privacy center in the app, or write to us at the email address \
                 above.",
    rights_deadline: "We answer within one month, and complete an account cancellation \
                      within 15 working days. If we cannot do what you ask, we tell you \
                      why and how to complain.",
    complaints_h: "Complaints",
    complaints: "You can complain or report a problem to us at any time through the \
                 privacy center or the contacts above; every complaint is tracked until it \
                 is answered.",
    minors_h: "Children and teenagers",
    minors: "If you are under 18, a parent or guardian must agree before you use the \
             service. Data about children under 14 is treated as sensitive. Parents and \
             guardians can contact us to see, correct or delete their child's data.",
    changes_h: "When this policy changes",
    changes: "We tell you in the app when this policy changes. Anything that needs your \
              consent and is new or wider than before waits until you agree to the new \
              version; everything else carries on unchanged.",
    version_h: "Version",
    revision: "Revision",
    hash: "Version hash",
    version_note: "The version hash identifies exactly which declaration this page was \
                   produced from.",
    list_sep: ", ",
    colon: ": ",
    period: ".",
    sp: " ",
};

const ZH: Words = Words {
    title: "隐私政策",
    intro: "本页面由我们服务器实际执行的同一份隐私声明自动生成，页面所写即服务所做。\
            凡注明需要您同意的处理，在您同意之前我们不会收集任何相关信息。",
    controller_h: "谁负责处理您的个人信息",
    address: "地址",
    email: "电子邮箱",
    phone: "电话",
    dpo: "个人信息保护负责人",
    region_h: "您的个人信息存储在哪里",
    region_before: "您的个人信息存储在",
    region_after: "除下文某项处理目的明确说明并经您单独同意外，不会转移到该区域以外，\
                   也不会向区域外提供。",
    features_h: "各项功能及其使用的个人信息",
    features_intro: "基本功能是服务运行所必需的功能，只使用为其列明的信息。\
                     扩展功能在您主动开启前保持关闭；拒绝开启任何扩展功能，\
                     都不会改变基本功能的使用。",
    col_feature: "功能",
    col_kind: "类型",
    col_purposes: "处理目的",
    col_data: "使用的个人信息",
    basic: "基本功能",
    additional: "扩展功能（开启前保持关闭）",
    features_what_h: "各项功能说明",
    purposes_h: "我们如何使用您的个人信息",
    purposes_intro: "以下每项处理目的相互独立：相关信息只用于该目的，\
                     关闭其中一项不影响其他各项。",
    what_data: "使用的个人信息",
    how: "处理方式",
    why_basis: "处理依据",
    how_long: "保存期限",
    then_deleted: "到期后删除或匿名化处理",
    recipients: "接收方",
    no_recipients: "不向以下主体以外的任何人提供",
    consent: "是否需要您的同意",
    consent_separate: "需要您针对此项单独同意，一般性的同意不包括此项。\
                       您可以随时撤回。",
    consent_needed: "仅在您同意后进行。默认关闭，您可以随时撤回，撤回与同意同样便捷，\
                     撤回后立即停止处理。",
    consent_not_needed: "无需另行征得同意",
    sensitive: "敏感个人信息",
    sensitive_yes: "是。仅用于此目的，并采取更严格的保护措施。",
    anonymous: "未登录时",
    anonymous_yes: "未注册账号使用本应用时同样适用。",
    anonymous_no: "仅在您登录后适用。",
    pia: "个人信息保护影响评估编号",
    role_controller: "作为独立的个人信息处理者自行决定如何处理",
    role_processor: "受我们委托，仅按我们的指示处理",
    cross_border: "跨境提供",
    safeguards: "保护措施",
    contact: "联系方式",
    categories_h: "我们处理的个人信息类别",
    col_category: "个人信息",
    col_key: "标识",
    col_dpv: "DPV 术语",
    col_sensitive: "是否敏感",
    yes: "是",
    no: "否",
    rights_h: "您的权利及行使方式",
    rights: &[
        "**查阅和复制**：以 JSON 文件下载我们持有的您的全部个人信息，包括同意回执。",
        "**更正**：更正不准确或已过时的信息。",
        "**删除**：删除您的个人信息，或删除某一条内容，例如一条收藏或评论。",
        "**撤回同意**：随时关闭任一扩展功能，处理立即停止，撤回的步骤不多于同意时的步骤。",
        "**关闭个性化推荐**：选择不基于个人特征的内容、推送和广告，\
         查看并删除我们据此形成的偏好特征。",
        "**注销账号**：注销后，您的个人信息将被删除或匿名化处理。",
        "**要求解释说明**：要求我们解释个人信息处理规则，并可提出异议。",
        "**发送全球隐私控制信号**：浏览器发送的 `Sec-GPC: 1` 信号视为您拒绝个性化广告\
         和向合作方提供信息。",
    ],
    rights_how: "您可以在应用内的隐私中心操作，也可以通过上述联系方式与我们联系。",
    rights_deadline: "我们将在一个月内答复；注销账号将在十五个工作日内完成。\
                      如无法满足您的请求，我们会说明理由并告知投诉途径。",
    complaints_h: "投诉与举报",
    complaints: "您可以随时通过隐私中心或上述联系方式向我们投诉、举报，\
                 每一件投诉都会跟进直至答复。",
    minors_h: "未成年人",
    minors: "未满十八周岁的用户，须经父母或其他监护人同意后方可使用本服务。\
             不满十四周岁儿童的个人信息按敏感个人信息处理。\
             父母或其他监护人可以联系我们查阅、更正或删除其孩子的个人信息。",
    changes_h: "本政策的更新",
    changes: "本政策更新时，我们会在应用内告知您。需要您同意的处理，\
              如为新增或范围扩大，将在您同意新版本后才开始；其余处理照常进行。",
    version_h: "版本信息",
    revision: "修订版本",
    hash: "版本哈希",
    version_note: "版本哈希唯一标识生成本页面所依据的声明。",
    list_sep: "、",
    colon: "：",
    period: "。",
    sp: "",
};

fn words(lang: Lang) -> &'static Words {
    match lang {
        Lang::En => &EN,
        Lang::Zh => &ZH,
    }
}

fn tier_label(tier: Tier, lang: Lang) -> &'static str {
    let w = words(lang);
    match tier {
        Tier::Basic => w.basic,
        Tier::Additional => w.additional,
    }
}

fn method_label(m: Method, lang: Lang) -> &'static str {
    match (m, lang) {
        (Method::Collection, Lang::En) => "collect",
        (Method::Collection, Lang::Zh) => "收集",
        (Method::Storage, Lang::En) => "store",
        (Method::Storage, Lang::Zh) => "存储",
        (Method::Use, Lang::En) => "use",
        (Method::Use, Lang::Zh) => "使用",
        (Method::Profiling, Lang::En) => "derive preference traits",
        (Method::Profiling, Lang::Zh) => "形成偏好特征（用户画像）",
        (Method::AutomatedDecision, Lang::En) => "make automated decisions",
        (Method::AutomatedDecision, Lang::Zh) => "自动化决策",
        (Method::Disclosure, Lang::En) => "provide to the recipient named below",
        (Method::Disclosure, Lang::Zh) => "向下列接收方提供",
        (Method::Transfer, Lang::En) => "transmit",
        (Method::Transfer, Lang::Zh) => "传输",
        (Method::Pseudonymization, Lang::En) => "pseudonymize",
        (Method::Pseudonymization, Lang::Zh) => "去标识化",
    }
}

fn basis_label(b: LegalBasis, lang: Lang) -> &'static str {
    match (b, lang) {
        (LegalBasis::Consent, Lang::En) => "you agreed to it",
        (LegalBasis::Consent, Lang::Zh) => "您的同意",
        (LegalBasis::Contract, Lang::En) => "it is needed to provide the service you asked for",
        (LegalBasis::Contract, Lang::Zh) => "向您提供您所要求的服务所必需",
        (LegalBasis::LegalObligation, Lang::En) => "the law requires it of us",
        (LegalBasis::LegalObligation, Lang::Zh) => "履行法定职责或法定义务所必需",
        (LegalBasis::VitalInterests, Lang::En) => {
            "it protects someone's life, health or property in an emergency"
        }
        (LegalBasis::VitalInterests, Lang::Zh) => "紧急情况下保护自然人的生命健康和财产安全所必需",
        (LegalBasis::PublicHealth, Lang::En) => {
            "it is needed to respond to a public health emergency"
        }
        (LegalBasis::PublicHealth, Lang::Zh) => "应对突发公共卫生事件所必需",
        (LegalBasis::NationalSecurity, Lang::En) => "it is directly required for national security",
        (LegalBasis::NationalSecurity, Lang::Zh) => "与国家安全直接相关",
        (LegalBasis::CriminalInvestigation, Lang::En) => {
            "it is directly required for a criminal investigation or trial"
        }
        (LegalBasis::CriminalInvestigation, Lang::Zh) => "与刑事侦查、起诉、审判直接相关",
        (LegalBasis::MadePublicBySubject, Lang::En) => "you made the information public yourself",
        (LegalBasis::MadePublicBySubject, Lang::Zh) => "处理您自行公开的个人信息",
        (LegalBasis::LawfulPublicSource, Lang::En) => "it comes from a lawful public source",
        (LegalBasis::LawfulPublicSource, Lang::Zh) => "处理从合法公开渠道取得的个人信息",
        (LegalBasis::ServiceSafety, Lang::En) => "it keeps the service safe and running",
        (LegalBasis::ServiceSafety, Lang::Zh) => "维护产品或服务的安全稳定运行所必需",
        (LegalBasis::Journalism, Lang::En) => "it serves news reporting in the public interest",
        (LegalBasis::Journalism, Lang::Zh) => "为公共利益实施新闻报道、舆论监督",
        (LegalBasis::Research, Lang::En) => "it serves research whose results are de-identified",
        (LegalBasis::Research, Lang::Zh) => "用于学术研究或统计，且结果已去标识化",
        (LegalBasis::OtherLaw, Lang::En) => "another law or regulation provides for it",
        (LegalBasis::OtherLaw, Lang::Zh) => "法律、行政法规规定的其他情形",
    }
}

fn region_label(code: &str, lang: Lang) -> String {
    let known = match (code, lang) {
        ("CN", Lang::En) => Some("mainland China"),
        ("CN", Lang::Zh) => Some("中华人民共和国境内"),
        ("HK", Lang::En) => Some("Hong Kong SAR"),
        ("HK", Lang::Zh) => Some("中国香港特别行政区"),
        ("SG", Lang::En) => Some("Singapore"),
        ("SG", Lang::Zh) => Some("新加坡"),
        ("US", Lang::En) => Some("the United States"),
        ("US", Lang::Zh) => Some("美国"),
        ("DE", Lang::En) => Some("Germany"),
        ("DE", Lang::Zh) => Some("德国"),
        ("JP", Lang::En) => Some("Japan"),
        ("JP", Lang::Zh) => Some("日本"),
        _ => None,
    };
    match known {
        Some(name) => name.to_owned(),
        None => t(code),
    }
}

fn retention_text(p: &Purpose, lang: Lang) -> String {
    let w = words(lang);
    let Some(r) = p.retention else {
        // Unreachable for a validated policy; say so rather than invent a period.
        return match lang {
            Lang::En => "not declared".to_owned(),
            Lang::Zh => "未声明".to_owned(),
        };
    };
    let d = r.days;
    let period = match (lang, d) {
        (Lang::En, 1) => "1 day".to_owned(),
        (Lang::En, d) => format!("{d} days"),
        (Lang::Zh, d) => format!("{d} 天"),
    };
    let when = match (r.from, lang) {
        (RetentionFrom::Collection, Lang::En) => format!("{period} from when it is collected"),
        (RetentionFrom::Collection, Lang::Zh) => format!("自收集之日起 {period}"),
        (RetentionFrom::AccountClosed, Lang::En) => {
            format!("while your account exists, and at most {period} after you cancel it")
        }
        (RetentionFrom::AccountClosed, Lang::Zh) => {
            format!("账号存续期间，注销账号后最多 {period}")
        }
        (RetentionFrom::Withdrawal, Lang::En) => {
            format!("until you withdraw your consent, and at most {period} after that")
        }
        (RetentionFrom::Withdrawal, Lang::Zh) => format!("直至您撤回同意，撤回后最多 {period}"),
    };
    match lang {
        Lang::En => format!("{when}; {}.", w.then_deleted),
        Lang::Zh => format!("{when}，{}。", w.then_deleted),
    }
}

fn category_name(p: &Policy, key: &str, lang: Lang) -> String {
    match p.category(key) {
        Some(c) => t(c.name.get(lang)),
        None => code(key),
    }
}

fn partner_line(p: &Policy, partner: &Partner, lang: Lang) -> String {
    let w = words(lang);
    let d = p.declaration();
    let mut where_ = region_label(&partner.region, lang);
    if partner.cross_border || partner.region != d.region {
        where_.push_str(w.list_sep);
        where_.push_str(w.cross_border);
    }
    let role = if partner.independent_controller {
        w.role_controller
    } else {
        w.role_processor
    };
    let (open, close) = match lang {
        Lang::En => (" (", ")"),
        Lang::Zh => ("（", "）"),
    };
    format!(
        "**{name}**{open}{where_}{sep}{role}{close}{colon}{desc}{sp}{safeguards}{colon}{sec}{sp}{contact}{colon}{c}",
        name = t(partner.name.get(lang)),
        sep = w.list_sep,
        colon = w.colon,
        desc = t(partner.description.get(lang)),
        safeguards = w.safeguards,
        sec = t(partner.security_measures.get(lang)),
        contact = w.contact,
        c = t(&partner.contact),
        sp = w.sp,
    )
}

/// The policy page as Markdown (GitHub-flavoured tables), in one language.
pub fn markdown(p: &Policy, lang: Lang) -> String {
    let w = words(lang);
    let d = p.declaration();
    let c = &d.controller;
    let mut out = String::new();
    let mut line = |s: &str| {
        out.push_str(s);
        out.push('\n');
    };

    let app = t(d.app.get(lang));
    match lang {
        Lang::En => line(&format!("# {app} {}", w.title)),
        Lang::Zh => line(&format!("# {app}{}", w.title)),
    }
    line("");
    line(w.intro);
    line("");

    // Controller and contact (P37).
    line(&format!("## {}", w.controller_h));
    line("");
    line(&format!("**{}**", t(c.name.get(lang))));
    line("");
    line(&format!(
        "- {}{}{}",
        w.address,
        w.colon,
        t(c.address.get(lang))
    ));
    line(&format!("- {}{}{}", w.email, w.colon, email_link(&c.email)));
    line(&format!("- {}{}{}", w.phone, w.colon, t(&c.phone)));
    if let Some(dpo) = &c.dpo_email {
        line(&format!("- {}{}{}", w.dpo, w.colon, email_link(dpo)));
    }
    line("");

    // Region (P20).
    line(&format!("## {}", w.region_h));
    line("");
    match lang {
        Lang::En => line(&format!(
            "{} {}.{}{}",
            w.region_before,
            region_label(&d.region, lang),
            w.sp,
            w.region_after
        )),
        Lang::Zh => line(&format!(
            "{}{}。{}",
            w.region_before,
            region_label(&d.region, lang),
            w.region_after
        )),
    }
    line("");

    // Declared cross-border transfers (P20): purpose, recipient, measures, risks.
    for tr in &d.transfers {
        line(&crate::records::transfer_markdown(p, tr, lang));
        line("");
    }

    // Per-feature disclosure (P1, P2).
    line(&format!("## {}", w.features_h));
    line("");
    line(w.features_intro);
    line("");
    line(&format!(
        "| {} | {} | {} | {} |",
        w.col_feature, w.col_kind, w.col_purposes, w.col_data
    ));
    line("| --- | --- | --- | --- |");
    for f in &d.features {
        let purposes: Vec<String> = f
            .purposes
            .iter()
            .map(|id| match p.purpose(id) {
                Some(pp) => t(pp.name.get(lang)),
                None => code(id),
            })
            .collect();
        let mut keys: Vec<&str> = Vec::new();
        for pp in f.purposes.iter().filter_map(|id| p.purpose(id)) {
            for k in &pp.categories {
                if !keys.contains(&k.as_str()) {
                    keys.push(k);
                }
            }
        }
        let data: Vec<String> = keys.iter().map(|k| category_name(p, k, lang)).collect();
        line(&format!(
            "| {} | {} | {} | {} |",
            t(f.name.get(lang)),
            tier_label(f.tier, lang),
            purposes.join(w.list_sep),
            data.join(w.list_sep)
        ));
    }
    line("");
    line(&format!("### {}", w.features_what_h));
    line("");
    for f in &d.features {
        line(&format!(
            "- **{}**{}{}",
            t(f.name.get(lang)),
            w.colon,
            t(f.description.get(lang))
        ));
    }
    line("");

    // Per-purpose sections.
    line(&format!("## {}", w.purposes_h));
    line("");
    line(w.purposes_intro);
    line("");
    for pp in &d.purposes {
        purpose_section(p, pp, lang, &mut line);
    }

    // Categories.
    line(&format!("## {}", w.categories_h));
    line("");
    line(&format!(
        "| {} | {} | {} | {} |",
        w.col_category, w.col_key, w.col_dpv, w.col_sensitive
    ));
    line("| --- | --- | --- | --- |");
    for cat in &d.categories {
        line(&category_row(cat, lang));
    }
    line("");

    // Rights (P33, L6, L7, L14) and complaints (P34).
    line(&format!("## {}", w.rights_h));
    line("");
    for r in w.rights {
        line(&format!("- {r}"));
    }
    line("");
    line(&format!("{}{}{}", w.rights_how, w.sp, w.rights_deadline));
    line("");
    line(&format!("### {}", w.complaints_h));
    line("");
    line(&format!(
        "{}{}{}",
        w.complaints,
        w.sp,
        t(c.complaint_route.get(lang))
    ));
    line("");

    // Minors (P36, L12) and changes (P35).
    line(&format!("## {}", w.minors_h));
    line("");
    line(w.minors);
    line("");
    line(&format!("## {}", w.changes_h));
    line("");
    line(w.changes);
    line("");

    // Version (P40).
    line("---");
    line("");
    line(&format!("## {}", w.version_h));
    line("");
    line(&format!("- {}{}{}", w.revision, w.colon, t(&d.revision)));
    line(&format!(
        "- {}{}{}",
        w.hash,
        w.colon,
        code(p.hash().as_str())
    ));
    line("");
    line(w.version_note);
    out
}

fn email_link(email: &str) -> String {
    if is_plain_email(email) {
        // Plain addresses hold no Markdown-active characters in the destination; the
        // visible text is still escaped.
        format!("[{}](mailto:{email})", t(email))
    } else {
        t(email)
    }
}

fn category_row(cat: &Category, lang: Lang) -> String {
    let w = words(lang);
    format!(
        "| {} | {} | {} | {} |",
        t(cat.name.get(lang)),
        code(&cat.key),
        code(&cat.dpv),
        if cat.sensitive { w.yes } else { w.no }
    )
}

fn purpose_section(p: &Policy, pp: &Purpose, lang: Lang, line: &mut impl FnMut(&str)) {
    let w = words(lang);
    let d = p.declaration();
    line(&format!("### {}", t(pp.name.get(lang))));
    line("");
    line(&t(pp.description.get(lang)));
    line("");
    let data: Vec<String> = pp
        .categories
        .iter()
        .map(|k| category_name(p, k, lang))
        .collect();
    line(&end_sentence(
        format!("- **{}**{}{}", w.what_data, w.colon, data.join(w.list_sep)),
        w.period,
    ));
    if !pp.methods.is_empty() {
        let methods: Vec<&str> = pp.methods.iter().map(|m| method_label(*m, lang)).collect();
        line(&format!(
            "- **{}**{}{}{}",
            w.how,
            w.colon,
            methods.join(w.list_sep),
            w.period
        ));
    }
    line(&format!(
        "- **{}**{}{}{}",
        w.why_basis,
        w.colon,
        basis_label(pp.basis, lang),
        w.period
    ));
    line(&format!(
        "- **{}**{}{}",
        w.how_long,
        w.colon,
        retention_text(pp, lang)
    ));
    if pp.recipients.is_empty() {
        let controller = t(d.controller.name.get(lang));
        match lang {
            Lang::En => line(&end_sentence(
                format!(
                    "- **{}**{}{} {controller}",
                    w.recipients, w.colon, w.no_recipients
                ),
                w.period,
            )),
            Lang::Zh => line(&format!(
                "- **{}**{}不向{controller}以外的任何人提供。",
                w.recipients, w.colon
            )),
        }
    } else {
        line(&format!("- **{}**{}", w.recipients, w.colon));
        for rid in &pp.recipients {
            match p.partner(rid) {
                Some(partner) => line(&format!("  - {}", partner_line(p, partner, lang))),
                None => line(&format!("  - {}", code(rid))),
            }
        }
    }
    let consent = if pp.basis == LegalBasis::Consent {
        if pp.separate_consent {
            w.consent_separate.to_owned()
        } else {
            w.consent_needed.to_owned()
        }
    } else {
        match lang {
            Lang::En => format!("{} {}.", w.consent_not_needed, basis_label(pp.basis, lang)),
            Lang::Zh => format!(
                "{}（{}：{}）。",
                w.consent_not_needed,
                w.why_basis,
                basis_label(pp.basis, lang)
            ),
        }
    };
    line(&format!("- **{}**{}{}", w.consent, w.colon, consent));
    if is_effectively_sensitive(d, pp) {
        line(&format!(
            "- **{}**{}{}",
            w.sensitive, w.colon, w.sensitive_yes
        ));
    }
    line(&format!(
        "- **{}**{}{}",
        w.anonymous,
        w.colon,
        if pp.anonymous {
            w.anonymous_yes
        } else {
            w.anonymous_no
        }
    ));
    if let Some(pia) = &pp.impact_assessment {
        line(&format!("- **{}**{}{}", w.pia, w.colon, code(pia)));
    }
    line("");
}

const CSS: &str = "\
:root{color-scheme:light dark;--fg:#1b1b1b;--bg:#ffffff;--muted:#555;--line:#c8c8c8;--head:#f1f3f5;--link:#0b57d0}\
@media (prefers-color-scheme:dark){:root{--fg:#ececec;--bg:#16181a;--muted:#b0b0b0;--line:#3c4043;--head:#23262a;--link:#8ab4f8}}\
*{box-sizing:border-box}\
body{margin:0;background:var(--bg);color:var(--fg);font:1rem/1.65 system-ui,-apple-system,\"Segoe UI\",\"PingFang SC\",\"Hiragino Sans GB\",\"Microsoft YaHei\",\"Noto Sans CJK SC\",sans-serif}\
main{max-width:52rem;margin:0 auto;padding:1.5rem 1rem 3rem}\
h1{font-size:1.8rem;line-height:1.25}h2{margin-top:2.2rem;border-bottom:1px solid var(--line);padding-bottom:.3rem}\
a{color:var(--link)}a:focus-visible{outline:3px solid var(--link);outline-offset:2px}\
table{border-collapse:collapse;width:100%;display:block;overflow-x:auto;margin:1rem 0}\
th,td{border:1px solid var(--line);padding:.45rem .6rem;text-align:left;vertical-align:top}\
th{background:var(--head)}\
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.9em;overflow-wrap:anywhere}\
hr{border:0;border-top:1px solid var(--line);margin:2.5rem 0 0}\
li{margin:.25rem 0}";

/// The policy page as a complete, standalone HTML5 document.
pub fn html(p: &Policy, lang: Lang) -> String {
    let d = p.declaration();
    let title = match lang {
        Lang::En => format!("{} {}", d.app.en, EN.title),
        Lang::Zh => format!("{}{}", d.app.zh, ZH.title),
    };
    document(&markdown(p, lang), lang, &title, p.hash().as_str())
}

/// Turns Markdown written by this crate into a complete, standalone HTML5 document with
/// the page's style; raw HTML that reached the parser is shown as text, never emitted.
pub fn document(md: &str, lang: Lang, title: &str, policy_hash: &str) -> String {
    let parser = Parser::new_ext(md, Options::ENABLE_TABLES).map(|event| match event {
        // Defence in depth: the Markdown escapes declared text, but should any raw HTML
        // reach the parser it is shown as text, never emitted as markup.
        Event::Html(s) | Event::InlineHtml(s) => Event::Text(s),
        other => other,
    });
    let mut body = String::with_capacity(md.len() * 2);
    cmark_html::push_html(&mut body, parser);
    let html_lang = match lang {
        Lang::En => "en",
        Lang::Zh => "zh-CN",
    };
    let mut doc = String::with_capacity(body.len() + 2048);
    let _ = write!(
        doc,
        "<!DOCTYPE html>\n<html lang=\"{html_lang}\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"policy-version\" content=\"{hash}\">\n\
         <title>{title}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n{body}</main>\n\
         </body>\n</html>\n",
        hash = escape_html(policy_hash),
        title = escape_html(title),
    );
    doc
}

pub(crate) fn text_json(t: &crate::model::Text) -> Value {
    json!({ "en": t.en, "zh": t.zh })
}

/// Records of processing activities (GDPR art. 30, PIPL 55-56, L10) as JSON.
pub fn records_of_processing(p: &Policy) -> Value {
    let d = p.declaration();
    let c = &d.controller;
    let purposes: Vec<Value> = d
        .purposes
        .iter()
        .map(|pp| {
            let categories: Vec<Value> = pp
                .categories
                .iter()
                .map(|key| match p.category(key) {
                    Some(cat) => json!({
                        "key": cat.key,
                        "dpv": cat.dpv,
                        "name": text_json(&cat.name),
                        "sensitive": cat.sensitive,
                    }),
                    None => json!({ "key": key, "dpv": null, "name": null, "sensitive": null }),
                })
                .collect();
            let recipients: Vec<Value> = pp
                .recipients
                .iter()
                .map(|rid| match p.partner(rid) {
                    Some(partner) => json!({
                        "id": partner.id,
                        "name": text_json(&partner.name),
                        "region": partner.region,
                        "cross_border": partner.cross_border || partner.region != d.region,
                        "independent_controller": partner.independent_controller,
                        "contact": partner.contact,
                        "security_measures": text_json(&partner.security_measures),
                    }),
                    None => json!({ "id": rid }),
                })
                .collect();
            let retention = match pp.retention {
                Some(r) => json!({ "days": r.days, "from": r.from.as_str() }),
                None => Value::Null,
            };
            let features: Vec<&str> = d
                .features
                .iter()
                .filter(|f| f.purposes.contains(&pp.id))
                .map(|f| f.id.as_str())
                .collect();
            json!({
                "id": pp.id,
                "name": text_json(&pp.name),
                "description": text_json(&pp.description),
                "data_use": pp.data_use,
                "basis": pp.basis.as_str(),
                "basis_dpv": pp.basis.dpv(),
                "tier": pp.tier.as_str(),
                "categories": categories,
                "methods": pp.methods.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
                "recipients": recipients,
                "retention": retention,
                "separate_consent": pp.separate_consent,
                "sensitive": is_effectively_sensitive(d, pp),
                "anonymous": pp.anonymous,
                "impact_assessment": pp.impact_assessment,
                "assessment": p.assessment_for(&pp.id).map(crate::records::assessment_json),
                "transfers": p.transfers_for(&pp.id).map(crate::records::transfer_json).collect::<Vec<_>>(),
                "features": features,
            })
        })
        .collect();
    let features: Vec<Value> = d
        .features
        .iter()
        .map(|f| {
            json!({
                "id": f.id,
                "name": text_json(&f.name),
                "tier": f.tier.as_str(),
                "purposes": f.purposes,
            })
        })
        .collect();
    json!({
        "format": "custos-records-of-processing/1",
        "app": text_json(&d.app),
        "controller": {
            "name": text_json(&c.name),
            "address": text_json(&c.address),
            "email": c.email,
            "phone": c.phone,
            "dpo_email": c.dpo_email,
            "complaint_route": text_json(&c.complaint_route),
        },
        "region": d.region,
        "policy": {
            "hash": p.hash().as_str(),
            "revision": d.revision,
        },
        "purposes": purposes,
        "features": features,
        "assessments": d.assessments.iter().map(|a| {
            let mut v = crate::records::assessment_json(a);
            v["purposes"] = json!(d.purposes.iter()
                .filter(|pp| pp.impact_assessment.as_deref() == Some(a.id.as_str()))
                .map(|pp| pp.id.as_str()).collect::<Vec<_>>());
            v
        }).collect::<Vec<_>>(),
        "transfers": d.transfers.iter().map(crate::records::transfer_json).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_escaping_neutralises_markup_and_table_pipes() {
        assert_eq!(escape_markdown("a|b"), "a\\|b");
        assert_eq!(escape_markdown("<script>"), "\\<script>");
        assert_eq!(escape_markdown("- item"), "\\- item");
        assert_eq!(escape_markdown("  12. twelve"), "  12\\. twelve");
        assert_eq!(escape_markdown("# not a heading"), "\\# not a heading");
        assert_eq!(escape_markdown("Co., Ltd. (CN)"), "Co., Ltd. (CN)");
        assert_eq!(escape_markdown("line\nbreak"), "line break");
        assert_eq!(escape_markdown("好物"), "好物");
    }

    #[test]
    fn html_escaping_covers_attribute_quotes() {
        assert_eq!(
            escape_html("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
