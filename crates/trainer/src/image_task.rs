//! An image model (the ConvNet, the ViT) on grey images (Fashion-MNIST, MNIST 5k): images kept
//! as bytes, batched as a normalised `[batch, 1, 28, 28]` tensor. The task is written once over
//! [`ImageModel`]; each model family says how it is built, run, compacted and saved.

use crate::experiment::{DataSection, Experiment, ImageSection};
use crate::report::write_json;
use crate::task::{Compacted, Split, Task};
use burn::tensor::{Device, Int, Tensor};
use datasets::images::{ImageBatcher, ImageSet};
use models::checkpoint::{load_safetensors, save_safetensors};
use models::cnn::{compact, load_digit_recognizer, Cnn, CnnConfig};
use models::vit::{Vit, VitConfig};
use models::{PrunableModel, UnitActivations};
use std::path::Path;

/// `model.source` naming the pretrained MNIST CNN of PyPI `digit-recognizer-py`.
pub const DIGIT_RECOGNIZER: &str = "digit-recognizer";

/// What the image task needs from a model family.
pub trait ImageModel: burn::module::Module + PrunableModel + Clone + Send + std::fmt::Debug + 'static {
    fn logits(&self, x: Tensor<4>) -> Tensor<2>;
    /// The classifier's input and the logits.
    fn features(&self, x: Tensor<4>) -> (Tensor<2>, Tensor<2>);
    fn activations(&self, x: Tensor<4>) -> UnitActivations;
    /// The compacted model, what was kept (JSON), and the configuration to save with it;
    /// `config` is the model's configuration before.
    fn compacted(&self, config: &serde_json::Value) -> (Self, serde_json::Value, serde_json::Value);
    /// Loads a directory this task saved (config.json + model.safetensors).
    fn load_dir(dir: &Path, device: &Device) -> Result<(Self, serde_json::Value), String>;
}

impl ImageModel for Cnn {
    fn logits(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward(x)
    }
    fn features(&self, x: Tensor<4>) -> (Tensor<2>, Tensor<2>) {
        self.forward_features(x)
    }
    fn activations(&self, x: Tensor<4>) -> UnitActivations {
        self.unit_activations(x)
    }
    fn compacted(&self, config: &serde_json::Value) -> (Self, serde_json::Value, serde_json::Value) {
        let dropout = config["dropout"].as_f64().unwrap_or(0.0);
        let (small, report) = compact(self, self.image_size);
        let c = small.config(self.image_size, dropout);
        (small, serde_json::to_value(&report).unwrap_or_default(), serde_json::to_value(&c).unwrap_or_default())
    }
    fn load_dir(dir: &Path, device: &Device) -> Result<(Self, serde_json::Value), String> {
        let config: CnnConfig = read_config(dir, CnnConfig::validate)?;
        let model = load_weights(Cnn::new(&config, 0, device), dir)?;
        Ok((model, serde_json::to_value(&config).unwrap_or_default()))
    }
}

impl ImageModel for Vit {
    fn logits(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward(x)
    }
    fn features(&self, x: Tensor<4>) -> (Tensor<2>, Tensor<2>) {
        self.forward_features(x)
    }
    fn activations(&self, x: Tensor<4>) -> UnitActivations {
        self.unit_activations(x)
    }
    fn compacted(&self, config: &serde_json::Value) -> (Self, serde_json::Value, serde_json::Value) {
        let c: VitConfig = serde_json::from_value(config.clone()).expect("the task's own ViT configuration");
        let (small, c, report) = models::vit::compact(self, &c);
        (small, serde_json::to_value(&report).unwrap_or_default(), serde_json::to_value(&c).unwrap_or_default())
    }
    fn load_dir(dir: &Path, device: &Device) -> Result<(Self, serde_json::Value), String> {
        let config: VitConfig = read_config(dir, VitConfig::validate)?;
        let model = load_weights(Vit::new(&config, 0, device), dir)?;
        Ok((model, serde_json::to_value(&config).unwrap_or_default()))
    }
}

