//! Cohorts: which perspectives each attempt calls for a target.
//!
//! For one target and cohort size, the deployed perspectives are split into disjoint cohorts.
//! Attempt k uses cohort k. The arrangement is:
//! - deterministic: the same secret, target and deployed perspectives always give the same
//!   cohorts, so retrying a request cannot shop for a friendlier set of perspectives;
//! - unpredictable without `hash_secret`: perspectives are ranked by
//!   HMAC-SHA256(`hash_secret`, cohort key, 0x00, perspective code), so an outsider cannot tell
//!   which perspectives will check a name;
//! - valid by the BR §3.2.2.9 rules: no cohort contains two perspectives that are too close (less
//!   than 500 km apart, from the catalogue), and each cohort of more than two perspectives spans
//!   at least two RIRs;
//! - as large as possible: the search returns the largest number of cohorts the constraints
//!   allow, within the search budget described below.
//!
//! # The cohort key
//!
//! The key is the parsed target, not the text as sent: the domain name in lower-case A-labels
//! without a trailing dot and **without the wildcard label**, or the IP address in its canonical
//! text form. So `*.Example.com`, `example.com.` and `example.com` meet the same cohorts, and so
//! do `2001:db8::1` and `[2001:DB8:0::1]`. The BRs do not say which text to hash. Hashing the
//! raw text would hand an attacker one extra cohort per spelling of the same name. Every one
//! of these spellings is validated through the same DNS names, so they get the same
//! perspectives.
//!
//! # The search
//!
//! Perspectives are visited in rank order. Each one joins the first started cohort that has room
//! and no conflict, else starts the next cohort, else is left out, and the search backtracks
//! over these choices in that order. Without constraints this cuts the ranked list into
//! consecutive cohorts, so the arrangement is a secret-keyed shuffle, and constraints only
//! move the perspectives they must. The search first asks for `n / size` cohorts and asks for one
//! fewer each time no arrangement exists.
//!
//! Pruning keeps it fast. A perspective never joins a cohort holding one that is too close to
//! it, or one that it would leave single-RIR. Before going deeper, the search checks three
//! necessary conditions:
//! - every started cohort still has enough unvisited candidates that are not too close to its
//!   members, one of them outside its RIR if it needs a second RIR;
//! - for every RIR r, the unvisited perspectives outside r are at least as many as the cohorts
//!   still needing a member outside r. Closeness aside, this condition is also sufficient (a
//!   max-flow min-cut argument);
//! - the catalogue's clusters of mutually too-close perspectives put at most one member in each
//!   cohort, so the members that cannot be placed must fit the number that may be left out.
//!
//! Complexity: ranking costs n HMAC computations and a sort. The search visits at most
//! [`SEARCH_NODE_BUDGET`] nodes per cohort count tried, each costing O(cohort count × close
//! clusters) operations on 128-bit masks, and tries at most n / size cohort counts. When the
//! budget runs out the search treats that cohort count as impossible and tries one fewer, so
//! the worst case stays bounded and the result stays deterministic. A budget hit can only
//! lower the number of cohorts, never break a rule. The tests check that every size over a
//! 30-perspective catalogue reaches the true maximum (the hardest size takes under a thousand
//! nodes), and compare against an exhaustive search on small random catalogues.
//!
//! A pool holds at most [`MAX_POOL_SIZE`] perspectives.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use mpic_shared::catalogue::{Catalogue, PerspectiveInfo, Rir};
use mpic_shared::target::Target;

use super::quorum::RIR_RULE_MIN_COHORT_SIZE;

/// The secret that keys cohort selection (`hash_secret`). Its `Debug` output never shows it.
#[derive(Clone)]
pub struct HashSecret {
    keyed: Hmac<Sha256>,
}

/// Errors for a rejected `hash_secret`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HashSecretError {
    /// An empty secret would make every cohort predictable.
    #[error("hash_secret is empty: set it to a long random value")]
    Empty,
    /// The HMAC implementation rejected the key. HMAC-SHA256 in `hmac` 0.12 accepts keys of any
    /// length, so this is not expected.
    #[error("the HMAC-SHA256 implementation rejected hash_secret as a key")]
    KeyRejected,
}

impl HashSecret {
    /// Keys an HMAC-SHA256 with the secret.
    pub fn new(secret: &[u8]) -> Result<Self, HashSecretError> {
        if secret.is_empty() {
            return Err(HashSecretError::Empty);
        }
        let keyed =
            Hmac::<Sha256>::new_from_slice(secret).map_err(|_| HashSecretError::KeyRejected)?;
        Ok(Self { keyed })
    }

