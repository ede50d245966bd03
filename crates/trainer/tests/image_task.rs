//! The image path end to end on a generated Fashion-MNIST-layout folder (IDX files, 8x8 images
//! whose class is where a bright square sits, so a small ConvNet learns it): dense training, the
//! saved CNN as `model.source`, and each filter-pruning method ending in a compacted model whose
//! test accuracy is the pruned one's (the compacted network computes the same function); bad
//! combinations of model and data are errors naming the field.

mod common;

use common::tmp;
use std::path::Path;
use trainer::{experiment::Experiment, train_loop};

fn idx(magic: u8, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 8, magic];
    for d in dims {
        b.extend(d.to_be_bytes());
    }
    b.extend(data);
    b
}

/// `n` 8x8 images of 4 classes: class c has a bright 3x3 square in quadrant c, plus noise.
fn images(n: usize, seed: u64) -> (Vec<u8>, Vec<u8>) {
    let mut rng = models::init::HostRng::new(seed);
    let (mut px, mut labels) = (Vec::new(), Vec::new());
    for i in 0..n {
        let c = i % 4;
        let (r0, c0) = ((c / 2) * 4, (c % 2) * 4);
        for r in 0..8 {
            for col in 0..8 {
                let on = (r0..r0 + 3).contains(&r) && (c0..c0 + 3).contains(&col);
                let noise = (rng.next_u64() % 60) as u8;
                px.push(if on { 190 + noise } else { noise });
            }
        }
        labels.push(c as u8);
    }
    (px, labels)
}

fn write_fashion_layout(dir: &Path) {
    for (prefix, n, seed) in [("train", 400, 1), ("t10k", 80, 2)] {
        let (px, labels) = images(n, seed);
        std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte")), idx(3, &[n as u32, 8, 8], &px)).unwrap();
        std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte")), idx(1, &[n as u32], &labels)).unwrap();
    }
}

fn text(data: &Path, out: &Path, model: &str, pruning: &str, epochs: f64) -> String {
    format!(
        r#"
name = "cnn-e2e"
device = "cpu"
seed = 5
output_dir = "{out}"
[model]
kind = "cnn"
{model}
[data]
kind = "fashion_mnist"
path = "{data}"
validation_fraction = 0.2
[train]
epochs = {epochs}
batch_size = 32
lr = 0.01
weight_decay = 0.0
eval_every = 1000
eval_batch_size = 64
[pruning]
{pruning}
"#,
        out = out.display(),
        data = data.display()
    )
}

fn parse(t: &str) -> Result<Experiment, String> {
    let e: Experiment = toml::from_str(t).map_err(|e| e.to_string())?;
    e.validate()?;
    Ok(e)
}

#[test]
fn a_cnn_trains_on_idx_images_and_every_filter_method_compacts_it() {
    let (data, out) = (tmp("cnn-data"), tmp("cnn-out"));
    write_fashion_layout(&data);
    let dense_dir = out.join("dense");
    // 10 classes declared by Fashion-MNIST; our images use 4 of them.
    let dense = train_loop::run(
        &parse(&text(&data, &dense_dir, "channels = [6, 8]\nhidden = [12]", "method = \"none\"", 3.0)).unwrap(),
        Path::new("test.toml"),
    )
    .unwrap();
    let dense_test = dense.test.as_ref().unwrap().accuracy;
    assert!(dense_test > 0.9, "the dense CNN learns the quadrant task: {dense_test}");
    let source = format!("source = \"{}\"", dense_dir.display());
    for (method, extra, epochs) in [
        ("oneshot_magnitude", "granularity = \"unit\"", 0.0),
        ("wanda", "granularity = \"unit\"", 0.0),
        ("oneshot_random", "granularity = \"unit\"", 0.0),
        ("sbpf", "", 0.0),
        ("movement", "granularity = \"unit\"\ncooldown_steps = 5", 1.0),
        ("activation", "round_steps = 2", 1.0),
    ] {
        let pruning = format!("method = \"{method}\"\nfinal_density = 0.5\ncalibration_samples = 64\n{extra}");
        let dir = out.join(method);
        let s = train_loop::run(&parse(&text(&data, &dir, &source, &pruning, epochs)).unwrap(), Path::new("test.toml"))
            .unwrap_or_else(|e| panic!("{method}: {e}"));
        let c = s.compaction.as_ref().unwrap_or_else(|| panic!("{method}: a structured run compacts"));
        let (before, after) = (c.report["params_before"].as_u64().unwrap(), c.report["params_after"].as_u64().unwrap());
        assert!(after < before, "{method}: {before} → {after} parameters");
        assert!(c.report["macs_after"].as_u64().unwrap() < c.report["macs_before"].as_u64().unwrap(), "{method}: fewer MACs");
        let (pruned, compacted) = (s.test.as_ref().unwrap().accuracy, c.test.as_ref().unwrap().accuracy);
        assert_eq!(pruned, compacted, "{method}: the compacted model is the pruned one");
        if method != "activation" {
            // Half the units of every group (SBPF: half of all units, shared out by sensitivity).
            let kept: u64 = c.report["kept"].as_array().unwrap().iter().map(|k| k[1].as_u64().unwrap()).sum();
            let all: u64 = c.report["kept"].as_array().unwrap().iter().map(|k| k[2].as_u64().unwrap()).sum();
            assert_eq!(kept * 2, all, "{method}: {:?}", c.report["kept"]);
        }
        // The saved, compacted CNN loads back as a model.source.
        assert!(dir.join("config.json").exists() && dir.join("model.safetensors").exists(), "{method}");
    }
    let back = parse(&text(&data, &out.join("again"), &format!("source = \"{}\"", out.join("sbpf").display()), "method = \"none\"", 0.0));
    assert!(back.is_err(), "epochs = 0 needs a one-shot method");
}

