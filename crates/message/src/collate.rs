//! The comparison form of strings for sorting (RFC 5256 SORT, RFC 8621
//! Email/query with i;unicode-casemap, RFC 5051): IMAP and JMAP must order the
//! same mailbox the same way, so both use this one function.

/// Base letters of U+00C0..=U+017F (Latin-1 Supplement and Latin Extended-A),
/// upper case, `.` where there is none.
const LATIN_BASE: &[u8; 192] = b"AAAAAA.CEEEEIIII.NOOOOO..UUUUY..AAAAAA.CEEEEIIII.NOOOOO..UUUUY.YAAAAAACCCCCCCCDD..EEEEEEEEEEGGGGGGGGHH..IIIIIIIII.IIJJKK.LLLLLLLL..NNNNNN...OOOOOO..RRRRRRSSSSSSSSTTTT..UUUUUUUUUUUUWWYYYZZZZZZ.";

fn latin_base(ch: char) -> Option<char> {
    let index = (ch as usize).checked_sub(0xC0)?;
    match LATIN_BASE.get(index) {
        Some(b'.') | None => None,
        Some(&b) => Some(char::from(b)),
    }
}

/// The comparison form of a string: ASCII letters upper-cased
/// (i;ascii-casemap), other characters upper-cased, accented Latin letters
/// preceded by their base letter.
pub fn casemap(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        if ch.is_ascii() {
            out.push(ch.to_ascii_uppercase());
            continue;
        }
        for upper in ch.to_uppercase() {
            if let Some(base) = latin_base(upper) {
                out.push(base);
            }
            out.push(upper);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::casemap;

    #[test]
    fn accented_letters_sort_beside_their_base() {
        assert_eq!(casemap("abc"), "ABC");
        assert_eq!(casemap("ä"), "AÄ");
        assert!(casemap("Äpfel") > casemap("Apfel"));
        assert!(casemap("Äpfel") < casemap("Birne"));
        assert_eq!(casemap("straße"), "STRASSE");
        assert_eq!(casemap("Ωμέγα"), "ΩΜΈΓΑ");
    }
}
