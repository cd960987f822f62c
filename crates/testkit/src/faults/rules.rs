//! Which calls get which fault: [`Rule`]s matched by service and operation,
//! fired at a seeded rate, at given call numbers or for the first N calls,
//! and the per-service, per-operation counters every test reads
//! ([`FaultCounts`]). No I/O: the proxy asks [`State::decide`] once per
//! request.
//!
//! The rate decisions come from one seeded generator, so a single-threaded
//! sequence of calls sees the same faults on every run; with concurrent
//! callers the order in which they reach the proxy decides who gets which
//! draw, so tests assert accounting invariants, never which call failed.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};

/// What to inject.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// The service's throttling error.
    Throttle,
    /// HTTP 500 in the service's error format.
    Http500,
    /// HTTP 503 in the service's error format.
    Http503,
    /// Close the connection (TCP reset) without answering.
    Reset,
    /// Forward after this delay.
    Slow(Duration),
    /// SQS `SendMessageBatch`: fail this fraction of the entries (seeded),
    /// at least one, forwarding the rest.
    PartialBatch(f64),
    /// Forward (moto applies the request), then reset the connection
    /// instead of answering.
    LoseAnswer,
    /// Hold the connection open without forwarding or answering until the
    /// client closes it, at most this long (capped at [`MAX_HOLD`]); then
    /// reset it.
    Hang(Duration),
    /// Forward (moto applies the request), then hold the answer back as
    /// [`Fault::Hang`] does.
    HangAfterForward(Duration),
}

/// The longest any connection is held by [`Fault::Hang`] or
/// [`Fault::HangAfterForward`], whatever the rule says.
pub const MAX_HOLD: Duration = Duration::from_secs(20);

impl Fault {
    /// The name used in counters and reports.
    pub fn name(&self) -> &'static str {
        match self {
            Fault::Throttle => "throttle",
            Fault::Http500 => "http500",
            Fault::Http503 => "http503",
            Fault::Reset => "reset",
            Fault::Slow(_) => "slow",
            Fault::PartialBatch(_) => "partial_batch",
            Fault::LoseAnswer => "lose_answer",
            Fault::Hang(_) => "hang",
            Fault::HangAfterForward(_) => "hang_after_forward",
        }
    }
}

/// When a rule fires.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    /// On each matching call with this probability (seeded generator).
    Rate(f64),
    /// On these matching calls (1-based, counted per rule).
    Calls(Vec<u64>),
    /// On the first N matching calls ("for a while").
    FirstN(u64),
    /// On every matching call.
    Always,
}

/// One injection rule. Rules are tried in order; the first that fires wins.
#[derive(Debug, Clone)]
pub struct Rule {
    service: Option<String>,
    operation: Option<String>,
    fault: Fault,
    trigger: Trigger,
    limit: Option<u64>,
    matched: u64,
    pub(crate) fired: u64,
}

impl Rule {
    /// A rule for `service` (SigV4 name: `dynamodb`, `sqs`, `s3`, `glue`,
    /// `comprehend`, `athena`; `*` for any) and `operation` (`*` for any).
    pub fn new(service: &str, operation: &str, fault: Fault, trigger: Trigger) -> Self {
        let any = |s: &str| (s != "*").then(|| s.to_owned());
        Self {
            service: any(service),
            operation: any(operation),
            fault,
            trigger,
            limit: None,
            matched: 0,
            fired: 0,
        }
    }

    /// Fire at most `n` times in total.
    pub fn limit(mut self, n: u64) -> Self {
        self.limit = Some(n);
        self
    }

    fn matches(&self, service: &str, operation: &str) -> bool {
        self.service.as_deref().is_none_or(|s| s == service)
            && self.operation.as_deref().is_none_or(|o| o == operation)
    }
}

/// Counters: (service, operation, outcome) → count. Outcomes are `calls`
/// (every request seen), `forwarded`, and one per [`Fault::name`];
/// `partial_batch_entries` counts the entries failed by partial batches;
/// `client_gave_up` / `hold_expired` say how each held connection ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultCounts(pub BTreeMap<(String, String, String), u64>);

/// Outcome names that are injected faults (not `calls` / `forwarded`).
pub const FAULT_KINDS: &[&str] = &[
    "throttle",
    "http500",
    "http503",
    "reset",
    "slow",
    "partial_batch",
    "lose_answer",
    "hang",
    "hang_after_forward",
];

impl FaultCounts {
    /// The count for one service/operation/outcome.
    pub fn get(&self, service: &str, operation: &str, outcome: &str) -> u64 {
        self.0
            .get(&(service.into(), operation.into(), outcome.into()))
            .copied()
            .unwrap_or(0)
    }

