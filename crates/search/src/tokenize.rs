//! Tokenization that works for Chinese and English without a dictionary.
//!
//! Runs of CJK characters become their single characters *and* their overlapping pairs
//! (夏季连衣裙 → 夏 季 连 衣 裙 夏季 季连 连衣 衣裙); everything else alphanumeric becomes
//! lower-cased words. A query for 连衣裙 asks for 连衣 and 衣裙, which every title holding
//! the word contains, whatever stands around it — no segmentation dictionary needed.

use tantivy::tokenizer::{Token, TokenStream, Tokenizer};

/// The name the tokenizer is registered under in the index.
pub const TOKENIZER: &str = "custos_cjk";

/// Whether `c` belongs to a script written without spaces between words.
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FFFF
        | 0x3040..=0x309F | 0x30A0..=0x30FF | 0xAC00..=0xD7AF)
}

/// One piece of analysed text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// A lower-cased word of a spaced script (English, digits).
    Word(String),
    /// A run of CJK characters, kept whole.
    Cjk(String),
}

/// Splits text into words and CJK runs, lower-casing words.
pub fn pieces(text: &str) -> Vec<(usize, Piece)> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut cur = String::new();
    let mut cur_cjk = false;
    for (i, c) in text.char_indices() {
        let cjk = is_cjk(c);
        let part = cjk || c.is_alphanumeric();
        if !part || (cjk != cur_cjk && !cur.is_empty()) {
            flush(&mut out, start, &mut cur, cur_cjk);
        }
        if part {
            if cur.is_empty() {
                start = i;
                cur_cjk = cjk;
            }
            if cjk {
                cur.push(c);
            } else {
                cur.extend(c.to_lowercase());
            }
        }
    }
    flush(&mut out, start, &mut cur, cur_cjk);
    out
}

fn flush(out: &mut Vec<(usize, Piece)>, start: usize, cur: &mut String, cjk: bool) {
    if cur.is_empty() {
        return;
    }
    let s = std::mem::take(cur);
    out.push((start, if cjk { Piece::Cjk(s) } else { Piece::Word(s) }));
}

/// The index-side tokenizer: words, CJK unigrams and CJK bigrams.
#[derive(Debug, Clone, Default)]
pub struct CjkTokenizer;

/// Tokens computed up front; titles and descriptions are short.
pub struct CjkTokenStream {
    tokens: Vec<Token>,
    next: usize,
}

impl TokenStream for CjkTokenStream {
    fn advance(&mut self) -> bool {
        self.next += 1;
        self.next <= self.tokens.len()
    }
    fn token(&self) -> &Token {
        &self.tokens[self.next.saturating_sub(1).min(self.tokens.len() - 1)]
    }
    fn token_mut(&mut self) -> &mut Token {
        let i = self.next.saturating_sub(1).min(self.tokens.len() - 1);
        &mut self.tokens[i]
    }
}

/// Every term the index stores for `text`, with byte offsets.
pub fn index_terms(text: &str) -> Vec<(String, usize, usize)> {
    let mut out = Vec::new();
    for (start, piece) in pieces(text) {
        match piece {
            Piece::Word(w) => {
                let end = start + w.len();
                out.push((w, start, end));
            }
            Piece::Cjk(run) => {
                let chars: Vec<(usize, char)> = run.char_indices().collect();
                for (k, &(off, c)) in chars.iter().enumerate() {
                    let from = start + off;
                    out.push((c.to_string(), from, from + c.len_utf8()));
                    if let Some(&(off2, c2)) = chars.get(k + 1) {
                        let mut pair = String::with_capacity(8);
                        pair.push(c);
                        pair.push(c2);
                        out.push((pair, from, start + off2 + c2.len_utf8()));
                    }
                }
            }
        }
    }
    out
}

/// The terms a query asks for: each word, and for each CJK run its pairs (or the single
/// character of a one-character run). All must match.
pub fn query_terms(text: &str) -> Vec<QueryTerm> {
    let mut out = Vec::new();
    for (_, piece) in pieces(text) {
        match piece {
            Piece::Word(w) => out.push(QueryTerm::Word(w)),
            Piece::Cjk(run) => {
                let chars: Vec<char> = run.chars().collect();
                if chars.len() == 1 {
                    out.push(QueryTerm::Exact(run));
                } else {
                    for w in chars.windows(2) {
                        out.push(QueryTerm::Exact(w.iter().collect()));
                    }
                }
            }
        }
    }
    out.dedup();
    out
}

/// One required term of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryTerm {
    /// A word of a spaced script: matched exactly or within a small edit distance.
    Word(String),
    /// A CJK character or pair: matched exactly.
    Exact(String),
}

impl Tokenizer for CjkTokenizer {
    type TokenStream<'a> = CjkTokenStream;
    fn token_stream<'a>(&'a mut self, text: &'a str) -> CjkTokenStream {
        let tokens: Vec<Token> = index_terms(text)
            .into_iter()
            .enumerate()
            .map(|(position, (text, offset_from, offset_to))| Token {
                offset_from,
                offset_to,
                position,
                text,
                position_length: 1,
            })
            .collect();
        if tokens.is_empty() {
            return CjkTokenStream {
                tokens: vec![Token::default()],
                next: 1,
            };
        }
        CjkTokenStream { tokens, next: 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_runs_become_characters_and_pairs_and_english_words_are_lowercased() {
        let terms: Vec<String> = index_terms("夏季连衣裙 Summer-Dress")
            .into_iter()
            .map(|t| t.0)
            .collect();
        for t in ["夏", "裙", "夏季", "连衣", "衣裙", "summer", "dress"] {
            assert!(terms.contains(&t.to_owned()), "{t} missing from {terms:?}");
        }
        assert!(!terms.contains(&"Summer".to_owned()));
    }

    #[test]
    fn a_query_asks_for_the_pairs_of_each_chinese_run() {
        assert_eq!(
            query_terms("连衣裙 red"),
            vec![
                QueryTerm::Exact("连衣".into()),
                QueryTerm::Exact("衣裙".into()),
                QueryTerm::Word("red".into())
            ]
        );
        assert_eq!(query_terms("裙"), vec![QueryTerm::Exact("裙".into())]);
        assert!(query_terms("  ,,; ").is_empty());
    }

    #[test]
    fn the_token_stream_of_empty_text_yields_nothing() {
        let mut t = CjkTokenizer;
        let mut s = t.token_stream("");
        assert!(!s.advance());
        let mut s = t.token_stream("ab 衣");
        let mut n = 0;
        while s.advance() {
            n += 1;
        }
        assert_eq!(n, 2);
    }
}
