pub mod bind;
pub mod dns;
pub mod knot;
pub mod moto;
pub mod nsd;
pub mod server;
