//! What a replica reads from its source, hostile or not: the input is taken as the body of a
//! manifest, and as the body of a zone part the manifest names (the header lines with their
//! checksums are computed here, so the fuzzer reaches the JSON); a part that reads is joined
//! and converted as the replica would. Never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use r53dns_app::replicate::{self, ManifestZone, ObjectRef};
use r53dns_route53::convert::{Inputs, convert};

fuzz_target!(|body: &[u8]| {
    if let Ok(m) = replicate::decode_manifest(&replicate::frame_manifest(body)) {
        let _ = replicate::check_serials(&m, &Default::default());
    }
    let (name, bytes) = replicate::frame_zone_part(body);
    let entry = ManifestZone {
        id: "Z1".into(),
        name: "example.com.".into(),
        private: false,
        vpcs: vec![],
        account: String::new(),
        serial: 7,
        hash: "00".into(),
        objects: vec![ObjectRef { name, size: bytes.len() as u64 }],
        stale_since: None,
    };
    let Ok(part) = replicate::decode_part(&bytes, &entry, 0) else { return };
    let saved = replicate::join_parts(&entry, vec![&part], None);
    let mut inputs = Inputs::default();
    inputs.zones.insert(saved.zone.id.clone(), (saved.zone.clone(), saved.records.to_vec()));
    let _ = convert("Z1", &inputs, |_| 7);
});
