//! The quorum rule: whether enough perspectives of one attempt's cohort corroborated.
//!
//! Implements the "Quorum Requirements" table and the RIR rule of
//! [BR §3.2.2.9](https://cabforum.org/working-groups/server/baseline-requirements/requirements/#3229-multi-perspective-issuance-corroboration):
//!
//! | perspectives in the cohort | allowed non-corroborations |
//! |---|---|
//! | 2-5 | 1 |
//! | 6 or more | 2 |
//!
//! and, for cohorts of more than two perspectives, the corroborating perspectives must "fall
//! within the service regions of at least two (2) distinct Regional Internet Registries".
//!
//! A perspective corroborates only when its check completed and passed. A failed check and a
//! check that did not complete both count as non-corroborations, so a perspective that cannot
//! be reached never helps a request become valid.
//!
//! Everything here is pure. It does not look at earlier attempts: a retry is judged on its own
//! cohort alone (BR §3.2.2.9: "CAs MUST NOT rely on corroborations from previous attempts").

use std::collections::BTreeSet;
use std::ops::RangeInclusive;

use serde::Serialize;

use mpic_shared::catalogue::Rir;
use mpic_shared::reply::CheckResponse;

/// The meaning of one perspective's reply for the quorum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckOutcome {
    /// The check completed and passed: the perspective corroborates.
    Passed,
    /// The check completed and decided no.
    Failed,
    /// The perspective could not decide (`check_completed: false`), or never replied.
    NotCompleted,
}

impl CheckOutcome {
    /// Classifies a reply. A reply that claims to have passed without completing is
    /// not completed.
    pub fn of(response: &CheckResponse) -> Self {
        if !response.check_completed {
            CheckOutcome::NotCompleted
        } else if response.check_passed {
            CheckOutcome::Passed
        } else {
            CheckOutcome::Failed
        }
    }
}

/// The verdict on one attempt, with the counts behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumResult {
    /// Perspectives in the cohort.
    pub cohort_size: usize,
    /// Perspectives that had to pass.
    pub quorum_count: usize,
    /// Perspectives whose check completed and passed.
    pub passed: usize,
    /// Perspectives whose check did not complete.
    pub not_completed: usize,
    /// The distinct RIRs of the perspectives that passed.
    pub corroborating_rirs: BTreeSet<Rir>,
    /// True when the quorum was met and, for cohorts above two, the passes span two RIRs.
    pub is_valid: bool,
    /// True when no more perspectives failed to complete than the quorum allows.
    pub mpic_completed: bool,
}

impl QuorumResult {
    /// Returns the quorum result in the form BR §5.4.1 requires CAs to log: perspectives that
    /// corroborated, a slash, perspectives attempted (for example `3/4`).
    pub fn summary(&self) -> String {
        format!("{}/{}", self.passed, self.cohort_size)
    }
}

/// Judges one attempt from each cohort member's RIR and outcome.
///
/// `is_valid` requires all of:
/// - at least `quorum_count` passes, and at least one;
/// - no more non-corroborations than the BR table allows for the cohort size (redundant for a
///   quorum count that passed request validation, but it keeps a quorum count below the BR
///   minimum from ever producing a valid result);
/// - for cohorts of more than two perspectives, passes from at least two distinct RIRs.
///
/// `mpic_completed` is true when the perspectives that did not complete are no more than
/// `cohort size - quorum_count`, the number the quorum can do without.
pub fn evaluate(quorum_count: usize, members: &[(Rir, CheckOutcome)]) -> QuorumResult {
    let cohort_size = members.len();
    let passed = count_outcomes(members, CheckOutcome::Passed);
    let not_completed = count_outcomes(members, CheckOutcome::NotCompleted);
    let corroborating_rirs: BTreeSet<Rir> = members
        .iter()
        .filter(|(_, outcome)| *outcome == CheckOutcome::Passed)
        .map(|(rir, _)| *rir)
        .collect();

    let quorum_met = passed >= quorum_count.max(1);
    let within_table = cohort_size - passed <= allowed_non_corroborations(cohort_size);
    let rirs_diverse = cohort_size < RIR_RULE_MIN_COHORT_SIZE
        || corroborating_rirs.len() >= MIN_CORROBORATING_RIRS;

    QuorumResult {
        cohort_size,
        quorum_count,
        passed,
        not_completed,
        is_valid: quorum_met && within_table && rirs_diverse,
        mpic_completed: not_completed <= cohort_size.saturating_sub(quorum_count),
        corroborating_rirs,
    }
}

