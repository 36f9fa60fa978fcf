//! UMT5's tokenizer, read from `tokenizer/tokenizer.json` with the Hugging Face `tokenizers`
//! library (for umt5-xxl: the SentencePiece `nmt_nfkc` normaliser as a precompiled character
//! map, Metaspace pre-tokenisation, a Unigram vocabulary, `</s>` appended), and diffusers' Wan
//! prompt cleaning.

use crate::diffusers::common::weights::LoadError;
use std::path::Path;
use tokenizers::{PostProcessor, TruncationDirection};

/// Tokenizing a prompt failed.
#[derive(Debug, thiserror::Error)]
#[error("tokenizing the prompt: {0}")]
pub struct TokenizeError(String);

/// transformers' `T5TokenizerFast` as diffusers' Wan pipeline calls it: special tokens added,
/// truncated to a length, no padding.
#[derive(Clone)]
pub struct T5Tokenizer {
    inner: tokenizers::Tokenizer,
    /// How many tokens the post-processor adds to one sequence (umt5: `</s>`).
    special_tokens: usize,
    pad_id: u32,
}

impl std::fmt::Debug for T5Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("T5Tokenizer")
            .field("vocab_size", &self.inner.get_vocab_size(true))
            .field("special_tokens", &self.special_tokens)
            .field("pad_id", &self.pad_id)
            .finish()
    }
}

impl T5Tokenizer {
    /// Reads a `tokenizer.json`. Truncation and padding settings stored in the file are dropped:
    /// [`Self::encode`] truncates to the length it is given, as transformers does.
    pub fn from_file(path: &Path) -> Result<Self, LoadError> {
        let bytes = std::fs::read(path).map_err(|e| LoadError::File { path: path.into(), message: e.to_string() })?;
        let mut inner = tokenizers::Tokenizer::from_bytes(&bytes).map_err(|e| LoadError::File {
            path: path.into(),
            message: format!("not a tokenizer.json the tokenizers library reads: {e}"),
        })?;
        let pad_id = match inner.get_padding() {
            Some(padding) => padding.pad_id,
            None => inner.token_to_id("<pad>").ok_or_else(|| LoadError::File {
                path: path.into(),
                message: "no padding settings and no `<pad>` token".into(),
            })?,
        };
        inner.with_padding(None);
        inner
            .with_truncation(None)
            .map_err(|e| LoadError::File { path: path.into(), message: format!("clearing truncation: {e}") })?;
        let special_tokens = inner.get_post_processor().map_or(0, |p| p.added_tokens(false));
        Ok(Self { inner, special_tokens, pad_id })
    }

