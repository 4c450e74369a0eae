//! What is wrong with a policy file: every problem found, each with its place.

use std::fmt;

/// One problem in a policy file: where (`routes[3].require`, `tests[0]`), the line and
/// column when the format gives them, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PolicyError {
    /// The place in the file, as a path: `routes[3].require`, `unmatched`, `tests[1]`; empty
    /// for the file as a whole.
    pub place: String,
    /// The 1-based line and column, when the format reports them (syntax and type errors).
    pub position: Option<(usize, usize)>,
    /// What is wrong there.
    pub message: String,
}

impl PolicyError {
    pub(crate) fn at(place: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            place: place.into(),
            position: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.place.is_empty(), self.position) {
            (true, None) => {}
            (true, Some((line, column))) => write!(f, "line {line}, column {column}: ")?,
            (false, None) => write!(f, "{}: ", self.place)?,
            (false, Some((line, column))) => {
                write!(f, "{} (line {line}, column {column}): ", self.place)?;
            }
        }
        f.write_str(&self.message)
    }
}

/// Every problem a policy file has, found in one pass so that one run reports them all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyErrors(pub(crate) Vec<PolicyError>);

impl PolicyErrors {
    /// The problems, in the order of the file.
    #[must_use]
    pub fn errors(&self) -> &[PolicyError] {
        &self.0
    }
}

impl From<PolicyError> for PolicyErrors {
    fn from(error: PolicyError) -> Self {
        Self(vec![error])
    }
}

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_slice() {
            [one] => write!(f, "{one}"),
            many => {
                write!(f, "{} problems in the policy:", many.len())?;
                for error in many {
                    write!(f, "\n  {error}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for PolicyErrors {}
