//! A configurable ConvNet for image classification whose filters are prunable units: stages of
//! conv–BatchNorm–ReLU (optionally followed by a residual block, the small-ResNet option), 2×2
//! max pooling after each stage, then a flattening head (an optional hidden linear layer and the
//! classifier).
//!
//! Every conv's weight is a [`PrunableLinear`] `[out, in·k·k]` — the unfolded (im2col) view of
//! PyTorch's `[out, in, k, k]`, same memory order — reshaped to a kernel in forward. So masks,
//! scores, gates and the one-shot criteria see a conv as a matrix whose rows are filters and whose
//! columns are (input channel, ky, kx) taps, with no conv-specific code in the pruners; Wanda and
//! STADE read a conv's inputs as the unfolded patches ([`Cnn::unit_activations`]).
//!
//! What a filter is, stated once ([`Cnn::unit_groups`]): one row of its conv (and, in
//! compaction, its BatchNorm entry), the `k·k` columns of every conv that reads its channel, and
//! the `h·w` columns of the flattened classifier input when the last stage feeds the head. In the
//! ResNet option a stage's channels are coupled through the identity path: the stage conv and
//! the block's second conv write the same channels, so one unit owns a row of both, with the
//! columns of the block's first conv and of whatever reads the stage's output.

use crate::layers::Dropout;
use crate::linear::{Member, PrunableLinear, PrunableModel, PrunerParams, UnitActivations, UnitGroup, UnitKind};
use burn::module::{Module, Param};
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::tensor::activation::relu;
use burn::tensor::module::{conv2d, max_pool2d, unfold4d};
use burn::tensor::ops::{ConvOptions, MaxPoolOptions, UnfoldOptions};
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

fn one() -> usize {
    1
}
fn twenty_eight() -> usize {
    28
}
fn three() -> usize {
    3
}
fn ten() -> usize {
    10
}
fn yes() -> bool {
    true
}

/// Shapes of a [`Cnn`]. `channels[s]` is the width of stage `s`; with `residual`,
/// `inner_channels[s]` (default: `channels[s]`) is the width inside its residual block.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CnnConfig {
    #[serde(default = "one")]
    pub in_channels: usize,
    #[serde(default = "twenty_eight")]
    pub image_size: usize,
    pub channels: Vec<usize>,
    #[serde(default)]
    pub inner_channels: Vec<usize>,
    #[serde(default = "three")]
    pub kernel_size: usize,
    #[serde(default = "yes")]
    pub batch_norm: bool,
    #[serde(default)]
    pub residual: bool,
    /// Width of the hidden linear layer of the head; 0 for none.
    #[serde(default)]
    pub hidden: usize,
    #[serde(default = "ten")]
    pub num_classes: usize,
    #[serde(default)]
    pub dropout: f64,
}

impl CnnConfig {
    /// The pretrained MNIST CNN of `digit-recognizer-py` (no BatchNorm, 32-64-128, FC 256).
    pub fn digit_recognizer() -> Self {
        Self {
            in_channels: 1,
            image_size: 28,
            channels: vec![32, 64, 128],
            inner_channels: vec![],
            kernel_size: 3,
            batch_norm: false,
            residual: false,
            hidden: 256,
            num_classes: 10,
            dropout: 0.0,
        }
    }

