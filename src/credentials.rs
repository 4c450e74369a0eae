//! Helpers shared by the authenticators that read credentials from a request.

use http::request::Parts;
use http::uri::{PathAndQuery, Uri};

/// Rewrites the URI without query parameter `name`.
pub(crate) fn remove_query_parameter(request: &mut Parts, name: &str) {
    let Some(query) = request.uri.query() else {
        return;
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| pair.split_once('=').map_or(*pair, |(key, _)| key) != name)
        .collect();
    let path = request.uri.path();
    let path_and_query = if kept.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", kept.join("&"))
    };
    let mut parts = request.uri.clone().into_parts();
    if let Ok(path_and_query) = PathAndQuery::try_from(path_and_query) {
        parts.path_and_query = Some(path_and_query);
        if let Ok(uri) = Uri::from_parts(parts) {
            request.uri = uri;
        }
    }
}
