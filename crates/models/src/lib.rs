//! Models that the trainer fine-tunes and the pruners act on.
//!
//! Every prunable matrix is a [`PrunableLinear`]: a linear layer whose effective weight is
//! `W ⊙ M`, where the mask `M` is set by a pruner before each forward pass (see the `pruners`
//! crate). The model code itself knows nothing about pruning methods.

pub mod bert;
pub mod checkpoint;
pub mod layers;
pub mod linear;

pub use bert::{BertConfig, BertForSequenceClassification, BertModel, BertOutputs, Pooling};
pub use linear::{Axis, InputStats, Member, PrunableLinear, PrunableModel, PrunerParams, UnitActivations, UnitGroup, UnitKind};

pub mod cnn;
pub mod compact;
pub mod fused;
pub mod init;
pub mod mlp;
pub mod vit;
pub use mlp::{Mlp, MlpConfig};