    /// Returns HMAC(secret, key, 0x00, code). Neither a cohort key nor a perspective code
    /// contains a NUL byte, so the separator keeps different pairs from producing one message.
    fn rank_digest(&self, key: &str, code: &str) -> [u8; 32] {
        let mut mac = self.keyed.clone();
        mac.update(key.as_bytes());
        mac.update(&[0]);
        mac.update(code.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for HashSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HashSecret([redacted])")
    }
}

/// Returns the text that selects a target's cohorts: the name without the wildcard label, or
/// the address (see the module documentation for why).
pub fn cohort_key(target: &Target) -> String {
    match target {
        Target::Domain(domain) => domain.name.clone(),
        Target::Ip(address) => address.to_string(),
    }
}

/// The deployed perspectives with their closeness relation resolved, ready to be split into
/// cohorts.
#[derive(Debug, Clone)]
pub struct PerspectivePool {
    /// Sorted by code, so the result does not depend on the order of the configuration.
    perspectives: Vec<PerspectiveInfo>,
    /// Index into `RIRS` of each perspective's RIR.
    rirs: Vec<usize>,
    /// For each perspective, the set of perspectives too close to share its cohort.
    too_close: Vec<PerspectiveSet>,
    /// For each RIR in `RIRS`, the set of its perspectives.
    by_rir: [PerspectiveSet; RIRS.len()],
    /// A partition of the perspectives into groups that are pairwise too close. A cohort contains
    /// at most one member of each group, which bounds how many of a group can be placed.
    close_groups: Vec<PerspectiveSet>,
}

/// Errors building a perspective pool.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// More perspectives than the cohort search can represent.
    #[error(
        "{count} perspectives are deployed; the cohort search supports at most {MAX_POOL_SIZE}"
    )]
    TooManyPerspectives {
        /// The number deployed.
        count: usize,
    },
}

/// One attempt's perspectives, in rank order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cohort<'a> {
    members: Vec<&'a PerspectiveInfo>,
}

impl<'a> Cohort<'a> {
    /// Returns the perspectives in rank order, the order the response lists them in.
    pub fn members(&self) -> &[&'a PerspectiveInfo] {
        &self.members
    }

    /// Returns the number of perspectives.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Reports whether the cohort has no perspectives (never true for a built cohort).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
}

impl PerspectivePool {
    /// Builds the pool. Closeness comes from the catalogue, where a pair is too close when
    /// either entry lists the other.
    pub fn new(
        mut perspectives: Vec<PerspectiveInfo>,
        catalogue: &Catalogue,
    ) -> Result<Self, PoolError> {
        if perspectives.len() > MAX_POOL_SIZE {
            return Err(PoolError::TooManyPerspectives {
                count: perspectives.len(),
            });
        }
        perspectives.sort_by(|a, b| a.code.cmp(&b.code));

        let rirs: Vec<usize> = perspectives
            .iter()
            .map(|perspective| rir_index(perspective.rir))
            .collect();
        let mut by_rir = [PerspectiveSet::EMPTY; RIRS.len()];
        for (index, &rir) in rirs.iter().enumerate() {
            by_rir[rir] = by_rir[rir].with(index);
        }
        let too_close: Vec<PerspectiveSet> = perspectives
            .iter()
            .map(|a| {
                let mut set = PerspectiveSet::EMPTY;
                for (index, b) in perspectives.iter().enumerate() {
                    if catalogue.are_too_close(&a.code, &b.code) {
                        set = set.with(index);
                    }
                }
                set
            })
            .collect();
        let close_groups = partition_into_close_groups(&too_close);

        Ok(Self {
            perspectives,
            rirs,
            too_close,
            by_rir,
            close_groups,
        })
    }

    /// Returns the deployed perspectives, ordered by code.
    pub fn perspectives(&self) -> &[PerspectiveInfo] {
        &self.perspectives
    }

    /// Returns the number of deployed perspectives.
    pub fn len(&self) -> usize {
        self.perspectives.len()
    }

    /// Reports whether no perspective is deployed.
    pub fn is_empty(&self) -> bool {
        self.perspectives.is_empty()
    }

