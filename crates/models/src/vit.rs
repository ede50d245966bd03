//! A small Vision Transformer: the image cut into `patch × patch` patches, each projected to the
//! hidden size, a learned CLS token and learned position embeddings in front, then the encoder
//! blocks BERT already has ([`BertLayer`]: post-LayerNorm, exact GELU), and a linear classifier
//! on the CLS token. Its heads and FFN neurons are the prunable units, declared as BERT's
//! ([`crate::bert::encoder_unit_groups`]), so head and neuron pruning apply unchanged and a
//! structured run compacts it as BERT's layers are ([`crate::compact::compact_layer`]).
//!
//! The patch projection and the classifier are not among the prunable matrices (as BERT's
//! embeddings and head are not).

use crate::bert::{BertConfig, BertLayer};
use crate::init::HostRng;
use crate::layers::Dropout;
use crate::linear::{InputStats, PrunableLinear, PrunableModel, PrunerParams, UnitActivations, UnitGroup};
use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

fn d28() -> usize {
    28
}
fn d1() -> usize {
    1
}
fn d4() -> usize {
    4
}
fn d10() -> usize {
    10
}

/// Shapes of a [`Vit`]; after compaction, `pruned_heads` and `intermediate_sizes` as in
/// [`BertConfig`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VitConfig {
    #[serde(default = "d28")]
    pub image_size: usize,
    #[serde(default = "d1")]
    pub in_channels: usize,
    #[serde(default = "d4")]
    pub patch_size: usize,
    pub hidden_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "d10")]
    pub num_classes: usize,
    #[serde(default)]
    pub dropout: f64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pruned_heads: BTreeMap<String, Vec<usize>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intermediate_sizes: Option<Vec<usize>>,
}

impl VitConfig {
    /// Checks the shapes; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.patch_size == 0 || self.image_size % self.patch_size != 0 {
            return Err(format!("field `patch_size`: {} does not divide the {}-pixel image", self.patch_size, self.image_size));
        }
        if self.num_heads == 0 || self.hidden_size % self.num_heads != 0 {
            return Err(format!("field `num_heads`: {} does not divide hidden_size {}", self.num_heads, self.hidden_size));
        }
        if self.num_layers == 0 || self.intermediate_size == 0 {
            return Err("fields `num_layers` and `intermediate_size`: at least 1".into());
        }
        Ok(())
    }

    pub fn num_patches(&self) -> usize {
        (self.image_size / self.patch_size).pow(2)
    }

    /// The encoder's configuration, as BERT's layers read it.
    pub fn encoder(&self) -> BertConfig {
        let mut c: BertConfig = serde_json::from_value(serde_json::json!({
            "vocab_size": 1,
            "hidden_size": self.hidden_size,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads,
            "intermediate_size": self.intermediate_size,
            "hidden_dropout_prob": self.dropout,
            "attention_probs_dropout_prob": self.dropout,
        }))
        .expect("a valid encoder configuration");
        c.pruned_heads = self.pruned_heads.clone();
        c.intermediate_sizes = self.intermediate_sizes.clone();
        c
    }
}

#[derive(Module, Debug)]
pub struct Vit {
    /// `[hidden, channels·patch·patch]`.
    pub patch: PrunableLinear,
    pub cls_token: Param<Tensor<1>>,
    /// `[1 + patches, hidden]`.
    pub position: Param<Tensor<2>>,
    pub layers: Vec<BertLayer>,
    pub head: PrunableLinear,
    pub patch_size: usize,
    pub dropout: Dropout,
    pub pruner_params: Option<PrunerParams>,
}

impl Vit {
    /// Weights ~ N(0, 0.02²) (BERT's initialiser), drawn on the host from `seed`.
    pub fn new(c: &VitConfig, seed: u64, device: &Device) -> Self {
        let mut rng = HostRng::new(seed ^ 0x7669_745F_696E_6974);
        let enc = c.encoder();
        let p2 = c.in_channels * c.patch_size * c.patch_size;
        let patch = PrunableLinear::new(p2, c.hidden_size, 0.02, &mut rng, device);
        let cls_token = Param::from_tensor(rng.normal_matrix(1, c.hidden_size, 0.02, device).reshape([c.hidden_size]));
        let position = Param::from_tensor(rng.normal_matrix(1 + c.num_patches(), c.hidden_size, 0.02, device));
        let layers = (0..c.num_layers).map(|i| BertLayer::new(&enc, i, &mut rng, device)).collect();
        let head = PrunableLinear::new(c.hidden_size, c.num_classes, 0.02, &mut rng, device);
        Self { patch, cls_token, position, layers, head, patch_size: c.patch_size, dropout: Dropout::new(c.dropout), pruner_params: None }
    }

    /// Patches, projected, with CLS and positions: `[batch, 1 + patches, hidden]`.
    fn embed(&self, x: Tensor<4>) -> Tensor<3> {
        let [b, c, h, w] = x.dims();
        let p = self.patch_size;
        let (gh, gw) = (h / p, w / p);
        let patches = x.reshape([b, c, gh, p, gw, p]).permute([0, 2, 4, 1, 3, 5]).reshape([b, gh * gw, c * p * p]);
        let tokens = self.patch.forward(patches);
        let hid = tokens.dims()[2];
        let cls = self.cls_token.val().reshape([1, 1, hid]).expand([b, 1, hid]);
        let x = Tensor::cat(vec![cls, tokens], 1) + self.position.val().unsqueeze_dim::<3>(0);
        self.dropout.forward(x)
    }

