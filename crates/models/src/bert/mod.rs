//! BERT encoder and sequence-classification head, in data-flow order, with Hugging Face
//! module names (`embeddings.word_embeddings`, `encoder.layer.N.attention.self.query`, …) so
//! that a `model.safetensors` written by `transformers` loads by name.
//!
//! Rust has no field called `self`, so `attention.self` is the field `self_`; the checkpoint
//! code maps one name to the other.

#![allow(non_snake_case)] // `LayerNorm` is the Hugging Face field name.

mod config;
pub use config::{BertConfig, Pooling};

use burn::module::Module;
use burn::tensor::activation::tanh;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Device, Int, Tensor};

use crate::init::HostRng;
use crate::layers::{Dropout, Embedding, LayerNorm};
use crate::linear::{Member, PrunableLinear, PrunableModel, UnitGroup, UnitKind};

/// GELU (exact, erf) with its exact gradient on every backend, as `torch.nn.functional.gelu`:
/// see [`crate::fused::gelu`].
pub use crate::fused::gelu as gelu_exact;

/// Word + position + token-type embeddings, then LayerNorm and dropout.
#[derive(Module, Debug)]
#[allow(non_snake_case)]
pub struct BertEmbeddings {
    pub word_embeddings: Embedding,
    pub position_embeddings: Embedding,
    pub token_type_embeddings: Embedding,
    pub LayerNorm: LayerNorm,
    pub dropout: Dropout,
}

impl BertEmbeddings {
    fn new(c: &BertConfig, rng: &mut HostRng, device: &Device) -> Self {
        let std = c.initializer_range;
        Self {
            word_embeddings: Embedding::new(c.vocab_size, c.hidden_size, std, rng, device),
            position_embeddings: Embedding::new(c.max_position_embeddings, c.hidden_size, std, rng, device),
            token_type_embeddings: Embedding::new(c.type_vocab_size, c.hidden_size, std, rng, device),
            LayerNorm: LayerNorm::new(c.hidden_size, c.layer_norm_eps, device),
            dropout: Dropout::new(c.hidden_dropout_prob),
        }
    }

    /// `[batch, seq]` ids → `[batch, seq, hidden]`.
    fn forward(&self, input_ids: Tensor<2, Int>, token_type_ids: Tensor<2, Int>) -> Tensor<3> {
        let [batch, seq] = input_ids.dims();
        let device = input_ids.device();
        let positions = Tensor::<1, Int>::arange(0..seq as i64, &device)
            .reshape([1, seq])
            .expand([batch, seq]);
        let x = self.word_embeddings.forward(input_ids)
            + self.position_embeddings.forward(positions)
            + self.token_type_embeddings.forward(token_type_ids);
        self.dropout.forward(self.LayerNorm.forward(x))
    }
}

/// Multi-head self-attention projections. Heads are kept as `num_heads` × `head_dim`
/// (not `hidden_size`), so a structurally pruned layer with fewer heads is representable.
#[derive(Module, Debug)]
pub struct BertSelfAttention {
    pub query: PrunableLinear,
    pub key: PrunableLinear,
    pub value: PrunableLinear,
    pub dropout: Dropout,
    pub num_heads: usize,
    pub head_dim: usize,
}

impl BertSelfAttention {
    /// # Shapes
    /// - x: `[batch, seq, hidden]`, mask_bias: `[batch, 1, 1, seq]`
    /// - output: `[batch, seq, num_heads * head_dim]`
    /// Each head's context vectors, `[batch, seq, num_heads, head_dim]`.
    fn forward_heads(&self, x: Tensor<3>, mask_bias: Tensor<4>) -> Tensor<4> {
        let [batch, seq, _] = x.dims();
        let (h, d) = (self.num_heads, self.head_dim);
        let split = |t: Tensor<3>| t.reshape([batch, seq, h, d]).swap_dims(1, 2); // [b, h, seq, d]
        let q = split(self.query.forward(x.clone()));
        let k = split(self.key.forward(x.clone()));
        let v = split(self.value.forward(x.clone()));
        let context = if x.device().is_autodiff() || crate::fused::has_softmax_kernel(&x.device()) {
            // Training: explicit, so that dropout acts on the attention probabilities. The
            // 1/√d scale goes on q ([b, h, seq, d]), not on the 4x larger scores, forward and back.
            // Inference on flex/ndarray too: two gemm products around the one-pass softmax are
            // faster than flex's `attention` (a naive loop): MiniLM at 32 × 128, one thread,
            // 1.50–1.58 s → 1.17–1.26 s; at 1 × 128, 59–76 → 46–48 ms (issue 22, under load).
            let scores = (q / (d as f64).sqrt()).matmul(k.swap_dims(2, 3)) + mask_bias; // [b, h, seq, seq]
            let probs = self.dropout.forward(crate::fused::softmax_last(scores));
            probs.matmul(v)
        } else {
            // Inference elsewhere: the backend's fused attention (same formula, no dropout).
            let bias = mask_bias.expand([batch, h, seq, seq]);
            attention(q, k, v, None, Some(bias), AttentionModuleOptions { scale: Some(1.0 / (d as f64).sqrt()), softcap: None, is_causal: false })
        };
        context.swap_dims(1, 2) // [b, seq, h, d]
    }
}