    /// Splits the perspectives into as many disjoint cohorts of `size` as the rules allow, in
    /// attempt order. Returns no cohorts when none of that size can be built.
    pub fn cohorts(&self, secret: &HashSecret, target: &Target, size: usize) -> Vec<Cohort<'_>> {
        let key = cohort_key(target);
        let order = self.rank(secret, &key);
        let arrangement = self.arrange(&order, size);
        if let Some(cohort_count) = arrangement.budget_exhausted_at {
            tracing::debug!(
                size,
                cohort_count,
                budget = SEARCH_NODE_BUDGET,
                "cohort search ran out of budget; fewer cohorts than possible may be used"
            );
        }
        arrangement
            .cohorts
            .into_iter()
            .map(|members| Cohort {
                members: members
                    .into_iter()
                    .map(|index| &self.perspectives[index])
                    .collect(),
            })
            .collect()
    }

    /// Reports whether at least one cohort of `size` exists. Existence does not depend on the
    /// target, so this is a start-up check for the default perspective count.
    pub fn can_build(&self, size: usize) -> bool {
        let order: Vec<usize> = (0..self.perspectives.len()).collect();
        !self.arrange(&order, size).cohorts.is_empty()
    }

    /// Returns the perspective indices sorted by their keyed digest. Equal digests would need
    /// an HMAC-SHA256 collision, and the stable sort would then keep the code order.
    fn rank(&self, secret: &HashSecret, key: &str) -> Vec<usize> {
        let mut ranked: Vec<([u8; 32], usize)> = self
            .perspectives
            .iter()
            .enumerate()
            .map(|(index, perspective)| (secret.rank_digest(key, &perspective.code), index))
            .collect();
        ranked.sort_by_key(|entry| entry.0);
        ranked.into_iter().map(|(_, index)| index).collect()
    }

    /// Returns the cohorts as lists of indices, trying the largest cohort count first.
    fn arrange(&self, order: &[usize], size: usize) -> Arrangement {
        let mut arrangement = Arrangement {
            cohorts: Vec::new(),
            budget_exhausted_at: None,
        };
        if size == 0 || size > order.len() {
            return arrangement;
        }
        for cohort_count in (1..=order.len() / size).rev() {
            let mut search = Search::new(self, order, size, cohort_count);
            match search.run() {
                Step::Found => {
                    arrangement.cohorts = search
                        .cohorts
                        .into_iter()
                        .map(|cohort| cohort.members)
                        .collect();
                    return arrangement;
                }
                Step::BudgetExhausted => {
                    arrangement.budget_exhausted_at.get_or_insert(cohort_count);
                }
                Step::DeadEnd => {}
            }
        }
        arrangement
    }
}

/// The result of a search: the cohorts as pool indices, and the largest cohort count given
/// up because the search budget ran out (`None` when the count is the true maximum).
struct Arrangement {
    cohorts: Vec<Vec<usize>>,
    budget_exhausted_at: Option<usize>,
}

/// Splits the perspectives into groups whose members are pairwise too close, greedily: the
/// perspective with the most conflicts starts a group, which takes every later perspective
/// close to all its members. Any partition gives a valid bound, and a greedy one is good
/// enough for the small clusters of nearby sites that real catalogues have.
fn partition_into_close_groups(too_close: &[PerspectiveSet]) -> Vec<PerspectiveSet> {
    let mut order: Vec<usize> = (0..too_close.len()).collect();
    order.sort_by_key(|&index| std::cmp::Reverse(too_close[index].len()));

    let mut assigned = PerspectiveSet::EMPTY;
    let mut groups = Vec::new();
    for &first in &order {
        if assigned.contains(first) {
            continue;
        }
        let mut group = PerspectiveSet::EMPTY.with(first);
        for &candidate in &order {
            let close_to_all = group
                .iter()
                .all(|member| too_close[member].contains(candidate));
            if !assigned.contains(candidate) && !group.contains(candidate) && close_to_all {
                group = group.with(candidate);
            }
        }
        assigned = assigned.union(group);
        if group.len() > 1 {
            groups.push(group);
        }
    }
    groups
}

/// A set of perspectives of one pool, as a bit mask of their indices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PerspectiveSet(u128);

impl PerspectiveSet {
    const EMPTY: Self = Self(0);

    fn with(self, index: usize) -> Self {
        Self(self.0 | 1 << index)
    }

    fn without(self, index: usize) -> Self {
        Self(self.0 & !(1 << index))
    }

    fn contains(self, index: usize) -> bool {
        self.0 & (1 << index) != 0
    }

    fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    fn intersection(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    fn difference(self, other: Self) -> Self {
        Self(self.0 & !other.0)
    }

    fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    fn is_empty(self) -> bool {
        self.0 == 0
    }

    fn iter(self) -> impl Iterator<Item = usize> {
        (0..MAX_POOL_SIZE).filter(move |&index| self.contains(index))
    }
}

/// A cohort under construction.
#[derive(Debug, Clone)]
struct PartialCohort {
    /// Pool indices in rank order.
    members: Vec<usize>,
    /// The members as a set.
    set: PerspectiveSet,
    /// Perspectives too close to some member.
    conflicts: PerspectiveSet,
    /// The RIR index shared by all members, or `None` once two RIRs are present.
    single_rir: Option<usize>,
}

/// The state of a depth-first search for `cohort_count` cohorts of `size`.
struct Search<'p> {
    pool: &'p PerspectivePool,
    order: &'p [usize],
    size: usize,
    cohort_count: usize,
    cohorts: Vec<PartialCohort>,
    /// Perspectives visited and left out of every cohort.
    left_out: usize,
    /// How many may be left out: the perspectives beyond `size * cohort_count`.
    left_out_limit: usize,
    /// Perspectives not yet visited.
    unvisited: PerspectiveSet,
    /// Nodes visited so far, bounded by `SEARCH_NODE_BUDGET`.
    nodes: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Found,
    DeadEnd,
    BudgetExhausted,
}