    /// Checks the shapes; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.channels.is_empty() || self.channels.contains(&0) {
            return Err(format!("field `channels`: one positive width per stage, found {:?}", self.channels));
        }
        if self.kernel_size % 2 == 0 {
            return Err(format!("field `kernel_size`: odd sizes only (same padding), found {}", self.kernel_size));
        }
        if self.image_size >> self.channels.len() == 0 {
            return Err(format!("field `channels`: {} stages halve a {}-pixel image to nothing", self.channels.len(), self.image_size));
        }
        if self.residual && !self.inner_channels.is_empty() && self.inner_channels.len() != self.channels.len() {
            return Err(format!("field `inner_channels`: one width per stage ({}), found {}", self.channels.len(), self.inner_channels.len()));
        }
        if !self.residual && !self.inner_channels.is_empty() {
            return Err("field `inner_channels` applies with `residual = true` only".into());
        }
        if self.num_classes < 2 {
            return Err(format!("field `num_classes`: at least 2, found {}", self.num_classes));
        }
        Ok(())
    }

    fn inner(&self, s: usize) -> usize {
        self.inner_channels.get(s).copied().unwrap_or(self.channels[s])
    }

    /// Side of the feature map after the last stage.
    pub fn final_side(&self) -> usize {
        self.image_size >> self.channels.len()
    }

    /// Parameters (weights and biases of convs and linears, BatchNorm's γ and β).
    pub fn num_params(&self) -> usize {
        let (k2, bn) = (self.kernel_size * self.kernel_size, if self.batch_norm { 2 } else { 0 });
        let conv = |i: usize, o: usize| o * i * k2 + o + bn * o;
        let mut n = 0;
        let mut c_in = self.in_channels;
        for s in 0..self.channels.len() {
            let c = self.channels[s];
            n += conv(c_in, c);
            if self.residual {
                n += conv(c, self.inner(s)) + conv(self.inner(s), c);
            }
            c_in = c;
        }
        let flat = c_in * self.final_side() * self.final_side();
        if self.hidden > 0 {
            n += flat * self.hidden + self.hidden + self.hidden * self.num_classes + self.num_classes;
        } else {
            n += flat * self.num_classes + self.num_classes;
        }
        n
    }

    /// Multiply–accumulates of one forward pass on one image (convs and linears).
    pub fn macs(&self) -> usize {
        let k2 = self.kernel_size * self.kernel_size;
        let (mut n, mut side, mut c_in) = (0, self.image_size, self.in_channels);
        for s in 0..self.channels.len() {
            let c = self.channels[s];
            n += side * side * c * c_in * k2;
            if self.residual {
                n += 2 * side * side * c * self.inner(s) * k2;
            }
            side /= 2;
            c_in = c;
        }
        let flat = c_in * side * side;
        n + if self.hidden > 0 { flat * self.hidden + self.hidden * self.num_classes } else { flat * self.num_classes }
    }
}

/// A conv (weight as a prunable `[out, in·k·k]` matrix, same padding, stride 1) and its
/// optional BatchNorm.
#[derive(Module, Debug)]
pub struct Conv {
    pub linear: PrunableLinear,
    pub bn: Option<BatchNorm>,
    pub in_channels: usize,
    pub kernel: usize,
}

impl Conv {
    fn new(c_in: usize, c_out: usize, k: usize, batch_norm: bool, rng: &mut crate::init::HostRng, device: &Device) -> Self {
        // torch.nn.Conv2d's default: U(−1/√fan_in, 1/√fan_in) for weight and bias.
        let fan_in = c_in * k * k;
        let bound = 1.0 / (fan_in as f64).sqrt();
        let w: Vec<f32> = (0..c_out * fan_in).map(|_| rng.uniform(bound) as f32).collect();
        let b: Vec<f32> = (0..c_out).map(|_| rng.uniform(bound) as f32).collect();
        Self {
            linear: linear_from(w, b, [c_out, fan_in], device),
            bn: batch_norm.then(|| BatchNormConfig::new(c_out).init(device)),
            in_channels: c_in,
            kernel: k,
        }
    }

    fn out_channels(&self) -> usize {
        self.linear.dims()[0]
    }

    /// Conv then BatchNorm: `[n, in, h, w]` → `[n, out, h, w]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let (o, k) = (self.out_channels(), self.kernel);
        let w = self.linear.effective_weight().reshape([o, self.in_channels, k, k]);
        let y = conv2d(x, w, self.linear.effective_bias(), ConvOptions::new([1, 1], [k / 2, k / 2], [1, 1], 1));
        match &self.bn {
            Some(bn) => bn.forward(y),
            None => y,
        }
    }

    /// The conv's input as the rows its weight multiplies: unfolded patches,
    /// `[n·h·w, in·k·k]`.
    pub fn patches(&self, x: Tensor<4>) -> Tensor<2> {
        let [n, c, h, w] = x.dims();
        let k = self.kernel;
        let cols = unfold4d(x, [k, k], UnfoldOptions::new([1, 1], [k / 2, k / 2], [1, 1])); // [n, c·k·k, h·w]
        cols.swap_dims(1, 2).reshape([n * h * w, c * k * k])
    }
}

fn linear_from(w: Vec<f32>, b: Vec<f32>, dims: [usize; 2], device: &Device) -> PrunableLinear {
    PrunableLinear {
        weight: Param::from_tensor(Tensor::from_data(TensorData::new(w, dims), device)),
        bias: Some(Param::from_tensor(Tensor::from_data(TensorData::new(b, [dims[0]]), device))),
        mask_scores: None,
        mask: None,
        in_gate: None,
        out_gate: None,
    }
}

