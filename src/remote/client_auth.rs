//! Client authentication at an authorization server's introspection endpoint (RFC 6749
//! section 2.3.1, RFC 7662). The relying party's token and revocation requests are built
//! by the `oauth2` crate instead.

use zeroize::Zeroizing;

use super::{HttpClient, HttpResponse, RemoteError};
use crate::secret::ClientSecret;

/// How the client authenticates (RFC 6749 section 2.3.1, OpenID Connect Core 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientAuth {
    /// `client_secret_basic`: HTTP Basic with the form-encoded id and secret.
    Basic,
    /// `client_secret_post`: id and secret in the form.
    Post,
}

/// POSTs `form` to `url` as client `client_id`, authenticated by `auth` with `secret`.
pub(crate) async fn post_form_as_client(
    http: &dyn HttpClient,
    url: &str,
    form: &[(&str, &str)],
    client_id: &str,
    secret: &ClientSecret,
    auth: ClientAuth,
    accept: &[&str],
) -> Result<HttpResponse, RemoteError> {
    let mut fields: Vec<(&str, &str)> = form.to_vec();
    match auth {
        ClientAuth::Basic => {
            // Both parts are form-encoded before Basic (RFC 6749 section 2.3.1).
            let user = form_encode(client_id);
            let password = Zeroizing::new(form_encode(secret.expose_secret()));
            http.post_form(url, &fields, Some((&user, &password)), accept)
                .await
        }
        ClientAuth::Post => {
            fields.push(("client_id", client_id));
            fields.push(("client_secret", secret.expose_secret()));
            http.post_form(url, &fields, None, accept).await
        }
    }
}

/// `text` as `application/x-www-form-urlencoded`.
pub(crate) fn form_encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}
