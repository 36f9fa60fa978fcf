//! The server's integration tests, one module per area, in one binary: every test binary links
//! all of Burn, so one is minutes less building than one per area. Tests that start processes
//! (`vidplay`, PostgreSQL, SeaweedFS) pass them what they need on their command lines and
//! environments; none changes this process's environment.

mod common;

mod cli;
mod compare;
mod decode;
mod docs;
mod edit;
mod extend;
mod fuzz;
mod gpu_check;
mod hardening;
mod models;
mod ownership;
mod scaleout;
mod serve;
mod visual;
