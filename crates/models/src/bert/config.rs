use serde::{Deserialize, Serialize};
use std::path::Path;

/// A BERT configuration with the field names of Hugging Face `config.json`, so that a
/// checkpoint's own config deserialises directly. Keys this project does not use
/// (`architectures`, `torch_dtype`, …) are ignored, as `transformers` ignores them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BertConfig {
    /// Size of the WordPiece vocabulary.
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Number of transformer blocks.
    pub num_hidden_layers: usize,
    /// Attention heads per block.
    pub num_attention_heads: usize,
    /// Width of the feed-forward layer.
    pub intermediate_size: usize,
    /// Activation of the feed-forward layer; only "gelu" (exact, erf) is supported.
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default = "default_dropout")]
    pub hidden_dropout_prob: f64,
    #[serde(default = "default_dropout")]
    pub attention_probs_dropout_prob: f64,
    /// Dropout before the classifier; `None` means `hidden_dropout_prob`.
    #[serde(default)]
    pub classifier_dropout: Option<f64>,
    #[serde(default = "default_positions")]
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    /// Std of the normal init of fresh weights (the classification head).
    #[serde(default = "default_init_range")]
    pub initializer_range: f64,
    #[serde(default = "default_ln_eps")]
    pub layer_norm_eps: f64,
    /// Heads removed per layer (Hugging Face's `pruned_heads`: layer index → head indices).
    /// `transformers` rebuilds the smaller Q/K/V from it when loading.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub pruned_heads: std::collections::BTreeMap<String, Vec<usize>>,
    /// Per-layer FFN widths of a compacted model (this project's key; `transformers` reads
    /// only `intermediate_size`, which is the width of every layer when all are equal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intermediate_sizes: Option<Vec<usize>>,
    /// How the classification head reads the sequence (this project's key; absent = `cls`,
    /// what `transformers`' `BertForSequenceClassification` does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classifier_pooling: Option<Pooling>,
}

/// What the classification head reads.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// `tanh(pooler.dense(h_CLS))`: Hugging Face `BertForSequenceClassification`.
    #[default]
    Cls,
    /// The mean of the last hidden states over the non-padding tokens (no pooler): how
    /// sentence-transformers checkpoints such as all-MiniLM-L6-v2 were trained to be read.
    Mean,
}

impl Pooling {
    /// The pooling a sentence-transformers checkpoint declares in `<dir>/1_Pooling/config.json`
    /// (`pooling_mode_mean_tokens` / `pooling_mode_cls_token`); `None` when the directory has
    /// no such file or it declares another mode (max, weighted …), which this head does not have.
    pub fn from_sentence_transformers(dir: &Path) -> Result<Option<Self>, String> {
        let path = dir.join("1_Pooling").join("config.json");
        if !path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", path.display()))?;
        let flag = |k: &str| v.get(k).and_then(serde_json::Value::as_bool).unwrap_or(false);
        Ok(if flag("pooling_mode_mean_tokens") {
            Some(Pooling::Mean)
        } else if flag("pooling_mode_cls_token") {
            Some(Pooling::Cls)
        } else {
            None
        })
    }
}

fn default_act() -> String { "gelu".into() }
fn default_dropout() -> f64 { 0.1 }
fn default_positions() -> usize { 512 }
fn default_type_vocab() -> usize { 2 }
fn default_init_range() -> f64 { 0.02 }
fn default_ln_eps() -> f64 { 1e-12 }

impl BertConfig {
    /// Reads a Hugging Face `config.json`; errors name the file and what is wrong.
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read model config {}: {e}", path.display()))?;
        let c: Self = serde_json::from_str(&text)
            .map_err(|e| format!("{}: not a BERT config.json: {e}", path.display()))?;
        c.validate().map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(c)
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.hidden_act != "gelu" {
            return Err(format!("field `hidden_act`: only \"gelu\" is supported, found {:?}", self.hidden_act));
        }
        if self.num_attention_heads == 0 || self.hidden_size % self.num_attention_heads != 0 {
            return Err(format!(
                "field `num_attention_heads`: {} does not divide hidden_size {}",
                self.num_attention_heads, self.hidden_size
            ));
        }
        for (layer, heads) in &self.pruned_heads {
            let i: usize = layer.parse().map_err(|_| format!("field `pruned_heads`: layer key {layer:?} is not a number"))?;
            if i >= self.num_hidden_layers || heads.iter().any(|&h| h >= self.num_attention_heads) {
                return Err(format!("field `pruned_heads`: layer {layer} heads {heads:?} out of range"));
            }
        }
        if let Some(sizes) = &self.intermediate_sizes {
            if sizes.len() != self.num_hidden_layers {
                return Err(format!("field `intermediate_sizes`: {} entries for {} layers", sizes.len(), self.num_hidden_layers));
            }
        }
        for (name, v) in [("hidden_dropout_prob", self.hidden_dropout_prob), ("attention_probs_dropout_prob", self.attention_probs_dropout_prob)] {
            if !(0.0..1.0).contains(&v) {
                return Err(format!("field `{name}`: expected a probability in [0, 1), found {v}"));
            }
        }
        Ok(())
    }

    /// A tiny configuration for tests and quick checks.
    pub fn tiny(vocab_size: usize) -> Self {
        Self {
            vocab_size,
            hidden_size: 16,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            intermediate_size: 32,
            hidden_act: default_act(),
            hidden_dropout_prob: 0.0,
            attention_probs_dropout_prob: 0.0,
            classifier_dropout: None,
            max_position_embeddings: 64,
            type_vocab_size: 2,
            initializer_range: 0.02,
            layer_norm_eps: 1e-12,
            pruned_heads: Default::default(),
            intermediate_sizes: None,
            classifier_pooling: None,
        }
    }

    /// Heads kept in layer `i` (in order), after `pruned_heads`.
    pub fn kept_heads(&self, i: usize) -> Vec<usize> {
        let pruned = self.pruned_heads.get(&i.to_string()).cloned().unwrap_or_default();
        (0..self.num_attention_heads).filter(|h| !pruned.contains(h)).collect()
    }

    /// FFN width of layer `i`.
    pub fn intermediate_size_of(&self, i: usize) -> usize {
        self.intermediate_sizes.as_ref().map_or(self.intermediate_size, |v| v[i])
    }
}
