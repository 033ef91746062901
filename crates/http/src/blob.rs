//! Reading a blob for download (RFC 8620 §6.2): a whole stored blob (a
//! message or an upload), or one MIME part of a stored message, decoded from
//! its Content-Transfer-Encoding as RFC 8621 §4.1.4 asks of part blobs.

use pochta_jmap::ids::BlobRef;
use pochta_message::{BodyPart, PartKind};
use pochta_store::{AccountId, Store, StoreError};

/// The bytes of `blob` as `account` may read them, or `None` when there is no
/// such blob or it is not the account's (the two are not told apart).
pub async fn read(
    store: &dyn Store,
    account: AccountId,
    blob: &BlobRef,
) -> Result<Option<Vec<u8>>, StoreError> {
    let id = match blob {
        BlobRef::Whole(id) | BlobRef::Part(id, _) => *id,
    };
    let raw = match store.read_blob(account, id).await {
        Ok(raw) => raw,
        Err(StoreError::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    match blob {
        BlobRef::Whole(_) => Ok(Some(raw)),
        BlobRef::Part(_, path) => {
            let path = path.clone();
            // Parsing a large message takes a while: off the async threads.
            tokio::task::spawn_blocking(move || part(&raw, &path))
                .await
                .map_err(|e| StoreError::Backend(format!("part extraction failed: {e}")))
        }
    }
}

/// The decoded body of the part at `path` (IMAP numbering, `[2, 1]`) of the
/// message `raw`; `None` for a path that names no part, or a multipart (which
/// has no content of its own).
pub fn part(raw: &[u8], path: &[u32]) -> Option<Vec<u8>> {
    let meta = pochta_message::parse(raw);
    let part = meta.part(path)?;
    if matches!(part.kind, PartKind::Multipart(_)) {
        return None;
    }
    let body = raw.get(part.body_range())?;
    Some(decode(part, body))
}

/// Undoes base64 and quoted-printable; other encodings are the bytes
/// themselves. A body that does not decode is given as it is (best effort, as
/// mail readers do).
fn decode(part: &BodyPart, body: &[u8]) -> Vec<u8> {
    let decoded = match part.encoding.as_str() {
        "BASE64" => mail_parser::decoders::base64::base64_decode(body),
        "QUOTED-PRINTABLE" => {
            mail_parser::decoders::quoted_printable::quoted_printable_decode(body)
        }
        _ => None,
    };
    decoded.unwrap_or_else(|| body.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSAGE: &[u8] = b"From: a@example.org\r\n\
To: b@example.org\r\n\
Subject: parts\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"xx\"\r\n\
\r\n\
--xx\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
caf=C3=A9 =\r\n\
au lait\r\n\
--xx\r\n\
Content-Type: application/octet-stream; name=\"a.bin\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
AAECAwQFBgcICf8=\r\n\
--xx\r\n\
Content-Type: text/plain\r\n\
\r\n\
plain\r\n\
--xx--\r\n";

    #[test]
    fn parts_are_decoded() {
        assert_eq!(
            part(MESSAGE, &[1]).as_deref(),
            Some("café au lait".as_bytes())
        );
        assert_eq!(
            part(MESSAGE, &[2]).as_deref(),
            Some(&[0u8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 255][..])
        );
        assert_eq!(part(MESSAGE, &[3]).as_deref(), Some(&b"plain"[..]));
    }

    #[test]
    fn no_part_no_multipart() {
        assert_eq!(part(MESSAGE, &[4]), None);
        assert_eq!(part(MESSAGE, &[1, 1]), None);
        let nested = b"Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\n\
Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n--a--\r\n";
        assert_eq!(
            part(nested, &[1]),
            None,
            "a multipart has no body of its own"
        );
        assert_eq!(part(nested, &[1, 1]).as_deref(), Some(&b"x"[..]));
    }

    #[test]
    fn undecodable_bodies_are_given_as_they_are() {
        let msg = b"Content-Transfer-Encoding: base64\r\n\r\n!!not base64!!\r\n";
        assert_eq!(
            part(msg, &[1]).as_deref(),
            Some(&b"!!not base64!!\r\n"[..]),
            "best effort"
        );
    }
}