    /// The ids of `text` with the special tokens (umt5: `</s>` last), at most `max_length` of
    /// them: transformers' `tokenizer(text, max_length=max_length, truncation=True,
    /// add_special_tokens=True)`. Truncation cuts the text's tokens, so the special tokens stay.
    pub fn encode(&self, text: &str, max_length: usize) -> Result<Vec<u32>, TokenizeError> {
        if max_length < self.special_tokens.max(1) {
            return Err(TokenizeError(format!(
                "a length of {max_length} leaves no room for the {} special token(s)",
                self.special_tokens
            )));
        }
        let mut encoding = self.inner.encode_fast(text, false).map_err(|e| TokenizeError(e.to_string()))?;
        encoding.truncate(max_length - self.special_tokens, 0, TruncationDirection::Right);
        let encoding = self.inner.post_process(encoding, None, true).map_err(|e| TokenizeError(e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The id padding positions get (`<pad>`).
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }
}

/// diffusers' Wan `prompt_clean`: HTML entities unescaped twice (as Python's `html.unescape`),
/// whitespace runs (Python's `\s`) collapsed to one space, the ends trimmed. diffusers first runs
/// `ftfy.fix_text` when the optional `ftfy` package is installed; that step is skipped here (it
/// repairs mojibake, which typed prompts do not have).
pub fn prompt_clean(text: &str) -> String {
    let text = html_unescape(&html_unescape(text));
    text.split(is_python_space).filter(|s| !s.is_empty()).collect::<Vec<_>>().join(" ")
}

/// Python's `str.isspace`, which its `\s` matches: Unicode White_Space and the four
/// information separators U+001C..U+001F.
fn is_python_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Latin-1's named entities, U+00A0 to U+00FF in order. HTML5 also accepts these without the
/// `;`, as it does the names in [`LEGACY_ASCII`].
const LATIN1_NAMES: [&str; 96] = [
    "nbsp", "iexcl", "cent", "pound", "curren", "yen", "brvbar", "sect", "uml", "copy", "ordf", "laquo", "not", "shy",
    "reg", "macr", "deg", "plusmn", "sup2", "sup3", "acute", "micro", "para", "middot", "cedil", "sup1", "ordm",
    "raquo", "frac14", "frac12", "frac34", "iquest", "Agrave", "Aacute", "Acirc", "Atilde", "Auml", "Aring", "AElig",
    "Ccedil", "Egrave", "Eacute", "Ecirc", "Euml", "Igrave", "Iacute", "Icirc", "Iuml", "ETH", "Ntilde", "Ograve",
    "Oacute", "Ocirc", "Otilde", "Ouml", "times", "Oslash", "Ugrave", "Uacute", "Ucirc", "Uuml", "Yacute", "THORN",
    "szlig", "agrave", "aacute", "acirc", "atilde", "auml", "aring", "aelig", "ccedil", "egrave", "eacute", "ecirc",
    "euml", "igrave", "iacute", "icirc", "iuml", "eth", "ntilde", "ograve", "oacute", "ocirc", "otilde", "ouml",
    "divide", "oslash", "ugrave", "uacute", "ucirc", "uuml", "yacute", "thorn", "yuml",
];

/// The other names HTML5 accepts without a `;`.
const LEGACY_ASCII: [(&str, char); 10] = [
    ("amp", '&'),
    ("AMP", '&'),
    ("lt", '<'),
    ("LT", '<'),
    ("gt", '>'),
    ("GT", '>'),
    ("quot", '"'),
    ("QUOT", '"'),
    ("COPY", '\u{a9}'),
    ("REG", '\u{ae}'),
];

/// Common typographic entities that need their `;` (the full HTML5 list has over 2000 names).
const NAMED: [(&str, char); 36] = [
    ("apos", '\''),
    ("hellip", '\u{2026}'),
    ("mdash", '\u{2014}'),
    ("ndash", '\u{2013}'),
    ("lsquo", '\u{2018}'),
    ("rsquo", '\u{2019}'),
    ("sbquo", '\u{201a}'),
    ("ldquo", '\u{201c}'),
    ("rdquo", '\u{201d}'),
    ("bdquo", '\u{201e}'),
    ("lsaquo", '\u{2039}'),
    ("rsaquo", '\u{203a}'),
    ("bull", '\u{2022}'),
    ("euro", '\u{20ac}'),
    ("trade", '\u{2122}'),
    ("dagger", '\u{2020}'),
    ("Dagger", '\u{2021}'),
    ("permil", '\u{2030}'),
    ("prime", '\u{2032}'),
    ("Prime", '\u{2033}'),
    ("larr", '\u{2190}'),
    ("uarr", '\u{2191}'),
    ("rarr", '\u{2192}'),
    ("darr", '\u{2193}'),
    ("harr", '\u{2194}'),
    ("hearts", '\u{2665}'),
    ("minus", '\u{2212}'),
    ("infin", '\u{221e}'),
    ("ne", '\u{2260}'),
    ("le", '\u{2264}'),
    ("ge", '\u{2265}'),
    ("ensp", '\u{2002}'),
    ("emsp", '\u{2003}'),
    ("thinsp", '\u{2009}'),
    ("zwnj", '\u{200c}'),
    ("zwj", '\u{200d}'),
];

/// An entity name accepted without a `;`.
fn legacy_entity(name: &str) -> Option<char> {
    if let Some(i) = LATIN1_NAMES.iter().position(|&n| n == name) {
        return char::from_u32(0xa0 + i as u32);
    }
    LEGACY_ASCII.iter().find(|(n, _)| *n == name).map(|&(_, c)| c)
}

/// Windows-1252's characters for the C1 code points U+0080..U+009F, which HTML numeric
/// references are read as (the five undefined ones stay themselves).
const CP1252_C1: [char; 32] = [
    '\u{20ac}', '\u{81}', '\u{201a}', '\u{192}', '\u{201e}', '\u{2026}', '\u{2020}', '\u{2021}', '\u{2c6}', '\u{2030}',
    '\u{160}', '\u{2039}', '\u{152}', '\u{8d}', '\u{17d}', '\u{8f}', '\u{90}', '\u{2018}', '\u{2019}', '\u{201c}',
    '\u{201d}', '\u{2022}', '\u{2013}', '\u{2014}', '\u{2dc}', '\u{2122}', '\u{161}', '\u{203a}', '\u{153}', '\u{9d}',
    '\u{17e}', '\u{178}',
];

/// What Python's `html.unescape` makes of a numeric reference: NUL and out-of-range or
/// surrogate code points become U+FFFD, C1 controls their Windows-1252 characters, other
/// control and non-character code points nothing.
fn numeric_reference(code: Option<u32>) -> Option<char> {
    let code = code.unwrap_or(u32::MAX);
    match code {
        0 => Some('\u{fffd}'),
        0x0d => Some('\r'),
        0x80..=0x9f => Some(CP1252_C1[(code - 0x80) as usize]),
        0xd800..=0xdfff | 0x11_0000.. => Some('\u{fffd}'),
        0x01..=0x08 | 0x0b | 0x0e..=0x1f | 0x7f | 0xfdd0..=0xfdef => None,
        c if c & 0xfffe == 0xfffe => None,
        c => char::from_u32(c),
    }
}

/// Python's `html.unescape` for numeric references (decimal and hex, `;` optional), the
/// entities of [`LATIN1_NAMES`], [`LEGACY_ASCII`] (both also without `;`, longest prefix first,
/// so `&ampx` is `&x`) and [`NAMED`]. Anything else is left as written.
fn html_unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        match unescape_reference(after) {
            Some((replacement, used)) => {
                out.push_str(&replacement);
                rest = &after[used..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The replacement of the reference `after` starts with (the text after a `&`) and how many
/// bytes of it the reference takes; None when it is not one.
fn unescape_reference(after: &str) -> Option<(String, usize)> {
    if let Some(num) = after.strip_prefix('#') {
        let (digits, radix, prefix) = match num.strip_prefix(['x', 'X']) {
            Some(hex) => (hex, 16, 2),
            None => (num, 10, 1),
        };
        let len = digits.find(|c: char| !c.is_digit(radix)).unwrap_or(digits.len());
        if len == 0 {
            return None;
        }
        let semicolon = usize::from(digits[len..].starts_with(';'));
        let code = u32::from_str_radix(&digits[..len], radix).ok();
        let replacement = numeric_reference(code).map(String::from).unwrap_or_default();
        return Some((replacement, prefix + len + semicolon));
    }
    // Python's name pattern: up to 32 characters other than whitespace, `<`, `&`, `#` and `;`.
    let name_len = after
        .char_indices()
        .take(32)
        .find(|&(_, c)| matches!(c, '\t' | '\n' | '\x0c' | ' ' | '<' | '&' | '#' | ';'))
        .map_or_else(|| after.chars().take(32).map(char::len_utf8).sum(), |(i, _)| i);
    if name_len == 0 {
        return None;
    }
    let name = &after[..name_len];
    if after[name_len..].starts_with(';') {
        let found = legacy_entity(name).or_else(|| NAMED.iter().find(|(n, _)| *n == name).map(|&(_, c)| c));
        if let Some(c) = found {
            return Some((c.to_string(), name_len + 1));
        }
    }
    // The longest name accepted without `;` that the text starts with (at least two characters).
    (2..=name_len)
        .rev()
        .filter(|&n| name.is_char_boundary(n))
        .find_map(|n| legacy_entity(&name[..n]).map(|c| (c.to_string(), n)))
}
