//! The fuzz corpus, replayed: every input the fuzzers kept (`fuzz/corpus/<target>/`, minimized
//! and committed after each long run), every input that once failed a check
//! (`fuzz/regressions/<target>/`, kept whole whatever minimizing does) and the seeds go through
//! the same checks the fuzz targets run. Seconds on stable Rust, in every `cargo test`.

use std::time::Instant;

use fuzz_checks::{repo_path, seeds::seeds, TARGETS};

#[test]
fn the_committed_corpus_and_the_seeds_pass_every_check() {
    for (target, check) in TARGETS {
        let started = Instant::now();
        let dir = repo_path(&format!("fuzz/corpus/{target}"));
        let mut inputs: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e} (the corpus is committed)", dir.display()))
            .map(|entry| {
                let path = entry.expect("a corpus entry").path();
                let bytes = std::fs::read(&path).expect("readable");
                (path.display().to_string(), bytes)
            })
            .collect();
        assert!(inputs.len() >= 10, "{target}: only {} corpus inputs", inputs.len());
        let regressions = repo_path(&format!("fuzz/regressions/{target}"));
        if let Ok(entries) = std::fs::read_dir(&regressions) {
            for entry in entries {
                let path = entry.expect("a regression entry").path();
                inputs.push((path.display().to_string(), std::fs::read(&path).expect("readable")));
            }
        }
        let corpus = inputs.len();
        inputs.extend(
            seeds(target)
                .into_iter()
                .enumerate()
                .map(|(i, s)| (format!("seed {i}"), s)),
        );
        for (name, bytes) in &inputs {
            let outcome = std::panic::catch_unwind(|| check(bytes));
            assert!(outcome.is_ok(), "{target}: {name} fails its check");
        }
        eprintln!(
            "{target}: {corpus} corpus inputs and {} seeds in {:.2?}",
            inputs.len() - corpus,
            started.elapsed()
        );
    }
}
