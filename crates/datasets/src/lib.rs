//! Data: fetching the real assets, tokenising, the datasets, and batching.
//!
//! The data path is: a source ([`spam_assassin`], [`glue`]) gives [`TextItem`]s → the
//! [`tokenizer`] encodes them once → the [`batcher`] pads a slice of encoded items into tensors.

pub mod batcher;
pub mod fetch;
pub mod glue;
pub mod images;
pub mod item;
pub mod spam_assassin;
pub mod split;
pub mod tabular;
pub mod tokenizer;

pub use batcher::{Batch, Batcher};
pub use item::{EncodedItem, TextDataset, TextItem};
pub use tokenizer::TextTokenizer;
