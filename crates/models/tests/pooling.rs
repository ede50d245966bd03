//! The classification head's pooling: `cls` (tanh(pooler(CLS)), Hugging Face) or `mean` (the
//! mean of the last hidden states over the tokens, sentence-transformers).

use burn::tensor::{Device, Int, Tensor, TensorData};
use models::bert::mean_over_tokens;
use models::{BertConfig, BertForSequenceClassification, Pooling};

#[allow(deprecated)]
fn cpu() -> Device {
    Device::ndarray()
}

fn int2(v: Vec<i64>, shape: [usize; 2], d: &Device) -> Tensor<2, Int> {
    Tensor::from_data(TensorData::new(v, shape), d)
}

fn host(t: Tensor<2>) -> Vec<f32> {
    t.to_data().convert::<f32>().try_to_vec().unwrap()
}

#[test]
fn mean_pooling_is_the_token_mean_and_ignores_padding() {
    let d = cpu();
    d.seed(3);
    let mut c = BertConfig::tiny(20);
    c.classifier_pooling = Some(Pooling::Mean);
    let model = BertForSequenceClassification::new(&c, 3, &d);
    assert!(model.mean_pooling);
    // One sentence of 5 tokens alone, and padded to 8 in a batch with a longer one.
    let alone = [2i64, 7, 9, 11, 3];
    let ids1 = int2(alone.to_vec(), [1, 5], &d);
    let logits1 = host(model.forward(ids1.clone(), ids1.zeros_like(), ids1.ones_like()));
    let mut batch = alone.to_vec();
    batch.extend([0, 0, 0]);
    batch.extend([2, 5, 6, 7, 8, 9, 10, 3]);
    let mask: Vec<i64> = [1, 1, 1, 1, 1, 0, 0, 0].into_iter().chain([1; 8]).collect();
    let ids2 = int2(batch, [2, 8], &d);
    let logits2 = host(model.forward(ids2.clone(), ids2.zeros_like(), int2(mask, [2, 8], &d)));
    for k in 0..3 {
        assert!((logits1[k] - logits2[k]).abs() < 1e-5, "padding changed logit {k}: {} vs {}", logits1[k], logits2[k]);
    }
    // The head is the classifier applied to the mean of the last hidden states, by hand.
    let out = model.bert.forward(ids1.clone(), ids1.zeros_like(), ids1.ones_like(), false);
    let h: Vec<f32> = out.last_hidden_state.to_data().convert::<f32>().try_to_vec().unwrap();
    let hidden = c.hidden_size;
    let mean: Vec<f32> = (0..hidden).map(|j| (0..5).map(|t| h[t * hidden + j]).sum::<f32>() / 5.0).collect();
    let w: Vec<f32> = model.classifier.weight.val().to_data().convert::<f32>().try_to_vec().unwrap();
    let b: Vec<f32> = model.classifier.bias.as_ref().unwrap().val().to_data().convert::<f32>().try_to_vec().unwrap();
    for k in 0..3 {
        let want = b[k] + (0..hidden).map(|j| w[k * hidden + j] * mean[j]).sum::<f32>();
        assert!((logits1[k] - want).abs() < 1e-5, "logit {k}: {} vs hand {want}", logits1[k]);
    }
    // The same weights read through the CLS pooler give other logits.
    let mut cls = model.clone();
    cls.mean_pooling = false;
    let logits_cls = host(cls.forward(ids1.clone(), ids1.zeros_like(), ids1.ones_like()));
    assert!((0..3).any(|k| (logits_cls[k] - logits1[k]).abs() > 1e-4));
}

#[test]
fn mean_over_tokens_weights_only_unmasked_positions() {
    let d = cpu();
    let x = Tensor::<3>::from_data(TensorData::new(vec![1.0f32, 10.0, 3.0, 20.0, 100.0, 30.0], [1, 3, 2]), &d);
    let m = int2(vec![1, 1, 0], [1, 3], &d);
    assert_eq!(host(mean_over_tokens(x, m)), vec![2.0, 15.0]);
}

#[test]
fn sentence_transformers_pooling_config_is_read() {
    let dir = std::env::temp_dir().join(format!("prunekit-pooling-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("1_Pooling")).unwrap();
    assert_eq!(Pooling::from_sentence_transformers(&dir.join("nowhere")).unwrap(), None);
    let write = |s: &str| std::fs::write(dir.join("1_Pooling/config.json"), s).unwrap();
    write(r#"{"word_embedding_dimension": 384, "pooling_mode_cls_token": false, "pooling_mode_mean_tokens": true}"#);
    assert_eq!(Pooling::from_sentence_transformers(&dir).unwrap(), Some(Pooling::Mean));
    write(r#"{"pooling_mode_cls_token": true, "pooling_mode_mean_tokens": false}"#);
    assert_eq!(Pooling::from_sentence_transformers(&dir).unwrap(), Some(Pooling::Cls));
    write(r#"{"pooling_mode_max_tokens": true}"#);
    assert_eq!(Pooling::from_sentence_transformers(&dir).unwrap(), None);
    write("{not json");
    let err = Pooling::from_sentence_transformers(&dir).unwrap_err();
    assert!(err.contains("1_Pooling") && err.contains("config.json"), "{err}");
    // The project's own key round-trips through config.json; absent means cls.
    let mut c = BertConfig::tiny(9);
    assert!(!serde_json::to_string(&c).unwrap().contains("classifier_pooling"));
    c.classifier_pooling = Some(Pooling::Mean);
    let text = serde_json::to_string(&c).unwrap();
    assert!(text.contains(r#""classifier_pooling":"mean""#), "{text}");
    let back: BertConfig = serde_json::from_str(&text).unwrap();
    assert_eq!(back.classifier_pooling, Some(Pooling::Mean));
    let _ = std::fs::remove_dir_all(&dir);
}
