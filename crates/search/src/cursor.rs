//! Page cursors: where the previous page ended (its last sort key and item id), bound to
//! the query, filters and order it came from, and sealed with a MAC so a client can
//! neither forge a position nor reuse a cursor with another search. Keyset positions keep
//! pages stable while items are added: no item is shown twice or skipped because others
//! arrived.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::{Filters, Sort};

const VERSION: u8 = 1;
const TAG_LEN: usize = 16;
const BODY_LEN: usize = 1 + 1 + 8 + 8 + 8;

/// Where a page ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageCursor {
    pub sort: Sort,
    /// Score bits (relevance) or creation time (newest).
    pub primary: u64,
    pub id: u64,
}

/// The MAC key of cursors; processes sharing a catalog must share it.
#[derive(Clone)]
pub struct CursorKey(pub [u8; 32]);

/// A short digest of what a cursor is valid for.
pub fn fingerprint(q: &str, f: &Filters, sort: Sort) -> [u8; 8] {
    let mut h = Sha256::new();
    for part in [
        q,
        f.category.as_deref().unwrap_or("\u{0}"),
        &f.tags.join("\u{1}"),
        &format!("{:?}/{:?}/{:?}", f.price_min, f.price_max, f.media),
        sort.as_str(),
    ] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    let d = h.finalize();
    let mut out = [0u8; 8];
    out.copy_from_slice(&d[..8]);
    out
}

impl CursorKey {
    fn mac(&self) -> Hmac<Sha256> {
        // A 32-byte key is always accepted by HMAC.
        <Hmac<Sha256> as Mac>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!())
    }

    /// Encodes a cursor as URL-safe text.
    pub fn seal(&self, c: &PageCursor, fingerprint: &[u8; 8]) -> String {
        let mut body = Vec::with_capacity(BODY_LEN + TAG_LEN);
        body.push(VERSION);
        body.push(match c.sort {
            Sort::Relevance => 0,
            Sort::Newest => 1,
        });
        body.extend_from_slice(&c.primary.to_be_bytes());
        body.extend_from_slice(&c.id.to_be_bytes());
        body.extend_from_slice(fingerprint);
        let mut m = self.mac();
        m.update(&body);
        let tag = m.finalize().into_bytes();
        body.truncate(BODY_LEN - 8);
        body.extend_from_slice(&tag[..TAG_LEN]);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(body)
    }

    /// Decodes a cursor made by [`CursorKey::seal`] for the same search; `None` if it was
    /// altered, made for another search or order, or is not a cursor at all.
    pub fn open(&self, text: &str, fingerprint: &[u8; 8], sort: Sort) -> Option<PageCursor> {
        if text.len() > 64 {
            return None;
        }
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .ok()?;
        if raw.len() != BODY_LEN - 8 + TAG_LEN || raw[0] != VERSION {
            return None;
        }
        let (body, tag) = raw.split_at(BODY_LEN - 8);
        let mut m = self.mac();
        m.update(body);
        m.update(fingerprint);
        m.verify_truncated_left(tag).ok()?;
        let c = PageCursor {
            sort: match body[1] {
                0 => Sort::Relevance,
                1 => Sort::Newest,
                _ => return None,
            },
            primary: u64::from_be_bytes(body[2..10].try_into().ok()?),
            id: u64::from_be_bytes(body[10..18].try_into().ok()?),
        };
        (c.sort == sort).then_some(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_cursor_opens_only_unaltered_and_for_its_own_search() {
        let k = CursorKey([7; 32]);
        let fp = fingerprint("dress", &Filters::default(), Sort::Relevance);
        let c = PageCursor {
            sort: Sort::Relevance,
            primary: 42,
            id: 9,
        };
        let text = k.seal(&c, &fp);
        assert_eq!(k.open(&text, &fp, Sort::Relevance), Some(c));
        let other = fingerprint("shoe", &Filters::default(), Sort::Relevance);
        assert_eq!(k.open(&text, &other, Sort::Relevance), None);
        assert_eq!(k.open(&text, &fp, Sort::Newest), None);
        let mut raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&text)
            .unwrap();
        raw[12] ^= 1;
        let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        assert_eq!(k.open(&forged, &fp, Sort::Relevance), None);
        assert_eq!(CursorKey([8; 32]).open(&text, &fp, Sort::Relevance), None);
        assert_eq!(k.open("not a cursor", &fp, Sort::Relevance), None);
        assert_eq!(k.open("", &fp, Sort::Relevance), None);
    }
}