impl<'p> Search<'p> {
    fn new(
        pool: &'p PerspectivePool,
        order: &'p [usize],
        size: usize,
        cohort_count: usize,
    ) -> Self {
        let unvisited = order
            .iter()
            .fold(PerspectiveSet::EMPTY, |set, &index| set.with(index));
        Self {
            pool,
            order,
            size,
            cohort_count,
            cohorts: Vec::with_capacity(cohort_count),
            left_out: 0,
            left_out_limit: order.len() - size * cohort_count,
            unvisited,
            nodes: 0,
        }
    }

    fn run(&mut self) -> Step {
        if !self.still_feasible() {
            return Step::DeadEnd;
        }
        self.visit(0)
    }

    fn visit(&mut self, position: usize) -> Step {
        if self.is_complete() {
            return Step::Found;
        }
        if self.nodes >= SEARCH_NODE_BUDGET {
            return Step::BudgetExhausted;
        }
        self.nodes += 1;
        let Some(&perspective) = self.order.get(position) else {
            return Step::DeadEnd;
        };

        self.unvisited = self.unvisited.without(perspective);
        let step = self.place(position, perspective);
        self.unvisited = self.unvisited.with(perspective);
        step
    }

    /// Tries the choices for one perspective in order: join a started cohort, start the next
    /// cohort, be left out.
    fn place(&mut self, position: usize, perspective: usize) -> Step {
        for index in 0..self.cohorts.len() {
            if !self.fits(index, perspective) {
                continue;
            }
            let saved = self.cohorts[index].clone();
            self.join(index, perspective);
            let step = self.descend(position);
            if step != Step::DeadEnd {
                return step;
            }
            self.cohorts[index] = saved;
        }

        if self.cohorts.len() < self.cohort_count {
            self.cohorts.push(PartialCohort {
                members: vec![perspective],
                set: PerspectiveSet::EMPTY.with(perspective),
                conflicts: self.pool.too_close[perspective],
                single_rir: Some(self.pool.rirs[perspective]),
            });
            let step = self.descend(position);
            if step != Step::DeadEnd {
                return step;
            }
            self.cohorts.pop();
        }

        if self.left_out < self.left_out_limit {
            self.left_out += 1;
            let step = self.descend(position);
            if step != Step::DeadEnd {
                return step;
            }
            self.left_out -= 1;
        }
        Step::DeadEnd
    }

    fn join(&mut self, index: usize, perspective: usize) {
        let rir = self.pool.rirs[perspective];
        let cohort = &mut self.cohorts[index];
        cohort.members.push(perspective);
        cohort.set = cohort.set.with(perspective);
        cohort.conflicts = cohort.conflicts.union(self.pool.too_close[perspective]);
        if cohort.single_rir != Some(rir) {
            cohort.single_rir = None;
        }
    }

    fn descend(&mut self, position: usize) -> Step {
        if self.still_feasible() {
            self.visit(position + 1)
        } else {
            Step::DeadEnd
        }
    }

    fn is_complete(&self) -> bool {
        self.cohorts.len() == self.cohort_count
            && self
                .cohorts
                .iter()
                .all(|cohort| cohort.members.len() == self.size)
    }

    fn fits(&self, index: usize, perspective: usize) -> bool {
        let cohort = &self.cohorts[index];
        if cohort.members.len() >= self.size || cohort.conflicts.contains(perspective) {
            return false;
        }
        let completes_cohort = cohort.members.len() + 1 == self.size;
        let stays_single_rir = cohort.single_rir == Some(self.pool.rirs[perspective]);
        !(self.rir_rule_applies() && completes_cohort && stays_single_rir)
    }

    /// Checks necessary conditions for completing the arrangement from here.
    fn still_feasible(&self) -> bool {
        self.open_cohorts_can_fill() && self.rir_counts_suffice() && self.close_groups_fit()
    }

    /// Checks that each started cohort can still be filled: enough unvisited perspectives not
    /// too close to any member, and one outside its RIR when it needs a second RIR.
    fn open_cohorts_can_fill(&self) -> bool {
        self.cohorts.iter().all(|cohort| {
            let free = self.size - cohort.members.len();
            let candidates = self.unvisited.difference(cohort.conflicts);
            let enough = candidates.len() >= free;
            let second_rir = match cohort.single_rir {
                Some(rir) if free > 0 && self.rir_rule_applies() => {
                    !candidates.difference(self.pool.by_rir[rir]).is_empty()
                }
                _ => true,
            };
            enough && second_rir
        })
    }

