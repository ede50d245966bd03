//! The MLP path and the performance-weighted loss, end to end on a small CSV fixture: groups
//! reported before and after pruning, the saved model reloads to the same predictions, the
//! cached and on-the-fly references train alike, and structured runs compact exactly.

mod common;
use common::*;
use std::path::Path;
use trainer::{experiment, train_loop};

fn run(text: &str) -> train_loop::Summary {
    let exp = experiment::parse(text, &[]).unwrap();
    train_loop::run(&exp, Path::new("mlp.toml")).unwrap()
}

const MAGNITUDE: &str = "method = \"magnitude\"\nscope = \"global\"\nfinal_density = 0.1\nwarmup_steps = 18\ncooldown_steps = 9";

#[test]
fn fair_loss_run_reports_groups_before_and_after_pruning_and_its_model_reloads() {
    let dir = tmp("fair-groups");
    let csv = write_csv(&dir);
    let out = dir.join("run");
    let s = run(&mlp_experiment_text(&csv, &out, MAGNITUDE, "[loss]\nkind = \"performance_weighted\"\nbeta = 0.5\ngamma = 2.0"));
    assert_eq!(s.loss, "performance_weighted (beta 0.5, gamma 2, cached)");
    assert_eq!(s.steps, 54);
    assert!(s.reference_seconds.is_some());
    // Global top-k over all 3 layers: exactly the scheduled count is kept.
    assert_eq!(s.prunable_nonzero, ((s.prunable_params as f64) * 0.1).round() as usize);
    // Groups: by sex and by colour, sizes adding up to the test split, gap = best − worst.
    let test = s.test.as_ref().unwrap();
    assert_eq!(s.groups.len(), 2);
    for g in &s.groups {
        assert_eq!(g.groups.iter().map(|x| x.n).sum::<usize>(), test.n, "{}", g.attribute);
        let accs: Vec<f64> = g.groups.iter().map(|x| x.accuracy).collect();
        let gap = accs.iter().cloned().fold(f64::MIN, f64::max) - accs.iter().cloned().fold(f64::MAX, f64::min);
        assert!((g.accuracy_gap - gap).abs() < 1e-12);
        assert!(g.groups.iter().all(|x| x.auroc.is_some()));
        // Overall accuracy is the size-weighted mean of the groups'.
        let weighted: f64 = g.groups.iter().map(|x| x.accuracy * x.n as f64).sum::<f64>() / test.n as f64;
        assert!((weighted - test.accuracy).abs() < 1e-9);
    }
    assert_eq!(s.groups[0].attribute, "sex");
    assert_eq!(s.groups[0].groups.iter().map(|g| g.group.as_str()).collect::<Vec<_>>(), ["F", "M"]);
    let before = s.before_pruning.as_ref().unwrap();
    assert_eq!(before.step, 18, "the unpruned model is the model when pruning starts");
    assert_eq!(before.groups.len(), 2);
    assert!(before.test.as_ref().unwrap().accuracy > 0.6, "the dense phase learned the task: {before:?}");
    let on_disk: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert!(on_disk["groups"][0]["groups"][0]["auroc"].is_number() && on_disk["before_pruning"]["groups"].is_array());

    // The saved MLP (masks folded) reloads: evaluated before any training step of a new run,
    // it gives exactly the metrics the first run reported.
    let again = dir.join("again");
    let text = mlp_experiment_text(&csv, &again, "method = \"none\"", "")
        .replace("hidden = [16, 12]", &format!("source = \"{}\"", out.display()))
        .replace("epochs = 6", "epochs = 0.1");
    let s2 = run(&text);
    let b = s2.before_pruning.unwrap();
    assert_eq!(b.step, 0);
    assert_eq!(b.test.as_ref().unwrap(), test);
    assert_eq!(b.groups, s.groups);
    // A checkpoint trained on other features is refused, naming the file and the field.
    let text = text.replace("categorical = [\"color\", \"sex\"]", "categorical = [\"color\"]");
    let err = train_loop::run(&experiment::parse(&text, &[]).unwrap(), Path::new("mlp.toml")).unwrap_err();
    assert!(err.contains("features.json") && err.contains("feature_names"), "{err}");
}

#[test]
fn cached_and_on_the_fly_references_train_alike() {
    let dir = tmp("fair-modes");
    let csv = write_csv(&dir);
    let fair = |mode: &str| format!("[loss]\nkind = \"performance_weighted\"\nmode = \"{mode}\"");
    let a = run(&mlp_experiment_text(&csv, &dir.join("cached"), MAGNITUDE, &fair("cached")));
    let b = run(&mlp_experiment_text(&csv, &dir.join("fly"), MAGNITUDE, &fair("on_the_fly")));
    let ce = run(&mlp_experiment_text(&csv, &dir.join("ce"), MAGNITUDE, ""));
    assert!((a.validation.loss - b.validation.loss).abs() < 1e-4, "{} vs {}", a.validation.loss, b.validation.loss);
    assert_eq!(a.test.as_ref().unwrap().accuracy, b.test.as_ref().unwrap().accuracy);
    // The loss does change training: plain cross-entropy ends elsewhere.
    assert!((a.validation.loss - ce.validation.loss).abs() > 1e-4);
    assert_eq!(a.before_pruning.as_ref().unwrap().test, ce.before_pruning.as_ref().unwrap().test, "identical until pruning starts");
}