/// The ConvNet. `convs` in forward order: per stage its conv, then (ResNet) the block's two.
#[derive(Module, Debug)]
pub struct Cnn {
    pub convs: Vec<Conv>,
    /// The head: `[hidden, classifier]` or `[classifier]`.
    pub fcs: Vec<PrunableLinear>,
    pub residual: bool,
    /// Side of the input images.
    pub image_size: usize,
    pub dropout: Dropout,
    pub pruner_params: Option<PrunerParams>,
}

impl Cnn {
    /// Initialised like PyTorch's `Conv2d`/`Linear` defaults, drawn on the host from `seed`.
    pub fn new(c: &CnnConfig, seed: u64, device: &Device) -> Self {
        let mut rng = crate::init::HostRng::new(seed ^ 0x636E_6E5F_696E_6974);
        let k = c.kernel_size;
        let mut convs = Vec::new();
        let mut c_in = c.in_channels;
        for s in 0..c.channels.len() {
            let ch = c.channels[s];
            convs.push(Conv::new(c_in, ch, k, c.batch_norm, &mut rng, device));
            if c.residual {
                convs.push(Conv::new(ch, c.inner(s), k, c.batch_norm, &mut rng, device));
                convs.push(Conv::new(c.inner(s), ch, k, c.batch_norm, &mut rng, device));
            }
            c_in = ch;
        }
        let flat = c_in * c.final_side() * c.final_side();
        let mut linear = |i: usize, o: usize| {
            let bound = 1.0 / (i as f64).sqrt();
            let w: Vec<f32> = (0..o * i).map(|_| rng.uniform(bound) as f32).collect();
            let b: Vec<f32> = (0..o).map(|_| rng.uniform(bound) as f32).collect();
            linear_from(w, b, [o, i], device)
        };
        let fcs = if c.hidden > 0 { vec![linear(flat, c.hidden), linear(c.hidden, c.num_classes)] } else { vec![linear(flat, c.num_classes)] };
        Self { convs, fcs, residual: c.residual, image_size: c.image_size, dropout: Dropout::new(c.dropout), pruner_params: None }
    }

    fn per_stage(&self) -> usize {
        if self.residual {
            3
        } else {
            1
        }
    }

    pub fn num_stages(&self) -> usize {
        self.convs.len() / self.per_stage()
    }

    /// The shapes of this model (after compaction, its narrower widths).
    pub fn config(&self, image_size: usize, dropout: f64) -> CnnConfig {
        let p = self.per_stage();
        let stages = self.num_stages();
        CnnConfig {
            in_channels: self.convs[0].in_channels,
            image_size,
            channels: (0..stages).map(|s| self.convs[s * p].out_channels()).collect(),
            inner_channels: if self.residual { (0..stages).map(|s| self.convs[s * p + 1].out_channels()).collect() } else { vec![] },
            kernel_size: self.convs[0].kernel,
            batch_norm: self.convs[0].bn.is_some(),
            residual: self.residual,
            hidden: if self.fcs.len() == 2 { self.fcs[0].dims()[0] } else { 0 },
            num_classes: self.fcs[self.fcs.len() - 1].dims()[0],
            dropout,
        }
    }

    /// Runs the stages; calls `seen(conv index, conv input, conv output after ReLU or before the
    /// residual sum)` for each conv (activation statistics), and returns the flattened features.
    fn features(&self, x: Tensor<4>, seen: &mut dyn FnMut(usize, &Tensor<4>, &Tensor<4>)) -> Tensor<2> {
        let p = self.per_stage();
        let mut h = x;
        for s in 0..self.num_stages() {
            let i = s * p;
            let y = relu(self.convs[i].forward(h.clone()));
            seen(i, &h, &y);
            h = y;
            if self.residual {
                let a = relu(self.convs[i + 1].forward(h.clone()));
                seen(i + 1, &h, &a);
                let b = self.convs[i + 2].forward(a.clone());
                let out = relu(b + h);
                seen(i + 2, &a, &out);
                h = out;
            }
            h = max_pool2d(h, MaxPoolOptions::new([2, 2]));
        }
        let [n, c, hh, ww] = h.dims();
        h.reshape([n, c * hh * ww])
    }

