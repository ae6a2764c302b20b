//! The DNS protocol as both ends of r53dns speak it, below the server and the clients alike:
//! the allocation-free request reader of the fast path ([`wire`]), whole-message parsing for
//! the slow paths ([`message`]), TSIG ([`tsig`]) and DNS over a stream ([`frame`]).
//!
//! The vocabulary these share (rcodes, opcodes, RFC 1982 serials, length checks) is
//! `r53dns_zone::proto`, one layer lower, because the zone data uses it too. Arrows point one
//! way: `zone` ← `proto` ← `server`, `app`.
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod frame;
pub mod message;
pub mod tsig;
pub mod wire;
