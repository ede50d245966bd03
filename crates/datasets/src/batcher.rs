//! Encoded items → one padded batch of tensors.

use crate::item::EncodedItem;
use burn::tensor::{Device, Int, Tensor, TensorData};

/// A batch on the device.
#[derive(Debug, Clone)]
pub struct Batch {
    /// `[batch, seq]`, padded with the tokenizer's pad id.
    pub input_ids: Tensor<2, Int>,
    /// `[batch, seq]`.
    pub token_type_ids: Tensor<2, Int>,
    /// `[batch, seq]`: 1 for tokens, 0 for padding.
    pub attention_mask: Tensor<2, Int>,
    /// `[batch]`; 0 where an item has no label.
    pub labels: Tensor<1, Int>,
    /// Host copy of the labels (metrics need them on the host anyway).
    pub label_values: Vec<Option<usize>>,
}

/// Pads to the longest sequence in the batch (never beyond `max_length`).
#[derive(Debug, Clone)]
pub struct Batcher {
    pub pad_id: u32,
    pub max_length: usize,
}

impl Batcher {
    pub fn batch(&self, items: &[&EncodedItem], device: &Device) -> Batch {
        let b = items.len();
        let seq = items.iter().map(|i| i.input_ids.len().min(self.max_length)).max().unwrap_or(1).max(1);
        let mut ids = vec![self.pad_id as i64; b * seq];
        let mut types = vec![0i64; b * seq];
        let mut mask = vec![0i64; b * seq];
        for (r, item) in items.iter().enumerate() {
            for (c, (&id, &ty)) in item.input_ids.iter().zip(&item.token_type_ids).take(seq).enumerate() {
                ids[r * seq + c] = id as i64;
                types[r * seq + c] = ty as i64;
                mask[r * seq + c] = 1;
            }
        }
        let labels: Vec<i64> = items.iter().map(|i| i.label.unwrap_or(0) as i64).collect();
        let t2 = |v: Vec<i64>| Tensor::<2, Int>::from_data(TensorData::new(v, [b, seq]), device);
        Batch {
            input_ids: t2(ids),
            token_type_ids: t2(types),
            attention_mask: t2(mask),
            labels: Tensor::<1, Int>::from_data(TensorData::new(labels, [b]), device),
            label_values: items.iter().map(|i| i.label).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(deprecated)]
    fn pads_to_longest_with_mask() {
        let device = Device::ndarray();
        let a = EncodedItem { input_ids: vec![101, 7, 102], token_type_ids: vec![0, 0, 0], label: Some(1) };
        let b = EncodedItem { input_ids: vec![101, 102], token_type_ids: vec![0, 0], label: Some(0) };
        let batch = Batcher { pad_id: 0, max_length: 128 }.batch(&[&a, &b], &device);
        assert_eq!(batch.input_ids.dims(), [2, 3]);
        assert_eq!(batch.input_ids.to_data().try_to_vec::<i64>().unwrap(), vec![101, 7, 102, 101, 102, 0]);
        assert_eq!(batch.attention_mask.to_data().try_to_vec::<i64>().unwrap(), vec![1, 1, 1, 1, 1, 0]);
        assert_eq!(batch.labels.to_data().try_to_vec::<i64>().unwrap(), vec![1, 0]);
    }
}
