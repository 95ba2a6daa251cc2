//! Selects the relevant RRset from the lookups of a name and its parents.
//!
//! Pure, no I/O. [RFC 8659 §3](https://www.rfc-editor.org/rfc/rfc8659#section-3): the relevant
//! RRset for a name is its own CAA RRset if it has one, else the relevant RRset of its parent,
//! up to and including the top-level domain (the root is never queried). The lookups for all
//! those names run in parallel, and [`select_relevant`] reads their results in climbing order:
//!
//! - the first name with CAA records gives the relevant RRset, and nothing above it matters;
//! - NXDOMAIN and empty answers mean "no CAA records here", so the climb goes on;
//! - a failed lookup at or below the first name with records stops the climb as a lookup
//!   failure ([`FailurePolicy::FailClosed`]), because the failed name might hold the relevant
//!   RRset. With [`FailurePolicy::TreatAsNoRecords`] (the request's `allow_lookup_failure`),
//!   the failed name counts as having no CAA records and the climb goes on; the failure is
//!   reported next to the result.
//!
//! A name whose lookup has not finished yet makes the selection [`Selection::Pending`], so the
//! caller can stop waiting as soon as the answer no longer depends on the slower lookups.

use super::lookup::LookupError;
use super::property::CaaRecord;

/// The result of the CAA lookup of one name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameLookup {
    /// A non-empty CAA RRset (possibly reached through a CNAME).
    Records(Vec<CaaRecord>),
    /// The name exists but has no CAA records (NOERROR with an empty answer).
    NoRecords,
    /// The name does not exist (NXDOMAIN).
    NonExistent,
    /// The lookup failed, so nothing is known about the name.
    Failed(LookupError),
}

/// The treatment of a failed lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailurePolicy {
    /// A failure below the relevant RRset makes the check not completed.
    FailClosed,
    /// A failed name counts as having no CAA records (`allow_lookup_failure`).
    TreatAsNoRecords,
}

/// The result of the selection, as indices into the list of names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// A lookup the result depends on has not finished.
    Pending,
    /// The name at `index` has the relevant RRset.
    Relevant {
        /// Index of the name whose RRset is relevant.
        index: usize,
        /// Names below it whose failed lookups were counted as "no records".
        tolerated_failures: Vec<usize>,
    },
    /// Neither the name nor any parent has CAA records.
    NoRelevantRrset {
        /// Names whose failed lookups were counted as "no records".
        tolerated_failures: Vec<usize>,
    },
    /// The lookup of the name at `index` failed, so the relevant RRset is unknown.
    LookupFailed {
        /// Index of the lowest name whose lookup failed.
        index: usize,
    },
}

/// Returns the names to query for `domain` (lower case, no trailing dot): the name itself,
/// then each parent, ending with the top-level domain.
pub fn names_to_query(domain: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = domain;
    while !rest.is_empty() {
        names.push(rest.to_owned());
        rest = rest.split_once('.').map_or("", |(_, parent)| parent);
    }
    names
}

