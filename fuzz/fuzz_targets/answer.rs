//! The whole request handler: any bytes in, a response or nothing out. Never panics, never
//! answers a response, echoes the ID, and keeps every response within the size the client
//! may receive.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use r53dns_server::{AnswerConfig, Outcome, Transport, ZoneSet, answer};
use r53dns_zone::load_zone_str;

fn zones() -> &'static ZoneSet {
    static ZONES: OnceLock<ZoneSet> = OnceLock::new();
    ZONES.get_or_init(|| {
        let mut set = ZoneSet::new();
        for (text, origin) in [
            (include_str!("../../tests/data/zones/example.com.zone"), "example.com."),
            (include_str!("../../tests/data/zones/example.net.zone"), "example.net."),
            (include_str!("../../tests/data/zones/signed.example.zone"), "signed.example."),
        ] {
            let origin = r53dns_zone::Name::parse(origin, None).expect("origin");
            let (zone, _) = load_zone_str(text, Path::new(origin.to_text().as_str()), Some(&origin)).expect("zone");
            set.insert(zone);
        }
        set
    })
}

fuzz_target!(|msg: &[u8]| {
    let mut out = Vec::new();
    for transport in [Transport::Udp, Transport::Tcp] {
        let cfg = AnswerConfig::default();
        match answer(zones(), msg, transport, &cfg, Some("192.0.2.1".parse().unwrap()), &mut out) {
            Outcome::Drop => {}
            Outcome::Respond => {
                assert!(msg.len() >= 12 && msg[2] & 0x80 == 0, "answered a response or a runt");
                assert!(out.len() >= 12 && out[..2] == msg[..2] && out[2] & 0x80 != 0);
                let limit = match transport {
                    Transport::Tcp => 65_535,
                    Transport::Udp => usize::from(cfg.max_udp_payload),
                };
                assert!(out.len() <= limit, "{} octets over UDP", out.len());
            }
        }
    }
});
