//! The perspective catalogue (`available_perspectives.yaml`).
//!
//! The catalogue lists every perspective a deployment may use, its Regional Internet Registry
//! (RIR) and the perspectives that are too close to it (less than 500 km apart, BR §3.2.2.9),
//! which must never share a cohort. Closeness is symmetric: a pair is too close when either
//! entry lists the other. Entries with nothing deployed behind them are allowed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

use crate::subject::is_valid_subject_token;

/// A Regional Internet Registry. Names are matched case-insensitively; `RIPE NCC` has a space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rir {
    /// American Registry for Internet Numbers.
    Arin,
    /// Réseaux IP Européens Network Coordination Centre.
    RipeNcc,
    /// Asia-Pacific Network Information Centre.
    Apnic,
    /// Latin America and Caribbean Network Information Centre.
    Lacnic,
    /// African Network Information Centre.
    Afrinic,
}

impl Rir {
    /// Returns the registry's name as written in the catalogue.
    pub fn as_str(self) -> &'static str {
        match self {
            Rir::Arin => "ARIN",
            Rir::RipeNcc => "RIPE NCC",
            Rir::Apnic => "APNIC",
            Rir::Lacnic => "LACNIC",
            Rir::Afrinic => "AFRINIC",
        }
    }
}

impl fmt::Display for Rir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Rir {
    type Err = CatalogueError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        [
            Rir::Arin,
            Rir::RipeNcc,
            Rir::Apnic,
            Rir::Lacnic,
            Rir::Afrinic,
        ]
        .into_iter()
        .find(|rir| rir.as_str().eq_ignore_ascii_case(name))
        .ok_or_else(|| CatalogueError::UnknownRir {
            rir: name.to_owned(),
        })
    }
}

/// One catalogue entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PerspectiveInfo {
    /// The code, also the perspective's NATS subject token.
    pub code: String,
    /// A human-readable name, e.g. "US East (N. Virginia)".
    pub name: String,
    /// The RIR whose service region contains the perspective.
    pub rir: Rir,
    /// Codes of perspectives closer than 500 km.
    pub too_close_codes: Vec<String>,
}

/// The validated catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalogue {
    perspectives: BTreeMap<String, PerspectiveInfo>,
    too_close: BTreeSet<(String, String)>,
}

/// Why a catalogue was rejected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogueError {
    /// The YAML does not have the expected shape.
    #[error("the perspective catalogue is not valid YAML of the expected shape: {0}")]
    Syntax(#[from] serde_yaml::Error),
    /// An RIR name is not one of the five registries.
    #[error("unknown RIR {rir:?}: expected one of ARIN, RIPE NCC, APNIC, LACNIC, AFRINIC")]
    UnknownRir {
        /// The name as written.
        rir: String,
    },
    /// A code cannot be a NATS subject token.
    #[error(
        "perspective code {code:?} is not a valid subject token: use ASCII letters, digits, '-' and '_'"
    )]
    InvalidCode {
        /// The code as written.
        code: String,
    },
    /// A code appears twice.
    #[error("perspective code {code:?} appears more than once in the catalogue")]
    DuplicateCode {
        /// The repeated code.
        code: String,
    },
}

#[derive(Deserialize)]
struct RawCatalogue {
    available_regions: Vec<RawPerspective>,
}

#[derive(Deserialize)]
struct RawPerspective {
    code: String,
    #[serde(default)]
    name: String,
    rir: String,
    #[serde(default)]
    too_close_codes: Vec<String>,
}

impl Catalogue {
    /// Parses and validates catalogue YAML.
    pub fn from_yaml(text: &str) -> Result<Self, CatalogueError> {
        let raw: RawCatalogue = serde_yaml::from_str(text)?;
        let mut perspectives = BTreeMap::new();
        let mut too_close = BTreeSet::new();
        for entry in raw.available_regions {
            if !is_valid_subject_token(&entry.code) {
                return Err(CatalogueError::InvalidCode { code: entry.code });
            }
            let rir = entry.rir.parse()?;
            for other in &entry.too_close_codes {
                too_close.insert(ordered_pair(&entry.code, other));
            }
            let info = PerspectiveInfo {
                code: entry.code.clone(),
                name: entry.name,
                rir,
                too_close_codes: entry.too_close_codes,
            };
            if perspectives.insert(entry.code.clone(), info).is_some() {
                return Err(CatalogueError::DuplicateCode { code: entry.code });
            }
        }
        Ok(Self {
            perspectives,
            too_close,
        })
    }

    /// Returns the entry for a code.
    pub fn get(&self, code: &str) -> Option<&PerspectiveInfo> {
        self.perspectives.get(code)
    }

    /// Returns every entry, ordered by code.
    pub fn iter(&self) -> impl Iterator<Item = &PerspectiveInfo> {
        self.perspectives.values()
    }

    /// Returns the number of entries.
    pub fn len(&self) -> usize {
        self.perspectives.len()
    }

    /// Reports whether the catalogue has no entries.
    pub fn is_empty(&self) -> bool {
        self.perspectives.is_empty()
    }

    /// Reports whether two perspectives are less than 500 km apart (either entry lists the other).
    pub fn are_too_close(&self, a: &str, b: &str) -> bool {
        self.too_close.contains(&ordered_pair(a, b))
    }
}

fn ordered_pair(a: &str, b: &str) -> (String, String) {
    if a <= b {
        (a.to_owned(), b.to_owned())
    } else {
        (b.to_owned(), a.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
available_regions:
  - code: "us-east-1"
    name: "US East (N. Virginia)"
    rir: "arin"
    too_close_codes: ["us-east-2"]
  - code: "us-east-2"
    name: "US East (Ohio)"
    rir: "ARIN"
  - code: "eu-west-1"
    name: "Europe (Ireland)"
    rir: "ripe ncc"
"#;

    #[test]
    fn catalogue_parses_and_matches_rirs_case_insensitively() {
        let catalogue = Catalogue::from_yaml(SAMPLE).unwrap();
        assert_eq!(catalogue.len(), 3);
        assert_eq!(catalogue.get("us-east-1").unwrap().rir, Rir::Arin);
        assert_eq!(catalogue.get("eu-west-1").unwrap().rir, Rir::RipeNcc);
    }

    #[test]
    fn too_close_is_symmetric() {
        let catalogue = Catalogue::from_yaml(SAMPLE).unwrap();
        assert!(catalogue.are_too_close("us-east-1", "us-east-2"));
        assert!(catalogue.are_too_close("us-east-2", "us-east-1"));
        assert!(!catalogue.are_too_close("us-east-1", "eu-west-1"));
    }

    #[test]
    fn catalogue_rejects_bad_entries() {
        let cases = [
            (
                "unknown RIR",
                "available_regions:\n  - {code: a, rir: RIPE}\n",
            ),
            (
                "dotted code",
                "available_regions:\n  - {code: eu.west, rir: ARIN}\n",
            ),
            (
                "duplicate code",
                "available_regions:\n  - {code: a, rir: ARIN}\n  - {code: a, rir: APNIC}\n",
            ),
            ("missing rir", "available_regions:\n  - {code: a}\n"),
            ("not a list", "available_regions: 3\n"),
        ];
        for (name, yaml) in cases {
            assert!(
                Catalogue::from_yaml(yaml).is_err(),
                "case {name:?} was accepted"
            );
        }
    }
}
