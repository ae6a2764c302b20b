//! NOTIFY (RFC 1996) to secondaries whenever a zone's serial changes: over UDP, retried with
//! backoff until the secondary acknowledges; signed with a TSIG key (RFC 8945) when one is
//! configured, and then only a correctly signed acknowledgement counts.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use r53dns_proto::tsig::{self, Key, Signer};

use r53dns_zone::Name;
use r53dns_zone::proto::{Overflow, put_rdata};

/// Attempts per NOTIFY before giving up (RFC 1996 §3.6 leaves it to the implementation).
const ATTEMPTS: u32 = 5;

fn message(id: u16, apex: &Name, soa: Option<&Soa>) -> Result<Vec<u8>, Overflow> {
    // Opcode NOTIFY (4), AA; one question: <apex> SOA IN; the new SOA as answer (RFC 1996
    // §3.7: a hint that spares the secondary a query when it is already current).
    let mut m = Vec::with_capacity(128);
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&[0x24, 0x00, 0, 1, 0, u8::from(soa.is_some()), 0, 0, 0, 0]);
    m.extend_from_slice(apex.wire());
    m.extend_from_slice(&[0, 6, 0, 1]);
    if let Some(soa) = soa {
        m.extend_from_slice(&[0xc0, 12, 0, 6, 0, 1]);
        m.extend_from_slice(&soa.ttl.to_be_bytes());
        put_rdata(&mut m, &soa.rdata)?;
    }
    Ok(m)
}

/// A zone's SOA record, sent along with its NOTIFY.
#[derive(Debug, Clone)]
pub struct Soa {
    /// TTL.
    pub ttl: u32,
    /// RDATA (uncompressed).
    pub rdata: Vec<u8>,
}

/// Sends one NOTIFY for `apex` to `target` until acknowledged. Returns whether it was.
pub async fn notify(target: SocketAddr, apex: &Name, soa: Option<&Soa>, key: Option<&Key>) -> bool {
    let Ok(sock) = crate::resolve::udp_client(target).await else { return false };
    let id: u16 = rand::random();
    let mut wait = Duration::from_millis(500);
    for attempt in 1..=ATTEMPTS {
        // Signed afresh each time: the signature carries the time.
        let built = message(id, apex, soa).and_then(|mut msg| {
            let signer = Signer::sign_request(key, &mut msg, tsig::now())?;
            Ok((msg, signer))
        });
        let (msg, mut signer) = match built {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(%target, zone = %apex, "NOTIFY not sent: {e}");
                return false;
            }
        };
        if sock.send(&msg).await.is_ok() {
            let mut buf = [0u8; 1024];
            if let Ok(Ok(n)) = tokio::time::timeout(wait, sock.recv(&mut buf)).await {
                // A response (QR) with our ID and opcode NOTIFY acknowledges it.
                let reply = &buf[..n];
                if n >= 12 && reply[..2] == id.to_be_bytes() && reply[2] & 0x80 != 0 && (reply[2] >> 3) & 0xf == 4 {
                    let rcode = reply[3] & 0x0f;
                    let signed_ok =
                        signer.as_mut().is_none_or(|s| s.verify_response(reply) == Ok(tsig::Checked::Signed));
                    if rcode == 0 && signed_ok {
                        tracing::debug!(%target, zone = %apex, attempt, "NOTIFY acknowledged");
                        return true;
                    }
                    tracing::warn!(%target, zone = %apex, rcode, signed_ok, "NOTIFY not accepted");
                    return false;
                }
            }
        }
        wait = wait.saturating_mul(2);
    }
    tracing::warn!(%target, zone = %apex, "NOTIFY not acknowledged after {ATTEMPTS} attempts");
    false
}

/// Notifies every target about every zone in `changed`, in the background.
pub fn spawn(targets: &[SocketAddr], key: Option<Arc<Key>>, changed: Vec<(Name, Option<Soa>)>) {
    for (apex, soa) in changed {
        for &t in targets {
            let apex = apex.clone();
            let soa = soa.clone();
            let key = key.clone();
            tokio::spawn(async move {
                notify(t, &apex, soa.as_ref(), key.as_deref()).await;
            });
        }
    }
}
