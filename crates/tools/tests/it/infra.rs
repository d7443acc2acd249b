//! The Bicep in `infra/`, checked offline (no Bicep CLI here): every file parses with the
//! tree-sitter Bicep grammar without ERROR or MISSING nodes, and the structure keeps its
//! promises: identity only (no keys, no listKeys, local auth off, SQL Entra-only), the custom
//! runtime on Flex without deprecated settings, role assignment names from guid(), the
//! committed Stream Analytics query, workbook and alert queries, and every setting the
//! handler reads set on the function app.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::helpers::repo_path;
use crate::monitoring::ALERT_QUERIES;

fn files(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, ext, out);
        } else if path.extension().is_some_and(|e| e == ext) {
            out.push(path);
        }
    }
}

fn bicep_files() -> Vec<(PathBuf, String)> {
    let mut paths = Vec::new();
    files(&repo_path("infra"), "bicep", &mut paths);
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p, text)
        })
        .collect()
}

fn all_bicep() -> String {
    bicep_files()
        .into_iter()
        .map(|(_, t)| t)
        .collect::<Vec<_>>()
        .join("\n")
}

/// ERROR and MISSING nodes, with their positions.
fn syntax_problems(text: &str) -> Vec<String> {
    let mut parser = tree_sitter::Parser::new();
    parser
        .set_language(&tree_sitter_bicep::LANGUAGE.into())
        .expect("the Bicep grammar loads");
    let tree = parser.parse(text, None).expect("parses");
    let mut problems = Vec::new();
    let mut cursor = tree.walk();
    let mut stack = vec![tree.root_node()];
    while let Some(node) = stack.pop() {
        if node.is_error() || node.is_missing() {
            let p = node.start_position();
            problems.push(format!(
                "{} at {}:{}: {:?}",
                node.kind(),
                p.row + 1,
                p.column + 1,
                &text[node.byte_range()].chars().take(60).collect::<String>()
            ));
        }
        stack.extend(node.children(&mut cursor));
    }
    problems
}

