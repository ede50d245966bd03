//! A ConvNet on grey images (Fashion-MNIST, MNIST 5k): images kept as bytes, batched as a
//! normalised `[batch, 1, 28, 28]` tensor.

use crate::experiment::{DataSection, Experiment, ImageSection};
use crate::report::write_json;
use crate::task::{Compacted, Split, Task};
use burn::tensor::{Device, Int, Tensor};
use datasets::images::{ImageBatcher, ImageSet};
use models::checkpoint::{load_safetensors, save_safetensors};
use models::cnn::{compact, load_digit_recognizer, Cnn, CnnConfig};
use models::UnitActivations;
use std::path::Path;

/// `model.source` naming the pretrained MNIST CNN of PyPI `digit-recognizer-py`.
pub const DIGIT_RECOGNIZER: &str = "digit-recognizer";

pub struct ImageTask {
    pub train: ImageSet,
    pub validation: ImageSet,
    pub test: ImageSet,
    pub batcher: ImageBatcher,
    pub config: CnnConfig,
    pub label_names: Vec<String>,
    pub source: String,
}

/// A seeded permutation of `0..n` (SplitMix64 Fisher–Yates).
fn permutation(n: usize, seed: u64) -> Vec<usize> {
    let mut rng = models::init::HostRng::new(seed);
    let mut idx: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        idx.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
    }
    idx
}

/// The three splits an experiment names, with the normalisation of its dataset.
pub fn load_data(section: &DataSection) -> Result<(ImageSet, ImageSet, ImageSet, ImageBatcher, Vec<String>, String), String> {
    let (train, validation, test, batcher, names, source, s): (ImageSet, ImageSet, ImageSet, ImageBatcher, Vec<String>, String, &ImageSection) =
        match section {
            DataSection::FashionMnist(s) => {
                let dir = match &s.path {
                    Some(p) => p.clone(),
                    None => datasets::fetch::fashion_mnist_dir().map_err(|e| format!("data (fashion_mnist): {e}"))?,
                };
                let full = datasets::images::fashion_mnist(&dir, datasets::images::Split::Train).map_err(|e| e.to_string())?;
                let test = datasets::images::fashion_mnist(&dir, datasets::images::Split::Test).map_err(|e| e.to_string())?;
                // Validation: the last fraction of the (already shuffled) training file.
                let n_val = (full.len() as f64 * s.validation_fraction).round() as usize;
                let cut = full.len() - n_val;
                let train = full.select(&(0..cut).collect::<Vec<_>>());
                let validation = full.select(&(cut..full.len()).collect::<Vec<_>>());
                let names = datasets::images::FASHION_MNIST_CLASSES.iter().map(|s| s.to_string()).collect();
                let source = format!("Fashion-MNIST ({}; train = first {cut} of the 60k, validation = last {n_val}, test = t10k)", dir.display());
                (train, validation, test, ImageBatcher { mean: 0.2860, std: 0.3530 }, names, source, s)
            }
            DataSection::Mnist5k(s) => {
                let path = match &s.path {
                    Some(p) => p.clone(),
                    None => datasets::fetch::mnist_5k_csv().map_err(|e| format!("data (mnist_5k): {e}"))?,
                };
                let full = datasets::images::mnist_csv(&path).map_err(|e| e.to_string())?;
                // Stratified by class (the file is sorted by label): per class, a seeded shuffle,
                // then validation_fraction to validation, as much to test, the rest to train.
                let (mut tr, mut va, mut te) = (Vec::new(), Vec::new(), Vec::new());
                for class in 0..full.num_classes {
                    let members: Vec<usize> = (0..full.len()).filter(|&i| full.labels[i] == class).collect();
                    let perm = permutation(members.len(), s.split_seed ^ class as u64);
                    let k = (members.len() as f64 * s.validation_fraction).round() as usize;
                    for (j, &p) in perm.iter().enumerate() {
                        let i = members[p];
                        if j < k {
                            va.push(i)
                        } else if j < 2 * k {
                            te.push(i)
                        } else {
                            tr.push(i)
                        }
                    }
                }
                let order = permutation(tr.len(), s.split_seed);
                let tr: Vec<usize> = order.iter().map(|&o| tr[o]).collect();
                let names = (0..10).map(|d| d.to_string()).collect();
                let source = format!(
                    "MNIST 5k rows ({}; stratified split, seed {}: {} train / {} validation / {} test)",
                    path.display(),
                    s.split_seed,
                    tr.len(),
                    va.len(),
                    te.len()
                );
                (full.select(&tr), full.select(&va), full.select(&te), ImageBatcher { mean: 0.1307, std: 0.3081 }, names, source, s)
            }
            _ => return Err("data: not an image dataset (fashion_mnist, mnist_5k)".into()),
        };
    let train = match s.max_train_samples {
        Some(n) => train.take(n),
        None => train,
    };
    let (validation, test) = match s.max_eval_samples {
        Some(n) => (validation.take(n), test.take(n)),
        None => (validation, test),
    };
    if train.is_empty() {
        return Err("data: the training split is empty".into());
    }
    Ok((train, validation, test, batcher, names, source))
}

