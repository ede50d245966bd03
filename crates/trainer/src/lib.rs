//! The trainer: experiment files, the training loop, reports, and the CLI's subcommands.
//!
//! Data path: [`experiment`] → [`data`] (dataset, tokenised once) → batcher (`datasets`) →
//! model (`models`) → pruner (`pruners`) → [`loss`] → [`optim`] → [`report`]; the loop that
//! strings them together is [`train_loop`].

pub mod bench;
pub mod calibrate;
pub mod checkpoint;
pub mod data;
pub mod device;
pub mod encode;
pub mod experiment;
pub mod gpu_check;
pub mod latency;
pub mod latency_cnn;
pub mod loss;
pub mod metrics;
pub mod optim;
pub mod parity;
pub mod plots;
pub mod prune;
pub mod report;
pub mod source;
pub mod sweep;
pub mod image_task;
pub mod tabular_task;
pub mod task;
pub mod text_task;
pub mod train_loop;
