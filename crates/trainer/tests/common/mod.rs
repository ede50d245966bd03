//! Fixtures shared by the trainer's integration tests: a tiny random BERT checkpoint written in
//! Hugging Face layout (config.json, vocab.txt, model.safetensors) and GLUE-style TSV files.
#![allow(dead_code)]

use burn::tensor::Device;
use models::checkpoint::save_safetensors;
use models::{BertConfig, BertForSequenceClassification};
use std::path::{Path, PathBuf};
use trainer::experiment;

pub const WORDS: [&str; 12] = ["the", "film", "was", "good", "bad", "great", "awful", "plot", "acting", "very", "not", "fine"];

pub fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("prunekit-e2e-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn write_checkpoint(dir: &Path) {
    write_checkpoint_with(dir, |_| {});
}

/// The tiny checkpoint, its config changed by `edit` first (e.g. dropout on).
pub fn write_checkpoint_with(dir: &Path, edit: impl FnOnce(&mut BertConfig)) {
    let mut vocab = vec!["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];
    vocab.extend(WORDS);
    std::fs::write(dir.join("vocab.txt"), vocab.join("\n") + "\n").unwrap();
    let mut config = BertConfig::tiny(vocab.len());
    edit(&mut config);
    std::fs::write(dir.join("config.json"), serde_json::to_string(&config).unwrap()).unwrap();
    #[allow(deprecated)]
    let device = Device::ndarray();
    device.seed(1);
    let model = BertForSequenceClassification::new(&config, 2, &device);
    save_safetensors(&model.bert, &dir.join("model.safetensors")).unwrap();
}

pub fn write_tsvs(dir: &Path) {
    let mut rows = vec!["sentence\tlabel".to_string()];
    for i in 0..48 {
        let (w, l) = if i % 2 == 0 { (["good", "great", "fine"][i % 3], 1) } else { (["bad", "awful", "not"][i % 3], 0) };
        rows.push(format!("the {} was very {w}\t{l}", ["film", "plot", "acting"][i % 3]));
    }
    std::fs::write(dir.join("train.tsv"), rows.join("\n")).unwrap();
    std::fs::write(dir.join("dev.tsv"), rows[..17].join("\n")).unwrap();
    std::fs::write(dir.join("test.tsv"), rows[..13].join("\n")).unwrap();
}

pub fn experiment(ckpt: &Path, data: &Path, out: &Path, method: &str) -> experiment::Experiment {
    experiment::parse(&experiment_text(ckpt, data, out, method), &[]).unwrap()
}

pub fn experiment_text(ckpt: &Path, data: &Path, out: &Path, method: &str) -> String {
    format!(
        r#"
name = "e2e-{method}"
device = "ndarray"
output_dir = "{out}"
[model]
source = "{ckpt}"
max_length = 16
[data]
kind = "glue_tsv"
train = "{data}/train.tsv"
validation = "{data}/dev.tsv"
test = "{data}/test.tsv"
columns = {{ text_a = "sentence" }}
[train]
epochs = 2
batch_size = 8
lr = 1e-3
eval_every = 6
log_every = 3
[pruning]
method = "{method}"
final_density = 0.3
warmup_steps = 1
cooldown_steps = 2
scores_lr = 0.1
"#,
        out = out.display(),
        ckpt = ckpt.display(),
        data = data.display()
    )
}


/// A small tabular CSV (240 rows): two numeric columns, a categorical `color`, a group column
/// `sex`, and a label that depends on the numbers, noisier for sex = F (so groups differ).
pub fn write_csv(dir: &Path) -> PathBuf {
    let mut rng = datasets::split::SplitMix64(7);
    let mut u = move || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    let mut rows = vec!["x1,x2,color,sex,label".to_string()];
    for i in 0..240 {
        let (x1, x2) = (u() * 4.0 - 2.0, u() * 4.0 - 2.0);
        let color = ["red", "green", "blue"][i % 3];
        let sex = if i % 4 == 0 { "F" } else { "M" };
        let noise = if sex == "F" { 1.5 } else { 0.3 };
        let y = x1 + 0.5 * x2 + if color == "red" { 0.5 } else { 0.0 } + noise * (u() * 2.0 - 1.0) > 0.0;
        rows.push(format!("{x1:.4},{x2:.4},{color},{sex},{}", if y { "yes" } else { "no" }));
    }
    let p = dir.join("table.csv");
    std::fs::write(&p, rows.join("\n") + "\n").unwrap();
    p
}

/// An MLP experiment on [`write_csv`]'s table: 144 training rows, batches of 16 (9 steps per
/// epoch), 6 epochs = 54 steps; `pruning` and `extra` are appended as TOML.
pub fn mlp_experiment_text(csv: &Path, out: &Path, pruning: &str, extra: &str) -> String {
    format!(
        r#"
name = "mlp-e2e"
device = "ndarray"
seed = 3
output_dir = "{out}"
[model]
kind = "mlp"
hidden = [16, 12]
[data]
kind = "csv"
train = "{csv}"
label = "label"
numeric = ["x1", "x2"]
categorical = ["color", "sex"]
group_by = ["sex", "color"]
validation_fraction = 0.2
min_group_size = 5
[train]
epochs = 6
batch_size = 16
lr = 0.01
weight_decay = 0.0
eval_every = 18
log_every = 9
[pruning]
{pruning}
{extra}
"#,
        out = out.display(),
        csv = csv.display()
    )
}