/// Loads a CNN from `model.source`: the pretrained digit recognizer, a `.pth` of its
/// architecture, or a directory this task saved (config.json + model.safetensors).
pub fn load_cnn(source: &str, dropout: f64, device: &Device) -> Result<(Cnn, CnnConfig), String> {
    let mut model_and_config = if source == DIGIT_RECOGNIZER || source.ends_with(".pth") || source.ends_with(".pt") {
        let path = if source == DIGIT_RECOGNIZER { datasets::fetch::digit_cnn_pth().map_err(|e| e.to_string())? } else { source.into() };
        (load_digit_recognizer(&path, device)?, CnnConfig::digit_recognizer())
    } else {
        let dir = Path::new(source);
        let cfg_path = dir.join("config.json");
        let text = std::fs::read_to_string(&cfg_path).map_err(|e| format!("{}: {e}", cfg_path.display()))?;
        let config: CnnConfig = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", cfg_path.display()))?;
        config.validate().map_err(|e| format!("{}: {e}", cfg_path.display()))?;
        let (model, report) = load_safetensors(Cnn::new(&config, 0, device), &dir.join("model.safetensors")).map_err(|e| e.to_string())?;
        if !report.missing.is_empty() {
            return Err(format!("{}: tensors missing: {}", dir.join("model.safetensors").display(), report.missing.join(", ")));
        }
        (model, config)
    };
    model_and_config.1.dropout = dropout;
    model_and_config.0.dropout = models::layers::Dropout::new(dropout);
    Ok(model_and_config)
}

impl ImageTask {
    pub fn load(exp: &Experiment, device: &Device) -> Result<(Self, Cnn), String> {
        let (train, validation, test, batcher, label_names, source) = load_data(&exp.data)?;
        tracing::info!("data: {source} ({} train / {} validation / {} test)", train.len(), validation.len(), test.len());
        let m = &exp.model;
        let (model, config) = if m.source.trim().is_empty() {
            let c = CnnConfig {
                in_channels: train.channels,
                image_size: train.height,
                channels: m.channels.clone(),
                inner_channels: m.inner_channels.clone(),
                kernel_size: m.kernel_size,
                batch_norm: m.batch_norm,
                residual: m.residual,
                hidden: m.hidden.first().copied().unwrap_or(0),
                num_classes: label_names.len(),
                dropout: m.dropout,
            };
            c.validate().map_err(|e| format!("model: {e}"))?;
            tracing::info!("CNN {:?} (residual {}, batch norm {}), {} parameters, randomly initialised", c.channels, c.residual, c.batch_norm, c.num_params());
            (Cnn::new(&c, exp.seed, device), c)
        } else {
            load_cnn(m.source.trim(), m.dropout, device).map_err(|e| format!("model.source: {e}"))?
        };
        if config.image_size != train.height || config.in_channels != train.channels || config.num_classes != label_names.len() {
            return Err(format!(
                "model.source: the CNN takes {}x{} images with {} channel(s) into {} classes; the data has {}x{}, {} channel(s), {} classes",
                config.image_size, config.image_size, config.in_channels, config.num_classes, train.height, train.width, train.channels, label_names.len()
            ));
        }
        Ok((Self { train, validation, test, batcher, config, label_names, source }, model))
    }

