//! JSON pointers (RFC 6901) as the reader builds them, and `$ref` fragments (RFC 3986
//! percent-encoding) as documents write them.

/// Appends one reference token to a JSON pointer, escaping `~` and `/`.
pub(super) fn push_token(pointer: &mut String, token: &str) {
    pointer.push('/');
    for character in token.chars() {
        match character {
            '~' => pointer.push_str("~0"),
            '/' => pointer.push_str("~1"),
            other => pointer.push(other),
        }
    }
}

/// `pointer` with one more reference token.
pub(super) fn child(pointer: &str, token: &str) -> String {
    let mut extended = pointer.to_owned();
    push_token(&mut extended, token);
    extended
}

/// The value of one hexadecimal digit.
fn hex_digit(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// A URI fragment with its percent-encoding undone; `None` when it is malformed or not
/// UTF-8.
fn decode_fragment(fragment: &str) -> Option<String> {
    if !fragment.contains('%') {
        return Some(fragment.to_owned());
    }
    let mut decoded = Vec::with_capacity(fragment.len());
    let mut bytes = fragment.bytes();
    while let Some(byte) = bytes.next() {
        if byte == b'%' {
            let high = hex_digit(bytes.next()?)?;
            let low = hex_digit(bytes.next()?)?;
            decoded.push((high << 4) | low);
        } else {
            decoded.push(byte);
        }
    }
    String::from_utf8(decoded).ok()
}

/// The JSON pointer a document-local `$ref` (`#/…`, or `#` for the root) names.
pub(super) fn local_pointer(reference: &str) -> Option<String> {
    let pointer = decode_fragment(reference.strip_prefix('#')?)?;
    (pointer.is_empty() || pointer.starts_with('/')).then_some(pointer)
}

/// A JSON pointer as a URI fragment (`#/…`), percent-encoding what a fragment may not hold.
pub(super) fn pointer_fragment(pointer: &str) -> String {
    const ALLOWED: &[u8] = b"/~-._!$&'()*+,;=:@";
    let mut fragment = String::with_capacity(pointer.len() + 1);
    fragment.push('#');
    for byte in pointer.bytes() {
        if byte.is_ascii_alphanumeric() || ALLOWED.contains(&byte) {
            fragment.push(char::from(byte));
        } else {
            fragment.push_str(&format!("%{byte:02X}"));
        }
    }
    fragment
}
