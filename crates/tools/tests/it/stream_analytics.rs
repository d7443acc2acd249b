//! The committed Stream Analytics query emits exactly the records the `window` command does, and
//! its feature columns are the default model's features in order.

use crate::helpers::{default_model, healthy_windows, repo_path};
use scoring::Model;

/// Output column names of the query's SELECT list (alias after AS, else the expression).
fn select_columns(query: &str) -> Vec<String> {
    let code: String = query
        .lines()
        .map(|l| l.split("--").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let upper = code.to_uppercase();
    let start = upper.find("SELECT").expect("SELECT") + "SELECT".len();
    let end = upper[start..].find("FROM").expect("FROM") + start;
    let mut columns = Vec::new();
    let (mut depth, mut item) = (0i32, String::new());
    for ch in code[start..end].chars().chain(std::iter::once(',')) {
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                let words: Vec<&str> = item.split_whitespace().collect();
                let name = match words.iter().rposition(|w| w.eq_ignore_ascii_case("AS")) {
                    Some(i) => words[i + 1],
                    None => words.last().copied().unwrap_or_default(),
                };
                columns.push(name.trim_matches(|c| c == '[' || c == ']').to_string());
                item.clear();
                continue;
            }
            _ => {}
        }
        item.push(ch);
    }
    columns
}

#[test]
fn query_columns_are_the_window_records_and_the_model_features() {
    for file in [
        "infra/stream-analytics/windows.asaql",
        "infra/stream-analytics/windows-hopping.asaql",
    ] {
        let query = std::fs::read_to_string(repo_path(file)).unwrap();
        let columns = select_columns(&query);
        let record = healthy_windows(1, 0.1, 1).remove(0);
        let produced: Vec<String> = record.keys().cloned().collect();
        let mut sorted_columns = columns.clone();
        sorted_columns.sort();
        let mut sorted_produced = produced.clone();
        sorted_produced.sort();
        assert_eq!(
            sorted_columns, sorted_produced,
            "{file}: query columns vs `window` records"
        );

        let model = Model::load_file(&default_model()).unwrap();
        let features: Vec<String> = columns
            .iter()
            .filter(|c| model.info.feature_names.contains(c))
            .cloned()
            .collect();
        assert_eq!(
            features, model.info.feature_names,
            "{file}: feature columns in model order"
        );
        assert_eq!(
            &columns[..4],
            ["device_id", "window_start", "window_end", "sample_count"]
        );
    }
}
