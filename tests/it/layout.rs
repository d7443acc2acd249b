//! The folder list is the data flow: each stage imports only the stages before it, and the
//! service never imports the offline tools. Checked on the source, so a cycle cannot creep in.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::helpers::repo_path;

/// What each top-level module of `src/` may import from the crate.
const ALLOWED: &[(&str, &[&str])] = &[
    ("domain", &[]),
    // Each sink owns its settings; the configuration gathers them.
    ("configuration", &["domain", "sinks", "telemetry"]),
    ("ingress", &["domain"]),
    ("scoring", &["domain"]),
    ("sinks", &["domain"]),
    ("telemetry", &["domain"]),
    (
        "pipeline",
        &["domain", "ingress", "scoring", "sinks", "telemetry"],
    ),
    (
        "http",
        &[
            "domain",
            "ingress",
            "scoring",
            "sinks",
            "telemetry",
            "pipeline",
            "configuration",
        ],
    ),
    (
        "startup",
        &[
            "domain",
            "ingress",
            "scoring",
            "sinks",
            "telemetry",
            "pipeline",
            "configuration",
            "http",
        ],
    ),
    (
        "tools",
        &[
            "domain",
            "ingress",
            "scoring",
            "sinks",
            "telemetry",
            "pipeline",
            "configuration",
            "http",
            "startup",
        ],
    ),
];

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Top-level crate modules a file names as `crate::<module>`.
fn crate_references(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("crate::") {
        let after = &rest[at + "crate::".len()..];
        let name: String = after
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            found.insert(name);
        }
        rest = after;
    }
    found
}

#[test]
fn stages_import_only_earlier_stages_and_never_the_tools() {
    let src = repo_path("src");
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut seen_modules = BTreeSet::new();
    let mut violations = Vec::new();
    for file in files {
        let relative = file.strip_prefix(&src).unwrap();
        let module = relative
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if module == "lib" || module == "main" {
            continue;
        }
        seen_modules.insert(module.clone());
        let Some(may_use) = allowed.get(module.as_str()) else {
            violations.push(format!(
                "{}: module {module} has no place in the layout",
                relative.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(&file).unwrap();
        for used in crate_references(&text) {
            if used != module && !may_use.contains(&used.as_str()) {
                violations.push(format!(
                    "{}: {module} imports crate::{used}",
                    relative.display()
                ));
            }
        }
    }
    assert!(violations.is_empty(), "{violations:#?}");
    let expected: BTreeSet<String> = allowed.keys().map(|k| k.to_string()).collect();
    assert_eq!(seen_modules, expected, "every module of the layout exists");
}
