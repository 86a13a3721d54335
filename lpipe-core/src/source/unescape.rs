//! Undoing a JSON string literal's escapes (an SQS body is one): by hand, in one pass, as
//! measured on the benchmark (100,000 SQS records: ~10% of the whole run's wall time against
//! `serde_json::from_str::<String>`; see `bench/README.md`). Anything this pass is not sure of
//! goes to serde_json.

use crate::error::RecordError;

/// A JSON string literal's text. The common escapes are undone here in one pass; anything
/// else (a literal that is not a well-formed string, a lone surrogate) goes to serde_json,
/// for its verdict and its precise error.
pub(super) fn unescape_json_string(literal: &str) -> Result<String, RecordError> {
    unescape_simple(literal).map_or_else(
        || {
            serde_json::from_str(literal).map_err(|e| {
                RecordError::invalid_payload(format!("the record's body is not a JSON string: {e}"))
            })
        },
        Ok,
    )
}

/// [`unescape_json_string`]'s one pass: `None` when it is not sure. The literal's text is
/// copied whole (one `memcpy`), then unescaped in place with a read and a write cursor: an
/// escape is never shorter than what it stands for, so the text only shrinks. Message bodies
/// escape every few bytes (each quote of the JSON inside), which makes a tight loop over
/// bytes cheaper than finding and copying runs. The result is checked as UTF-8 once (the ASCII
/// fast path; escapes write whole characters and other bytes are copied in order).
fn unescape_simple(literal: &str) -> Option<String> {
    let text = literal.strip_prefix('"')?.strip_suffix('"')?;
    let mut buf = text.as_bytes().to_vec();
    let (mut read, mut write) = (0, 0);
    while let Some(&b) = buf.get(read) {
        if !STOPS[usize::from(b)] {
            buf[write] = b;
            write += 1;
            read += 1;
            continue;
        }
        let plain = match (b, buf.get(read + 1)) {
            (b'\\', Some(b'"')) => b'"',
            (b'\\', Some(b'\\')) => b'\\',
            (b'\\', Some(b'/')) => b'/',
            (b'\\', Some(b'b')) => 0x08,
            (b'\\', Some(b'f')) => 0x0c,
            (b'\\', Some(b'n')) => b'\n',
            (b'\\', Some(b'r')) => b'\r',
            (b'\\', Some(b't')) => b'\t',
            (b'\\', Some(b'u')) => {
                let (ch, used) = unicode_escape(&buf[read..])?;
                // At most 4 bytes of UTF-8 for 6 (or 12) of escape: the write stays behind.
                let mut utf8 = [0; 4];
                let encoded = ch.encode_utf8(&mut utf8).as_bytes();
                buf[write..write + encoded.len()].copy_from_slice(encoded);
                write += encoded.len();
                read += used;
                continue;
            }
            // A quote or control character that is not escaped, or an unknown escape.
            _ => return None,
        };
        buf[write] = plain;
        write += 1;
        read += 2;
    }
    buf.truncate(write);
    String::from_utf8(buf).ok()
}

/// The bytes that end a plain run in a JSON string: `\`, `"` and control characters.
const STOPS: [bool; 256] = {
    let mut stops = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        stops[b] = true;
        b += 1;
    }
    stops[b'\\' as usize] = true;
    stops[b'"' as usize] = true;
    stops
};

/// A `\uXXXX` escape (or a surrogate pair of two) at the start of `bytes`: the character and
/// how many bytes it took.
fn unicode_escape(bytes: &[u8]) -> Option<(char, usize)> {
    let unit = |from: usize| {
        let hex = bytes.get(from..from + 4)?;
        if !hex.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        u32::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()
    };
    let first = unit(2)?;
    if !(0xD800..0xDC00).contains(&first) {
        return Some((char::from_u32(first)?, 6));
    }
    // A surrogate pair: `\uD83D\uDE00`.
    if bytes.get(6..8)? != b"\\u" {
        return None;
    }
    let second = unit(8)?;
    if !(0xDC00..0xE000).contains(&second) {
        return None;
    }
    Some((
        char::from_u32(0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00))?,
        12,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::source::Body;

    #[test]
    fn json_string_bodies_unescape_as_serde_json_does() {
        let cases = [
            r#""plain""#,
            r#""{\"path\": \"A\", \"kwargs\": {\"x\": \"a\\\\b\/c\"}}""#,
            r#""tab\tnew\nline\r\b\f""#,
            r#""\u00e9\u4e2d\ud83d\ude00 é""#,
            r#""\"""#,
            r#""\\""#,
            r#""""#,
        ];
        for literal in cases {
            let expected: String = serde_json::from_str(literal).unwrap();
            assert_eq!(
                unescape_simple(literal).as_deref(),
                Some(expected.as_str()),
                "{literal}"
            );
            assert_eq!(
                Body::json_string(literal).into_text().unwrap(),
                expected,
                "{literal}"
            );
        }
        // Not sure: serde_json decides, and names the problem.
        for bad in [
            r#""\u+0e9""#,
            r#""\ud83d alone""#,
            r#""\x""#,
            r#""open"#,
            r#""a"b""#,
            "\"ctl\u{1}\"",
            r#""a quote " inside a long run of plain text""#,
            "\"a control \u{1f} inside a long run of plain text\"",
            "5",
        ] {
            assert_eq!(unescape_simple(bad), None, "{bad}");
            let e = Body::json_string(bad).into_text().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidPayload, "{bad}");
            assert!(e.message().contains("not a JSON string"), "{bad}: {e}");
        }
    }

    #[test]
    fn any_string_serde_json_writes_unescapes_to_itself() {
        use rand::{Rng, SeedableRng};
        let alphabet: Vec<char> = "ab \"\\/\u{0}\u{1f}\n\t\u{7f}é中😀{}:,".chars().collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..4_000 {
            let len = rng.random_range(0..80);
            let text: String = (0..len)
                .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                .collect();
            let literal = serde_json::to_string(&text).unwrap();
            assert_eq!(
                unescape_simple(&literal).as_deref(),
                Some(text.as_str()),
                "{literal}"
            );
        }
    }
}
