//! NOTIFY (RFC 1996) to secondaries whenever a zone's serial changes: over UDP, retried with
//! backoff until the secondary acknowledges.

use std::net::SocketAddr;
use std::time::Duration;

use r53dns_zone::Name;

/// Attempts per NOTIFY before giving up (RFC 1996 §3.6 leaves it to the implementation).
const ATTEMPTS: u32 = 5;

fn message(id: u16, apex: &Name) -> Vec<u8> {
    // Opcode NOTIFY (4), AA; one question: <apex> SOA IN.
    let mut m = Vec::with_capacity(64);
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&[0x24, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    m.extend_from_slice(apex.wire());
    m.extend_from_slice(&[0, 6, 0, 1]);
    m
}

/// Sends one NOTIFY for `apex` to `target` until acknowledged. Returns whether it was.
pub async fn notify(target: SocketAddr, apex: &Name) -> bool {
    let Ok(sock) = crate::resolve::udp_client(target).await else { return false };
    let id: u16 = rand::random();
    let msg = message(id, apex);
    let mut wait = Duration::from_millis(500);
    for attempt in 1..=ATTEMPTS {
        if sock.send(&msg).await.is_ok() {
            let mut buf = [0u8; 512];
            if let Ok(Ok(n)) = tokio::time::timeout(wait, sock.recv(&mut buf)).await {
                // A response (QR) with our ID and opcode NOTIFY acknowledges it.
                if n >= 12 && buf[..2] == id.to_be_bytes() && buf[2] & 0x80 != 0 && (buf[2] >> 3) & 0xf == 4 {
                    tracing::debug!(%target, zone = %apex, attempt, "NOTIFY acknowledged");
                    return true;
                }
            }
        }
        wait = wait.saturating_mul(2);
    }
    tracing::warn!(%target, zone = %apex, "NOTIFY not acknowledged after {ATTEMPTS} attempts");
    false
}

/// Notifies every target about every zone in `changed`, in the background.
pub fn spawn(targets: &[SocketAddr], changed: Vec<Name>) {
    for apex in changed {
        for &t in targets {
            let apex = apex.clone();
            tokio::spawn(async move {
                notify(t, &apex).await;
            });
        }
    }
}
