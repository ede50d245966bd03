//! The masked linear layer: `y = x (W ⊙ M)ᵀ + b`.
//!
//! The weight is stored in PyTorch layout `[d_out, d_in]` (burn's own `Linear` stores
//! `[d_in, d_out]`), so Hugging Face checkpoints load without transposes and masks index rows as
//! output units, as in the movement-pruning reference code.

use burn::module::{Module, Param};
use burn::tensor::module::linear;
use burn::tensor::{Device, Tensor};

/// A linear layer whose weight can be masked by a pruner.
#[derive(Module, Debug)]
pub struct PrunableLinear {
    /// Weight, `[d_out, d_in]` (PyTorch layout).
    pub weight: Param<Tensor<2>>,
    /// Bias, `[d_out]`.
    pub bias: Option<Param<Tensor<1>>>,
    /// Learnable importance scores, `[d_out, d_in]` (movement-pruning family); `None` for
    /// methods that need no learned scores. Their path ends in `mask_scores`, which is how the
    /// optimizer puts them in their own parameter group.
    pub mask_scores: Option<Param<Tensor<2>>>,
    /// The mask applied in forward, `[d_out, d_in]`, set by the pruner before each forward pass.
    /// It may carry the autodiff graph of `mask_scores` (straight-through estimator). It is not
    /// a parameter and is not saved with the module record.
    pub mask: Option<Tensor<2>>,
    /// Structural gate on the inputs, `[d_in]`: `y = (x ⊙ g) Wᵀ + b` (one head's or one FFN
    /// neuron's hard-concrete z, expanded to its columns). Set by a pruner like `mask`.
    pub in_gate: Option<Tensor<1>>,
    /// Structural gate on the outputs, bias included, `[d_out]`: `y = (x Wᵀ + b) ⊙ g` (the z of a
    /// whole attention block or FFN block, broadcast). Set by a pruner like `mask`.
    pub out_gate: Option<Tensor<1>>,
}

impl PrunableLinear {
    /// A layer initialised like `torch.nn.Linear` under BERT's `initializer_range`:
    /// weight ~ N(0, std²) drawn from `rng`, bias = 0.
    pub fn new(d_in: usize, d_out: usize, std: f64, rng: &mut crate::init::HostRng, device: &Device) -> Self {
        Self {
            weight: Param::from_tensor(rng.normal_matrix(d_out, d_in, std, device)),
            bias: Some(Param::from_tensor(Tensor::zeros([d_out], device))),
            mask_scores: None,
            mask: None,
            in_gate: None,
            out_gate: None,
        }
    }

    /// `[d_out, d_in]`.
    pub fn dims(&self) -> [usize; 2] {
        self.weight.val().dims()
    }

    /// The weight the forward pass uses: `W ⊙ M`, with the gates folded in
    /// (`W_ij · g_in_j · g_out_i`), or `W` when nothing is set.
    pub fn effective_weight(&self) -> Tensor<2> {
        let mut weight = self.weight.val();
        if let Some(mask) = &self.mask {
            weight = weight * mask.clone();
        }
        if let Some(g) = &self.in_gate {
            weight = weight * g.clone().unsqueeze_dim::<2>(0); // [1, d_in]
        }
        if let Some(g) = &self.out_gate {
            weight = weight * g.clone().unsqueeze_dim::<2>(1); // [d_out, 1]
        }
        weight
    }

    /// The bias the forward pass uses: `b ⊙ g_out`.
    pub fn effective_bias(&self) -> Option<Tensor<1>> {
        let b = self.bias.as_ref()?.val();
        Some(match &self.out_gate {
            Some(g) => b * g.clone(),
            None => b,
        })
    }

