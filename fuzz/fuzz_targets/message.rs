//! The slow-path message parser and TSIG verification (UPDATE, NOTIFY, signed queries and
//! transfers): any bytes, never a panic; what parses, verifies or fails cleanly.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use r53dns_proto::message;
use r53dns_proto::tsig::{self, Algorithm, Key, KeyRing, Verified};

fn keys() -> &'static KeyRing {
    static KEYS: OnceLock<KeyRing> = OnceLock::new();
    KEYS.get_or_init(|| {
        KeyRing::new(vec![Key {
            name: r53dns_zone::Name::parse("key.", None).expect("name"),
            algorithm: Algorithm::HmacSha256,
            secret: b"0123456789abcdef0123456789abcdef".to_vec(),
        }])
    })
}

fuzz_target!(|msg: &[u8]| {
    if let Some(parsed) = message::parse(msg) {
        match tsig::verify(keys(), msg, &parsed, 1_700_000_000) {
            Verified::Signed(mut s) => {
                let mut reply = msg.to_vec();
                let _ = s.sign(&mut reply, 1_700_000_000);
            }
            Verified::Failed(mut f) => {
                let mut reply = msg[..12.min(msg.len())].to_vec();
                let _ = f.append_to(&mut reply, 1_700_000_000);
            }
            Verified::Unsigned | Verified::Malformed => {}
        }
        // The client side too: any message as a response to a signed request.
        let mut client = tsig::Signer::request(keys().by_label("key").expect("key"));
        let _ = client.verify_response(msg);
    }
});
