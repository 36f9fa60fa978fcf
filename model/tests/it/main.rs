//! The model crate's integration tests, one module per area, in one binary: every test binary
//! links all of Burn, so one is minutes less building than one per area.

mod common;

mod clip_parity;
mod generation;
mod hub_download;
mod ip2p_parity;
mod sd_parity;
mod svd_parity;
mod wan_parity;