    /// # Shapes
    /// - x: `[batch, channels, height, width]`
    /// - output: logits `[batch, classes]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward_features(x).1
    }

    /// The classifier's input (the last linear layer's input) `[batch, d]`, and the logits.
    pub fn forward_features(&self, x: Tensor<4>) -> (Tensor<2>, Tensor<2>) {
        let h = self.features(x, &mut |_, _, _| {});
        let last = self.fcs.len() - 1;
        let mut input = None;
        let logits = self.head(h, &mut |i, x, _| {
            if i == last {
                input = Some(x.clone());
            }
        });
        (input.expect("the head has a last layer"), logits)
    }

    fn head(&self, mut h: Tensor<2>, seen: &mut dyn FnMut(usize, &Tensor<2>, &Tensor<2>)) -> Tensor<2> {
        let last = self.fcs.len() - 1;
        for (i, fc) in self.fcs.iter().enumerate() {
            let input = h.clone();
            h = fc.forward(h);
            if i < last {
                h = self.dropout.forward(relu(h));
            }
            seen(i, &input, &h);
        }
        h
    }

    /// Per unit group (see [`PrunableModel::unit_groups`]) the units' activations, one row per
    /// image and unit column (a filter's activation = its map's spatial mean, after ReLU); the
    /// logits; and each prunable matrix's input statistics (a conv's over its unfolded patches).
    pub fn unit_activations(&self, x: Tensor<4>) -> UnitActivations {
        let [n, ..] = x.dims();
        let mut inputs: Vec<Option<crate::linear::InputStats>> = vec![None; self.convs.len() + self.fcs.len()];
        let mut conv_out: Vec<Option<Tensor<2>>> = vec![None; self.convs.len()];
        let flat = self.features(x, &mut |i, input, out| {
            inputs[i] = Some(crate::linear::InputStats::of(self.convs[i].patches(input.clone())));
            let [b, c, h, w] = out.dims();
            conv_out[i] = Some(out.clone().reshape([b, c, h * w]).mean_dim(2).reshape([b, c]));
        });
        let nc = self.convs.len();
        let mut hidden = None;
        let output = self.head(flat, &mut |i, input, out| {
            inputs[nc + i] = Some(crate::linear::InputStats::of(input.clone()));
            if i + 1 < self.fcs.len() {
                hidden = Some(out.clone());
            }
        });
        let mut groups = Vec::new();
        let p = self.per_stage();
        for s in 0..self.num_stages() {
            // The stage's channels: as they leave the stage (after the residual sum in ResNet).
            let stage_out = if self.residual { s * p + 2 } else { s * p };
            groups.push(conv_out[stage_out].clone().expect("seen"));
            if self.residual {
                groups.push(conv_out[s * p + 1].clone().expect("seen"));
            }
        }
        if let Some(hdn) = hidden {
            groups.push(hdn);
        }
        UnitActivations { groups, cls_rows: (0..n).collect(), output, inputs: inputs.into_iter().map(|s| s.expect("every matrix saw its input")).collect() }
    }
}

impl PrunableModel for Cnn {
    fn prunable_layers(&self) -> Vec<(String, &PrunableLinear)> {
        let convs = self.convs.iter().enumerate().map(|(i, c)| (format!("convs.{i}"), &c.linear));
        convs.chain(self.fcs.iter().enumerate().map(|(i, l)| (format!("fcs.{i}"), l))).collect()
    }
    fn prunable_layers_mut(&mut self) -> Vec<(String, &mut PrunableLinear)> {
        let convs = self.convs.iter_mut().enumerate().map(|(i, c)| (format!("convs.{i}"), &mut c.linear));
        convs.chain(self.fcs.iter_mut().enumerate().map(|(i, l)| (format!("fcs.{i}"), l))).collect()
    }
    /// One group per stage (its output channels) and, in ResNet, one per residual block's inner
    /// channels; one for the hidden linear layer's neurons. In order of depth.
    fn unit_groups(&self) -> Vec<UnitGroup> {
        let p = self.per_stage();
        let stages = self.num_stages();
        let nc = self.convs.len();
        let k2 = |i: usize| self.convs[i].kernel * self.convs[i].kernel;
        let mut out = Vec::new();
        for s in 0..stages {
            let i = s * p;
            let count = self.convs[i].out_channels();
            let mut members = vec![Member::rows(i, 1)];
            if self.residual {
                members.push(Member::rows(i + 2, 1));
                members.push(Member::cols(i + 1, k2(i + 1)));
            }
            // Whoever reads the stage's output: the next stage's conv, or the flattened head.
            if s + 1 < stages {
                members.push(Member::cols(i + p, k2(i + p)));
            } else {
                let flat = self.fcs[0].dims()[1];
                members.push(Member::cols(nc, flat / count));
            }
            let name = format!("convs.{i}.filters");
            out.push(UnitGroup { name, count, width: 1, members, depth: out.len(), kind: UnitKind::Filter, residual: false });
            if self.residual {
                let count = self.convs[i + 1].out_channels();
                let members = vec![Member::rows(i + 1, 1), Member::cols(i + 2, k2(i + 2))];
                let name = format!("convs.{}.filters", i + 1);
                out.push(UnitGroup { name, count, width: 1, members, depth: out.len(), kind: UnitKind::Filter, residual: true });
            }
        }
        if self.fcs.len() == 2 {
            let count = self.fcs[0].dims()[0];
            let members = vec![Member::rows(nc, 1), Member::cols(nc + 1, 1)];
            out.push(UnitGroup { name: "fcs.0.neurons".into(), count, width: 1, members, depth: out.len(), kind: UnitKind::Neuron, residual: false });
        }
        out
    }
    fn pruner_params(&self) -> Option<&PrunerParams> {
        self.pruner_params.as_ref()
    }
    fn pruner_params_slot(&mut self) -> Option<&mut Option<PrunerParams>> {
        Some(&mut self.pruner_params)
    }
    /// A stage's convs run at every position of its (same-padded) map; the head's linears once.
    fn uses_per_example(&self) -> Vec<usize> {
        let p = self.per_stage();
        let convs = (0..self.convs.len()).map(|i| {
            let side = self.image_size >> (i / p);
            side * side
        });
        convs.chain(self.fcs.iter().map(|_| 1)).collect()
    }
}

fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.detach().to_data().convert::<f32>().try_to_vec().expect("f32 tensor")
}

/// What compaction kept.
#[derive(Debug, Clone, Serialize)]
pub struct CnnCompaction {
    /// Kept units per group, in `unit_groups()` order: (group name, kept, of).
    pub kept: Vec<(String, usize, usize)>,
    pub params_before: usize,
    pub params_after: usize,
    pub macs_before: usize,
    pub macs_after: usize,
}

/// Removes every unit whose slices in its reading matrices (the group's `Cols` members) are all
/// zero in the effective weights: its rows go from the convs that write it, with their
/// BatchNorm entries, and its columns from the matrices that read it. The smaller network
/// computes the same function (its outputs were already ignored downstream). Each group keeps at
/// least one unit. Masks, gates and scores are folded away: the result is a plain dense model.
pub fn compact(model: &Cnn, image_size: usize) -> (Cnn, CnnCompaction) {
    let device = model.fcs[0].weight.val().device();
    let groups = model.unit_groups();
    let layers = model.prunable_layers();
    let mut weights: Vec<(Vec<f32>, [usize; 2])> = layers.iter().map(|(_, l)| (host(l.effective_weight()), l.dims())).collect();
    let mut biases: Vec<Vec<f32>> =
        layers.iter().map(|(_, l)| l.effective_bias().map(host).unwrap_or_else(|| vec![0.0; l.dims()[0]])).collect();
    let nc = model.convs.len();
    // BatchNorm entries per conv: (γ, β, running mean, running var).
    let mut bns: Vec<Option<[Vec<f32>; 4]>> = model
        .convs
        .iter()
        .map(|c| c.bn.as_ref().map(|bn| [host(bn.gamma.val()), host(bn.beta.val()), host(bn.running_mean.value()), host(bn.running_var.value())]))
        .collect();
    let mut kept_report = Vec::new();
    for g in &groups {
        let live: Vec<usize> = (0..g.count)
            .filter(|&u| {
                g.members.iter().filter(|m| m.axis == crate::Axis::Cols).any(|m| {
                    let (w, [r, c]) = &weights[m.layer];
                    (0..*r).any(|row| (u * m.width..(u + 1) * m.width).any(|col| w[row * c + col] != 0.0))
                })
            })
            .collect();
        let keep = if live.is_empty() { vec![0] } else { live };
        kept_report.push((g.name.clone(), keep.len(), g.count));
        for m in &g.members {
            let (w, [r, c]) = weights[m.layer].clone();
            match m.axis {
                crate::Axis::Rows => {
                    let nw: Vec<f32> = keep.iter().flat_map(|&u| w[u * c..(u + 1) * c].to_vec()).collect();
                    weights[m.layer] = (nw, [keep.len(), c]);
                    biases[m.layer] = keep.iter().map(|&u| biases[m.layer][u]).collect();
                    if m.layer < nc {
                        if let Some(bn) = &mut bns[m.layer] {
                            for v in bn.iter_mut() {
                                *v = keep.iter().map(|&u| v[u]).collect();
                            }
                        }
                    }
                }
                crate::Axis::Cols => {
                    let cols: Vec<usize> = keep.iter().flat_map(|&u| u * m.width..(u + 1) * m.width).collect();
                    let nw: Vec<f32> = (0..r).flat_map(|row| cols.iter().map(|&j| w[row * c + j]).collect::<Vec<_>>()).collect();
                    weights[m.layer] = (nw, [r, cols.len()]);
                }
            }
        }
    }
    let mut weights = weights.into_iter().zip(biases).map(|((w, d), b)| linear_from(w, b, d, &device));
    let convs: Vec<Conv> = model
        .convs
        .iter()
        .zip(bns)
        .map(|(c, bn)| {
            let linear = weights.next().expect("one matrix per conv");
            let [o, fan_in] = linear.dims();
            let bn = c.bn.as_ref().zip(bn).map(|(old, [g, b, m, v])| {
                let mut new = BatchNormConfig::new(o).with_epsilon(old.epsilon).with_momentum(old.momentum).init(&device);
                let t = |v: Vec<f32>| Tensor::<1>::from_data(TensorData::new(v, [o]), &device);
                new.gamma = Param::from_tensor(t(g));
                new.beta = Param::from_tensor(t(b));
                new.running_mean = burn::module::RunningState::new(t(m));
                new.running_var = burn::module::RunningState::new(t(v));
                new
            });
            Conv { linear, bn, in_channels: fan_in / (c.kernel * c.kernel), kernel: c.kernel }
        })
        .collect();
    let fcs: Vec<PrunableLinear> = weights.collect();
    let out = Cnn { convs, fcs, residual: model.residual, image_size: model.image_size, dropout: model.dropout.clone(), pruner_params: None };
    let (before, after) = (model.config(image_size, 0.0), out.config(image_size, 0.0));
    let report = CnnCompaction {
        kept: kept_report,
        params_before: before.num_params(),
        params_after: after.num_params(),
        macs_before: before.macs(),
        macs_after: after.macs(),
    };
    (out, report)
}

