//! Messages from the Route53 event queue: anyone allowed to send to the queue chooses their
//! bytes. Never a panic; what parses as a change names a zone and at least one set, each with
//! a name Route53 can hold and a type it knows.
#![no_main]

use libfuzzer_sys::fuzz_target;
use r53dns_route53::convert::parse_route53_name;
use r53dns_route53::events::{Hint, Parsed, parse};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Parsed::Event(e) = parse(text) {
        assert!(!e.id.is_empty());
        if let Hint::Records { zone_id, sets } = e.hint {
            assert!(!zone_id.is_empty() && !sets.is_empty());
            for (name, t) in &sets {
                assert!(parse_route53_name(name).is_ok(), "{name:?}");
                assert!(!t.is_empty() && t.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()), "{t:?}");
            }
        }
    }
});
