//! The CLIP byte-level BPE tokenizer, read from `tokenizer/vocab.json` + `tokenizer/merges.txt`.
//!
//! Same steps as transformers' `CLIPTokenizer`: whitespace runs collapse to one space and text is
//! lowercased; it is split into contractions, letter runs, single digits and other-symbol runs;
//! each piece's UTF-8 bytes map to printable characters, the last one marked `</w>`; merges apply
//! by rank. Ids are framed by start/end tokens, truncated and padded to `model_max_length`.

use crate::diffusers::common::weights::LoadError;
use std::collections::HashMap;
use std::path::Path;

#[derive(Debug, Clone)]
pub struct ClipTokenizer {
    vocab: HashMap<String, u32>,
    ranks: HashMap<(String, String), usize>,
    byte_chars: [char; 256],
    pub bos: u32,
    pub eos: u32,
    pub pad: u32,
    pub max_length: usize,
    /// Special tokens as text, matched in the raw prompt before anything else (added tokens).
    specials: Vec<(String, u32)>,
}

fn bytes_to_unicode() -> [char; 256] {
    let mut printable: Vec<u32> = (b'!' as u32..=b'~' as u32).chain(0xA1..=0xAC).chain(0xAE..=0xFF).collect();
    let mut chars: Vec<u32> = printable.clone();
    let mut n = 0;
    for b in 0..256u32 {
        if !printable.contains(&b) {
            printable.push(b);
            chars.push(256 + n);
            n += 1;
        }
    }
    let mut table = ['\0'; 256];
    for (b, c) in printable.into_iter().zip(chars) {
        table[b as usize] = char::from_u32(c).expect("valid code point");
    }
    table
}

/// A special token's text from tokenizer_config.json / special_tokens_map.json: a string or
/// `{"content": ...}`.
fn token_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(o) => o.get("content").and_then(|c| c.as_str()).map(str::to_string),
        _ => None,
    }
}

