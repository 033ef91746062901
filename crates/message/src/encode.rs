//! RFC 2047 encoding of display names for IMAP clients without UTF8=ACCEPT.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub(crate) fn base64(input: &[u8]) -> String {
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                let index = ((n >> (18 - 6 * i)) & 0x3f) as usize;
                out.push(char::from(ALPHABET[index]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Returns `text` unchanged if it is pure ASCII, otherwise as RFC 2047 `=?utf-8?b?...?=`
/// encoded words (each at most 75 characters, split on character boundaries, separated
/// by a space, which decoders drop between adjacent encoded words).
pub(crate) fn encode_if_non_ascii(text: &str) -> String {
    if text.is_ascii() {
        return text.to_string();
    }
    // 45 octets encode to 60 base64 characters; with "=?utf-8?b?" and "?=" that is 72.
    const MAX_CHUNK: usize = 45;
    let mut words = Vec::new();
    let mut chunk_start = 0;
    let mut chunk_len = 0;
    for ch in text.chars() {
        if chunk_len + ch.len_utf8() > MAX_CHUNK {
            words.push(&text[chunk_start..chunk_start + chunk_len]);
            chunk_start += chunk_len;
            chunk_len = 0;
        }
        chunk_len += ch.len_utf8();
    }
    if chunk_len > 0 {
        words.push(&text[chunk_start..chunk_start + chunk_len]);
    }
    words
        .iter()
        .map(|word| format!("=?utf-8?b?{}?=", base64(word.as_bytes())))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_vectors() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn encoded_words() {
        assert_eq!(encode_if_non_ascii("Plain Name"), "Plain Name");
        assert_eq!(
            encode_if_non_ascii("Иван"),
            format!("=?utf-8?b?{}?=", base64("Иван".as_bytes()))
        );
        let long = "Ж".repeat(40);
        let encoded = encode_if_non_ascii(&long);
        let words: Vec<&str> = encoded.split(' ').collect();
        assert_eq!(words.len(), 2);
        assert!(words.iter().all(|w| w.len() <= 75));
    }
}