    /// Folds the gates into the weight and bias (the values the forward pass used) and clears
    /// them: the layer computes the same function without them.
    pub fn fold_gates(&mut self) {
        if self.in_gate.is_none() && self.out_gate.is_none() {
            return;
        }
        let (inp, out) = (self.in_gate.take().map(|g| g.detach()), self.out_gate.take().map(|g| g.detach()));
        self.weight = self.weight.clone().map(|mut w| {
            if let Some(g) = &inp {
                w = w * g.clone().unsqueeze_dim::<2>(0);
            }
            if let Some(g) = &out {
                w = w * g.clone().unsqueeze_dim::<2>(1);
            }
            w
        });
        if let Some(g) = &out {
            self.bias = self.bias.take().map(|b| b.map(|b| b * g.clone()));
        }
    }

    /// # Shapes
    /// - input: `[..., d_in]`
    /// - output: `[..., d_out]`
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        linear_out_in(input, self.effective_weight(), self.effective_bias())
    }
}

/// `x · Wᵀ + b` for a weight in PyTorch layout `[d_out, d_in]`, leading dims folded into rows.
/// On flex/ndarray the product is [`crate::fused::matmul_wt`], whose backward gives `W`'s
/// gradient contiguous in `W`'s own layout (issue 22: with `linear(x, Wᵀ)` it came back as a
/// strided transpose, and the gradient norm, the clip and AdamW each copied it first); elsewhere
/// [`linear_rows`] over `Wᵀ`.
pub fn linear_out_in<const D: usize>(input: Tensor<D>, weight: Tensor<2>, bias: Option<Tensor<1>>) -> Tensor<D> {
    if !crate::fused::has_fused_kernels(&input.device()) {
        return linear_rows(input, weight.transpose(), bias);
    }
    on_rows(input, |x| {
        let y = crate::fused::matmul_wt(x, weight).expect("fused kernels on this device");
        match bias {
            Some(b) => y + b.unsqueeze_dim::<2>(0),
            None => y,
        }
    })
}

/// `burn::tensor::module::linear` (`x · W + b`, `weight: [d_in, d_out]`) with the leading
/// dimensions folded into the rows first: `[..., d_in]` → `[rows, d_in]`, one matrix product,
/// then back.
///
/// burn 0.22's autodiff runs `linear` as a broadcast batched matmul when the rows of each
/// batch are a multiple of its row tile (`[32, 128, d_in] · [1, d_in, d_out]`), and the
/// backward of that broadcast computes the weight's gradient as one `[d_in, d_out]` product per
/// batch entry, materialised as `[32, d_in, d_out]` and summed: 32 small products, a 75 MB
/// buffer and a reduction instead of one `[d_in, rows] · [rows, d_out]` product (issue 22,
/// `perf` of a linear layer's forward + backward; `bench/profile_cpu_minilm_*.json`).
pub fn linear_rows<const D: usize>(input: Tensor<D>, weight: Tensor<2>, bias: Option<Tensor<1>>) -> Tensor<D> {
    if D <= 2 {
        return linear(input, weight, bias);
    }
    on_rows(input, |x| linear(x, weight, bias))
}

/// `f` applied to `input` with its leading dimensions folded into rows (`[..., d] → [rows, d]`),
/// its `[rows, d']` result unfolded again (`[..., d']`).
fn on_rows<const D: usize>(input: Tensor<D>, f: impl FnOnce(Tensor<2>) -> Tensor<2>) -> Tensor<D> {
    let dims = input.dims();
    let rows = dims[..D - 1].iter().product::<usize>();
    let out = f(input.reshape([rows, dims[D - 1]]));
    let mut out_dims = dims;
    out_dims[D - 1] = out.dims()[1];
    out.reshape(out_dims)
}