/// Loads the pretrained MNIST CNN of PyPI `digit-recognizer-py==0.1.0` (a PyTorch state dict:
/// `conv_layers.{0,3,6}`, `fc_layers.{0,2}`) into [`CnnConfig::digit_recognizer`]'s shapes.
/// A conv weight `[out, in, 3, 3]` is read as the `[out, in·9]` matrix it is in memory.
/// Errors name the file and the key.
pub fn load_digit_recognizer(path: &std::path::Path, device: &Device) -> Result<Cnn, String> {
    use burn_store::pytorch_reader::{DType, PytorchReader};
    let shown = path.display();
    let reader = PytorchReader::new(path).map_err(|e| format!("{shown}: not a readable PyTorch checkpoint: {e}"))?;
    let read = |key: &str, shape: &[usize]| -> Result<Vec<f32>, String> {
        let t = reader.get(key).ok_or_else(|| format!("{shown}: no tensor `{key}`"))?;
        if t.shape() != shape {
            return Err(format!("{shown}: `{key}` has shape {:?}, expected {shape:?}", t.shape()));
        }
        if t.dtype() != DType::F32 {
            return Err(format!("{shown}: `{key}` is {:?}, expected f32", t.dtype()));
        }
        let bytes = t.read().map_err(|e| format!("{shown}: `{key}`: {e}"))?;
        Ok(bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
    };
    let c = CnnConfig::digit_recognizer();
    let mut model = Cnn::new(&c, 0, device);
    let mut c_in = c.in_channels;
    for (s, key) in ["conv_layers.0", "conv_layers.3", "conv_layers.6"].iter().enumerate() {
        let o = c.channels[s];
        let w = read(&format!("{key}.weight"), &[o, c_in, 3, 3])?;
        let b = read(&format!("{key}.bias"), &[o])?;
        model.convs[s].linear = linear_from(w, b, [o, c_in * 9], device);
        c_in = o;
    }
    let flat = c_in * c.final_side() * c.final_side();
    for (i, (key, [o, n])) in [("fc_layers.0", [c.hidden, flat]), ("fc_layers.2", [c.num_classes, c.hidden])].into_iter().enumerate() {
        let w = read(&format!("{key}.weight"), &[o, n])?;
        let b = read(&format!("{key}.bias"), &[o])?;
        model.fcs[i] = linear_from(w, b, [o, n], device);
    }
    Ok(model)
}
