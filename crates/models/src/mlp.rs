//! A multi-layer perceptron for tabular data: `Linear → ReLU → Dropout` per hidden layer, then a
//! linear classifier. Every layer is a [`PrunableLinear`] (named `layers.{i}`), so every pruner
//! works on it: unstructured over all weights, structured over the hidden neurons (unit group
//! `layers.{i}.neurons`: row `j` of layer `i` and column `j` of layer `i+1`).

use crate::linear::{Member, PrunableLinear, PrunableModel, PrunerParams, UnitActivations, UnitGroup, UnitKind};
use burn::module::{Module, Param};
use crate::layers::Dropout;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

/// Shapes of an MLP, saved as `config.json` beside its weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MlpConfig {
    /// Always `"prunekit_mlp"` in a saved config.
    #[serde(default = "model_type")]
    pub model_type: String,
    pub input_dim: usize,
    /// Width of each hidden layer.
    pub hidden: Vec<usize>,
    pub num_labels: usize,
    #[serde(default)]
    pub dropout: f64,
}

fn model_type() -> String {
    "prunekit_mlp".into()
}

impl MlpConfig {
    pub fn new(input_dim: usize, hidden: Vec<usize>, num_labels: usize, dropout: f64) -> Self {
        Self { model_type: model_type(), input_dim, hidden, num_labels, dropout }
    }

    /// Reads a saved `config.json`; errors name the file.
    pub fn from_file(path: &std::path::Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let c: Self = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        if c.model_type != "prunekit_mlp" {
            return Err(format!("{}: model_type `{}` is not an MLP checkpoint (prunekit_mlp)", path.display(), c.model_type));
        }
        if c.input_dim == 0 || c.num_labels < 2 || c.hidden.contains(&0) {
            return Err(format!("{}: input_dim, num_labels (>= 2) and every hidden width must be positive", path.display()));
        }
        Ok(c)
    }

    /// Input and output width of each linear layer.
    pub fn dims(&self) -> Vec<(usize, usize)> {
        let mut widths = vec![self.input_dim];
        widths.extend(&self.hidden);
        widths.push(self.num_labels);
        widths.windows(2).map(|w| (w[0], w[1])).collect()
    }
}

#[derive(Module, Debug)]
pub struct Mlp {
    pub layers: Vec<PrunableLinear>,
    pub dropout: Dropout,
    /// Parameters a pruner added (mask logits, multipliers); `None` otherwise.
    pub pruner_params: Option<PrunerParams>,
}

impl Mlp {
    /// Initialised like `torch.nn.Linear`: weight and bias ~ U(−1/√d_in, 1/√d_in), drawn on
    /// the host from `seed` (SplitMix64), so the same seed gives the same model on every
    /// backend and whatever else uses the device's RNG meanwhile.
    pub fn new(c: &MlpConfig, seed: u64, device: &Device) -> Self {
        let mut rng = crate::init::HostRng::new(seed ^ 0x6D6C_705F_696E_6974);
        let mut uniform = move |bound: f64| rng.uniform(bound);
        let layers = c
            .dims()
            .into_iter()
            .map(|(i, o)| {
                let bound = 1.0 / (i as f64).sqrt();
                let w: Vec<f32> = (0..o * i).map(|_| uniform(bound) as f32).collect();
                let b: Vec<f32> = (0..o).map(|_| uniform(bound) as f32).collect();
                PrunableLinear {
                    weight: Param::from_tensor(Tensor::from_data(TensorData::new(w, [o, i]), device)),
                    bias: Some(Param::from_tensor(Tensor::from_data(TensorData::new(b, [o]), device))),
                    mask_scores: None,
                    mask: None,
                    in_gate: None,
                    out_gate: None,
                }
            })
            .collect();
        Self { layers, dropout: Dropout::new(c.dropout), pruner_params: None }
    }

    /// The shapes of this model (after compaction, narrower hidden layers).
    pub fn config(&self, dropout: f64) -> MlpConfig {
        let dims: Vec<[usize; 2]> = self.layers.iter().map(|l| l.dims()).collect();
        MlpConfig::new(dims[0][1], dims[..dims.len() - 1].iter().map(|d| d[0]).collect(), dims[dims.len() - 1][0], dropout)
    }

    /// # Shapes
    /// - x: `[batch, input_dim]`
    /// - output: logits `[batch, num_labels]`
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.forward_features(x).1
    }

    /// The last layer's input `[batch, d]` (the input itself for a model with no hidden
    /// layer), and the logits.
    pub fn forward_features(&self, x: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        let last = self.layers.len() - 1;
        let mut h = x;
        for layer in &self.layers[..last] {
            h = self.dropout.forward(relu(layer.forward(h)));
        }
        (h.clone(), self.layers[last].forward(h))
    }

    /// The hidden activations (after ReLU) of every row, one group per hidden layer, the logits
    /// (each row is one example, so every row is a "CLS row"), and each layer's input statistics.
    pub fn unit_activations(&self, x: Tensor<2>) -> UnitActivations {
        let [n, _] = x.dims();
        let last = self.layers.len() - 1;
        let mut groups = Vec::new();
        let mut inputs = Vec::new();
        let mut h = x;
        for (i, layer) in self.layers.iter().enumerate() {
            inputs.push(crate::linear::InputStats::of(h.clone()));
            h = layer.forward(h);
            if i < last {
                h = relu(h);
                groups.push(h.clone());
            }
        }
        UnitActivations { groups, cls_rows: (0..n).collect(), output: h, inputs }
    }
}