#[test]
fn structured_mlp_runs_compact_into_narrower_layers_with_the_same_predictions() {
    let dir = tmp("mlp-structured");
    let csv = write_csv(&dir);
    let pruning = "method = \"magnitude\"\ngranularity = \"unit\"\nfinal_density = 0.5\nwarmup_steps = 18\ncooldown_steps = 9";
    let s = run(&mlp_experiment_text(&csv, &dir.join("run"), pruning, ""));
    let c = s.compaction.as_ref().unwrap();
    assert_eq!(c.report["hidden_before"], serde_json::json!([16, 12]));
    assert_eq!(c.report["hidden_after"], serde_json::json!([8, 6]));
    let (ct, st) = (c.test.as_ref().unwrap(), s.test.as_ref().unwrap());
    assert_eq!(ct.accuracy, st.accuracy, "the compacted model predicts what the masked one did");
    assert!((ct.loss - st.loss).abs() < 1e-5, "{} vs {}", ct.loss, st.loss);
    assert!(s.prunable_sparsity > 0.4);
    let config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("run").join("config.json")).unwrap()).unwrap();
    assert_eq!(config["hidden"], serde_json::json!([8, 6]));
}

#[test]
fn sweep_tables_carry_the_gaps_and_a_per_group_table() {
    let dir = tmp("fair-sweep");
    let csv = write_csv(&dir);
    std::fs::write(dir.join("base.toml"), mlp_experiment_text(&csv, &dir.join("unused"), MAGNITUDE, "")).unwrap();
    let sweep = dir.join("sweep.toml");
    let out = dir.join("out");
    std::fs::write(
        &sweep,
        format!(
            "base = \"base.toml\"\noutput_dir = \"{}\"\nseeds = [1, 2]\n[set]\n\"train.eval_every\" = 0\n[grid]\n\"loss.kind\" = [\"cross_entropy\", \"performance_weighted\"]\n",
            out.display()
        ),
    )
    .unwrap();
    let rows = trainer::sweep::run(&sweep).unwrap();
    assert_eq!(rows.len(), 4);
    let table = std::fs::read_to_string(out.join("table.md")).unwrap();
    let header = table.lines().nth(1).unwrap();
    for col in ["test accuracy before pruning", "sex gap", "sex gap before pruning", "color gap", "color gap before pruning"] {
        assert!(header.contains(col), "{header}");
    }
    // The sex gap column of the cross-entropy row is the mean of the two runs' gaps, in percent.
    let gaps: Vec<f64> = ["cross_entropy-seed1", "cross_entropy-seed2"]
        .iter()
        .map(|r| {
            let s: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join(r).join("summary.json")).unwrap()).unwrap();
            s["groups"][0]["accuracy_gap"].as_f64().unwrap()
        })
        .collect();
    let (m, sd) = trainer::sweep::mean_std(&gaps);
    let row = table.lines().find(|l| l.starts_with("| cross_entropy |")).unwrap();
    let col = header.split(" | ").position(|c| c == "sex gap").unwrap();
    assert_eq!(row.split(" | ").nth(col).unwrap(), format!("{:.2} ± {:.2}%", 100.0 * m, 100.0 * sd), "{row}");
    let groups = std::fs::read_to_string(out.join("groups.md")).unwrap();
    for needle in ["| cross_entropy | sex | F |", "| performance_weighted | color | red |", "**gap (best − worst)**"] {
        assert!(groups.contains(needle), "{needle}: {groups}");
    }
    assert!(std::fs::read_to_string(out.join("table.csv")).unwrap().lines().next().unwrap().contains("sex_gap_mean,sex_gap_sd"));
}

#[test]
fn bert_on_a_tsv_with_a_group_column_takes_the_fair_loss_and_reports_its_groups() {
    let (ckpt, data, out) = (tmp("fair-bert-ckpt"), tmp("fair-bert-data"), tmp("fair-bert-out"));
    write_checkpoint(&ckpt);
    write_tsvs(&data);
    // Add a group column: the noun of each sentence.
    for f in ["train.tsv", "dev.tsv", "test.tsv"] {
        let text = std::fs::read_to_string(data.join(f)).unwrap();
        let rows: Vec<String> = text
            .lines()
            .enumerate()
            .map(|(i, l)| if i == 0 { format!("{l}\ttopic") } else { format!("{l}\t{}", l.split(' ').nth(1).unwrap_or("?")) })
            .collect();
        std::fs::write(data.join(f), rows.join("\n")).unwrap();
    }
    let text = experiment_text(&ckpt, &data, &out, "magnitude")
        .replace("columns = { text_a = \"sentence\" }", "columns = { text_a = \"sentence\", group = \"topic\" }")
        + "[loss]\nkind = \"performance_weighted\"\n";
    let s = run(&text);
    assert!(s.loss.starts_with("performance_weighted"));
    assert_eq!(s.groups.len(), 1);
    let g = &s.groups[0];
    assert_eq!(g.attribute, "group");
    assert_eq!(g.groups.iter().map(|x| x.group.as_str()).collect::<Vec<_>>(), ["acting", "film", "plot"]);
    assert_eq!(g.groups.iter().map(|x| x.n).sum::<usize>(), s.test.as_ref().unwrap().n);
    assert_eq!(s.before_pruning.as_ref().unwrap().step, 1);
}
