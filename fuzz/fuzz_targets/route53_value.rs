//! Route53 record values: any text for any type, never a panic; a value that parses, written
//! back in Route53's form, parses to the same RDATA.
#![no_main]

use libfuzzer_sys::fuzz_target;
use r53dns_route53::convert::{parse_route53_name, parse_value, route53_name, route53_value};

fuzz_target!(|data: &[u8]| {
    let Some((code, rest)) = data.split_first_chunk::<2>() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let code = u16::from_be_bytes(*code);
    if let Ok(rdata) = parse_value(code, text) {
        let written = route53_value(code, &rdata);
        let back = parse_value(code, &written).unwrap_or_else(|e| panic!("{code} {written:?}: {e}"));
        assert_eq!(back, rdata, "type {code}: {text:?} → {written:?}");
    }
    if let Ok(name) = parse_route53_name(text) {
        let back = parse_route53_name(&route53_name(&name)).expect("written name parses");
        assert_eq!(back.wire(), name.wire());
    }
});
