//! The API keys of the REST API (`api_keys_file`, `api_keys`) and the rule that keeps a
//! coordinator without keys off the network (`allow_unauthenticated_api`).
//!
//! `api_keys_file` contains one key per line. Blank lines and lines starting with `#` are
//! ignored, and surrounding whitespace is trimmed. `api_keys` contains keys separated by commas,
//! for deployments that pass secrets through the environment. Keys from both are accepted.
//! A key must be at least [`MIN_API_KEY_LENGTH`] characters of visible ASCII, so it travels
//! unchanged in a header and cannot be guessed quickly; `openssl rand -hex 32` writes a good
//! one. Error messages name the line or position of a bad key, never the key.

use std::net::SocketAddr;
use std::path::Path;

use mpic_shared::appconf::AppConf;

use super::nats::read_setting_file;
use super::{ConfigError, ConfigWarning};
use crate::api::auth::ApiKeys;

/// Reads the API keys from `api_keys_file` and `api_keys`. Returns `None` when neither is set.
pub(super) fn api_keys(conf: &AppConf) -> Result<Option<ApiKeys>, ConfigError> {
    let mut keys = Vec::new();
    if let Some(file) = conf.get("api_keys_file") {
        keys.extend(keys_from_file(Path::new(file))?);
    }
    if let Some(list) = conf.get("api_keys") {
        keys.extend(keys_from_list(list)?);
    }
    Ok(ApiKeys::new(keys))
}

/// Checks that a coordinator without API keys listens only on loopback, unless
/// `allow_unauthenticated_api` is set because a proxy in front of it authenticates callers.
/// Returns a warning when that exception is in use.
pub(super) fn check_api_exposure(
    listen_address: SocketAddr,
    api_keys: Option<&ApiKeys>,
    allow_unauthenticated_api: bool,
) -> Result<Option<ConfigWarning>, ConfigError> {
    if api_keys.is_some() || listen_address.ip().is_loopback() {
        return Ok(None);
    }
    if allow_unauthenticated_api {
        return Ok(Some(ConfigWarning::UnauthenticatedApi { listen_address }));
    }
    Err(ConfigError::Invalid {
        key: "listen_address",
        reason: format!(
            "{listen_address} is not a loopback address, but no API keys are configured, so \
             anyone who reaches it could request validations; set api_keys_file or api_keys, \
             or set allow_unauthenticated_api=true if a proxy in front authenticates callers"
        ),
    })
}

fn keys_from_file(file: &Path) -> Result<Vec<String>, ConfigError> {
    const KEY: &str = "api_keys_file";
    let bytes = read_setting_file(KEY, file)?;
    let text = String::from_utf8(bytes).map_err(|_| ConfigError::Invalid {
        key: KEY,
        reason: format!("{} is not a text file", file.display()),
    })?;

    let mut keys = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        check_key(line).map_err(|problem| ConfigError::Invalid {
            key: KEY,
            reason: format!("line {} of {}: {problem}", index + 1, file.display()),
        })?;
        keys.push(line.to_owned());
    }
    if keys.is_empty() {
        return Err(ConfigError::Invalid {
            key: KEY,
            reason: format!(
                "{} contains no API key; write one key per line",
                file.display()
            ),
        });
    }
    Ok(keys)
}

fn keys_from_list(list: &str) -> Result<Vec<String>, ConfigError> {
    const KEY: &str = "api_keys";
    let mut keys = Vec::new();
    for (index, key) in list.split(',').map(str::trim).enumerate() {
        if key.is_empty() {
            continue;
        }
        check_key(key).map_err(|problem| ConfigError::Invalid {
            key: KEY,
            reason: format!("key {} of the list: {problem}", index + 1),
        })?;
        keys.push(key.to_owned());
    }
    if keys.is_empty() {
        return Err(ConfigError::Invalid {
            key: KEY,
            reason: "set but holds no API key; separate keys with commas".to_owned(),
        });
    }
    Ok(keys)
}

/// Checks one key's length and characters. The message never contains the key.
fn check_key(key: &str) -> Result<(), String> {
    if !key.bytes().all(|byte| byte.is_ascii_graphic()) {
        return Err("a key may contain only visible ASCII characters, no spaces".to_owned());
    }
    if key.len() < MIN_API_KEY_LENGTH {
        return Err(format!(
            "the key has {} characters, fewer than the {MIN_API_KEY_LENGTH} required; generate \
             one with `openssl rand -hex 32`",
            key.len()
        ));
    }
    Ok(())
}