/// Returns how many perspectives of a cohort may fail to corroborate (BR §3.2.2.9 table).
/// A cohort of fewer than two perspectives allows none.
pub fn allowed_non_corroborations(cohort_size: usize) -> usize {
    match cohort_size {
        0 | 1 => 0,
        2..=SMALL_COHORT_MAX_SIZE => SMALL_COHORT_NON_CORROBORATIONS,
        _ => LARGE_COHORT_NON_CORROBORATIONS,
    }
}

/// Returns the quorum count used when a request names none: the cohort size minus the
/// non-corroborations the BR table allows (`count - 1` up to five perspectives, `count - 2`
/// from six).
pub fn default_quorum_count(cohort_size: usize) -> usize {
    cohort_size - allowed_non_corroborations(cohort_size)
}

/// Returns the quorum counts a request may ask for: from the default up to the cohort size.
pub fn accepted_quorum_counts(cohort_size: usize) -> RangeInclusive<usize> {
    default_quorum_count(cohort_size)..=cohort_size
}

fn count_outcomes(members: &[(Rir, CheckOutcome)], wanted: CheckOutcome) -> usize {
    members
        .iter()
        .filter(|(_, outcome)| *outcome == wanted)
        .count()
}

/// The largest cohort in the first row of the BR §3.2.2.9 table ("2-5").
const SMALL_COHORT_MAX_SIZE: usize = 5;
/// Non-corroborations allowed for 2 to 5 perspectives (BR §3.2.2.9 table).
const SMALL_COHORT_NON_CORROBORATIONS: usize = 1;
/// Non-corroborations allowed for 6 or more perspectives (BR §3.2.2.9 table).
const LARGE_COHORT_NON_CORROBORATIONS: usize = 2;
/// The RIR rule applies to cohorts of more than two perspectives.
pub(crate) const RIR_RULE_MIN_COHORT_SIZE: usize = 3;
/// Distinct RIRs the corroborating perspectives must span (BR §3.2.2.9).
const MIN_CORROBORATING_RIRS: usize = 2;

#[cfg(test)]
mod tests {
    use super::*;

    use mpic_shared::reply::{CheckDetails, CheckError, error_type};
    use mpic_shared::request::CheckType;

    use CheckOutcome::{Failed, NotCompleted, Passed};
    use Rir::{Apnic, Arin, RipeNcc};

    struct Case {
        name: &'static str,
        quorum_count: usize,
        members: Vec<(Rir, CheckOutcome)>,
        is_valid: bool,
        mpic_completed: bool,
        summary: &'static str,
    }