/// Projection back to the hidden size + residual + LayerNorm (used after attention and FFN).
#[derive(Module, Debug)]
#[allow(non_snake_case)]
pub struct BertResidualOutput {
    pub dense: PrunableLinear,
    pub LayerNorm: LayerNorm,
    pub dropout: Dropout,
}

impl BertResidualOutput {
    fn forward(&self, x: Tensor<3>, residual: Tensor<3>) -> Tensor<3> {
        self.LayerNorm.forward(self.dropout.forward(self.dense.forward(x)) + residual)
    }
}

#[derive(Module, Debug)]
pub struct BertAttention {
    /// `attention.self` in Hugging Face names.
    pub self_: BertSelfAttention,
    pub output: BertResidualOutput,
}

#[derive(Module, Debug)]
pub struct BertIntermediate {
    pub dense: PrunableLinear,
}

/// One transformer block: attention, then the feed-forward network.
#[derive(Module, Debug)]
pub struct BertLayer {
    pub attention: BertAttention,
    pub intermediate: BertIntermediate,
    pub output: BertResidualOutput,
}

impl BertLayer {
    /// Layer `i` of `c`, with its own head count and FFN width (compacted models).
    pub(crate) fn new(c: &BertConfig, i: usize, rng: &mut HostRng, device: &Device) -> Self {
        let (hid, std) = (c.hidden_size, c.initializer_range);
        let head_dim = hid / c.num_attention_heads;
        let num_heads = c.kept_heads(i).len();
        let ffn = c.intermediate_size_of(i);
        let attn = num_heads * head_dim;
        let residual = |d_in, rng: &mut HostRng| BertResidualOutput {
            dense: PrunableLinear::new(d_in, hid, std, rng, device),
            LayerNorm: LayerNorm::new(hid, c.layer_norm_eps, device),
            dropout: Dropout::new(c.hidden_dropout_prob),
        };
        // Drawn in the order of the fields (query, key, value, attention output, FFN in, out).
        let self_ = BertSelfAttention {
            query: PrunableLinear::new(hid, attn, std, rng, device),
            key: PrunableLinear::new(hid, attn, std, rng, device),
            value: PrunableLinear::new(hid, attn, std, rng, device),
            dropout: Dropout::new(c.attention_probs_dropout_prob),
            num_heads,
            head_dim,
        };
        let attention = BertAttention { self_, output: residual(attn, rng) };
        let intermediate = BertIntermediate { dense: PrunableLinear::new(hid, ffn, std, rng, device) };
        Self { attention, intermediate, output: residual(ffn, rng) }
    }

    pub(crate) fn forward(&self, x: Tensor<3>, mask_bias: Tensor<4>) -> Tensor<3> {
        // The training path: no copies kept for calibration (see `forward_inputs`).
        let [batch, seq, _] = x.dims();
        let s = &self.attention.self_;
        let context = s.forward_heads(x.clone(), mask_bias).reshape([batch, seq, s.num_heads * s.head_dim]);
        let x = self.attention.output.forward(context, x);
        let h = gelu_exact(self.intermediate.dense.forward(x.clone()));
        self.output.forward(h, x)
    }

    /// The block's output and the inputs of its prunable matrices: the heads' context (input of
    /// the attention output dense), the attention block's output (input of the FFN), and the FFN
    /// neurons after GELU (input of the FFN output dense). Q, K and V read the block's input.
    pub(crate) fn forward_inputs(&self, x: Tensor<3>, mask_bias: Tensor<4>) -> (Tensor<3>, Tensor<3>, Tensor<3>, Tensor<3>) {
        let [batch, seq, _] = x.dims();
        let s = &self.attention.self_;
        let context = s.forward_heads(x.clone(), mask_bias).reshape([batch, seq, s.num_heads * s.head_dim]);
        let x = self.attention.output.forward(context.clone(), x);
        let h = gelu_exact(self.intermediate.dense.forward(x.clone())); // [b, seq, ffn]
        (self.output.forward(h.clone(), x.clone()), context, x, h)
    }

