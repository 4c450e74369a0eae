//! Reading one parameter of a query string, the way every layer that reads one must.

use std::borrow::Cow;

/// The value of parameter `name` in `query`, form-decoded. `None` when it is absent **or
/// given more than once**: a service might read another copy than the check did (axum's
/// `Query` keeps the last), so a repeated parameter decides nothing.
pub(crate) fn single_value<'q>(query: &'q str, name: &str) -> Option<Cow<'q, str>> {
    let mut values = form_urlencoded::parse(query.as_bytes())
        .filter(|(held, _)| held == name)
        .map(|(_, value)| value);
    let value = values.next()?;
    values.next().is_none().then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_parameter_has_no_single_value() {
        assert_eq!(single_value("amount=5&x=1", "amount").as_deref(), Some("5"));
        assert_eq!(single_value("a%6Dount=5", "amount").as_deref(), Some("5"));
        assert_eq!(single_value("amount=1&amount=100000", "amount"), None);
        assert_eq!(single_value("x=1", "amount"), None);
    }
}