#[test]
fn every_bicep_file_parses_without_error_or_missing_nodes() {
    let files = bicep_files();
    assert!(files.len() >= 7, "{} files", files.len());
    for (path, text) in &files {
        let problems = syntax_problems(text);
        assert!(problems.is_empty(), "{}: {problems:#?}", path.display());
    }
    // The parameters file: the grammar has no `.bicepparam` mode, so its `param x = value`
    // lines are checked as the Bicep they are made of (`var x = value`), and every name is
    // held to main.bicep's parameters, with every required one given.
    let params = std::fs::read_to_string(repo_path("infra/main.bicepparam")).unwrap();
    assert!(params.lines().any(|l| l.trim() == "using 'main.bicep'"));
    let as_bicep: String = params
        .lines()
        .map(|l| match l.trim_start().strip_prefix("param ") {
            Some(rest) => format!("var {rest}"),
            None if l.trim_start().starts_with("using ") => String::new(),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    let problems = syntax_problems(&as_bicep);
    assert!(problems.is_empty(), "main.bicepparam: {problems:#?}");
    let main = std::fs::read_to_string(repo_path("infra/main.bicep")).unwrap();
    let declared: Vec<(String, bool)> = main
        .lines()
        .filter_map(|l| l.strip_prefix("param "))
        .map(|l| {
            (
                l.split_whitespace().next().unwrap().to_string(),
                l.contains('='),
            )
        })
        .collect();
    let given: Vec<String> = params
        .lines()
        .filter_map(|l| l.strip_prefix("param "))
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect();
    for name in &given {
        assert!(
            declared.iter().any(|(d, _)| d == name),
            "main.bicepparam sets unknown `{name}`"
        );
    }
    for (name, has_default) in &declared {
        assert!(
            *has_default || given.contains(name),
            "main.bicepparam lacks required `{name}`"
        );
    }
    // The check can fail: a broken file is reported.
    assert!(
        !syntax_problems("resource x 'Microsoft.Web/sites@2024-04-01' = {\n  name: \n").is_empty()
    );
}

#[test]
fn identity_only_no_keys_anywhere() {
    let all = all_bicep();
    for forbidden in [
        "listKeys",
        "listkeys",
        "SharedAccessKey",
        "primaryKey",
        "AccountKey=",
        "administratorLoginPassword",
        "Password=",
    ] {
        assert!(!all.contains(forbidden), "{forbidden} in infra/");
    }
    let text = |f: &str| std::fs::read_to_string(repo_path(f)).unwrap();
    assert!(text("infra/modules/eventhubs.bicep").contains("disableLocalAuth: true"));
    assert!(text("infra/modules/storage.bicep").contains("allowSharedKeyAccess: false"));
    let sql = text("infra/modules/sql.bicep");
    assert!(
        sql.contains("azureADOnlyAuthentication: true")
            && sql.contains("administratorType: 'ActiveDirectory'")
    );
    let main = text("infra/main.bicep");
    assert!(
        main.contains("Authentication=Active Directory Managed Identity"),
        "the function reaches SQL by identity"
    );
    let app = text("infra/modules/functionapp.bicep");
    assert!(app.contains("'managedidentity'") && app.contains("AzureWebJobsStorage__accountName"));
}

#[test]
fn flex_consumption_with_the_custom_runtime_and_no_deprecated_settings() {
    let app = std::fs::read_to_string(repo_path("infra/modules/functionapp.bicep")).unwrap();
    assert!(app.contains("name: 'FC1'") && app.contains("tier: 'FlexConsumption'"));
    let runtime = app.find("runtime: {").expect("functionAppConfig.runtime");
    let block = &app[runtime..runtime + 80];
    assert!(
        block.contains("name: 'custom'") && block.contains("version: '1.0'"),
        "{block}"
    );
    for deprecated in [
        "FUNCTIONS_WORKER_RUNTIME",
        "FUNCTIONS_EXTENSION_VERSION",
        "WEBSITE_RUN_FROM_PACKAGE",
    ] {
        let as_setting = format!("name: '{deprecated}'");
        assert!(
            !app.contains(&as_setting),
            "{deprecated} is deprecated on Flex Consumption"
        );
    }
    assert!(
        app.contains("instanceMemoryMB: instanceMemoryMB")
            && app.contains("maximumInstanceCount: maximumInstanceCount")
    );
}

#[test]
fn every_role_assignment_is_named_with_guid() {
    let mut count = 0;
    for (path, text) in bicep_files() {
        for (at, _) in text.match_indices("'Microsoft.Authorization/roleAssignments@") {
            count += 1;
            let block = &text[at..];
            let name_line = block
                .lines()
                .find(|l| l.trim_start().starts_with("name:"))
                .unwrap_or_else(|| panic!("{}: a role assignment without a name", path.display()));
            assert!(
                name_line.trim_start().starts_with("name: guid("),
                "{}: {name_line}",
                path.display()
            );
        }
    }
    // Declarations: the function's windows (receive), alerts and dead letters (send), the
    // extra assignments parameter, storage (one loop over three roles), Stream Analytics x2.
    assert!(count >= 7, "{count} role assignments");
}

#[test]
fn the_committed_query_workbook_alerts_and_migrations_are_what_deploys() {
    let all = all_bicep();
    assert!(all.contains("loadTextContent('../stream-analytics/windows.asaql')"));
    assert!(all.contains("loadTextContent('../monitoring/workbook.json')"));
    for file in ALERT_QUERIES {
        assert!(
            all.contains(&format!("loadTextContent('../monitoring/alerts/{file}')")),
            "{file} not deployed"
        );
    }
    for m in sinks::azure_sql::migrate::MIGRATIONS {
        assert!(
            all.contains(&format!("loadTextContent('../../sql/{}')", m.name)),
            "{} not applied by the deployment",
            m.name
        );
        assert!(all.contains(&format!("value: '{}'", m.name)));
    }
    // loadTextContent paths resolve from the file that uses them.
    for (path, text) in bicep_files() {
        for (at, _) in text.match_indices("loadTextContent('") {
            let rest = &text[at + "loadTextContent('".len()..];
            let relative = &rest[..rest.find('\'').unwrap()];
            let target = path.parent().unwrap().join(relative);
            assert!(
                target.is_file(),
                "{}: {relative} does not exist",
                path.display()
            );
        }
    }
}

/// Setting names in the README's configuration table.
pub(crate) fn readme_settings() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(repo_path("README.md")).unwrap();
    let start = readme
        .find("### Configuration (app settings / environment)")
        .unwrap();
    readme[start..]
        .lines()
        .skip_while(|l| !l.starts_with("| setting"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .filter_map(|l| l.split('`').nth(1).map(str::to_string))
        .collect()
}

/// Every setting the handler reads is in the README's configuration table (the names as the
/// configuration code spells them).
#[test]
fn the_readme_documents_every_setting_the_handler_reads() {
    let table = readme_settings();
    let mut read = BTreeSet::new();
    for file in ["crates/service/src/configuration.rs", "crates/model-store/src/settings.rs", "crates/sinks/src/azure_sql/settings.rs"] {
        let text = std::fs::read_to_string(repo_path(file)).unwrap();
        for part in text.split('"').skip(1).step_by(2) {
            let setting = part.starts_with("ANOMALY_") || part.starts_with("FUNCTIONS_") || part == "APPLICATIONINSIGHTS_CONNECTION_STRING";
            if setting && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                read.insert(part.to_string());
            }
        }
    }
    assert!(read.len() >= 20, "{read:?}");
    let missing: Vec<_> = read.difference(&table).collect();
    assert!(missing.is_empty(), "read by the handler, not in the README's table: {missing:?}");
}

/// `%Name%` references in every function.json.
pub(crate) fn function_json_settings() -> BTreeSet<String> {
    let mut paths = Vec::new();
    files(&repo_path("functions"), "json", &mut paths);
    let mut names = BTreeSet::new();
    for path in paths {
        let text = std::fs::read_to_string(path).unwrap();
        for part in text.split('%').skip(1).step_by(2) {
            names.insert(part.to_string());
        }
        if text.contains("\"connection\": \"EventHubConnection\"") {
            names.insert("EventHubConnection__fullyQualifiedNamespace".into());
        }
    }
    names
}

#[test]
fn the_function_app_sets_every_setting_the_handler_and_function_json_read() {
    let app = std::fs::read_to_string(repo_path("infra/modules/functionapp.bicep")).unwrap();
    let set: BTreeSet<String> = app
        .lines()
        .filter_map(|l| l.trim().strip_prefix("name: '"))
        .filter_map(|l| l.strip_suffix('\''))
        .map(str::to_string)
        .collect();
    // Set by the host itself, or not needed because the package puts the library beside the
    // binary, or the account-key form of the model store (Azurite; Azure uses the identity form).
    let not_ours = ["FUNCTIONS_CUSTOMHANDLER_PORT", "ORT_DYLIB_PATH", "ANOMALY_MODEL_STORE"];
    let table = readme_settings();
    assert!(table.len() >= 15, "{table:?}");
    for name in table.iter().filter(|n| !not_ours.contains(&n.as_str())) {
        assert!(
            set.contains(name),
            "{name} is in the README's configuration table but not set by the Bicep"
        );
    }
    for name in function_json_settings() {
        assert!(
            set.contains(&name),
            "function.json reads %{name}% but the Bicep does not set it"
        );
    }
}
