//! Resolving the AWS endpoints that aliases point to (ELB, CloudFront, S3 websites…) through
//! an ordinary recursive resolver, as AWS itself answers them from its own data.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use r53dns_route53::EndpointAddrs;
use tokio::net::UdpSocket;

/// The first `nameserver` of /etc/resolv.conf, on port 53.
pub fn system_resolver() -> Option<SocketAddr> {
    let text = std::fs::read_to_string("/etc/resolv.conf").ok()?;
    text.lines()
        .find_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("nameserver")).then(|| w.next()?.parse::<std::net::IpAddr>().ok()).flatten()
        })
        .map(|ip| SocketAddr::new(ip, 53))
}

/// A UDP socket on an ephemeral port of the right family, connected to `peer`.
pub(crate) async fn udp_client(peer: SocketAddr) -> std::io::Result<UdpSocket> {
    let bind: SocketAddr =
        if peer.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { (std::net::Ipv6Addr::UNSPECIFIED, 0).into() };
    let sock = UdpSocket::bind(bind).await?;
    sock.connect(peer).await?;
    Ok(sock)
}

async fn query(resolver: SocketAddr, name: &Name, rtype: RecordType, timeout: Duration) -> Result<Message, String> {
    let sock = udp_client(resolver).await.map_err(|e| e.to_string())?;
    let mut msg = Message::new(rand::random(), MessageType::Query, OpCode::Query);
    msg.metadata.recursion_desired = true;
    msg.add_query(Query::query(name.clone(), rtype));
    let bytes = msg.to_vec().map_err(|e| e.to_string())?;
    for _ in 0..2 {
        sock.send(&bytes).await.map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 4096];
        match tokio::time::timeout(timeout, sock.recv(&mut buf)).await {
            Ok(Ok(n)) => {
                let reply = Message::from_vec(&buf[..n]).map_err(|e| e.to_string())?;
                if reply.metadata.id == msg.metadata.id {
                    return Ok(reply);
                }
            }
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => continue,
        }
    }
    Err(format!("no answer from {resolver}"))
}

/// A and AAAA of `name` (CNAME chains followed by the resolver). An error keeps the last
/// good addresses.
pub async fn resolve(resolver: SocketAddr, name: &str, timeout: Duration) -> Result<EndpointAddrs, String> {
    let fqdn = if name.ends_with('.') { name.to_owned() } else { format!("{name}.") };
    let n = Name::from_ascii(&fqdn).map_err(|e| e.to_string())?;
    let mut out = EndpointAddrs::default();
    let mut errors = Vec::new();
    for t in [RecordType::A, RecordType::AAAA] {
        match query(resolver, &n, t, timeout).await {
            Ok(reply) => {
                let rcode = reply.metadata.response_code;
                if rcode != hickory_proto::op::ResponseCode::NoError {
                    errors.push(format!("{t}: {rcode}"));
                    continue;
                }
                for r in &reply.answers {
                    match &r.data {
                        RData::A(a) => out.a.push(a.0),
                        RData::AAAA(a) => out.aaaa.push(a.0),
                        _ => {}
                    }
                }
            }
            Err(e) => errors.push(format!("{t}: {e}")),
        }
    }
    if out.a.is_empty() && out.aaaa.is_empty() {
        return Err(if errors.is_empty() { "no addresses".into() } else { errors.join("; ") });
    }
    out.a.sort();
    out.aaaa.sort();
    Ok(out)
}
