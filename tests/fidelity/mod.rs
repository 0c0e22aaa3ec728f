//! Support for `state_fidelity`: the case table, the two clients, the runner.

pub mod cases;
pub mod client;
pub mod run;
