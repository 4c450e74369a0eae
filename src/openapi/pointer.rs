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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_escaped_in_pointers() {
        assert_eq!(child("/paths", "/pets/{id}"), "/paths/~1pets~1{id}");
        assert_eq!(child("", "a~b"), "/a~0b");
    }

    #[test]
    fn local_refs_are_decoded_pointers() {
        assert_eq!(local_pointer("#"), Some(String::new()));
        assert_eq!(
            local_pointer("#/components/parameters/Page%20Size").as_deref(),
            Some("/components/parameters/Page Size")
        );
        assert_eq!(local_pointer("#/a%2Fb").as_deref(), Some("/a/b"));
        // Anchors, other documents, malformed escapes and invalid UTF-8 name no pointer.
        for reference in ["#anchor", "other.yaml#/x", "#/a%2", "#/a%zz", "#/%FF"] {
            assert_eq!(local_pointer(reference), None, "{reference}");
        }
    }

    #[test]
    fn pointers_become_fragments_and_back() {
        let pointer = "/components/schemas/Note/properties/the title é";
        let fragment = pointer_fragment(pointer);
        assert_eq!(
            fragment,
            "#/components/schemas/Note/properties/the%20title%20%C3%A9"
        );
        assert_eq!(local_pointer(&fragment).as_deref(), Some(pointer));
    }
}
