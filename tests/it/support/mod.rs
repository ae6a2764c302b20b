pub mod dns;
pub mod moto;
pub mod nsd;
pub mod server;