    fn split(&self, split: Split) -> &ImageSet {
        match split {
            Split::Train => &self.train,
            Split::Validation => &self.validation,
            Split::Test => &self.test,
        }
    }
}

impl Task for ImageTask {
    type Model = Cnn;

    fn data_source(&self) -> String {
        self.source.clone()
    }
    fn label_names(&self) -> &[String] {
        &self.label_names
    }
    fn len(&self, split: Split) -> usize {
        self.split(split).len()
    }
    fn label(&self, split: Split, i: usize) -> Option<usize> {
        Some(self.split(split).labels[i])
    }
    fn forward(&self, model: &Cnn, split: Split, idx: &[usize], device: &Device) -> (Tensor<2>, Tensor<1, Int>) {
        let b = self.batcher.batch(self.split(split), idx, device);
        (model.forward(b.images), b.labels)
    }
    fn unit_activations(&self, model: &Cnn, idx: &[usize], device: &Device) -> UnitActivations {
        model.unit_activations(self.batcher.batch(&self.train, idx, device).images)
    }
    fn groups(&self, _split: Split) -> Vec<(String, &[String])> {
        Vec::new()
    }
    fn load_other(&self, source: &str, key: &str, device: &Device) -> Result<Cnn, String> {
        load_cnn(source, 0.0, device).map(|(m, _)| m).map_err(|e| format!("{key}: {e}"))
    }
    fn compact(&self, model: &Cnn) -> Compacted<Cnn> {
        let (small, report) = compact(model, self.config.image_size);
        // Forward latency of the network before and after, at batch 1 and 256 (median of 7, after
        // a warm-up), on the evaluation device: what the smaller shapes buy.
        let device = model.fcs[0].weight.val().device();
        let latency = |m: &Cnn, batch: usize| -> f64 {
            let idx: Vec<usize> = (0..batch).map(|i| i % self.test.len().max(1)).collect();
            let set = if self.test.is_empty() { &self.train } else { &self.test };
            let x = self.batcher.batch(set, &idx, &device).images;
            let mut t: Vec<f64> = (0..8)
                .map(|_| {
                    let s = std::time::Instant::now();
                    let _ = m.forward(x.clone()).into_data();
                    s.elapsed().as_secs_f64() * 1e3
                })
                .skip(1)
                .collect();
            t.sort_by(|a, b| a.total_cmp(b));
            t[t.len() / 2]
        };
        let timings = serde_json::json!({
            "latency_ms_before": {"batch_1": latency(model, 1), "batch_256": latency(model, 256)},
            "latency_ms_after": {"batch_1": latency(&small, 1), "batch_256": latency(&small, 256)},
        });
        tracing::info!(
            "compacted: {} → {} parameters, {} → {} MACs per image; kept {:?}",
            report.params_before,
            report.params_after,
            report.macs_before,
            report.macs_after,
            report.kept
        );
        let config = small.config(self.config.image_size, self.config.dropout);
        let mut report = serde_json::to_value(&report).unwrap_or_default();
        if let (Some(r), Some(t)) = (report.as_object_mut(), timings.as_object()) {
            r.extend(t.clone());
        }
        Compacted { model: small, report, config: serde_json::to_value(&config).unwrap_or_default() }
    }
    fn save(&self, model: &Cnn, compacted: Option<&serde_json::Value>, out: &Path) -> Result<(), String> {
        save_safetensors(model, &out.join("model.safetensors")).map_err(|e| e.to_string())?;
        let config = match compacted {
            Some(c) => c.clone(),
            None => serde_json::to_value(&self.config).map_err(|e| e.to_string())?,
        };
        write_json(&out.join("config.json"), &config)
    }
}
