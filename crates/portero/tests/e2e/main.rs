//! The `portero` binary end to end: one test binary (linking is the slow part).

mod cli;
mod crash;
mod hardening;
mod import;
mod install;
mod mtls;
mod nodes;
mod operator;
mod outage;
mod proofs;
mod retry;