    /// Checks that the unvisited perspectives can still give every cohort a second RIR.
    ///
    /// A cohort whose members so far all belong to RIR r needs at least one more member outside
    /// r, and so does every cohort not yet started. Ignoring closeness, the perspectives can be
    /// placed without a single-RIR cohort exactly when, for every r, the unvisited perspectives
    /// outside r are at least as many as the cohorts needing one. This follows from the
    /// max-flow min-cut theorem on the RIR-to-cohort transport problem, where only single-RIR
    /// cuts can be tight. There are always enough perspectives in total because at most
    /// `left_out_limit` are left out.
    fn rir_counts_suffice(&self) -> bool {
        if !self.rir_rule_applies() {
            return true;
        }
        let not_started = self.cohort_count - self.cohorts.len();
        (0..RIRS.len()).all(|rir| {
            let single_rir_cohorts = self
                .cohorts
                .iter()
                .filter(|cohort| cohort.members.len() < self.size)
                .filter(|cohort| cohort.single_rir == Some(rir))
                .count();
            let outside = self.unvisited.difference(self.pool.by_rir[rir]).len();
            outside >= single_rir_cohorts + not_started
        })
    }

    /// Checks that the perspectives that must be left out fit the allowance. A group of
    /// pairwise too-close perspectives puts at most one member in each cohort, so its unvisited
    /// members beyond the cohorts that can still take one must be left out.
    fn close_groups_fit(&self) -> bool {
        let not_started = self.cohort_count - self.cohorts.len();
        let mut forced = 0;
        for &group in &self.pool.close_groups {
            let unvisited = self.unvisited.intersection(group).len();
            let open = self
                .cohorts
                .iter()
                .filter(|cohort| cohort.members.len() < self.size)
                .filter(|cohort| cohort.set.intersection(group).is_empty())
                .count();
            forced += unvisited.saturating_sub(open + not_started);
        }
        self.left_out + forced <= self.left_out_limit
    }

    fn rir_rule_applies(&self) -> bool {
        self.size >= RIR_RULE_MIN_COHORT_SIZE
    }
}

fn rir_index(rir: Rir) -> usize {
    match rir {
        Rir::Arin => 0,
        Rir::RipeNcc => 1,
        Rir::Apnic => 2,
        Rir::Lacnic => 3,
        Rir::Afrinic => 4,
    }
}

/// The five RIRs, in the order of [`rir_index`].
const RIRS: [Rir; 5] = [
    Rir::Arin,
    Rir::RipeNcc,
    Rir::Apnic,
    Rir::Lacnic,
    Rir::Afrinic,
];

/// The maximum number of perspectives in a pool, because the search keeps sets of them in
/// 128-bit masks. Real
/// deployments have a few dozen.
pub const MAX_POOL_SIZE: usize = 128;

/// Search nodes allowed per cohort count tried. One node places one perspective, so an
/// arrangement found without backtracking takes at most n nodes. The budget bounds the work
/// for a catalogue whose closeness conflicts make a count impossible in a way the pruning
/// cannot see. The tests check that it is never reached for the realistic 30-perspective
/// catalogue, nor for random 30-perspective catalogues where each pair is too close with
/// probability 1/20, which is denser than any real catalogue.
pub const SEARCH_NODE_BUDGET: usize = 100_000;

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::{BTreeMap, BTreeSet};

    /// Thirty perspectives named after cloud regions, with the RIR of each region's city and
    /// the pairs whose cities are less than 500 km apart.
    const REALISTIC_CATALOGUE: &str = r#"
available_regions:
  - {code: us-east-1, rir: ARIN, too_close_codes: [us-east-2]}
  - {code: us-east-2, rir: ARIN}
  - {code: us-west-1, rir: ARIN}
  - {code: us-west-2, rir: ARIN}
  - {code: ca-central-1, rir: ARIN}
  - {code: ca-west-1, rir: ARIN}
  - {code: mx-central-1, rir: LACNIC}
  - {code: sa-east-1, rir: LACNIC}
  - {code: eu-west-1, rir: RIPE NCC, too_close_codes: [eu-west-2]}
  - {code: eu-west-2, rir: RIPE NCC, too_close_codes: [eu-west-3]}
  - {code: eu-west-3, rir: RIPE NCC, too_close_codes: [eu-central-1, eu-central-2]}
  - {code: eu-central-1, rir: RIPE NCC, too_close_codes: [eu-central-2]}
  - {code: eu-central-2, rir: RIPE NCC, too_close_codes: [eu-south-1]}
  - {code: eu-south-1, rir: RIPE NCC}
  - {code: eu-south-2, rir: RIPE NCC}
  - {code: eu-north-1, rir: RIPE NCC}
  - {code: il-central-1, rir: RIPE NCC}
  - {code: me-central-1, rir: RIPE NCC, too_close_codes: [me-south-1]}
  - {code: me-south-1, rir: RIPE NCC}
  - {code: ap-south-1, rir: APNIC}
  - {code: ap-south-2, rir: APNIC}
  - {code: ap-east-1, rir: APNIC}
  - {code: ap-northeast-1, rir: APNIC, too_close_codes: [ap-northeast-3]}
  - {code: ap-northeast-2, rir: APNIC}
  - {code: ap-northeast-3, rir: APNIC}
  - {code: ap-southeast-1, rir: APNIC}
  - {code: ap-southeast-2, rir: APNIC}
  - {code: ap-southeast-3, rir: APNIC}
  - {code: ap-southeast-4, rir: APNIC}
  - {code: af-south-1, rir: AFRINIC}
