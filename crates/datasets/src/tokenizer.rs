//! The checkpoint's own tokenizer: `tokenizer.json` through the `tokenizers` crate (exactly
//! what Hugging Face runs), or a BERT WordPiece tokenizer built from `vocab.txt`.

use crate::item::{EncodedItem, TextItem};
use std::path::Path;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

pub struct TextTokenizer {
    inner: Tokenizer,
    /// Longest sequence, special tokens included.
    pub max_length: usize,
    pub pad_id: u32,
}

impl TextTokenizer {
    /// Loads the tokenizer of a Hugging Face checkpoint directory.
    pub fn from_dir(dir: &Path, max_length: usize) -> Result<Self, String> {
        let json = dir.join("tokenizer.json");
        let vocab = dir.join("vocab.txt");
        let mut inner = if json.exists() {
            Tokenizer::from_file(&json).map_err(|e| format!("{}: {e}", json.display()))?
        } else if vocab.exists() {
            Self::wordpiece(&vocab, lowercase_from_config(dir))?
        } else {
            return Err(format!("{}: neither tokenizer.json nor vocab.txt found", dir.display()));
        };
        inner.with_padding(None);
        inner
            .with_truncation(Some(TruncationParams {
                max_length,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|e| format!("truncation: {e}"))?;
        let pad_id = inner.token_to_id("[PAD]").unwrap_or(0);
        Ok(Self { inner, max_length, pad_id })
    }

    fn wordpiece(vocab: &Path, lowercase: bool) -> Result<Tokenizer, String> {
        let wp = WordPiece::from_file(&vocab.to_string_lossy())
            .unk_token("[UNK]".into())
            .build()
            .map_err(|e| format!("{}: {e}", vocab.display()))?;
        let sep = wp.token_to_id_checked("[SEP]", vocab)?;
        let cls = wp.token_to_id_checked("[CLS]", vocab)?;
        let mut t = Tokenizer::new(wp);
        t.with_normalizer(Some(BertNormalizer::new(true, true, None, lowercase)));
        t.with_pre_tokenizer(Some(BertPreTokenizer));
        t.with_post_processor(Some(BertProcessing::new(("[SEP]".into(), sep), ("[CLS]".into(), cls))));
        Ok(t)
    }

    /// Token ids of one text (with `[CLS]`/`[SEP]`), truncated to `max_length`.
    pub fn encode_text(&self, text: &str) -> Result<Vec<u32>, String> {
        let enc = self.inner.encode(text, true).map_err(|e| e.to_string())?;
        Ok(enc.get_ids().to_vec())
    }

    pub fn encode(&self, item: &TextItem) -> Result<EncodedItem, String> {
        let enc = match &item.text_b {
            Some(b) => self.inner.encode((item.text_a.as_str(), b.as_str()), true),
            None => self.inner.encode(item.text_a.as_str(), true),
        }
        .map_err(|e| e.to_string())?;
        Ok(EncodedItem {
            input_ids: enc.get_ids().to_vec(),
            token_type_ids: enc.get_type_ids().to_vec(),
            label: item.label,
        })
    }

    pub fn encode_all(&self, items: &[TextItem]) -> Result<Vec<EncodedItem>, String> {
        items.iter().map(|i| self.encode(i)).collect()
    }
}

trait TokenId {
    fn token_to_id_checked(&self, token: &str, vocab: &Path) -> Result<u32, String>;
}

impl TokenId for WordPiece {
    fn token_to_id_checked(&self, token: &str, vocab: &Path) -> Result<u32, String> {
        use tokenizers::Model;
        self.token_to_id(token).ok_or_else(|| format!("{}: no {token} token", vocab.display()))
    }
}

fn lowercase_from_config(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("tokenizer_config.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v.get("do_lower_case").and_then(|b| b.as_bool()))
        .unwrap_or(true)
}
