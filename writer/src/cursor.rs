//! Opaque, tamper-evident page cursors.
//!
//! A cursor is `base64url(json(resume key)) . base64url(HMAC-SHA256(scope, payload))[..16]`.
//! The MAC binds it to the collection it came from, so an edited or transplanted cursor is a
//! 400 before any database call, never a DynamoDB error.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::store::ResumeKey;

type HmacSha256 = Hmac<Sha256>;

/// Tags are truncated to 128 bits: enough against forgery, shorter URLs.
const TAG_BYTES: usize = 16;
/// Longer input is not a cursor of ours.
const MAX_CURSOR_CHARS: usize = 2048;

/// Why a cursor was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid cursor")]
pub(crate) struct InvalidCursor;

/// Signs and checks cursors with one secret.
#[derive(Clone)]
pub struct CursorCodec {
    secret: Vec<u8>,
}

impl std::fmt::Debug for CursorCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorCodec(..)")
    }
}

impl CursorCodec {
    /// A codec signing with `secret`.
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        Self {
            secret: secret.into(),
        }
    }

    fn tag(&self, scope: &str, payload: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.secret).expect("HMAC takes any key");
        mac.update(scope.as_bytes());
        mac.update(&[0]);
        mac.update(payload);
        mac
    }

    pub(crate) fn encode(&self, scope: &str, resume: &ResumeKey) -> String {
        let ordered: std::collections::BTreeMap<_, _> = resume.iter().collect();
        let payload = serde_json::to_vec(&ordered).expect("string maps serialize");
        let tag = self.tag(scope, &payload).finalize().into_bytes();
        format!("{}.{}", B64.encode(&payload), B64.encode(&tag[..TAG_BYTES]))
    }

    pub(crate) fn decode(&self, scope: &str, cursor: &str) -> Result<ResumeKey, InvalidCursor> {
        if cursor.len() > MAX_CURSOR_CHARS {
            return Err(InvalidCursor);
        }
        let (payload, tag) = cursor.split_once('.').ok_or(InvalidCursor)?;
        let payload = B64.decode(payload).map_err(|_| InvalidCursor)?;
        let tag = B64.decode(tag).map_err(|_| InvalidCursor)?;
        if tag.len() != TAG_BYTES {
            return Err(InvalidCursor);
        }
        self.tag(scope, &payload)
            .verify_truncated_left(&tag)
            .map_err(|_| InvalidCursor)?;
        serde_json::from_slice(&payload).map_err(|_| InvalidCursor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn resume() -> ResumeKey {
        ResumeKey::from([
            ("PK".to_owned(), "TOPIC#rust".to_owned()),
            ("SK".to_owned(), "POST#2abc".to_owned()),
        ])
    }

    #[test]
    fn round_trips_within_its_scope_only() {
        let codec = CursorCodec::new("secret");
        let cursor = codec.encode("base|TOPIC#rust", &resume());
        assert_eq!(codec.decode("base|TOPIC#rust", &cursor), Ok(resume()));
        assert_eq!(codec.decode("base|TOPIC#go", &cursor), Err(InvalidCursor));
        assert_eq!(
            CursorCodec::new("other").decode("base|TOPIC#rust", &cursor),
            Err(InvalidCursor)
        );
    }

    proptest! {
        #[test]
        fn any_edit_is_refused(index in 0usize..200, replacement in "[A-Za-z0-9_.-]") {
            let codec = CursorCodec::new("secret");
            let cursor = codec.encode("s", &resume());
            let index = index % cursor.len();
            let mut edited = cursor.clone();
            edited.replace_range(index..=index, &replacement);
            prop_assume!(edited != cursor);
            // Base64 padding bits can absorb an edit of the last character; then the
            // decoded bytes are unchanged, which is not a forgery.
            if let Ok(key) = codec.decode("s", &edited) {
                prop_assert_eq!(key, resume());
            }
        }

        #[test]
        fn garbage_never_panics(text in ".{0,300}") {
            let _ = CursorCodec::new("secret").decode("s", &text);
        }
    }
}
