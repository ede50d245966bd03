//! Every experiment and sweep file shipped in `experiments/` parses and passes the checks, so a
//! renamed key or a changed default cannot break the documented commands silently.

use std::path::Path;

fn files(ext: &str) -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../experiments");
    let mut v: Vec<_> = std::fs::read_dir(&dir).unwrap().filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == ext)).collect();
    v.sort();
    v
}

/// The SST-2 experiments name GLUE's folder as `../shared/data/glue/SST-2/` (beside the
/// checkout; never committed, and absent on a user's machine). The files are checked here from a
/// working directory that has that layout with two-line stand-ins, so the test neither needs the
/// data nor skips those experiments.
fn enter_a_directory_with_a_glue_layout() {
    let root = std::env::temp_dir().join(format!("prunekit-experiment-files-{}", std::process::id()));
    let glue = root.join("shared/data/glue/SST-2");
    std::fs::create_dir_all(&glue).unwrap();
    std::fs::create_dir_all(root.join("work")).unwrap();
    for f in ["train.tsv", "dev.tsv"] {
        std::fs::write(glue.join(f), "sentence\tlabel\na fine film\t1\na dull film\t0\n").unwrap();
    }
    std::env::set_current_dir(root.join("work")).unwrap();
}

#[test]
fn shipped_experiments_and_sweeps_are_valid() {
    enter_a_directory_with_a_glue_layout();
    let mut experiments = 0;
    let mut sweeps = 0;
    for path in files("toml") {
        let text = std::fs::read_to_string(&path).unwrap();
        if text.lines().any(|l| l.trim_start().starts_with("base =")) {
            let sweep = trainer::sweep::SweepFile::load(&path).unwrap_or_else(|e| panic!("{e}"));
            let plan = sweep.plan();
            assert!(!plan.is_empty(), "{}", path.display());
            for p in &plan {
                sweep.experiment(p).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            }
            sweeps += 1;
        } else {
            trainer::experiment::load(&path, &[]).unwrap_or_else(|e| panic!("{e}"));
            experiments += 1;
        }
    }
    assert!(experiments >= 7 && sweeps >= 2, "{experiments} experiments, {sweeps} sweeps");
}
