//! Thousands of malformed inputs thrown at every parser a user's file reaches: experiment files
//! (and the pruner configuration they build), `--set` overrides, sweep files, GLUE TSV files, tabular CSV files,
//! a checkpoint's config.json, safetensors weights and masks, and training-checkpoint state.
//! Each input comes from mutating a valid one with a seeded generator (so a failure is
//! reproducible from its seed); every call must return (Ok or Err), never panic.

mod common;
use common::*;
use datasets::split::SplitMix64;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

const TOKENS: [&str; 24] = [
    "-1", "0", "1e400", "nan", "inf", "-inf", "\"\"", "[]", "[1, \"a\"]", "{}", "{ x = 1 }", "true", "18446744073709551616", "0.0", "1.5", "\"é\u{0}\"",
    "=", "[", "]]", "\"", "#", "\n[train]\n", "\n[[run]]\n", "\u{feff}",
];

/// A random edit of `text`: delete, duplicate or swap a span, insert a token, replace a value.
fn mutate(text: &str, rng: &mut SplitMix64) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for _ in 0..1 + rng.below(4) {
        let n = chars.len().max(1);
        let at = rng.below(n).min(chars.len());
        match rng.below(6) {
            0 => {
                let end = (at + 1 + rng.below(20)).min(chars.len());
                chars.drain(at..end);
            }
            1 => {
                let end = (at + 1 + rng.below(40)).min(chars.len());
                let span: Vec<char> = chars[at..end].to_vec();
                let to = rng.below(chars.len().max(1)).min(chars.len());
                chars.splice(to..to, span);
            }
            2 | 3 => {
                let tok = TOKENS[rng.below(TOKENS.len())];
                chars.splice(at..at, tok.chars());
            }
            4 => {
                // Replace the value after the next '=' with a token.
                if let Some(eq) = chars[at..].iter().position(|&c| c == '=') {
                    let start = at + eq + 1;
                    let end = chars[start..].iter().position(|&c| c == '\n').map(|p| start + p).unwrap_or(chars.len());
                    chars.splice(start..end, format!(" {}", TOKENS[rng.below(TOKENS.len())]).chars());
                }
            }
            _ => {
                if !chars.is_empty() {
                    let i = at.min(chars.len() - 1);
                    chars[i] = char::from_u32(rng.below(0x250) as u32).unwrap_or('?');
                }
            }
        }
    }
    chars.into_iter().collect()
}

fn mutate_bytes(bytes: &[u8], rng: &mut SplitMix64) -> Vec<u8> {
    let mut b = bytes.to_vec();
    match rng.below(4) {
        0 => b.truncate(rng.below(b.len().max(1))),
        1 => {
            for _ in 0..1 + rng.below(8) {
                let i = rng.below(b.len().max(1));
                if i < b.len() {
                    b[i] = rng.below(256) as u8;
                }
            }
        }
        2 => {
            // Corrupt the 8-byte header length of a safetensors file.
            let v = rng.next_u64();
            for (i, byte) in v.to_le_bytes().iter().enumerate().take(b.len().min(8)) {
                b[i] = *byte;
            }
        }
        _ => b.extend((0..rng.below(64)).map(|_| rng.below(256) as u8)),
    }
    b
}

/// Runs `f` and fails the test with the seed and input if it panics.
fn no_panic<T>(what: &str, seed: u64, input: &dyn std::fmt::Debug, f: impl FnOnce() -> T) {
    if catch_unwind(AssertUnwindSafe(f)).is_err() {
        panic!("{what}: panic on input #{seed}: {input:?}");
    }
}

