//! Secrets a policy names but never holds: a client secret, a Redis URL with its password,
//! a session key. Each is read at build from an environment variable (`…_env: NAME`) or a
//! file (`…_file: PATH`), and no error ever repeats it.

use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::error::PolicyError;
use super::file::{PolicyFile, Unread, read_regular};

/// The largest secret file read: a secret is a line, not a document.
const MAX_SECRET_BYTES: u64 = 64 * 1024;

impl PolicyFile {
    /// The secret `name` of the section at `place`, from the environment variable `env` or
    /// the file `file` (exactly one), trimmed of surrounding white space.
    ///
    /// A secret file may be anywhere (secrets are mounted where the platform puts them,
    /// `/run/secrets/…`): a relative path is relative to the policy file's directory.
    /// Nothing of its content ever reaches an error.
    pub(crate) fn secret(
        &self,
        place: &str,
        name: &str,
        env: Option<&str>,
        file: Option<&str>,
    ) -> Result<Zeroizing<String>, PolicyError> {
        let text = match (env, file) {
            (Some(variable), None) => std::env::var(variable).map_err(|_| {
                PolicyError::at(
                    format!("{place}.{name}_env"),
                    format!("the environment variable `{variable}` is not set (or not UTF-8)"),
                )
            })?,
            (None, Some(path)) => read_secret(&self.secret_path(path))
                .map_err(|message| PolicyError::at(format!("{place}.{name}_file"), message))?,
            _ => {
                return Err(PolicyError::at(
                    place,
                    format!(
                        "give exactly one of `{name}_env` and `{name}_file`: a secret is never \
                         written in the policy"
                    ),
                ));
            }
        };
        let text = Zeroizing::new(text);
        let trimmed = text.trim();
        if trimmed.is_empty() {
            let key = if env.is_some() { "env" } else { "file" };
            return Err(PolicyError::at(
                format!("{place}.{name}_{key}"),
                format!("the {name} is empty"),
            ));
        }
        Ok(Zeroizing::new(trimmed.to_owned()))
    }

    /// Where a secret file named `path` in the policy is.
    fn secret_path(&self, path: &str) -> PathBuf {
        match &self.base {
            Some(base) if Path::new(path).is_relative() => base.join(path),
            _ => PathBuf::from(path),
        }
    }
}

/// Reads a secret file: a regular file of at most 64 KiB of UTF-8 text. Errors name the
/// file and what is wrong with it, never its content.
fn read_secret(path: &Path) -> Result<String, String> {
    let shown = path.display();
    let mut bytes = Zeroizing::new(Vec::new());
    match read_regular(path, MAX_SECRET_BYTES, &mut bytes) {
        Ok(()) => match std::str::from_utf8(&bytes) {
            Ok(text) => Ok(text.to_owned()),
            Err(_) => Err(format!("{shown}: not UTF-8 text")),
        },
        Err(Unread::TooLarge) => Err(format!("{shown}: larger than 64 KiB; not a secret")),
        Err(Unread::Failed(message)) => Err(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy_in(directory: &Path) -> PolicyFile {
        PolicyFile {
            base: Some(directory.to_path_buf()),
            ..PolicyFile::default()
        }
    }

    fn scratch(name: &str) -> PathBuf {
        let directory =
            std::env::temp_dir().join(format!("portcullis-secrets-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&directory).expect("scratch directory");
        directory
    }

    #[test]
    fn a_secret_file_is_read_trimmed_relative_to_the_policy() {
        let directory = scratch("read");
        std::fs::write(directory.join("secret"), "  s3cret\n").expect("write");
        let policy = policy_in(&directory);
        let secret = policy
            .secret("a", "client_secret", None, Some("secret"))
            .expect("read");
        assert_eq!(secret.as_str(), "s3cret");
        // An absolute path is allowed: secrets live where the platform mounts them.
        let absolute = directory.join("secret");
        let secret = policy
            .secret("a", "client_secret", None, absolute.to_str())
            .expect("read");
        assert_eq!(secret.as_str(), "s3cret");
    }

    #[test]
    fn a_secret_is_never_in_an_error() {
        let directory = scratch("errors");
        std::fs::write(directory.join("blank"), " \n").expect("write");
        std::fs::write(directory.join("binary"), [0xff, 0xfe, b's', b'3']).expect("write");
        let policy = policy_in(&directory);
        let neither = policy
            .secret("x", "client_secret", None, None)
            .expect_err("neither");
        assert_eq!(neither.place, "x");
        assert!(neither.message.contains("`client_secret_env`"), "{neither}");
        let both = policy
            .secret("x", "client_secret", Some("A"), Some("b"))
            .expect_err("both");
        assert!(both.message.contains("exactly one"), "{both}");
        let blank = policy
            .secret("x", "client_secret", None, Some("blank"))
            .expect_err("empty");
        assert_eq!(blank.place, "x.client_secret_file");
        let binary = policy
            .secret("x", "client_secret", None, Some("binary"))
            .expect_err("binary");
        assert!(binary.message.contains("not UTF-8"), "{binary}");
        assert!(!binary.message.contains("s3"), "{binary}");
        let missing = policy
            .secret("x", "client_secret", None, Some("missing"))
            .expect_err("missing");
        assert_eq!(missing.place, "x.client_secret_file");
        let unset = policy
            .secret(
                "x",
                "client_secret",
                Some("PORTCULLIS_TEST_SURELY_UNSET_VARIABLE"),
                None,
            )
            .expect_err("unset");
        assert_eq!(unset.place, "x.client_secret_env");
        let directory_itself = policy
            .secret("x", "client_secret", None, directory.to_str())
            .expect_err("a directory");
        assert!(
            directory_itself.message.contains("not a regular file"),
            "{directory_itself}"
        );
    }

    #[test]
    fn a_large_file_is_not_a_secret() {
        let directory = scratch("large");
        std::fs::write(directory.join("large"), vec![b'a'; 70 * 1024]).expect("write");
        let error = policy_in(&directory)
            .secret("x", "session_key", None, Some("large"))
            .expect_err("too large");
        assert!(error.message.contains("64 KiB"), "{error}");
    }
}