    /// Sum over everything matching (`*` matches any).
    pub fn sum(&self, service: &str, operation: &str, outcome: &str) -> u64 {
        self.0
            .iter()
            .filter(|((s, o, k), _)| {
                (service == "*" || s == service)
                    && (operation == "*" || o == operation)
                    && (outcome == "*" || k == outcome)
            })
            .map(|(_, n)| n)
            .sum()
    }

    /// Injected faults, all kinds.
    pub fn injected(&self) -> u64 {
        FAULT_KINDS.iter().map(|k| self.sum("*", "*", k)).sum()
    }

    /// Injected faults per kind (kinds with none left out).
    pub fn by_kind(&self) -> BTreeMap<String, u64> {
        FAULT_KINDS
            .iter()
            .map(|k| (k.to_string(), self.sum("*", "*", k)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// As JSON: `{"by_kind": {...}, "by_op": {"s3/PutObject": {"calls": n, "throttle": m}}}`.
    pub fn to_json(&self) -> Value {
        let mut by_op: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for ((s, o, k), n) in &self.0 {
            by_op
                .entry(format!("{s}/{o}"))
                .or_default()
                .insert(k.clone(), *n);
        }
        json!({ "by_kind": self.by_kind(), "injected": self.injected(), "by_op": by_op })
    }
}

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) rules: Vec<Rule>,
    pub(crate) rng: u64,
    pub(crate) counts: FaultCounts,
    pub(crate) requests: u64,
}

impl State {
    /// No rules yet; `seed` starts the rate decisions.
    pub(crate) fn seeded(seed: u64) -> Self {
        Self {
            rules: Vec::new(),
            rng: seed,
            counts: FaultCounts::default(),
            requests: 0,
        }
    }

    pub(crate) fn next_f64(&mut self) -> f64 {
        // splitmix64
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    pub(crate) fn count(&mut self, service: &str, op: &str, outcome: &str, n: u64) {
        *self
            .counts
            .0
            .entry((service.into(), op.into(), outcome.into()))
            .or_default() += n;
    }

    /// Decide this call's fault (at most one).
    pub(crate) fn decide(&mut self, service: &str, op: &str) -> Option<Fault> {
        self.requests += 1;
        self.count(service, op, "calls", 1);
        for i in 0..self.rules.len() {
            if !self.rules[i].matches(service, op) {
                continue;
            }
            self.rules[i].matched += 1;
            let r = &self.rules[i];
            if r.limit.is_some_and(|l| r.fired >= l) {
                continue;
            }
            let fire = match r.trigger.clone() {
                Trigger::Rate(p) => self.next_f64() < p,
                Trigger::Calls(c) => c.contains(&r.matched),
                Trigger::FirstN(n) => r.matched <= n,
                Trigger::Always => true,
            };
            if fire {
                self.rules[i].fired += 1;
                let fault = self.rules[i].fault.clone();
                self.count(service, op, fault.name(), 1);
                return Some(fault);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_fire_by_call_number_first_n_and_limit() {
        let mut st = State {
            rules: vec![
                Rule::new(
                    "s3",
                    "PutObject",
                    Fault::Throttle,
                    Trigger::Calls(vec![2, 4]),
                ),
                Rule::new("glue", "*", Fault::Http500, Trigger::FirstN(2)),
                Rule::new("*", "*", Fault::Reset, Trigger::Always).limit(1),
            ],
            rng: 1,
            counts: FaultCounts::default(),
            requests: 0,
        };
        let s3: Vec<_> = (0..4).map(|_| st.decide("s3", "PutObject")).collect();
        // call 1: the catch-all reset fires once; 2 and 4: throttled.
        assert_eq!(
            s3,
            [
                Some(Fault::Reset),
                Some(Fault::Throttle),
                None,
                Some(Fault::Throttle)
            ]
        );
        let glue: Vec<_> = (0..3).map(|_| st.decide("glue", "GetTable")).collect();
        assert_eq!(glue, [Some(Fault::Http500), Some(Fault::Http500), None]);
        assert_eq!(st.counts.get("s3", "PutObject", "calls"), 4);
        assert_eq!(st.counts.by_kind()["throttle"], 2);
        assert_eq!(st.counts.injected(), 5);
    }

    #[test]
    fn rates_are_seeded() {
        let run = |seed| {
            let mut st = State {
                rules: vec![Rule::new("*", "*", Fault::Http503, Trigger::Rate(0.3))],
                rng: seed,
                counts: FaultCounts::default(),
                requests: 0,
            };
            (0..1000)
                .map(|_| st.decide("sqs", "X").is_some())
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        let n = run(7).iter().filter(|f| **f).count();
        assert!((230..370).contains(&n), "{n}");
    }
}