#[test]
fn model_and_data_must_match_and_errors_name_the_field() {
    let (data, out) = (tmp("cnn-bad-data"), tmp("cnn-bad-out"));
    write_fashion_layout(&data);
    let e = parse(&text(&data, &out, "", "method = \"none\"", 1.0)).unwrap_err();
    assert!(e.contains("model.channels"), "{e}");
    let e = parse(&text(&data, &out, "channels = [4]\nhidden = [8, 8]", "method = \"none\"", 1.0)).unwrap_err();
    assert!(e.contains("model.hidden"), "{e}");
    let e = parse(&text(&data, &out, "channels = [4]", "method = \"none\"", 1.0).replace("kind = \"cnn\"", "kind = \"mlp\"\nhidden = [4]")).unwrap_err();
    assert!(e.contains("image data") && e.contains("cnn"), "{e}");
    let e = parse(&text(&data.join("nope"), &out, "channels = [4]", "method = \"none\"", 1.0)).unwrap_err();
    assert!(e.contains("data.path"), "{e}");
    // A folder without the IDX files: the error names the folder and the file it looked for.
    let empty = tmp("cnn-empty");
    let exp = parse(&text(&empty, &out, "channels = [4]", "method = \"none\"", 1.0)).unwrap();
    let e = train_loop::run(&exp, Path::new("test.toml")).unwrap_err();
    assert!(e.contains(&empty.display().to_string()) && e.contains("train-images-idx3-ubyte"), "{e}");
}

#[test]
fn a_vit_trains_on_idx_images_and_its_heads_and_neurons_prune_and_compact() {
    let (data, out) = (tmp("vit-data"), tmp("vit-out"));
    write_fashion_layout(&data);
    let dense_dir = out.join("dense");
    let vit = "[model.vit]\npatch_size = 4\nhidden_size = 16\nnum_layers = 2\nnum_heads = 4\nintermediate_size = 24";
    let dense = train_loop::run(
        &parse(
            &text(&data, &dense_dir, "", "method = \"none\"", 25.0)
                .replace("kind = \"cnn\"", "kind = \"vit\"")
                .replace("[data]", &format!("{vit}\n[data]"))
                .replace("lr = 0.01", "lr = 0.002"),
        )
        .unwrap(),
        Path::new("test.toml"),
    )
    .unwrap();
    assert!(dense.test.as_ref().unwrap().accuracy > 0.6, "the ViT learns the quadrant task: {}", dense.test.as_ref().unwrap().accuracy);
    for (method, extra) in [("oneshot_magnitude", "granularity = \"unit\""), ("sbpf", "")] {
        let dir = out.join(method);
        let pruning = format!("method = \"{method}\"\nfinal_density = 0.5\ncalibration_samples = 64\n{extra}");
        let t = text(&data, &dir, &format!("source = \"{}\"", dense_dir.display()), &pruning, 0.0).replace("kind = \"cnn\"", "kind = \"vit\"");
        let s = train_loop::run(&parse(&t).unwrap(), Path::new("test.toml")).unwrap_or_else(|e| panic!("{method}: {e}"));
        let c = s.compaction.as_ref().expect("compacted");
        assert!(c.report["params_after"].as_u64() < c.report["params_before"].as_u64(), "{method}");
        assert_eq!(s.test.as_ref().unwrap().accuracy, c.test.as_ref().unwrap().accuracy, "{method}: the compacted ViT is the pruned one");
        // The compacted ViT loads back.
        let again = text(&data, &out.join(format!("{method}-again")), &format!("source = \"{}\"", dir.display()), "method = \"oneshot_magnitude\"\nfinal_density = 1.0", 0.0)
            .replace("kind = \"cnn\"", "kind = \"vit\"");
        let s2 = train_loop::run(&parse(&again).unwrap(), Path::new("test.toml")).unwrap_or_else(|e| panic!("{method} reload: {e}"));
        assert_eq!(s2.test.as_ref().unwrap().accuracy, s.test.as_ref().unwrap().accuracy, "{method}: reloaded");
    }
}
