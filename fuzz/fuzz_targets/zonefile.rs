//! The zone-file parser: any text, never a panic. A zone that loads, written back in
//! master-file form, loads again to the same records.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use r53dns_zone::{Name, load_zone_str};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let origin = Name::parse("example.", None).expect("origin");
    if let Ok((zone, _)) = load_zone_str(text, Path::new("fuzz.zone"), Some(&origin)) {
        let again = zone.to_text();
        let (back, _) = load_zone_str(&again, Path::new("again.zone"), Some(&origin))
            .unwrap_or_else(|e| panic!("written zone does not load: {e}\n{again}"));
        assert_eq!(back.record_count(), zone.record_count(), "{again}");
        assert_eq!(back.serial(), zone.serial());
    }
});