/// A saved run's `config.json`, parsed and checked; errors name the file.
fn read_config<C: serde::de::DeserializeOwned>(dir: &Path, validate: fn(&C) -> Result<(), String>) -> Result<C, String> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let config: C = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    validate(&config).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(config)
}

fn load_weights<M: burn::module::Module>(model: M, dir: &Path) -> Result<M, String> {
    let (model, report) = load_safetensors(model, &dir.join("model.safetensors")).map_err(|e| e.to_string())?;
    if !report.missing.is_empty() {
        return Err(format!("{}: tensors missing: {}", dir.join("model.safetensors").display(), report.missing.join(", ")));
    }
    Ok(model)
}

pub struct ImageTask<M: ImageModel> {
    pub train: ImageSet,
    pub validation: ImageSet,
    pub test: ImageSet,
    pub batcher: ImageBatcher,
    /// The model's configuration (`CnnConfig` or `VitConfig`), as saved.
    pub config: serde_json::Value,
    pub label_names: Vec<String>,
    pub source: String,
    _model: std::marker::PhantomData<M>,
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
        let (model, config) = Cnn::load_dir(Path::new(source), device)?;
        (model, serde_json::from_value(config).map_err(|e| format!("{source}: {e}"))?)
    };
    model_and_config.1.dropout = dropout;
    model_and_config.0.dropout = models::layers::Dropout::new(dropout);
    Ok(model_and_config)
}

/// The data and a CNN (built from `[model]` or loaded from `model.source`).
pub fn load_cnn_task(exp: &Experiment, device: &Device) -> Result<(ImageTask<Cnn>, Cnn), String> {
    let mut task = ImageTask::<Cnn>::with_data(exp)?;
    let (train, label_names) = (&task.train, &task.label_names);
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
    task.set_config("CNN", (config.image_size, config.in_channels, config.num_classes), &config)?;
    Ok((task, model))
}

/// The data and a ViT (built from `[model.vit]` or loaded from `model.source`, a directory this
/// task saved).
pub fn load_vit_task(exp: &Experiment, device: &Device) -> Result<(ImageTask<Vit>, Vit), String> {
    let mut task = ImageTask::<Vit>::with_data(exp)?;
    let (train, label_names) = (&task.train, &task.label_names);
    let m = &exp.model;
    let (model, config) = if m.source.trim().is_empty() {
        let v = m.vit.clone().unwrap_or_else(|| toml::from_str("").expect("defaults"));
        let c = VitConfig {
            image_size: train.height,
            in_channels: train.channels,
            patch_size: v.patch_size,
            hidden_size: v.hidden_size,
            num_layers: v.num_layers,
            num_heads: v.num_heads,
            intermediate_size: v.intermediate_size,
            num_classes: label_names.len(),
            dropout: m.dropout,
            pruned_heads: Default::default(),
            intermediate_sizes: None,
        };
        c.validate().map_err(|e| format!("model.vit: {e}"))?;
        let model = Vit::new(&c, exp.seed, device);
        tracing::info!("ViT: {} patches of {}x{}, {} layers x {} heads, hidden {}, FFN {}; {} parameters, randomly initialised", c.num_patches(), c.patch_size, c.patch_size, c.num_layers, c.num_heads, c.hidden_size, c.intermediate_size, burn::module::Module::num_params(&model));
        (model, c)
    } else {
        let (model, c) = Vit::load_dir(Path::new(m.source.trim()), device).map_err(|e| format!("model.source: {e}"))?;
        (model, serde_json::from_value::<VitConfig>(c).map_err(|e| format!("model.source: {e}"))?)
    };
    task.set_config("ViT", (config.image_size, config.in_channels, config.num_classes), &config)?;
    Ok((task, model))
}