/// A model that exposes its prunable matrices to a pruner, by stable names
/// (Hugging Face parameter paths without the `.weight` suffix).
pub trait PrunableModel {
    /// Every prunable linear layer, in a fixed order, with its name.
    fn prunable_layers(&self) -> Vec<(String, &PrunableLinear)>;
    /// The same layers, mutably, in the same order.
    fn prunable_layers_mut(&mut self) -> Vec<(String, &mut PrunableLinear)>;
    /// The structural units (attention heads, FFN neurons) and the slices of the prunable
    /// matrices each one owns; empty when the model declares none.
    fn unit_groups(&self) -> Vec<UnitGroup> {
        Vec::new()
    }
    /// The parameters a pruner added to the model (mask logits, Lagrange multipliers), which
    /// train with it; `None` for models that cannot hold them.
    fn pruner_params(&self) -> Option<&PrunerParams> {
        None
    }
    /// How many times each prunable matrix is applied per example (a conv: once per output
    /// position; a linear on one vector: once), in `prunable_layers()` order; FLOP counts weigh
    /// a matrix's kept weights by it. Default: 1 each (per token for BERT).
    fn uses_per_example(&self) -> Vec<usize> {
        vec![1; self.prunable_layers().len()]
    }
    /// The slot for them, to add or remove them.
    fn pruner_params_slot(&mut self) -> Option<&mut Option<PrunerParams>> {
        None
    }
}

/// Parameters a pruner owns but that must train with the model (so that the optimizer, the
/// checkpoints and the resume see them): vectors of mask logits and Lagrange multipliers. Their
/// paths contain `log_alpha` and `multipliers`, which is how the optimizer gives each kind its
/// own parameter group.
#[derive(Module, Debug)]
pub struct PrunerParams {
    pub log_alpha: Vec<Param<Tensor<1>>>,
    pub multipliers: Vec<Param<Tensor<1>>>,
}

/// Which side of a `[d_out, d_in]` weight a unit owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Axis {
    /// Rows (output units), e.g. one head's rows of Q, K and V.
    Rows,
    /// Columns (input units), e.g. one head's columns of the attention output projection.
    Cols,
}

/// What a group's units are. Methods that budget per kind (mask learning keeps heads and neurons
/// apart, minimax fills a layer's budget with neurons after its heads) read this, never a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UnitKind {
    /// An attention head: `width` = the head dimension.
    Head,
    /// A hidden neuron (FFN intermediate, MLP hidden layer): `width` = 1.
    Neuron,
    /// A conv filter (one output channel): `width` = 1.
    Filter,
}

impl UnitKind {
    pub fn plural(self) -> &'static str {
        match self {
            UnitKind::Head => "heads",
            UnitKind::Neuron => "neurons",
            UnitKind::Filter => "filters",
        }
    }
}

/// One matrix a unit group owns slices of: unit `u` owns indices `u·width .. (u+1)·width` of
/// matrix `layer` (index into `prunable_layers()`) along `axis`. The width is the member's own:
/// a conv filter owns 1 row of its conv and `k·k` columns of the next conv (one input channel of
/// the unfolded `[out, in·k·k]` weight), a head owns `head_dim` rows of Q and columns of O.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    pub layer: usize,
    pub axis: Axis,
    pub width: usize,
}

impl Member {
    pub fn rows(layer: usize, width: usize) -> Self {
        Self { layer, axis: Axis::Rows, width }
    }
    pub fn cols(layer: usize, width: usize) -> Self {
        Self { layer, axis: Axis::Cols, width }
    }
}

/// `count` units, each owning a slice of every member matrix (see [`Member`]).
#[derive(Debug, Clone, PartialEq)]
pub struct UnitGroup {
    /// e.g. `bert.encoder.layer.3.attention.heads`, `bert.encoder.layer.3.ffn.neurons`.
    pub name: String,
    pub count: usize,
    /// A unit's width in the group's activations (`UnitActivations`): the head dimension for a
    /// head, 1 for a neuron or a filter.
    pub width: usize,
    pub members: Vec<Member>,
    /// The block the units belong to, counted from the input (0 = the first): a BERT layer's
    /// heads and neurons share one depth, an MLP's hidden layers have one each. Methods that
    /// work layer by layer (MI, top-down) walk the depths.
    pub depth: usize,
    pub kind: UnitKind,
    /// The units form a residual block (a BERT attention or FFN block): its output is added to
    /// a stream that carries on without it, so the whole block can be gated off. An MLP hidden
    /// layer is not: without it nothing reaches the output, so no method may gate it whole.
    pub residual: bool,
}

