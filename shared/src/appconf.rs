//! The `KEY=VALUE` configuration files of the seed deployment (`app.conf`), with environment
//! overrides.
//!
//! A file has one setting per line. Blank lines and lines starting with `#` are skipped, and
//! whitespace around the key and the value is trimmed. A value wrapped in one pair of matching
//! single or double quotes loses them. An `export ` prefix is allowed, so the same file can be
//! sourced by a shell.
//! The environment overrides the file: for key `hash_secret`, the variable `hash_secret` (how the
//! Python service reads it) or `HASH_SECRET` is used, the exact spelling first. Only keys the
//! caller names are looked up in the environment.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// Settings read from a file and the environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppConf {
    values: BTreeMap<String, Setting>,
}

/// One setting and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The value with quotes removed.
    pub value: String,
    /// The origin of the value, for error messages.
    pub source: SettingSource,
}

/// The origin of a setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingSource {
    /// A line of the configuration file (1-based).
    File {
        /// The line number.
        line: usize,
    },
    /// An environment variable.
    Environment {
        /// The variable's name.
        variable: String,
    },
}

impl fmt::Display for SettingSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SettingSource::File { line } => write!(f, "line {line} of the configuration file"),
            SettingSource::Environment { variable } => write!(f, "environment variable {variable}"),
        }
    }
}

/// The reason configuration could not be read or a value not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AppConfError {
    /// A non-comment line has no `=`.
    #[error("line {line} of the configuration file is not KEY=VALUE: {text:?}")]
    MalformedLine {
        /// The line number.
        line: usize,
        /// The line's text.
        text: String,
    },
    /// A required key is absent from both the file and the environment.
    #[error("{key}: missing; set it in the configuration file or the environment")]
    Missing {
        /// The key.
        key: String,
    },
    /// A value does not parse as the key requires.
    #[error("{key}: invalid value {value:?} ({source_of_value}): {reason}")]
    Invalid {
        /// The key.
        key: String,
        /// The value as given.
        value: String,
        /// The origin of the value.
        source_of_value: String,
        /// The expected form of the value.
        reason: String,
    },
}

impl AppConf {
    /// Parses file text, then applies environment overrides for `known_keys` through `env`
    /// (normally `|name| std::env::var(name).ok()`).
    pub fn load(
        file_text: Option<&str>,
        known_keys: &[&str],
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, AppConfError> {
        let mut conf = match file_text {
            Some(text) => Self::parse(text)?,
            None => Self::default(),
        };
        for key in known_keys {
            let upper = key.to_ascii_uppercase();
            let found = [key.to_string(), upper]
                .into_iter()
                .find_map(|variable| env(&variable).map(|value| (variable, value)));
            if let Some((variable, value)) = found {
                let setting = Setting {
                    value: unquote(value.trim()).to_owned(),
                    source: SettingSource::Environment { variable },
                };
                conf.values.insert((*key).to_owned(), setting);
            }
        }
        Ok(conf)
    }

    /// Parses file text alone.
    pub fn parse(text: &str) -> Result<Self, AppConfError> {
        let mut values = BTreeMap::new();
        for (index, raw_line) in text.lines().enumerate() {
            let line_number = index + 1;
            let line = raw_line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let line = line.strip_prefix("export ").unwrap_or(line);
            let Some((key, value)) = line.split_once('=') else {
                return Err(AppConfError::MalformedLine {
                    line: line_number,
                    text: raw_line.to_owned(),
                });
            };
            let setting = Setting {
                value: unquote(value.trim()).to_owned(),
                source: SettingSource::File { line: line_number },
            };
            values.insert(key.trim().to_owned(), setting);
        }
        Ok(Self { values })
    }

    /// Returns a value, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(|setting| setting.value.as_str())
    }

    /// Returns a setting with its source, if set.
    pub fn setting(&self, key: &str) -> Option<&Setting> {
        self.values.get(key)
    }

    /// Returns a value or a [`AppConfError::Missing`] error.
    pub fn require(&self, key: &str) -> Result<&str, AppConfError> {
        self.get(key).ok_or_else(|| AppConfError::Missing {
            key: key.to_owned(),
        })
    }

