//! Fault injection for the AWS path, on loopback only: [`FaultProxy`] in
//! front of moto (and the [`crate::ComprehendStub`]), deciding per request
//! with [`Rule`]s (`rules`), speaking each service's wire format for its
//! errors (`wire`), and forwarding, resetting or holding connections
//! (`proxy`).

mod proxy;
pub(crate) mod rules;
mod wire;

pub use proxy::FaultProxy;
pub use rules::{Fault, FaultCounts, Rule, Trigger, FAULT_KINDS, MAX_HOLD};