impl ClipTokenizer {
    /// Reads a `tokenizer/` folder.
    pub fn load(dir: &Path) -> Result<Self, LoadError> {
        let vocab_path = dir.join("vocab.json");
        let vocab: HashMap<String, u32> = crate::diffusers::common::config::read_json(&vocab_path)?;
        let merges_path = dir.join("merges.txt");
        let merges = std::fs::read_to_string(&merges_path)
            .map_err(|e| LoadError::File { path: merges_path.clone(), message: e.to_string() })?;
        let mut ranks = HashMap::new();
        for line in merges.lines().filter(|l| !l.starts_with("#version") && !l.trim().is_empty()) {
            let mut parts = line.split(' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some(a), Some(b), None) => {
                    ranks.insert((a.to_string(), b.to_string()), ranks.len());
                }
                _ => {
                    return Err(LoadError::File {
                        path: merges_path.clone(),
                        message: format!("bad merge line `{line}`"),
                    });
                }
            }
        }
        // Special tokens and the length, from whichever config file names them.
        let mut settings = serde_json::Map::new();
        for name in ["special_tokens_map.json", "tokenizer_config.json"] {
            let p = dir.join(name);
            if p.exists() {
                let v: serde_json::Value = crate::diffusers::common::config::read_json(&p)?;
                if let serde_json::Value::Object(o) = v {
                    settings.extend(o);
                }
            }
        }
        let mut specials = Vec::new();
        let mut special = |key: &str, default: &str| -> Result<u32, LoadError> {
            let text = settings.get(key).and_then(token_text).unwrap_or_else(|| default.to_string());
            let id = vocab
                .get(&text)
                .copied()
                .ok_or_else(|| LoadError::config(&vocab_path, key, &text, "token is not in the vocabulary"))?;
            specials.push((text, id));
            Ok(id)
        };
        let bos = special("bos_token", "<|startoftext|>")?;
        let eos = special("eos_token", "<|endoftext|>")?;
        // SD 2.x pads with "!", which is then an added token: a "!" in a prompt is that token.
        let pad = special("pad_token", "<|endoftext|>")?;
        specials.sort_by_key(|(t, _)| std::cmp::Reverse(t.len()));
        specials.dedup();
        let max_length = settings
            .get("model_max_length")
            .and_then(|v| v.as_f64())
            .filter(|n| (2.0..=4096.0).contains(n))
            .map(|n| n as usize)
            .unwrap_or(77);
        Ok(Self { vocab, ranks, byte_chars: bytes_to_unicode(), bos, eos, pad, max_length, specials })
    }

    /// Pre-tokenised pieces, as CLIP's split pattern finds them.
    fn pieces(text: &str) -> Vec<String> {
        let lowered: String = text.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
        let chars: Vec<char> = lowered.chars().collect();
        let mut out = Vec::new();
        let mut i = 0;
        let is_other = |c: char| !c.is_whitespace() && !c.is_alphabetic() && !c.is_numeric();
        while i < chars.len() {
            let rest: String = chars[i..chars.len().min(i + 15)].iter().collect();
            if let Some(special) = ["<|startoftext|>", "<|endoftext|>"].iter().find(|s| rest.starts_with(*s)) {
                out.push(special.to_string());
                i += special.chars().count();
                continue;
            }
            if chars[i] == '\''
                && let Some(c) = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"].iter().find(|c| rest.starts_with(*c))
            {
                out.push(c.to_string());
                i += c.len();
                continue;
            }
            let c = chars[i];
            let class: Option<fn(char) -> bool> = if c.is_alphabetic() {
                Some(|c: char| c.is_alphabetic())
            } else if c.is_numeric() {
                None
            } else if is_other(c) {
                Some(|c: char| !c.is_whitespace() && !c.is_alphabetic() && !c.is_numeric())
            } else {
                i += 1;
                continue;
            };
            let start = i;
            i += 1;
            if let Some(same) = class {
                // Greedy, as the regex: a symbol run also swallows apostrophes and `<|`.
                while i < chars.len() && same(chars[i]) {
                    i += 1;
                }
            }
            out.push(chars[start..i].iter().collect());
        }
        out
    }

    fn bpe(&self, piece: &str) -> Vec<String> {
        let mapped: Vec<String> = piece.bytes().map(|b| self.byte_chars[b as usize].to_string()).collect();
        let mut word = mapped;
        if let Some(last) = word.last_mut() {
            last.push_str("</w>");
        }
        loop {
            let best = word
                .windows(2)
                .enumerate()
                .filter_map(|(i, w)| self.ranks.get(&(w[0].clone(), w[1].clone())).map(|r| (*r, i)))
                .min();
            let Some((rank, _)) = best else { break };
            let mut merged = Vec::with_capacity(word.len());
            let mut i = 0;
            while i < word.len() {
                if i + 1 < word.len() && self.ranks.get(&(word[i].clone(), word[i + 1].clone())) == Some(&rank) {
                    merged.push(format!("{}{}", word[i], word[i + 1]));
                    i += 2;
                } else {
                    merged.push(word[i].clone());
                    i += 1;
                }
            }
            word = merged;
        }
        word
    }

    /// Token ids without start/end tokens; unknown symbols become the end token, as CLIP's unk.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        // Added (special) tokens are cut out of the raw text first.
        let mut ids = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let next = self
                .specials
                .iter()
                .filter_map(|(t, id)| rest.find(t.as_str()).map(|at| (at, t.len(), *id)))
                .min_by_key(|&(at, len, _)| (at, std::cmp::Reverse(len)));
            match next {
                Some((at, len, id)) => {
                    self.encode_plain(&rest[..at], &mut ids);
                    ids.push(id);
                    rest = &rest[at + len..];
                }
                None => {
                    self.encode_plain(rest, &mut ids);
                    break;
                }
            }
        }
        ids
    }

    fn encode_plain(&self, text: &str, ids: &mut Vec<u32>) {
        for piece in Self::pieces(text) {
            if let Some(&id) = self.vocab.get(&piece).filter(|_| piece.starts_with("<|")) {
                ids.push(id);
                continue;
            }
            for token in self.bpe(&piece) {
                ids.push(self.vocab.get(&token).copied().unwrap_or(self.eos));
            }
        }
    }

    /// `max_length` ids: start, the prompt (truncated), end, then padding.
    pub fn encode_padded(&self, text: &str) -> Vec<u32> {
        let mut ids = vec![self.bos];
        ids.extend(self.encode(text).into_iter().take(self.max_length - 2));
        ids.push(self.eos);
        ids.resize(self.max_length, self.pad);
        ids
    }
}
