//! One file per pruning method.

pub mod dense;
pub mod magnitude;
pub mod movement;
pub mod activation;
pub mod random;
pub mod sbpf;
pub mod soft_movement;
pub mod l0;
pub mod mi_layerwise;
pub mod mask_learning;
pub mod minimax_uniform;
pub mod wanda;
pub mod stade;
pub mod oneshot_magnitude;
pub mod oneshot_random;
pub mod taylor;
pub mod c_swap;
pub mod gradient_flow;
pub mod decay;
pub mod ld_pruner;