"#;

    /// Returns the maximum number of cohorts of each size over `REALISTIC_CATALOGUE`, worked
    /// out by hand.
    /// n / size cohorts fit up to size 14. From size 15 one cohort is the maximum, because two
    /// cohorts of 15 would use every perspective and split eu-west-3, eu-central-1 and
    /// eu-central-2, which are pairwise too close, between two cohorts. From size 25 there
    /// are none: the largest set with no too-close pair has 24 members (18 unconstrained
    /// perspectives, one of each of three pairs, three of the European six).
    fn realistic_maximum(size: usize) -> usize {
        match size {
            2..=14 => 30 / size,
            15..=24 => 1,
            _ => 0,
        }
    }

    fn realistic_pool() -> (PerspectivePool, Catalogue) {
        let catalogue = Catalogue::from_yaml(REALISTIC_CATALOGUE).expect("catalogue parses");
        let perspectives = catalogue.iter().cloned().collect();
        (
            PerspectivePool::new(perspectives, &catalogue).expect("pool fits"),
            catalogue,
        )
    }

    fn secret(text: &str) -> HashSecret {
        HashSecret::new(text.as_bytes()).expect("secret is not empty")
    }

    fn target(text: &str) -> Target {
        Target::parse(text).expect("test target parses")
    }

    fn codes(cohorts: &[Cohort<'_>]) -> Vec<Vec<String>> {
        cohorts
            .iter()
            .map(|cohort| {
                cohort
                    .members()
                    .iter()
                    .map(|member| member.code.clone())
                    .collect()
            })
            .collect()
    }

    /// Asserts the BR rules on a set of cohorts.
    fn assert_rules(cohorts: &[Cohort<'_>], size: usize, catalogue: &Catalogue, context: &str) {
        let mut seen = BTreeSet::new();
        for (number, cohort) in cohorts.iter().enumerate() {
            assert_eq!(cohort.len(), size, "{context}: cohort {number} size");
            for member in cohort.members() {
                assert!(
                    seen.insert(member.code.clone()),
                    "{context}: {} in two cohorts",
                    member.code
                );
            }
            let rirs: BTreeSet<Rir> = cohort.members().iter().map(|m| m.rir).collect();
            if size > 2 {
                assert!(rirs.len() >= 2, "{context}: cohort {number} has one RIR");
            }
            for a in cohort.members() {
                for b in cohort.members() {
                    assert!(
                        a.code == b.code || !catalogue.are_too_close(&a.code, &b.code),
                        "{context}: cohort {number} holds too-close {} and {}",
                        a.code,
                        b.code
                    );
                }
            }
        }
    }

    #[test]
    fn realistic_catalogue_reaches_maximum() {
        let (pool, catalogue) = realistic_pool();
        let key = secret("realistic-catalogue-secret");
        let targets = [
            "example.com",
            "www.example.org",
            "192.0.2.7",
            "2001:db8::5",
            "mail.example.net",
            "a.b.c.example",
        ];
        for text in targets {
            for size in 2..=pool.len() {
                let cohorts = pool.cohorts(&key, &target(text), size);
                let context = format!("target {text:?}, size {size}");
                assert_rules(&cohorts, size, &catalogue, &context);
                assert_eq!(
                    cohorts.len(),
                    realistic_maximum(size),
                    "{context}: cohort count"
                );
            }
        }
    }

    #[test]
    fn cohorts_are_deterministic() {
        let (pool, catalogue) = realistic_pool();
        let mut reversed: Vec<PerspectiveInfo> = catalogue.iter().cloned().collect();
        reversed.reverse();
        let reordered = PerspectivePool::new(reversed, &catalogue).expect("pool fits");
        let key = secret("determinism");

        let cases = [
            ("same text twice", "example.com", "example.com"),
            ("wildcard and base name", "*.example.com", "example.com"),
            ("case and trailing dot", "Example.COM.", "example.com"),
            ("IDN and A-label", "bücher.example", "xn--bcher-kva.example"),
            ("IPv6 spellings", "[2001:DB8:0::1]", "2001:db8::1"),
        ];
        for (name, first, second) in cases {
            for size in [2, 3, 5, 6] {
                let a = codes(&pool.cohorts(&key, &target(first), size));
                let b = codes(&pool.cohorts(&key, &target(second), size));
                let c = codes(&reordered.cohorts(&key, &target(first), size));
                assert_eq!(a, b, "case {name:?}, size {size}: spellings differ");
                assert_eq!(
                    a, c,
                    "case {name:?}, size {size}: configuration order matters"
                );
            }
        }
    }

    #[test]
    fn secret_changes_cohorts_for_most_targets() {
        let (pool, _) = realistic_pool();
        let first = secret("secret-one");
        let second = secret("secret-two");
        let targets: Vec<Target> = (0..200)
            .map(|n| target(&format!("host{n}.example.com")))
            .collect();

        for size in [2, 3, 5, 6] {
            let differing = targets
                .iter()
                .filter(|t| {
                    codes(&pool.cohorts(&first, t, size)[..1])
                        != codes(&pool.cohorts(&second, t, size)[..1])
                })
                .count();
            assert!(
                differing >= 190,
                "size {size}: only {differing} of 200 targets changed their first cohort"
            );
        }
    }

    #[test]
    fn every_perspective_leads_some_first_cohort() {
        let (pool, _) = realistic_pool();
        let key = secret("spread");
        let mut first_members: BTreeMap<String, usize> = BTreeMap::new();
        for n in 0..600 {
            let cohorts = pool.cohorts(&key, &target(&format!("site{n}.example")), 6);
            for member in cohorts[0].members() {
                *first_members.entry(member.code.clone()).or_default() += 1;
            }
        }
        // 600 targets x 6 members spread over 30 perspectives: 120 each on average.
        for perspective in pool.perspectives() {
            let count = first_members.get(&perspective.code).copied().unwrap_or(0);
            assert!(
                (40..=240).contains(&count),
                "{} is in {count} of 600 first cohorts",
                perspective.code
            );
        }
    }

    #[test]
    fn impossible_sizes_give_no_cohorts() {
        let catalogue = Catalogue::from_yaml(
            "available_regions:\n\
             - {code: a, rir: ARIN}\n\
             - {code: b, rir: ARIN}\n\
             - {code: c, rir: ARIN}\n\
             - {code: d, rir: RIPE NCC, too_close_codes: [e]}\n\
             - {code: e, rir: RIPE NCC}\n",
        )
        .expect("catalogue parses");
        let pool = PerspectivePool::new(catalogue.iter().cloned().collect(), &catalogue)
            .expect("pool fits");
        let key = secret("impossible");
        let cases = [
            ("size zero", 0, 0),
            ("size above the pool", 6, 0),
            ("size five holds a too-close pair", 5, 0),
            ("size four fits once", 4, 1),
            ("size three: one RIPE NCC member each", 3, 1),
            ("size two: pairs need no second RIR", 2, 2),
        ];
        for (name, size, expected) in cases {
            let cohorts = pool.cohorts(&key, &target("example.com"), size);
            assert_eq!(cohorts.len(), expected, "case {name:?}");
            assert_rules(&cohorts, size, &catalogue, name);
            assert_eq!(
                pool.can_build(size),
                expected > 0,
                "case {name:?}: can_build"
            );
        }
    }

    #[test]
    fn single_rir_catalogue_only_gives_pairs() {
        let catalogue = Catalogue::from_yaml(
            "available_regions:\n\
             - {code: a, rir: APNIC}\n\
             - {code: b, rir: APNIC}\n\
             - {code: c, rir: APNIC}\n\
             - {code: d, rir: APNIC}\n",
        )
        .expect("catalogue parses");
        let pool = PerspectivePool::new(catalogue.iter().cloned().collect(), &catalogue)
            .expect("pool fits");
        let key = secret("single-rir");
        assert_eq!(pool.cohorts(&key, &target("example.com"), 2).len(), 2);
        assert!(pool.cohorts(&key, &target("example.com"), 3).is_empty());
        assert!(pool.cohorts(&key, &target("example.com"), 4).is_empty());
    }

    #[test]
    fn empty_secret_is_rejected() {
        assert!(matches!(HashSecret::new(b""), Err(HashSecretError::Empty)));
        assert_eq!(format!("{:?}", secret("hunter2")), "HashSecret([redacted])");
    }

    /// A small deterministic generator, so the random catalogues are the same on every run.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, bound: u64) -> usize {
            usize::try_from(self.next() % bound).expect("small bound fits usize")
        }
    }

    fn random_catalogue(random: &mut XorShift) -> Catalogue {
        let size = 4 + random.below(6);
        let rir_choices = ["ARIN", "RIPE NCC", "APNIC"];
        let rir_spread = 1 + random.below(3) as u64;
        let mut yaml = String::from("available_regions:\n");
        for a in 0..size {
            let rir = rir_choices[random.below(rir_spread)];
            let close: Vec<String> = (a + 1..size)
                .filter(|_| random.below(100) < 25)
                .map(|b| format!("p{b}"))
                .collect();
            yaml.push_str(&format!(
                "  - {{code: p{a}, rir: {rir}, too_close_codes: [{}]}}\n",
                close.join(", ")
            ));
        }
        Catalogue::from_yaml(&yaml).expect("generated catalogue parses")
    }

    /// Returns the maximum number of disjoint valid cohorts of `size`, found by trying every
    /// subset.
    fn exhaustive_maximum(pool: &PerspectivePool, size: usize) -> usize {
        let n = pool.len();
        let valid: Vec<u32> = (0u32..1 << n)
            .filter(|set| set.count_ones() as usize == size)
            .filter(|set| {
                let members: Vec<usize> = (0..n).filter(|i| set & (1 << i) != 0).collect();
                let rirs: BTreeSet<usize> = members.iter().map(|&i| pool.rirs[i]).collect();
                let no_conflict = members
                    .iter()
                    .all(|&a| members.iter().all(|&b| !pool.too_close[a].contains(b)));
                no_conflict && (size < 3 || rirs.len() >= 2)
            })
            .collect();
        fn best(valid: &[u32], used: u32, from: usize) -> usize {
            (from..valid.len())
                .filter(|&i| valid[i] & used == 0)
                .map(|i| 1 + best(valid, used | valid[i], i + 1))
                .max()
                .unwrap_or(0)
        }
        best(&valid, 0, 0)
    }

    #[test]
    fn search_matches_exhaustive_search() {
        let mut random = XorShift(0x9e37_79b9_7f4a_7c15);
        let key = secret("exhaustive");
        for round in 0..300 {
            let catalogue = random_catalogue(&mut random);
            let pool = PerspectivePool::new(catalogue.iter().cloned().collect(), &catalogue)
                .expect("pool fits");
            for size in 2..=pool.len() {
                let cohorts = pool.cohorts(&key, &target(&format!("r{round}.example")), size);
                let context = format!("round {round}, size {size}");
                assert_rules(&cohorts, size, &catalogue, &context);
                assert_eq!(
                    cohorts.len(),
                    exhaustive_maximum(&pool, size),
                    "{context}: cohort count"
                );
            }
        }
    }

    #[test]
    fn sparse_random_catalogues_stay_within_budget() {
        let mut random = XorShift(0x2545_f491_4f6c_dd1d);
        let rir_names = ["ARIN", "RIPE NCC", "APNIC", "LACNIC", "AFRINIC"];
        for round in 0..10 {
            let mut yaml = String::from("available_regions:\n");
            for a in 0..30 {
                let rir = rir_names[random.below(3)];
                let close: Vec<String> = (a + 1..30)
                    .filter(|_| random.below(100) < 5)
                    .map(|b| format!("p{b}"))
                    .collect();
                yaml.push_str(&format!(
                    "  - {{code: p{a}, rir: {rir}, too_close_codes: [{}]}}\n",
                    close.join(", ")
                ));
            }
            let catalogue = Catalogue::from_yaml(&yaml).expect("generated catalogue parses");
            let pool = PerspectivePool::new(catalogue.iter().cloned().collect(), &catalogue)
                .expect("pool fits");
            let order = pool.rank(&secret("sparse"), &format!("sparse{round}.example"));
            for size in 2..=pool.len() {
                let arrangement = pool.arrange(&order, size);
                assert_eq!(
                    arrangement.budget_exhausted_at, None,
                    "round {round}, size {size}: search ran out of budget"
                );
            }
        }
    }

    #[test]
    fn realistic_catalogue_stays_within_budget() {
        let (pool, _) = realistic_pool();
        for n in 0..20 {
            let order = pool.rank(&secret("budget"), &format!("budget{n}.example"));
            for size in 2..=pool.len() {
                assert_eq!(
                    pool.arrange(&order, size).budget_exhausted_at,
                    None,
                    "target {n}, size {size}: search ran out of budget"
                );
            }
        }
    }

    #[test]
    fn oversized_pool_is_rejected() {
        let yaml: String = std::iter::once("available_regions:\n".to_owned())
            .chain((0..=MAX_POOL_SIZE).map(|n| format!("  - {{code: p{n}, rir: ARIN}}\n")))
            .collect();
        let catalogue = Catalogue::from_yaml(&yaml).expect("catalogue parses");
        let result = PerspectivePool::new(catalogue.iter().cloned().collect(), &catalogue);
        assert!(matches!(
            result,
            Err(PoolError::TooManyPerspectives { count }) if count == MAX_POOL_SIZE + 1
        ));
    }
}
