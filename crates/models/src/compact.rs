//! Compaction: a pruned BERT whose removed heads and FFN neurons contribute exactly nothing
//! becomes a physically smaller dense BERT with the same outputs.
//!
//! A head is removed when its columns of the attention output projection are all zero (its
//! output then adds nothing, whatever Q, K and V hold); an FFN neuron when its column of the
//! output dense is all zero. Zeros are read from the effective weights `W ⊙ M`, so a masked
//! model and a model with folded masks compact alike. The kept rows of Q, K, V and of the
//! intermediate dense (weights and biases) and the kept columns of the output projections are
//! copied; everything else (embeddings, LayerNorms, pooler, head) is unchanged. Each layer keeps
//! at least one head and one neuron (if all were removed, index 0 stays, its output columns being
//! zero), so the result is exactly equivalent.

use crate::bert::{BertConfig, BertForSequenceClassification};
use crate::linear::PrunableLinear;
use burn::module::Param;
use burn::tensor::{Int, Tensor, TensorData};
use serde::Serialize;

/// What compaction kept, per layer.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CompactionReport {
    /// Heads kept per layer (indices in the original model).
    pub heads: Vec<Vec<usize>>,
    /// FFN width per layer.
    pub ffn_widths: Vec<usize>,
    pub params_before: usize,
    pub params_after: usize,
}

/// Units of `count` groups of `width` columns of `w` (`[d_out, count·width]`) that are non-zero.
fn live_column_groups(w: Tensor<2>, count: usize, width: usize) -> Vec<usize> {
    let [rows, _] = w.dims();
    let mass: Vec<f32> = w.abs().reshape([rows, count, width]).sum_dim(2).sum_dim(0).reshape([count]).to_data().convert::<f32>().try_to_vec().expect("f32");
    let mut live: Vec<usize> = (0..count).filter(|&u| mass[u] != 0.0).collect();
    if live.is_empty() {
        live.push(0);
    }
    live
}

fn index(v: &[usize], device: &burn::tensor::Device) -> Tensor<1, Int> {
    Tensor::from_data(TensorData::new(v.iter().map(|&i| i as i64).collect::<Vec<_>>(), [v.len()]), device)
}

/// A plain linear layer from the kept rows (`rows = Some`) or columns of `lin`'s effective weight.
fn slice_linear(lin: &PrunableLinear, rows: Option<&Tensor<1, Int>>, cols: Option<&Tensor<1, Int>>) -> PrunableLinear {
    let mut w = lin.effective_weight().detach();
    let mut b = lin.effective_bias().map(|b| b.detach());
    if let Some(r) = rows {
        w = w.select(0, r.clone());
        b = b.map(|b| b.select(0, r.clone()));
    }
    if let Some(c) = cols {
        w = w.select(1, c.clone());
    }
    PrunableLinear { weight: Param::from_tensor(w), bias: b.map(Param::from_tensor), mask_scores: None, mask: None, in_gate: None, out_gate: None }
}

fn count_params(model: &BertForSequenceClassification) -> usize {
    burn::module::Module::num_params(model)
}

/// The compacted model and its configuration (`pruned_heads` in original head indices, as
/// `transformers` expects, and `intermediate_sizes` when FFN widths differ between layers).
pub fn compact(model: &BertForSequenceClassification, config: &BertConfig) -> (BertForSequenceClassification, BertConfig, CompactionReport) {
    let params_before = count_params(model);
    let mut out = model.clone();
    let mut new_config = config.clone();
    new_config.pruned_heads.clear();
    let (mut heads_report, mut widths) = (Vec::new(), Vec::new());
    for (i, layer) in out.bert.encoder.layer.iter_mut().enumerate() {
        let (heads, neurons) = compact_layer(layer);
        // Head indices of this model → indices of the original checkpoint.
        let original = config.kept_heads(i);
        let kept_original: Vec<usize> = heads.iter().map(|&u| original[u]).collect();
        let removed: Vec<usize> = (0..config.num_attention_heads).filter(|h| !kept_original.contains(h)).collect();
        if !removed.is_empty() {
            new_config.pruned_heads.insert(i.to_string(), removed);
        }
        heads_report.push(kept_original);
        widths.push(neurons.len());
    }
    if widths.iter().all(|&w| w == widths[0]) {
        new_config.intermediate_size = widths[0];
        new_config.intermediate_sizes = None;
    } else {
        new_config.intermediate_sizes = Some(widths.clone());
    }
    let params_after = count_params(&out);
    (out, new_config, CompactionReport { heads: heads_report, ffn_widths: widths, params_before, params_after })
}

/// Cuts one encoder layer down to its live heads (non-zero columns of the attention output)
/// and live FFN neurons (non-zero columns of the output dense); returns the kept head and
/// neuron indices (of this layer as it was).
pub(crate) fn compact_layer(layer: &mut crate::bert::BertLayer) -> (Vec<usize>, Vec<usize>) {
    {
        let device = layer.output.dense.weight.val().device();
        let (h, d) = (layer.attention.self_.num_heads, layer.attention.self_.head_dim);
        let heads = live_column_groups(layer.attention.output.dense.effective_weight(), h, d);
        let ffn = layer.output.dense.dims()[1];
        let neurons = live_column_groups(layer.output.dense.effective_weight(), ffn, 1);

        let head_idx: Vec<usize> = heads.iter().flat_map(|&u| u * d..(u + 1) * d).collect();
        let head_idx = index(&head_idx, &device);
        let s = &mut layer.attention.self_;
        s.query = slice_linear(&s.query, Some(&head_idx), None);
        s.key = slice_linear(&s.key, Some(&head_idx), None);
        s.value = slice_linear(&s.value, Some(&head_idx), None);
        s.num_heads = heads.len();
        layer.attention.output.dense = slice_linear(&layer.attention.output.dense, None, Some(&head_idx));
        let neuron_idx = index(&neurons, &device);
        layer.intermediate.dense = slice_linear(&layer.intermediate.dense, Some(&neuron_idx), None);
        layer.output.dense = slice_linear(&layer.output.dense, None, Some(&neuron_idx));
        (heads, neurons)
    }
}