impl PrunableModel for Mlp {
    fn prunable_layers(&self) -> Vec<(String, &PrunableLinear)> {
        self.layers.iter().enumerate().map(|(i, l)| (format!("layers.{i}"), l)).collect()
    }
    fn prunable_layers_mut(&mut self) -> Vec<(String, &mut PrunableLinear)> {
        self.layers.iter_mut().enumerate().map(|(i, l)| (format!("layers.{i}"), l)).collect()
    }
    fn unit_groups(&self) -> Vec<UnitGroup> {
        (0..self.layers.len() - 1)
            .map(|i| UnitGroup {
                name: format!("layers.{i}.neurons"),
                count: self.layers[i].dims()[0],
                width: 1,
                members: vec![Member::rows(i, 1), Member::cols(i + 1, 1)],
                depth: i,
                kind: UnitKind::Neuron,
                residual: false,
            })
            .collect()
    }
    fn pruner_params(&self) -> Option<&PrunerParams> {
        self.pruner_params.as_ref()
    }
    fn pruner_params_slot(&mut self) -> Option<&mut Option<PrunerParams>> {
        Some(&mut self.pruner_params)
    }
}

fn host(t: Tensor<2>) -> (Vec<f32>, [usize; 2]) {
    let d = t.dims();
    (t.to_data().convert::<f32>().try_to_vec().expect("f32 weights"), d)
}

/// Removes every hidden neuron that contributes nothing, exactly: neuron `j` of hidden layer
/// `i` goes when column `j` of layer `i+1` is all zero; when instead its row of layer `i` is
/// all zero, it outputs the constant `relu(b_j)`, which is folded into the next layer's bias
/// before it goes. Reads the effective weights (masks and gates applied). Each hidden layer
/// keeps at least one neuron. Returns the smaller model and the kept width of each hidden layer.
pub fn compact(model: &Mlp) -> (Mlp, Vec<usize>) {
    let device = model.layers[0].weight.val().device();
    let mut weights: Vec<(Vec<f32>, [usize; 2])> = model.layers.iter().map(|l| host(l.effective_weight().detach())).collect();
    let mut biases: Vec<Vec<f32>> = model
        .layers
        .iter()
        .map(|l| l.effective_bias().map(|b| b.detach().to_data().convert::<f32>().try_to_vec().expect("f32 bias")).unwrap_or_else(|| vec![0.0; l.dims()[0]]))
        .collect();
    let mut widths = Vec::new();
    for i in 0..model.layers.len() - 1 {
        let [rows, cols] = weights[i].1;
        let [next_rows, next_cols] = weights[i + 1].1;
        debug_assert_eq!(rows, next_cols);
        let mut keep = Vec::new();
        for j in 0..rows {
            let col_zero = (0..next_rows).all(|r| weights[i + 1].0[r * next_cols + j] == 0.0);
            let row_zero = (0..cols).all(|c| weights[i].0[j * cols + c] == 0.0);
            if col_zero {
                continue;
            }
            if row_zero {
                let constant = biases[i][j].max(0.0);
                for r in 0..next_rows {
                    biases[i + 1][r] += weights[i + 1].0[r * next_cols + j] * constant;
                }
                continue;
            }
            keep.push(j);
        }
        if keep.is_empty() {
            keep.push(0);
            // Its contribution must stay what it was: zero the column (already zero or folded).
            for r in 0..next_rows {
                weights[i + 1].0[r * next_cols] = 0.0;
            }
        }
        let w: Vec<f32> = keep.iter().flat_map(|&j| weights[i].0[j * cols..(j + 1) * cols].to_vec()).collect();
        weights[i] = (w, [keep.len(), cols]);
        biases[i] = keep.iter().map(|&j| biases[i][j]).collect();
        let w: Vec<f32> = (0..next_rows).flat_map(|r| keep.iter().map(|&j| weights[i + 1].0[r * next_cols + j]).collect::<Vec<_>>()).collect();
        weights[i + 1] = (w, [next_rows, keep.len()]);
        widths.push(keep.len());
    }
    let layers = weights
        .into_iter()
        .zip(biases)
        .map(|((w, [r, c]), b)| PrunableLinear {
            weight: Param::from_tensor(Tensor::from_data(TensorData::new(w, [r, c]), &device)),
            bias: Some(Param::from_tensor(Tensor::from_data(TensorData::new(b, [r]), &device))),
            mask_scores: None,
            mask: None,
            in_gate: None,
            out_gate: None,
        })
        .collect();
    (Mlp { layers, dropout: model.dropout.clone(), pruner_params: None }, widths)
}

/// Class indices as a tensor.
pub fn labels_tensor(labels: &[usize], device: &Device) -> Tensor<1, Int> {
    Tensor::from_data(TensorData::new(labels.iter().map(|&l| l as i64).collect::<Vec<_>>(), [labels.len()]), device)
}
