//! The few responses the relying party writes itself: redirects, and small HTML pages for
//! refused logins and the logout confirmation. Every one is `no-store`, sends no
//! `Referer` onwards (the callback URL holds the code) and allows no script.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue, LOCATION, SET_COOKIE};
use http::{HeaderMap, Response, StatusCode};

/// Why the relying party answered as it did, left in the response's extensions for the
/// decision observer (never sent).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cause(pub(crate) &'static str);

/// `response` with `cause` in its extensions.
pub(crate) fn with_cause(mut response: Response<Bytes>, cause: &'static str) -> Response<Bytes> {
    response.extensions_mut().insert(Cause(cause));
    response
}

/// A redirect to `location` (a URL we built, or a checked relative path).
pub(crate) fn redirect(
    status: StatusCode,
    location: &str,
    cookies: Vec<HeaderValue>,
) -> Response<Bytes> {
    let mut response = Response::new(Bytes::new());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    match HeaderValue::from_str(location) {
        Ok(value) => {
            headers.insert(LOCATION, value);
        }
        Err(_) => {
            // Only reachable with a provider endpoint that is not a valid header value.
            *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        }
    }
    common_headers(response.headers_mut());
    for cookie in cookies {
        response.headers_mut().append(SET_COOKIE, cookie);
    }
    response
}

/// An HTML page saying `message` under `title`, with an optional link.
pub(crate) fn page(
    status: StatusCode,
    title: &str,
    message: &str,
    link: Option<(&str, &str)>,
    cookies: Vec<HeaderValue>,
) -> Response<Bytes> {
    let link = link
        .map(|(href, text)| format!("<p><a href=\"{}\">{}</a></p>", escape(href), escape(text)))
        .unwrap_or_default();
    let body = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body><h1>{title}</h1><p>{message}</p>{link}</body></html>\n",
        title = escape(title),
        message = escape(message),
    );
    html(status, body, cookies)
}

/// The logout confirmation: one button posting to `action`.
pub(crate) fn logout_form(action: &str) -> Response<Bytes> {
    let body = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Log out</title></head>\
         <body><h1>Log out?</h1><form method=\"post\" action=\"{}\">\
         <button type=\"submit\">Log out</button></form></body></html>\n",
        escape(action)
    );
    html(StatusCode::OK, body, Vec::new())
}

fn html(status: StatusCode, body: String, cookies: Vec<HeaderValue>) -> Response<Bytes> {
    let mut response = Response::new(Bytes::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
    );
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    common_headers(headers);
    for cookie in cookies {
        headers.append(SET_COOKIE, cookie);
    }
    response
}

/// A JSON error for the back-channel logout endpoint (OpenID Connect Back-Channel Logout
/// 1.0, section 2.8: 400 with an OAuth 2.0 error body).
pub(crate) fn json_error(status: StatusCode, error: &str, description: &str) -> Response<Bytes> {
    let body = serde_json::json!({"error": error, "error_description": description});
    let mut response = Response::new(Bytes::from(body.to_string()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    common_headers(response.headers_mut());
    response
}

/// An empty answer with `status`.
pub(crate) fn empty(status: StatusCode) -> Response<Bytes> {
    let mut response = Response::new(Bytes::new());
    *response.status_mut() = status;
    common_headers(response.headers_mut());
    response
}

fn common_headers(headers: &mut HeaderMap) {
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
}

/// Escapes text for HTML content and double-quoted attributes.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_escape_what_they_show() {
        let response = page(
            StatusCode::BAD_REQUEST,
            "<t>",
            "a\"b<script>",
            Some(("/x?a=1&b=2", "go")),
            vec![],
        );
        let body = String::from_utf8(response.body().to_vec()).unwrap();
        assert!(body.contains("&lt;t&gt;"));
        assert!(body.contains("a&quot;b&lt;script&gt;"));
        assert!(body.contains("href=\"/x?a=1&amp;b=2\""));
        assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
    }
}