    /// Parses a value with [`FromStr`], or returns `None` when the key is unset.
    pub fn parse_value<T>(&self, key: &str) -> Result<Option<T>, AppConfError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        let Some(setting) = self.values.get(key) else {
            return Ok(None);
        };
        setting
            .value
            .parse()
            .map(Some)
            .map_err(|error: T::Err| self.invalid(key, error.to_string()))
    }

    /// Parses a boolean the way the seed files write them (`true`/`false` in any case, `1`/`0`,
    /// `yes`/`no`), or returns `None` when the key is unset.
    pub fn parse_bool(&self, key: &str) -> Result<Option<bool>, AppConfError> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        match value.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(Some(true)),
            "false" | "0" | "no" | "off" => Ok(Some(false)),
            _ => Err(self.invalid(key, "expected true or false".to_owned())),
        }
    }

    /// Builds an [`AppConfError::Invalid`] for a key that is set.
    pub fn invalid(&self, key: &str, reason: String) -> AppConfError {
        let (value, source) = match self.values.get(key) {
            Some(setting) => (setting.value.clone(), setting.source.to_string()),
            None => (String::new(), "unset".to_owned()),
        };
        AppConfError::Invalid {
            key: key.to_owned(),
            value,
            source_of_value: source,
            reason,
        }
    }

    /// Returns the keys that are set but not in `known_keys`, so the caller can warn about them.
    pub fn unknown_keys<'a>(&'a self, known_keys: &[&str]) -> Vec<&'a str> {
        self.values
            .keys()
            .map(String::as_str)
            .filter(|key| !known_keys.contains(key))
            .collect()
    }
}

fn unquote(value: &str) -> &str {
    for quote in ['"', '\''] {
        if value.len() >= 2 && value.starts_with(quote) && value.ends_with(quote) {
            return &value[1..value.len() - 1];
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = r#"
# coordinator settings
perspectives={"us-east-1":{"caa_endpoint_info":{"url":"http://caa_checker_1:80/caa"}}}
default_perspective_count=3
hash_secret="your-long-random-secret"
export absolute_max_attempts = 3
verify_ssl='False'
"#;

    #[test]
    fn seed_file_parses() {
        let conf = AppConf::parse(SEED).unwrap();
        assert_eq!(conf.get("hash_secret"), Some("your-long-random-secret"));
        assert_eq!(
            conf.parse_value::<u32>("default_perspective_count"),
            Ok(Some(3))
        );
        assert_eq!(
            conf.parse_value::<u32>("absolute_max_attempts"),
            Ok(Some(3))
        );
        assert_eq!(conf.parse_bool("verify_ssl"), Ok(Some(false)));
        assert!(
            conf.get("perspectives")
                .unwrap()
                .starts_with("{\"us-east-1\"")
        );
    }

    #[test]
    fn environment_overrides_the_file() {
        let env = |name: &str| match name {
            "HASH_SECRET" => Some("from-env".to_owned()),
            "default_perspective_count" => Some("5".to_owned()),
            _ => None,
        };
        let keys = [
            "hash_secret",
            "default_perspective_count",
            "absolute_max_attempts",
        ];
        let conf = AppConf::load(Some(SEED), &keys, env).unwrap();
        assert_eq!(conf.get("hash_secret"), Some("from-env"));
        assert_eq!(conf.get("default_perspective_count"), Some("5"));
        assert_eq!(conf.get("absolute_max_attempts"), Some("3"));
        assert_eq!(
            conf.setting("hash_secret").unwrap().source,
            SettingSource::Environment {
                variable: "HASH_SECRET".to_owned()
            }
        );
    }

    #[test]
    fn malformed_line_and_bad_values_are_reported() {
        assert_eq!(
            AppConf::parse("a=1\nnot a setting\n"),
            Err(AppConfError::MalformedLine {
                line: 2,
                text: "not a setting".to_owned()
            })
        );
        let conf = AppConf::parse("count=three\nflag=maybe\n").unwrap();
        let error = conf.parse_value::<u32>("count").unwrap_err().to_string();
        assert!(
            error.contains("count") && error.contains("three") && error.contains("line 1"),
            "{error}"
        );
        assert!(conf.parse_bool("flag").is_err());
        assert_eq!(
            conf.require("hash_secret"),
            Err(AppConfError::Missing {
                key: "hash_secret".to_owned()
            })
        );
    }

    #[test]
    fn unknown_keys_are_listed() {
        let conf = AppConf::parse("a=1\nb=2\n").unwrap();
        assert_eq!(conf.unknown_keys(&["a"]), vec!["b"]);
    }
}