/// Activations of every unit on calibration data (see `unit_groups`).
#[derive(Debug, Clone)]
pub struct UnitActivations {
    /// Per unit group, `[tokens, count·width]`: unit `u` is columns `u·width .. (u+1)·width`.
    pub groups: Vec<Tensor<2>>,
    /// The row (token) of each sequence's CLS token.
    pub cls_rows: Vec<usize>,
    /// The model's output per sequence, `[sequences, labels]`.
    pub output: Tensor<2>,
    /// Statistics of each prunable layer's inputs over the same tokens, in `prunable_layers()`
    /// order (for criteria that weigh a weight by its input: Wanda, STADE).
    pub inputs: Vec<InputStats>,
}

/// Sums of one prunable layer's input features over calibration tokens: `Σ x_j`, `Σ x_j²`
/// and the number of tokens (padding excluded). Batches merge by adding.
#[derive(Clone, Debug)]
pub struct InputStats {
    pub sum: Tensor<1>,
    pub sum_sq: Tensor<1>,
    pub count: usize,
}

impl InputStats {
    /// The statistics of `rows` `[tokens, features]`.
    pub fn of(rows: Tensor<2>) -> Self {
        let [n, f] = rows.dims();
        Self { sum: rows.clone().sum_dim(0).reshape([f]), sum_sq: rows.square().sum_dim(0).reshape([f]), count: n }
    }

    /// The statistics of two disjoint sets of tokens together.
    pub fn merge(self, other: Self) -> Self {
        Self { sum: self.sum + other.sum, sum_sq: self.sum_sq + other.sum_sq, count: self.count + other.count }
    }

    fn host(t: &Tensor<1>) -> Vec<f64> {
        t.to_data().convert::<f32>().try_to_vec::<f32>().expect("f32 statistics").into_iter().map(f64::from).collect()
    }

    /// `‖X_j‖₂` over the tokens, per feature (Wanda's input norm).
    pub fn norms(&self) -> Vec<f64> {
        Self::host(&self.sum_sq).into_iter().map(|v| v.max(0.0).sqrt()).collect()
    }

    /// The mean of each feature.
    pub fn means(&self) -> Vec<f64> {
        Self::host(&self.sum).into_iter().map(|v| v / self.count.max(1) as f64).collect()
    }

    /// The unbiased (n − 1) variance of each feature (0 with fewer than two tokens).
    pub fn variances(&self) -> Vec<f64> {
        let n = self.count as f64;
        if self.count < 2 {
            return vec![0.0; self.sum.dims()[0]];
        }
        Self::host(&self.sum).into_iter().zip(Self::host(&self.sum_sq)).map(|(s, q)| ((q - s * s / n) / (n - 1.0)).max(0.0)).collect()
    }
}

impl UnitActivations {
    /// Concatenates the activations of several calibration batches.
    pub fn concat(parts: Vec<UnitActivations>) -> Self {
        let mut offset = 0;
        let mut cls_rows = Vec::new();
        for p in &parts {
            cls_rows.extend(p.cls_rows.iter().map(|r| r + offset));
            offset += p.groups[0].dims()[0];
        }
        let n = parts[0].groups.len();
        let groups = (0..n).map(|g| Tensor::cat(parts.iter().map(|p| p.groups[g].clone()).collect(), 0)).collect();
        let output = Tensor::cat(parts.iter().map(|p| p.output.clone()).collect(), 0);
        let inputs = (0..parts[0].inputs.len())
            .map(|l| parts.iter().map(|p| p.inputs[l].clone()).reduce(InputStats::merge).expect("at least one part"))
            .collect();
        Self { groups, cls_rows, output, inputs }
    }
}