#[test]
fn malformed_inputs_give_errors_never_panics() {
    let (ckpt, data, dir) = (tmp("fuzz-ckpt"), tmp("fuzz-data"), tmp("fuzz"));
    write_checkpoint(&ckpt);
    write_tsvs(&data);
    let prev_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {})); // panics are reported by no_panic, not printed
    let mut counts = std::collections::BTreeMap::new();

    // Experiment files: the test fixture and every shipped experiment.
    let mut seeds: Vec<String> = vec![experiment_text(&ckpt, &data, &dir.join("out"), "movement")];
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../experiments");
    for e in std::fs::read_dir(&root).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.ends_with(".toml") && !name.starts_with("sweep") {
            seeds.push(std::fs::read_to_string(e.path()).unwrap());
        }
    }
    let mut rng = SplitMix64(20261123);
    let accepted = std::cell::Cell::new(0);
    for i in 0..4000u64 {
        let text = mutate(&seeds[rng.below(seeds.len())], &mut rng);
        no_panic("experiment", i, &text, || {
            if let Ok(exp) = trainer::experiment::parse(&text, &[]) {
                if exp.pruning.build(1 + (i as usize % 500)).is_ok() {
                    accepted.set(accepted.get() + 1);
                }
            }
        });
    }
    // The mutations must leave some files valid, or the pruner builder is never reached.
    println!("experiment files accepted after mutation: {} of 4000", accepted.get());
    assert!(accepted.get() > 100, "{}", accepted.get());
    counts.insert("experiment files", 4000);

    // --set overrides.
    let keys = ["train.lr", "pruning.final_density", "pruning", "name", "train", "a.b.c", "", ".", "data.kind", "seed", "pruning.method"];
    for i in 0..1500u64 {
        let o = format!("{}={}", keys[rng.below(keys.len())], TOKENS[rng.below(TOKENS.len())]);
        let o = if i % 3 == 0 { mutate(&o, &mut rng) } else { o };
        no_panic("--set", i, &o, || trainer::experiment::parse(&seeds[0], std::slice::from_ref(&o)).map(|e| e.pruning.build(100).err()));
    }
    counts.insert("--set overrides", 1500);

    // Sweep files.
    let sweep = "base = \"base.toml\"\noutput_dir = \"x\"\nskip_existing = true\nseeds = [1, 2]\n[set]\n\"train.lr\" = 1e-4\n[[run]]\nname = \"dense\"\nset = { \"pruning.method\" = \"none\" }\n[grid]\n\"pruning.method\" = [\"magnitude\", \"movement\"]\n\"pruning.final_density\" = [0.5, 0.25]\n";
    std::fs::write(dir.join("base.toml"), &seeds[0]).unwrap();
    for i in 0..1000u64 {
        let text = mutate(sweep, &mut rng);
        let path = dir.join("sweep.toml");
        std::fs::write(&path, &text).unwrap();
        no_panic("sweep", i, &text, || {
            if let Ok(s) = trainer::sweep::SweepFile::load(&path) {
                for p in s.plan().iter().take(20) {
                    let _ = s.experiment(p);
                }
            }
        });
    }
    counts.insert("sweep files", 1000);

    // GLUE TSV files, with and without a label column and a pair column.
    let tsv = std::fs::read_to_string(data.join("train.tsv")).unwrap() + "\nsentence one\tsentence two\t1\n";
    for i in 0..1500u64 {
        let text = mutate(&tsv, &mut rng);
        let path = dir.join("fuzz.tsv");
        std::fs::write(&path, &text).unwrap();
        let cols: datasets::glue::TsvColumns = toml::from_str(match i % 3 {
            0 => "text_a = \"sentence\"",
            1 => "text_a = \"sentence\"\ntext_b = \"label\"",
            _ => "text_a = \"sentence\"\nlabel = \"nope\"\ngroup = \"sentence\"",
        })
        .unwrap();
        no_panic("tsv", i, &text, || {
            if let Ok(rows) = datasets::glue::read_tsv(&path, &cols) {
                let names = datasets::glue::label_names(&[&rows]);
                let _ = datasets::glue::assign_labels(rows, &names, &path);
            }
        });
    }
    counts.insert("TSV files", 1500);

    // Tabular CSV files (quoted fields, missing cells, non-numbers in numeric columns).
    let csv = std::fs::read_to_string(write_csv(&data)).unwrap() + "\"1.5\",\"2,0\",red,M,yes\n";
    let spec = datasets::tabular::CsvSpec {
        label: "label".into(),
        numeric: vec!["x1".into(), "x2".into()],
        categorical: vec!["color".into()],
        group_by: vec!["sex".into()],
        split_seed: 1,
        validation_fraction: 0.2,
    };
    for i in 0..1000u64 {
        let text = mutate(&csv, &mut rng);
        let path = dir.join("fuzz.csv");
        std::fs::write(&path, &text).unwrap();
        no_panic("csv", i, &text, || datasets::tabular::encode_csv(&path, None, (i % 2 == 0).then_some(path.as_path()), &spec).map(|d| d.train.len()));
    }
    counts.insert("CSV files", 1000);

    // A checkpoint's config.json.
    let config = std::fs::read_to_string(ckpt.join("config.json")).unwrap();
    for i in 0..1000u64 {
        let text = mutate(&config, &mut rng);
        let path = dir.join("config.json");
        std::fs::write(&path, &text).unwrap();
        no_panic("config.json", i, &text, || {
            if let Ok(c) = models::BertConfig::from_file(&path) {
                // Small enough configs are built: shapes must be consistent or refused.
                if c.hidden_size <= 64 && c.num_hidden_layers <= 4 && c.vocab_size <= 100 && c.intermediate_size <= 128 && c.max_position_embeddings <= 128 {
                    #[allow(deprecated)]
                    let d = burn::tensor::Device::ndarray();
                    let _ = models::BertForSequenceClassification::new(&c, 2, &d);
                }
            }
        });
    }
    counts.insert("config.json files", 1000);

    // Weights and masks (safetensors), loaded into the tiny model.
    let weights = std::fs::read(ckpt.join("model.safetensors")).unwrap();
    let config = models::BertConfig::from_file(&ckpt.join("config.json")).unwrap();
    #[allow(deprecated)]
    let device = burn::tensor::Device::ndarray();
    for i in 0..500u64 {
        let bytes = mutate_bytes(&weights, &mut rng);
        let path = dir.join("model.safetensors");
        std::fs::write(&path, &bytes).unwrap();
        no_panic("model.safetensors", i, &bytes.len(), || {
            let m = models::BertForSequenceClassification::new(&config, 2, &device);
            let _ = models::checkpoint::load_safetensors(m, &path);
            let _ = models::checkpoint::read_masks(&path);
        });
    }
    counts.insert("safetensors files", 500);

    // Training-checkpoint state.
    let state = serde_json::to_string(&trainer::checkpoint::TrainState {
        step: 4,
        total_steps: 18,
        rng_state: 7,
        train_seconds: 1.0,
        eval_seconds: 0.5,
        samples: 32,
        loss_sum: 0.1,
        loss_count: 1,
        grad_norm_max: 0.0,
        pruner: serde_json::json!({ "built_for": 0.5 }),
        experiment: seeds[0].clone(),
        extra: serde_json::json!({ "before": null, "fair": { "weights": [0.5], "targets": [0.5, 0.5] } }),
        sha256: [("model.bpk".to_string(), "00".to_string())].into(),
    })
    .unwrap();
    let ck = dir.join("out/checkpoints/step-00000004");
    std::fs::create_dir_all(&ck).unwrap();
    for f in ["model.bpk", "optim.bpk", "masks.safetensors"] {
        std::fs::write(ck.join(f), b"x").unwrap();
    }
    for i in 0..500u64 {
        let text = mutate(&state, &mut rng);
        std::fs::write(ck.join("state.json"), &text).unwrap();
        no_panic("state.json", i, &text, || trainer::checkpoint::latest(&dir.join("out")).map(|s| s.is_some()));
    }
    counts.insert("checkpoint state files", 500);

    std::panic::set_hook(prev_hook);
    let total: usize = counts.values().sum();
    println!("fuzzed {total} inputs, 0 panics: {counts:?}");
    assert_eq!(total, 11000);
}