impl<M: ImageModel> ImageTask<M> {
    /// The experiment's data, with no model configuration yet.
    fn with_data(exp: &Experiment) -> Result<Self, String> {
        let (train, validation, test, batcher, label_names, source) = load_data(&exp.data)?;
        tracing::info!("data: {source} ({} train / {} validation / {} test)", train.len(), validation.len(), test.len());
        let config = serde_json::Value::Null;
        Ok(Self { train, validation, test, batcher, config, label_names, source, _model: std::marker::PhantomData })
    }

    /// Records the model's configuration after checking that its input (side, channels) and its
    /// classes fit the data.
    fn set_config(&mut self, what: &str, (side, channels, classes): (usize, usize, usize), config: &impl serde::Serialize) -> Result<(), String> {
        let t = &self.train;
        if side != t.height || side != t.width || channels != t.channels || classes != self.label_names.len() {
            return Err(format!(
                "model.source: the {what} takes {side}x{side} images with {channels} channel(s) into {classes} classes; the data has {}x{}, {} channel(s), {} classes",
                t.height,
                t.width,
                t.channels,
                self.label_names.len()
            ));
        }
        self.config = serde_json::to_value(config).map_err(|e| e.to_string())?;
        Ok(())
    }

    fn split(&self, split: Split) -> &ImageSet {
        match split {
            Split::Train => &self.train,
            Split::Validation => &self.validation,
            Split::Test => &self.test,
        }
    }
}

impl<M: ImageModel> Task for ImageTask<M> {
    type Model = M;

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
    fn forward(&self, model: &M, split: Split, idx: &[usize], device: &Device) -> (Tensor<2>, Tensor<1, Int>) {
        let b = self.batcher.batch(self.split(split), idx, device);
        (model.logits(b.images), b.labels)
    }
    fn forward_features(&self, model: &M, split: Split, idx: &[usize], device: &Device) -> (Tensor<2>, Tensor<2>, Tensor<1, Int>) {
        let b = self.batcher.batch(self.split(split), idx, device);
        let (f, l) = model.features(b.images);
        (f, l, b.labels)
    }
    fn unit_activations(&self, model: &M, idx: &[usize], device: &Device) -> UnitActivations {
        model.activations(self.batcher.batch(&self.train, idx, device).images)
    }
    fn groups(&self, _split: Split) -> Vec<(String, &[String])> {
        Vec::new()
    }
    fn load_other(&self, source: &str, key: &str, device: &Device) -> Result<M, String> {
        M::load_dir(Path::new(source), device).map(|(m, _)| m).map_err(|e| format!("{key}: {e}"))
    }
    fn compact(&self, model: &M) -> Compacted<M> {
        let (small, report, config) = model.compacted(&self.config);
        // Forward latency of the network before and after, at batch 1 and 256 (median of 7, after
        // a warm-up), on the evaluation device: what the smaller shapes buy.
        let device = model.prunable_layers()[0].1.weight.val().device();
        let latency = |m: &M, batch: usize| -> f64 {
            let idx: Vec<usize> = (0..batch).map(|i| i % self.test.len().max(1)).collect();
            let set = if self.test.is_empty() { &self.train } else { &self.test };
            let x = self.batcher.batch(set, &idx, &device).images;
            let mut t: Vec<f64> = (0..8)
                .map(|_| {
                    let s = std::time::Instant::now();
                    let _ = m.logits(x.clone()).into_data();
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
        tracing::info!("compacted: {report}");
        let mut report = report;
        if let (Some(r), Some(t)) = (report.as_object_mut(), timings.as_object()) {
            r.extend(t.clone());
        }
        Compacted { model: small, report, config }
    }
    fn save(&self, model: &M, compacted: Option<&serde_json::Value>, out: &Path) -> Result<(), String> {
        save_safetensors(model, &out.join("model.safetensors")).map_err(|e| e.to_string())?;
        let config = compacted.cloned().unwrap_or_else(|| self.config.clone());
        write_json(&out.join("config.json"), &config)
    }
}