    fn no_mask(x: &Tensor<3>) -> Tensor<4> {
        let [b, n, _] = x.dims();
        Tensor::zeros([b, 1, 1, n], &x.device())
    }

    fn classify(&self, h: Tensor<3>) -> Tensor<2> {
        let [b, _, hid] = h.dims();
        self.head.forward(h.slice([0..b, 0..1, 0..hid]).reshape([b, hid]))
    }

    /// The classifier's input (the final class-token row) `[batch, hidden]`, and the logits.
    pub fn forward_features(&self, x: Tensor<4>) -> (Tensor<2>, Tensor<2>) {
        let mut h = self.embed(x);
        let mask = Self::no_mask(&h);
        for layer in &self.layers {
            h = layer.forward(h, mask.clone());
        }
        let [b, _, hid] = h.dims();
        let cls = h.slice([0..b, 0..1, 0..hid]).reshape([b, hid]);
        (cls.clone(), self.head.forward(cls))
    }

    /// # Shapes
    /// - x: `[batch, channels, height, width]`
    /// - output: logits `[batch, classes]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let mut h = self.embed(x);
        let mask = Self::no_mask(&h);
        for layer in &self.layers {
            h = layer.forward(h, mask.clone());
        }
        self.classify(h)
    }

    /// The units' activations at every token (heads: their context; neurons: after GELU), the
    /// logits, and the inputs of every prunable matrix, as BERT's `unit_activations`.
    pub fn unit_activations(&self, x: Tensor<4>) -> UnitActivations {
        let [b, ..] = x.dims();
        let mut h = self.embed(x);
        let mask = Self::no_mask(&h);
        let [_, n, _] = h.dims();
        let rows = |t: Tensor<3>| {
            let [_, _, w] = t.dims();
            t.reshape([b * n, w])
        };
        let (mut groups, mut inputs) = (Vec::new(), Vec::new());
        for layer in &self.layers {
            let block_in = InputStats::of(rows(h.clone()));
            let (out, heads, attended, neurons) = layer.forward_inputs(h, mask.clone());
            let (heads, neurons) = (rows(heads), rows(neurons));
            inputs.extend([block_in.clone(), block_in.clone(), block_in]);
            inputs.push(InputStats::of(heads.clone()));
            inputs.push(InputStats::of(rows(attended)));
            inputs.push(InputStats::of(neurons.clone()));
            groups.extend([heads, neurons]);
            h = out;
        }
        UnitActivations { groups, cls_rows: (0..b).map(|i| i * n).collect(), output: self.classify(h), inputs }
    }
}

impl PrunableModel for Vit {
    fn prunable_layers(&self) -> Vec<(String, &PrunableLinear)> {
        let mut out = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            for (name, lin) in layer.prunable() {
                out.push((format!("layers.{i}.{name}"), lin));
            }
        }
        out
    }
    fn prunable_layers_mut(&mut self) -> Vec<(String, &mut PrunableLinear)> {
        let mut out = Vec::new();
        for (i, layer) in self.layers.iter_mut().enumerate() {
            for (name, lin) in layer.prunable_mut() {
                out.push((format!("layers.{i}.{name}"), lin));
            }
        }
        out
    }
    fn unit_groups(&self) -> Vec<UnitGroup> {
        crate::bert::encoder_unit_groups(&self.layers, "layers")
    }
    fn pruner_params(&self) -> Option<&PrunerParams> {
        self.pruner_params.as_ref()
    }
    fn pruner_params_slot(&mut self) -> Option<&mut Option<PrunerParams>> {
        Some(&mut self.pruner_params)
    }
    /// Every encoder matrix runs once per token.
    fn uses_per_example(&self) -> Vec<usize> {
        let tokens = self.position.val().dims()[0];
        vec![tokens; self.prunable_layers().len()]
    }
}

/// What ViT compaction kept, per layer.
#[derive(Debug, Clone, Serialize)]
pub struct VitCompaction {
    /// Kept heads per layer, in the indices of the configuration the model was built from.
    pub heads: Vec<Vec<usize>>,
    pub ffn_widths: Vec<usize>,
    pub params_before: usize,
    pub params_after: usize,
}

/// Cuts every layer down to its live heads and FFN neurons (see
/// [`crate::compact::compact_layer`]); the same outputs, fewer parameters; the configuration
/// records the shapes.
pub fn compact(model: &Vit, config: &VitConfig) -> (Vit, VitConfig, VitCompaction) {
    let params_before = model.num_params();
    let mut out = model.clone();
    let mut c = config.clone();
    c.pruned_heads.clear();
    let enc = config.encoder();
    let (mut heads, mut widths) = (Vec::new(), Vec::new());
    for (i, layer) in out.layers.iter_mut().enumerate() {
        let (h, n) = crate::compact::compact_layer(layer);
        let original = enc.kept_heads(i);
        let kept: Vec<usize> = h.iter().map(|&u| original[u]).collect();
        let removed: Vec<usize> = (0..config.num_heads).filter(|x| !kept.contains(x)).collect();
        if !removed.is_empty() {
            c.pruned_heads.insert(i.to_string(), removed);
        }
        heads.push(kept);
        widths.push(n.len());
    }
    c.intermediate_sizes = if widths.iter().all(|&w| w == config.intermediate_size) { None } else { Some(widths.clone()) };
    out.pruner_params = None;
    let params_after = out.num_params();
    (out, c, VitCompaction { heads, ffn_widths: widths, params_before, params_after })
}