    /// The six prunable matrices of the block, with their Hugging Face names.
    pub(crate) fn prunable(&self) -> [(&'static str, &PrunableLinear); 6] {
        [
            ("attention.self.query", &self.attention.self_.query),
            ("attention.self.key", &self.attention.self_.key),
            ("attention.self.value", &self.attention.self_.value),
            ("attention.output.dense", &self.attention.output.dense),
            ("intermediate.dense", &self.intermediate.dense),
            ("output.dense", &self.output.dense),
        ]
    }

    pub(crate) fn prunable_mut(&mut self) -> [(&'static str, &mut PrunableLinear); 6] {
        let s = &mut self.attention.self_;
        [
            ("attention.self.query", &mut s.query),
            ("attention.self.key", &mut s.key),
            ("attention.self.value", &mut s.value),
            ("attention.output.dense", &mut self.attention.output.dense),
            ("intermediate.dense", &mut self.intermediate.dense),
            ("output.dense", &mut self.output.dense),
        ]
    }
}

#[derive(Module, Debug)]
pub struct BertEncoder {
    pub layer: Vec<BertLayer>,
}

#[derive(Module, Debug)]
pub struct BertPooler {
    pub dense: PrunableLinear,
}

/// The bare encoder (`BertModel` in `transformers`).
#[derive(Module, Debug)]
pub struct BertModel {
    pub embeddings: BertEmbeddings,
    pub encoder: BertEncoder,
    pub pooler: BertPooler,
}

/// What the encoder computes for a batch.
pub struct BertOutputs {
    /// `[batch, seq, hidden]`.
    pub last_hidden_state: Tensor<3>,
    /// tanh(dense(CLS)), `[batch, hidden]`.
    pub pooler_output: Tensor<2>,
    /// Embedding output then each layer's output (only when asked for).
    pub hidden_states: Vec<Tensor<3>>,
}

impl BertModel {
    /// Initialised like Hugging Face's `BertModel` (weights ~ N(0, initializer_range²), biases
    /// 0, LayerNorm 1 and 0), drawn on the host from `seed`: the same seed gives the same
    /// model on every backend, whatever else the process draws meanwhile.
    pub fn new(c: &BertConfig, seed: u64, device: &Device) -> Self {
        let rng = &mut HostRng::new(seed ^ 0x6265_7274_5F69_6E69);
        let embeddings = BertEmbeddings::new(c, rng, device);
        let layer = (0..c.num_hidden_layers).map(|i| BertLayer::new(c, i, rng, device)).collect();
        Self {
            embeddings,
            encoder: BertEncoder { layer },
            pooler: BertPooler {
                dense: PrunableLinear::new(c.hidden_size, c.hidden_size, c.initializer_range, rng, device),
            },
        }
    }

    /// # Shapes
    /// - input_ids, token_type_ids, attention_mask: `[batch, seq]` (mask: 1 = token, 0 = padding)
    pub fn forward(
        &self,
        input_ids: Tensor<2, Int>,
        token_type_ids: Tensor<2, Int>,
        attention_mask: Tensor<2, Int>,
        keep_hidden_states: bool,
    ) -> BertOutputs {
        let [batch, seq] = input_ids.dims();
        // 0 where attended, a large negative number at padding: [batch, 1, 1, seq].
        let mask_bias = (attention_mask.float().neg() + 1.0).reshape([batch, 1, 1, seq]) * -1.0e9;
        let mut x = self.embeddings.forward(input_ids, token_type_ids);
        let mut hidden_states = Vec::new();
        for layer in &self.encoder.layer {
            if keep_hidden_states {
                hidden_states.push(x.clone());
            }
            x = layer.forward(x, mask_bias.clone());
        }
        if keep_hidden_states {
            hidden_states.push(x.clone());
        }
        let [_, _, hidden] = x.dims();
        let cls = x.clone().slice([0..batch, 0..1, 0..hidden]).reshape([batch, hidden]);
        let pooler_output = tanh(self.pooler.dense.forward(cls));
        BertOutputs { last_hidden_state: x, pooler_output, hidden_states }
    }
}

/// BERT with a classification head on the pooled output (`BertForSequenceClassification`).
#[derive(Module, Debug)]
pub struct BertForSequenceClassification {
    pub bert: BertModel,
    pub dropout: Dropout,
    pub classifier: PrunableLinear,
    /// The head reads the mean of the last hidden states instead of `tanh(pooler(CLS))`
    /// (`config.classifier_pooling = "mean"`); the pooler's weights are then unused.
    pub mean_pooling: bool,
    /// Parameters a pruner added (mask logits, multipliers); `None` otherwise. Not part of the
    /// Hugging Face checkpoint: pruners remove them when they finish.
    pub pruner_params: Option<crate::PrunerParams>,
}

impl BertForSequenceClassification {
    /// A model initialised from seed 0 (see [`Self::seeded`]); loading a checkpoint then
    /// replaces what it holds.
    pub fn new(c: &BertConfig, num_labels: usize, device: &Device) -> Self {
        Self::seeded(c, num_labels, 0, device)
    }

    /// Initialised like [`BertModel::new`], the head too, from `seed` (an experiment's seed
    /// decides the initial head of a fine-tuning run).
    pub fn seeded(c: &BertConfig, num_labels: usize, seed: u64, device: &Device) -> Self {
        let dropout = c.classifier_dropout.unwrap_or(c.hidden_dropout_prob);
        let head = &mut HostRng::new(seed ^ 0x6865_6164_5F69_6E69);
        Self {
            bert: BertModel::new(c, seed, device),
            dropout: Dropout::new(dropout),
            classifier: PrunableLinear::new(c.hidden_size, num_labels, c.initializer_range, head, device),
            mean_pooling: c.classifier_pooling == Some(Pooling::Mean),
            pruner_params: None,
        }
    }

    /// Logits, `[batch, num_labels]`.
    pub fn forward(
        &self,
        input_ids: Tensor<2, Int>,
        token_type_ids: Tensor<2, Int>,
        attention_mask: Tensor<2, Int>,
    ) -> Tensor<2> {
        self.forward_features(input_ids, token_type_ids, attention_mask).1
    }

    /// The classifier's input (the pooled representation, before dropout) `[batch, hidden]`,
    /// and the logits.
    pub fn forward_features(&self, input_ids: Tensor<2, Int>, token_type_ids: Tensor<2, Int>, attention_mask: Tensor<2, Int>) -> (Tensor<2>, Tensor<2>) {
        let out = self.bert.forward(input_ids, token_type_ids, attention_mask.clone(), false);
        let pooled = if self.mean_pooling { mean_over_tokens(out.last_hidden_state, attention_mask) } else { out.pooler_output };
        let logits = self.classifier.forward(self.dropout.forward(pooled.clone()));
        (pooled, logits)
    }
}

/// Mean of `x` `[batch, seq, hidden]` over the positions where `attention_mask` `[batch, seq]`
/// is 1, `[batch, hidden]` (sentence-transformers' mean pooling).
pub fn mean_over_tokens(x: Tensor<3>, attention_mask: Tensor<2, Int>) -> Tensor<2> {
    let [batch, seq, hidden] = x.dims();
    let m = attention_mask.float().reshape([batch, seq, 1]);
    let sum = (x * m.clone()).sum_dim(1).reshape([batch, hidden]);
    let count = m.sum_dim(1).reshape([batch, 1]).clamp_min(1.0);
    sum / count
}

impl BertForSequenceClassification {
    /// What every unit computes on a batch (for unit-scoring methods such as layer-wise mutual
    /// information): per unit group, in `unit_groups()` order, the activations of its units at
    /// every non-padding token, `[tokens, count·width]`; the row of each sequence's CLS token;
    /// the logits `[batch, labels]`; and the statistics of every prunable matrix's inputs over
    /// the same tokens.
    pub fn unit_activations(&self, input_ids: Tensor<2, Int>, token_type_ids: Tensor<2, Int>, attention_mask: Tensor<2, Int>) -> crate::linear::UnitActivations {
        let [batch, seq] = input_ids.dims();
        let device = input_ids.device();
        let valid: Vec<i64> = attention_mask.clone().to_data().convert::<i64>().try_to_vec().expect("i64 mask");
        let rows: Vec<i64> = (0..batch * seq).filter(|&i| valid[i] != 0).map(|i| i as i64).collect();
        let cls_rows: Vec<usize> = (0..batch).map(|b| rows.iter().position(|&r| r == (b * seq) as i64).expect("CLS is a token")).collect();
        let rows = Tensor::<1, Int>::from_data(burn::tensor::TensorData::new(rows.clone(), [rows.len()]), &device);
        let mask_bias = (attention_mask.clone().float().neg() + 1.0).reshape([batch, 1, 1, seq]) * -1.0e9;
        let mut x = self.bert.embeddings.forward(input_ids, token_type_ids);
        let mut groups = Vec::new();
        let mut inputs = Vec::new();
        let tokens = |t: Tensor<3>| {
            let [_, _, w] = t.dims();
            t.reshape([batch * seq, w]).select(0, rows.clone())
        };
        for layer in &self.bert.encoder.layer {
            let block_in = crate::linear::InputStats::of(tokens(x.clone()));
            let (out, heads, attended, neurons) = layer.forward_inputs(x, mask_bias.clone());
            let (heads, neurons) = (tokens(heads), tokens(neurons));
            // In `prunable()` order: query, key, value, attention output, intermediate, output.
            inputs.extend([block_in.clone(), block_in.clone(), block_in]);
            inputs.push(crate::linear::InputStats::of(heads.clone()));
            inputs.push(crate::linear::InputStats::of(tokens(attended)));
            inputs.push(crate::linear::InputStats::of(neurons.clone()));
            groups.extend([heads, neurons]);
            x = out;
        }
        let [_, _, hidden] = x.dims();
        let pooled = if self.mean_pooling {
            mean_over_tokens(x, attention_mask)
        } else {
            tanh(self.bert.pooler.dense.forward(x.slice([0..batch, 0..1, 0..hidden]).reshape([batch, hidden])))
        };
        let output = self.classifier.forward(pooled);
        crate::linear::UnitActivations { groups, cls_rows, output, inputs }
    }
}

impl PrunableModel for BertForSequenceClassification {
    fn prunable_layers(&self) -> Vec<(String, &PrunableLinear)> {
        let mut out = Vec::new();
        for (i, layer) in self.bert.encoder.layer.iter().enumerate() {
            for (name, lin) in layer.prunable() {
                out.push((format!("bert.encoder.layer.{i}.{name}"), lin));
            }
        }
        out
    }

    fn prunable_layers_mut(&mut self) -> Vec<(String, &mut PrunableLinear)> {
        let mut out = Vec::new();
        for (i, layer) in self.bert.encoder.layer.iter_mut().enumerate() {
            for (name, lin) in layer.prunable_mut() {
                out.push((format!("bert.encoder.layer.{i}.{name}"), lin));
            }
        }
        out
    }

    /// Per layer: its heads (rows of Q, K, V; columns of the attention output) and its FFN
    /// neurons (rows of the intermediate dense; columns of the output dense). Indices follow
    /// the order of `prunable_layers` (six matrices per layer).
    fn pruner_params(&self) -> Option<&crate::PrunerParams> {
        self.pruner_params.as_ref()
    }

    fn pruner_params_slot(&mut self) -> Option<&mut Option<crate::PrunerParams>> {
        Some(&mut self.pruner_params)
    }

    fn unit_groups(&self) -> Vec<UnitGroup> {
        encoder_unit_groups(&self.bert.encoder.layer, "bert.encoder.layer")
    }
}

/// The heads and FFN neurons of a stack of encoder layers whose six matrices each come in
/// `BertLayer::prunable` order (BERT, the ViT): per layer its heads (rows of Q, K, V; columns of
/// the attention output) and its neurons (rows of the intermediate dense; columns of the output
/// dense), named `<prefix>.<i>.attention.heads` and `<prefix>.<i>.ffn.neurons`.
pub(crate) fn encoder_unit_groups(layers: &[BertLayer], prefix: &str) -> Vec<UnitGroup> {
    {
        let mut out = Vec::new();
        for (i, layer) in layers.iter().enumerate() {
            let base = 6 * i;
            let s = &layer.attention.self_;
            let hd = s.head_dim;
            out.push(UnitGroup {
                name: format!("{prefix}.{i}.attention.heads"),
                count: s.num_heads,
                width: s.head_dim,
                members: vec![Member::rows(base, hd), Member::rows(base + 1, hd), Member::rows(base + 2, hd), Member::cols(base + 3, hd)],
                depth: i,
                kind: UnitKind::Head,
                residual: true,
            });
            out.push(UnitGroup {
                name: format!("{prefix}.{i}.ffn.neurons"),
                count: layer.intermediate.dense.dims()[0],
                width: 1,
                members: vec![Member::rows(base + 4, 1), Member::cols(base + 5, 1)],
                depth: i,
                kind: UnitKind::Neuron,
                residual: true,
            });
        }
        out
    }
}
