//! `trainer encode`: how a user checks that a checkpoint loaded right (compare with
//! `transformers`' `last_hidden_state[:, 0]`).

use crate::train_loop::load_model;
use burn::tensor::{Int, Tensor, TensorData};
use std::io::Write;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct EncodeArgs {
    /// "minilm", a Hugging Face checkpoint directory, or a hub id.
    #[arg(long)]
    model: String,
    /// Text file, one input per line.
    #[arg(long)]
    input: PathBuf,
    #[arg(long, default_value_t = 512)]
    max_length: usize,
    #[arg(long, value_enum, default_value = "cpu")]
    device: crate::experiment::DeviceChoice,
}

impl clap::ValueEnum for crate::experiment::DeviceChoice {
    fn value_variants<'a>() -> &'a [Self] {
        use crate::experiment::DeviceChoice::*;
        &[Auto, Gpu, Wgpu, Vulkan, Cuda, Cpu, Flex, Ndarray, Libtorch]
    }
    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        use crate::experiment::DeviceChoice::*;
        let name = match self {
            Auto => "auto",
            Gpu => "gpu",
            Wgpu => "wgpu",
            Vulkan => "vulkan",
            Cuda => "cuda",
            Cpu => "cpu",
            Flex => "flex",
            Ndarray => "ndarray",
            Libtorch => "libtorch",
        };
        Some(clap::builder::PossibleValue::new(name))
    }
}

pub fn main(args: EncodeArgs) -> Result<(), String> {
    let text = std::fs::read_to_string(&args.input).map_err(|e| format!("cannot read {}: {e}", args.input.display()))?;
    let sel = crate::device::select(args.device)?;
    // A fine-tuned checkpoint (config.json with id2label, a classifier in the weights) also
    // prints its logits, so a saved model can be compared with `transformers` end to end.
    let dir = crate::source::resolve(&args.model)?;
    let num_labels = std::fs::read_to_string(dir.join("config.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["id2label"].as_object().map(|m| m.len()))
        .unwrap_or(2);
    let loaded = load_model(&args.model, args.max_length, num_labels, false, &sel.device)?;
    let has_head = !loaded.missing.iter().any(|m| m.starts_with("classifier"));
    let mut out = std::io::stdout().lock();
    for line in text.lines() {
        let ids = loaded.tokenizer.encode_text(line)?;
        let n = ids.len();
        let t = |v: Vec<i64>| Tensor::<2, Int>::from_data(TensorData::new(v, [1, n]), &sel.device);
        let input_ids = t(ids.iter().map(|&i| i as i64).collect());
        let out_enc = loaded.model.bert.forward(input_ids.clone(), t(vec![0; n]), t(vec![1; n]), false);
        let [_, _, h] = out_enc.last_hidden_state.dims();
        let cls: Vec<f32> = out_enc.last_hidden_state.slice([0..1, 0..1, 0..h]).to_data().try_to_vec().map_err(|e| format!("{e:?}"))?;
        let mut line = serde_json::json!({"text": line, "input_ids": ids, "cls": cls});
        if has_head {
            let logits: Vec<f32> = loaded.model.forward(input_ids, t(vec![0; n]), t(vec![1; n])).to_data().try_to_vec().map_err(|e| format!("{e:?}"))?;
            line["logits"] = serde_json::json!(logits);
        }
        writeln!(out, "{line}").map_err(|e| e.to_string())?;
    }
    Ok(())
}
