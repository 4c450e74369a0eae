//! Why a document cannot be used: [`OpenApiError`], and the helpers that build it.

/// How many characters of a JSON or YAML parser's message are kept in
/// [`OpenApiError::Syntax`].
const MAX_SYNTAX_MESSAGE_CHARS: usize = 200;

/// Why a document cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum OpenApiError {
    /// The text is neither valid JSON nor valid YAML; the parser's message, cut to 200
    /// characters.
    #[error("the OpenAPI document is neither valid JSON nor valid YAML: {0}")]
    Syntax(String),
    /// `openapi` is missing (a Swagger 2.0 document, for one) or is not 3.0.x or 3.1.x.
    #[error("unsupported OpenAPI version ({0}): only 3.0.x and 3.1.x are supported")]
    UnsupportedVersion(String),
    /// A structural problem.
    #[error("invalid OpenAPI document at {}: {reason}", show_pointer(.pointer))]
    Invalid {
        /// A JSON pointer to the problem, e.g. `/paths/~1pets/get/parameters/0`.
        pointer: String,
        /// What is wrong there.
        reason: String,
    },
    /// A `$ref` that does not resolve inside the document; references to other documents
    /// are refused this way too, as they are never fetched.
    #[error(
        "`$ref` {reference:?} at {} does not resolve inside the document \
         (other documents are never fetched)",
        show_pointer(.pointer)
    )]
    UnresolvedRef {
        /// A JSON pointer to the object holding the `$ref`.
        pointer: String,
        /// The reference as written.
        reference: String,
    },
    /// A security requirement names a scheme absent from `components.securitySchemes`.
    #[error(
        "the security requirement at {} names {scheme:?}, which components.securitySchemes \
         does not declare",
        show_pointer(.pointer)
    )]
    UnknownScheme {
        /// A JSON pointer to the requirement object.
        pointer: String,
        /// The scheme's name.
        scheme: String,
    },
}

/// A JSON pointer for a message: quoted, and named when it is the whole document.
fn show_pointer(pointer: &str) -> String {
    if pointer.is_empty() {
        "the document root".to_owned()
    } else {
        format!("`{pointer}`")
    }
}

/// An [`OpenApiError::Invalid`] at `pointer`.
pub(super) fn invalid(pointer: &str, reason: impl Into<String>) -> OpenApiError {
    OpenApiError::Invalid {
        pointer: pointer.to_owned(),
        reason: reason.into(),
    }
}

/// An [`OpenApiError::Syntax`] from a parser's message, cut to its first characters.
pub(super) fn syntax(message: &impl ToString) -> OpenApiError {
    let message = message.to_string();
    if message.chars().count() <= MAX_SYNTAX_MESSAGE_CHARS {
        return OpenApiError::Syntax(message);
    }
    let mut short: String = message.chars().take(MAX_SYNTAX_MESSAGE_CHARS - 1).collect();
    short.push('…');
    OpenApiError::Syntax(short)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_well() {
        let error = invalid("/paths/~1pets", "a path item must be a mapping");
        assert_eq!(
            error.to_string(),
            "invalid OpenAPI document at `/paths/~1pets`: a path item must be a mapping"
        );
        assert_eq!(
            invalid("", "x").to_string(),
            "invalid OpenAPI document at the document root: x"
        );
    }
}