/// Shortest API key accepted: 16 characters. A random hex key of that length carries 64 bits,
/// far too many to guess through the API.
pub const MIN_API_KEY_LENGTH: usize = 16;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_files::TempDirectory;

    const KEY_1: &str = "first-api-key-0123456789";
    const KEY_2: &str = "second-api-key-0123456789";
    const KEY_3: &str = "third-api-key-0123456789";

    fn keys_of(text: &str) -> Result<Option<ApiKeys>, ConfigError> {
        api_keys(&AppConf::parse(text).unwrap())
    }

    #[test]
    fn keys_come_from_file_and_list() {
        let directory = TempDirectory::new();
        let file = directory.write(
            "api-keys",
            format!("# keys of the CA\n\n  {KEY_1}  \n# {KEY_3}\n{KEY_2}\n"),
        );

        let keys = keys_of(&format!("api_keys_file={file}\napi_keys= {KEY_3} ,\n"))
            .unwrap()
            .unwrap();
        assert_eq!(keys.count(), 3);
        for key in [KEY_1, KEY_2, KEY_3] {
            assert!(keys.accepts(key.as_bytes()), "{key}");
        }

        let from_file = keys_of(&format!("api_keys_file={file}\n"))
            .unwrap()
            .unwrap();
        assert!(
            !from_file.accepts(KEY_3.as_bytes()),
            "a commented-out key is no key"
        );
        assert!(keys_of("").unwrap().is_none(), "no key configured");
    }

    #[test]
    fn bad_keys_are_named_without_their_value() {
        let directory = TempDirectory::new();
        let comments_only = directory.write("comments", "# no key yet\n\n");
        let short = directory.write("short", format!("{KEY_1}\nshort-key\n"));
        let cases = [
            (
                "file without keys",
                format!("api_keys_file={comments_only}\n"),
                "api_keys_file: ",
                "contains no API key",
            ),
            (
                "short key in file",
                format!("api_keys_file={short}\n"),
                "api_keys_file: line 2 of ",
                "fewer than the 16 required",
            ),
            (
                "missing file",
                "api_keys_file=/nonexistent/api-keys\n".to_owned(),
                "api_keys_file: failed to read /nonexistent/api-keys",
                "",
            ),
            (
                "empty list",
                "api_keys= , \n".to_owned(),
                "api_keys: set but holds no API key",
                "",
            ),
            (
                "key with a space",
                format!("api_keys={KEY_1},inner space-0123456789\n"),
                "api_keys: key 2 of the list: ",
                "only visible ASCII",
            ),
        ];
        for (name, text, prefix, detail) in cases {
            let error = match keys_of(&text) {
                Ok(keys) => panic!("{name}: accepted {keys:?}"),
                Err(error) => error.to_string(),
            };
            assert!(error.starts_with(prefix), "{name}: {error}");
            assert!(error.contains(detail), "{name}: {error}");
            for secret in [KEY_1, "short-key", "inner space"] {
                assert!(!error.contains(secret), "{name}: a key leaked: {error}");
            }
        }
    }

    #[test]
    fn open_api_stays_on_loopback() {
        let keys = ApiKeys::new([KEY_1]).unwrap();
        let address = |text: &str| text.parse::<SocketAddr>().unwrap();
        let cases = [
            (
                "loopback without keys",
                "127.0.0.1:8080",
                None,
                false,
                Ok(false),
            ),
            (
                "IPv6 loopback without keys",
                "[::1]:8080",
                None,
                false,
                Ok(false),
            ),
            (
                "any address with keys",
                "0.0.0.0:8080",
                Some(&keys),
                false,
                Ok(false),
            ),
            (
                "any address without keys",
                "0.0.0.0:8080",
                None,
                false,
                Err(()),
            ),
            (
                "private address without keys",
                "10.0.0.5:8080",
                None,
                false,
                Err(()),
            ),
            (
                "any address, explicitly open",
                "0.0.0.0:8080",
                None,
                true,
                Ok(true),
            ),
        ];
        for (name, listen, keys, allow, expected) in cases {
            let result = check_api_exposure(address(listen), keys, allow);
            match (result, expected) {
                (Ok(warning), Ok(warns)) => {
                    assert_eq!(warning.is_some(), warns, "{name}: {warning:?}")
                }
                (Err(error), Err(())) => assert!(
                    error
                        .to_string()
                        .starts_with(&format!("listen_address: {listen} is not a loopback")),
                    "{name}: {error}"
                ),
                (result, _) => panic!("{name}: {result:?}"),
            }
        }
    }
}
