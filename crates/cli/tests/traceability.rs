//! Keeps `docs/traceability.md` true: every test it names exists, and every commitment id
//! of CLAUSES.md has a row.

use std::path::Path;

fn sources(dir: &Path, out: &mut String) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n != "target") {
                sources(&p, out);
            }
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push_str(&std::fs::read_to_string(&p).unwrap());
        }
    }
}

#[test]
fn every_test_named_in_the_traceability_matrix_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let doc = std::fs::read_to_string(root.join("docs/traceability.md")).unwrap();
    let mut code = String::new();
    sources(&root.join("crates"), &mut code);
    let mut named = 0;
    for cell in doc.split('`') {
        // Test references look like `path/file.rs::name` or `::name`.
        let Some((_, names)) = cell.split_once("::") else {
            continue;
        };
        for name in names
            .split("::")
            .map(|n| n.trim_start_matches('{').trim_end_matches('}'))
        {
            if name.is_empty()
                || name.contains(',')
                || name == "sqlite"
                || name == "postgres"
                || name == "tests"
            {
                continue;
            }
            if name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                && name.contains('_')
            {
                named += 1;
                assert!(
                    code.contains(&format!("fn {name}("))
                        || code.contains(&format!("mod {name} "))
                        || code.contains(&format!("{name},"))
                        || code.contains(&format!("{name}\n")),
                    "docs/traceability.md names `{name}`, which no test defines"
                );
            }
        }
    }
    assert!(
        named > 40,
        "only {named} test names found; the parser is broken"
    );
}

#[test]
fn every_commitment_has_a_row() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let doc = std::fs::read_to_string(root.join("docs/traceability.md")).unwrap();
    for id in (1..=40)
        .map(|i| format!("P{i}"))
        .chain((1..=16).map(|i| format!("L{i}")))
    {
        assert!(doc.contains(&format!("| {id} |")), "no row for {id}");
    }
}
