//! The decoder of the single-file snapshot of earlier versions (read once, at migration)
//! and the Route53 conversion behind it. The input is the
//! body of a snapshot file (the header with its checksum is computed here, so the fuzzer
//! reaches the JSON); whatever decodes is converted zone by zone. Never a panic.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use r53dns_app::persist;
use r53dns_route53::convert::{Inputs, convert};

fuzz_target!(|body: &[u8]| {
    let bytes = persist::frame_v1(body);
    let Ok(saved) = persist::decode_v1(&bytes) else { return };
    let mut inputs = Inputs::default();
    for z in &saved.zones {
        inputs.zones.insert(z.zone.id.clone(), (z.zone.clone(), z.records.to_vec()));
    }
    inputs.health = saved.health.iter().cloned().collect::<HashMap<_, _>>();
    for id in inputs.zones.keys().cloned().collect::<Vec<_>>() {
        let _ = convert(&id, &inputs, |_| 1);
    }
});