    #[test]
    fn evaluate_applies_quorum_and_rir_rules() {
        let cases = [
            Case {
                name: "all six pass across three RIRs: valid",
                quorum_count: 4,
                members: vec![
                    (Arin, Passed),
                    (Arin, Passed),
                    (RipeNcc, Passed),
                    (RipeNcc, Passed),
                    (Apnic, Passed),
                    (Apnic, Passed),
                ],
                is_valid: true,
                mpic_completed: true,
                summary: "6/6",
            },
            Case {
                name: "quorum met exactly with two failures in six: valid",
                quorum_count: 4,
                members: vec![
                    (Arin, Passed),
                    (Arin, Failed),
                    (RipeNcc, Passed),
                    (RipeNcc, Failed),
                    (Apnic, Passed),
                    (Apnic, Passed),
                ],
                is_valid: true,
                mpic_completed: true,
                summary: "4/6",
            },
            Case {
                name: "one pass short of the quorum: invalid",
                quorum_count: 4,
                members: vec![
                    (Arin, Passed),
                    (Arin, Failed),
                    (RipeNcc, Passed),
                    (RipeNcc, Failed),
                    (Apnic, Failed),
                    (Apnic, Passed),
                ],
                is_valid: false,
                mpic_completed: true,
                summary: "3/6",
            },
            Case {
                name: "quorum met but all passes in one RIR: invalid",
                quorum_count: 3,
                members: vec![
                    (Arin, Passed),
                    (Arin, Passed),
                    (Arin, Passed),
                    (RipeNcc, Failed),
                ],
                is_valid: false,
                mpic_completed: true,
                summary: "3/4",
            },
            Case {
                name: "RIR rule satisfied by passes, not by the cohort: valid",
                quorum_count: 3,
                members: vec![
                    (Arin, Passed),
                    (Arin, Passed),
                    (RipeNcc, Passed),
                    (Apnic, Failed),
                ],
                is_valid: true,
                mpic_completed: true,
                summary: "3/4",
            },
            Case {
                name: "cohort of two in one RIR, both pass: valid without the RIR rule",
                quorum_count: 1,
                members: vec![(Arin, Passed), (Arin, Passed)],
                is_valid: true,
                mpic_completed: true,
                summary: "2/2",
            },
            Case {
                name: "cohort of two, one pass and one not completed: valid",
                quorum_count: 1,
                members: vec![(Arin, Passed), (RipeNcc, NotCompleted)],
                is_valid: true,
                mpic_completed: true,
                summary: "1/2",
            },
            Case {
                name: "one not completed of three with quorum two: valid",
                quorum_count: 2,
                members: vec![(Arin, Passed), (RipeNcc, Passed), (Apnic, NotCompleted)],
                is_valid: true,
                mpic_completed: true,
                summary: "2/3",
            },
            Case {
                name: "two not completed of three with quorum two: invalid and not completed",
                quorum_count: 2,
                members: vec![
                    (Arin, Passed),
                    (RipeNcc, NotCompleted),
                    (Apnic, NotCompleted),
                ],
                is_valid: false,
                mpic_completed: false,
                summary: "1/3",
            },
            Case {
                name: "all not completed: invalid and not completed",
                quorum_count: 2,
                members: vec![
                    (Arin, NotCompleted),
                    (RipeNcc, NotCompleted),
                    (Apnic, NotCompleted),
                ],
                is_valid: false,
                mpic_completed: false,
                summary: "0/3",
            },
            Case {
                name: "all failed but completed: invalid yet completed",
                quorum_count: 2,
                members: vec![(Arin, Failed), (RipeNcc, Failed), (Apnic, Failed)],
                is_valid: false,
                mpic_completed: true,
                summary: "0/3",
            },
            Case {
                name: "quorum equal to cohort size with one failure: invalid",
                quorum_count: 3,
                members: vec![(Arin, Passed), (RipeNcc, Passed), (Apnic, Failed)],
                is_valid: false,
                mpic_completed: true,
                summary: "2/3",
            },
            Case {
                name: "quorum equal to cohort size, one not completed: mpic not completed",
                quorum_count: 3,
                members: vec![(Arin, Passed), (RipeNcc, Passed), (Apnic, NotCompleted)],
                is_valid: false,
                mpic_completed: false,
                summary: "2/3",
            },
            Case {
                name: "quorum count below the BR table: invalid despite meeting it",
                quorum_count: 2,
                members: vec![
                    (Arin, Passed),
                    (RipeNcc, Passed),
                    (Apnic, Failed),
                    (Apnic, Failed),
                ],
                is_valid: false,
                mpic_completed: true,
                summary: "2/4",
            },
            Case {
                name: "quorum count zero with no passes: invalid",
                quorum_count: 0,
                members: vec![(Arin, Failed), (RipeNcc, Failed)],
                is_valid: false,
                mpic_completed: true,
                summary: "0/2",
            },
            Case {
                name: "empty cohort: invalid",
                quorum_count: 0,
                members: vec![],
                is_valid: false,
                mpic_completed: true,
                summary: "0/0",
            },
        ];

        for case in cases {
            let result = evaluate(case.quorum_count, &case.members);
            assert_eq!(
                result.is_valid, case.is_valid,
                "case {:?}: is_valid",
                case.name
            );
            assert_eq!(
                result.mpic_completed, case.mpic_completed,
                "case {:?}: mpic_completed",
                case.name
            );
            assert_eq!(
                result.summary(),
                case.summary,
                "case {:?}: summary",
                case.name
            );
        }
    }

    #[test]
    fn quorum_table_matches_br() {
        let cases = [
            ("two perspectives", 2, 1, 1..=2),
            ("five perspectives", 5, 1, 4..=5),
            ("six perspectives", 6, 2, 4..=6),
            ("ten perspectives", 10, 2, 8..=10),
        ];
        for (name, size, allowed, accepted) in cases {
            assert_eq!(
                allowed_non_corroborations(size),
                allowed,
                "case {name:?}: allowed non-corroborations"
            );
            assert_eq!(
                default_quorum_count(size),
                *accepted.start(),
                "case {name:?}: default quorum"
            );
            assert_eq!(
                accepted_quorum_counts(size),
                accepted,
                "case {name:?}: accepted range"
            );
        }
    }

    #[test]
    fn outcome_of_reply() {
        let details = CheckDetails::empty(CheckType::Caa, None);
        let passed = CheckResponse::completed(CheckType::Caa, true, details.clone());
        let failed = CheckResponse::completed(CheckType::Caa, false, details.clone());
        let not_completed = CheckResponse::not_completed(
            CheckType::Caa,
            None,
            CheckError::new(error_type::CAA_LOOKUP, "SERVFAIL"),
        );
        let mut claims_pass = not_completed.clone();
        claims_pass.check_passed = true;

        let cases = [
            ("completed and passed", passed, Passed),
            ("completed and failed", failed, Failed),
            ("not completed", not_completed, NotCompleted),
            ("passed without completing", claims_pass, NotCompleted),
        ];
        for (name, response, expected) in cases {
            assert_eq!(CheckOutcome::of(&response), expected, "case {name:?}");
        }
    }
}
