pub mod dns;
pub mod nsd;
pub mod server;