/// Selects the relevant RRset. `lookups[i]` is the result for the i-th name of
/// [`names_to_query`], or `None` while that lookup is still running.
pub fn select_relevant(lookups: &[Option<NameLookup>], policy: FailurePolicy) -> Selection {
    let mut tolerated_failures = Vec::new();
    for (index, lookup) in lookups.iter().enumerate() {
        match (lookup, policy) {
            (None, _) => return Selection::Pending,
            (Some(NameLookup::Records(_)), _) => {
                return Selection::Relevant {
                    index,
                    tolerated_failures,
                };
            }
            (Some(NameLookup::NoRecords | NameLookup::NonExistent), _) => {}
            (Some(NameLookup::Failed(_)), FailurePolicy::FailClosed) => {
                return Selection::LookupFailed { index };
            }
            (Some(NameLookup::Failed(_)), FailurePolicy::TreatAsNoRecords) => {
                tolerated_failures.push(index);
            }
        }
    }
    Selection::NoRelevantRrset { tolerated_failures }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records() -> Option<NameLookup> {
        Some(NameLookup::Records(vec![CaaRecord::new(
            0,
            "issue",
            "ca.example",
        )]))
    }

    fn empty() -> Option<NameLookup> {
        Some(NameLookup::NoRecords)
    }

    fn nxdomain() -> Option<NameLookup> {
        Some(NameLookup::NonExistent)
    }

    fn servfail() -> Option<NameLookup> {
        Some(NameLookup::Failed(LookupError::ResponseCode {
            code: "SERVFAIL".to_owned(),
        }))
    }

    fn relevant(index: usize, tolerated_failures: Vec<usize>) -> Selection {
        Selection::Relevant {
            index,
            tolerated_failures,
        }
    }

    #[test]
    fn names_to_query_climbs_to_the_tld() {
        let cases = [
            (
                "three labels",
                "www.example.com",
                vec!["www.example.com", "example.com", "com"],
            ),
            ("two labels", "example.com", vec!["example.com", "com"]),
            ("TLD only", "com", vec!["com"]),
            ("empty", "", vec![]),
        ];
        for (name, domain, expected) in cases {
            assert_eq!(names_to_query(domain), expected, "case {name:?}");
        }
    }

    #[test]
    fn select_relevant_fail_closed() {
        use FailurePolicy::FailClosed;
        let cases = [
            (
                "records at the name: relevant",
                vec![records(), empty(), empty()],
                relevant(0, vec![]),
            ),
            (
                "records on parent: relevant",
                vec![empty(), records(), empty()],
                relevant(1, vec![]),
            ),
            (
                "NXDOMAIN below records: relevant",
                vec![nxdomain(), records(), empty()],
                relevant(1, vec![]),
            ),
            (
                "records at the TLD: relevant",
                vec![empty(), nxdomain(), records()],
                relevant(2, vec![]),
            ),
            (
                "nothing anywhere: no relevant RRset",
                vec![empty(), nxdomain(), empty()],
                Selection::NoRelevantRrset {
                    tolerated_failures: vec![],
                },
            ),
            (
                "SERVFAIL at the name: lookup failed",
                vec![servfail(), records(), empty()],
                Selection::LookupFailed { index: 0 },
            ),
            (
                "SERVFAIL at a parent below records: lookup failed",
                vec![empty(), servfail(), records()],
                Selection::LookupFailed { index: 1 },
            ),
            (
                "SERVFAIL at the TLD with nothing below: lookup failed",
                vec![empty(), empty(), servfail()],
                Selection::LookupFailed { index: 2 },
            ),
            (
                "SERVFAIL above records: relevant",
                vec![records(), servfail(), servfail()],
                relevant(0, vec![]),
            ),
            (
                "pending above records: relevant",
                vec![empty(), records(), None],
                relevant(1, vec![]),
            ),
            (
                "pending below records: pending",
                vec![None, records(), empty()],
                Selection::Pending,
            ),
            (
                "failure decided before a pending parent: lookup failed",
                vec![servfail(), None],
                Selection::LookupFailed { index: 0 },
            ),
        ];
        for (name, lookups, expected) in cases {
            assert_eq!(
                select_relevant(&lookups, FailClosed),
                expected,
                "case {name:?}"
            );
        }
    }

    #[test]
    fn select_relevant_treats_failures_as_no_records() {
        use FailurePolicy::TreatAsNoRecords;
        let cases = [
            (
                "SERVFAIL at the name, records on parent: parent relevant",
                vec![servfail(), records(), empty()],
                relevant(1, vec![0]),
            ),
            (
                "every lookup failed: no relevant RRset",
                vec![servfail(), servfail()],
                Selection::NoRelevantRrset {
                    tolerated_failures: vec![0, 1],
                },
            ),
            (
                "failures above records are not reported",
                vec![records(), servfail()],
                relevant(0, vec![]),
            ),
            (
                "pending after a tolerated failure: pending",
                vec![servfail(), None, records()],
                Selection::Pending,
            ),
        ];
        for (name, lookups, expected) in cases {
            assert_eq!(
                select_relevant(&lookups, TreatAsNoRecords),
                expected,
                "case {name:?}"
            );
        }
    }
}
