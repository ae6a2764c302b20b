//! Integration tests: one binary, a module per area.
#![allow(unreachable_pub)] // test helpers are private to this binary

#[allow(dead_code)] // helpers are shared by modules that each use a part
mod support;

mod binary;
mod bindconf;
mod catalog;
mod compare;
mod control;
mod deploy;
mod differential;
mod dnstap;
mod ecs;
mod encrypted;
mod events;
mod fleet;
mod generate;
mod identity;
mod layouts;
mod operations;
mod push;
mod robustness;
mod route53;
mod rrl;
mod scenarios;
mod secondary;
mod serving;
mod systemd;
mod tcp;
mod transfer;
mod transports;
mod types;
mod update;
