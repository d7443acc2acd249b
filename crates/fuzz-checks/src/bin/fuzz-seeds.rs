//! `fuzz-seeds <target> <dir>`: writes the target's seed inputs into a corpus folder.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, target, dir] = args.as_slice() else {
        eprintln!("usage: fuzz-seeds <target> <dir>");
        std::process::exit(2);
    };
    if !fuzz_checks::TARGETS.iter().any(|(t, _)| t == target) {
        eprintln!("no fuzz target {target}");
        std::process::exit(2);
    }
    std::fs::create_dir_all(dir).expect("corpus folder");
    for (i, seed) in fuzz_checks::seeds::seeds(target).iter().enumerate() {
        std::fs::write(format!("{dir}/seed-{i}"), seed).expect("seed written");
    }
}
