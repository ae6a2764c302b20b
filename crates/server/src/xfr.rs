//! Zone transfers out over TCP: AXFR (RFC 5936), and IXFR (RFC 1995) answered with a single
//! SOA when the client is current, with the differences when the zone's journal reaches back
//! to the client's serial, and with the whole zone otherwise (§4 allows that).
//! Allowed to configured client networks and to requests signed with a transfer key (TSIG,
//! RFC 8945); the responses to a signed request are signed, every message chained.

use std::net::IpAddr;

use r53dns_zone::{Answer, Client, Item, Owner, Prefix, RoutingContext, Zone, ZoneSet, rtype};

use crate::encode::Encoder;
use r53dns_proto::message::{self, Reply};
use r53dns_proto::tsig::{self, Opened, Transaction};
use r53dns_proto::wire::{self, ReadError, Request};

/// Largest transfer message we build (room to spare under 65535).
const MESSAGE_LIMIT: usize = 16 * 1024;
/// Largest message holding a single record too big for [`MESSAGE_LIMIT`]: TCP's 65 535
/// less room for a TSIG record.
const LONE_RECORD_LIMIT: usize = 65_535 - 512;

/// Whether `ip` may transfer zones.
pub(crate) fn allowed(acl: &[Prefix], ip: IpAddr) -> bool {
    acl.iter().any(|&(net, len)| r53dns_zone::routing::in_prefix(net, len, ip))
}

/// A transfer reply's first octets: header (QR, AA, the request's ID and opcode, `rcode`)
/// and, `with_question`, the question; room for a whole message.
pub(crate) fn start(req: &Request, with_question: bool, rcode: u8) -> Vec<u8> {
    let mut m = Vec::with_capacity(MESSAGE_LIMIT);
    Reply::to_request(req, with_question).write(&mut m, rcode, true);
    m
}

fn set_answers(m: &mut [u8], n: u16) {
    m[6..8].copy_from_slice(&n.to_be_bytes());
}

/// The messages answering a transfer request, or `None` if `msg` is not one (the caller then
/// answers it normally). `cfg` says who may transfer.
pub(crate) fn respond(zones: &ZoneSet, msg: &[u8], peer: IpAddr, cfg: &crate::ServerConfig) -> Option<Vec<Vec<u8>>> {
    // Most TCP messages are ordinary queries: leave them to the answer path unparsed.
    if !matches!(wire::question_type(msg), Some(rtype::AXFR | rtype::IXFR)) {
        return None;
    }
    let mut req = Request::empty();
    match wire::read_request(msg, &mut req) {
        Ok(()) => {}
        Err(ReadError::Drop | ReadError::FormErr { .. }) => return None,
    }
    if req.opcode() != 0 || !matches!(req.qtype, rtype::AXFR | rtype::IXFR) || req.qclass != 1 {
        return None;
    }
    let opened = match message::parse(msg) {
        Some(parsed) => Transaction::open(&cfg.tsig_keys, msg, &parsed, tsig::now(), |rc| start(&req, true, rc)),
        // Beyond the question there is nothing to read a signature from: unsigned.
        None => Opened::Go(Transaction::unsigned()),
    };
    let mut tx = match opened {
        Opened::Go(tx) => tx,
        Opened::Malformed(reply) => return Some(vec![reply]),
        Opened::Failed { reply, key, error } => {
            crate::logs::refused(crate::logs::Refusal::TransferTsig, |skipped| {
                tracing::warn!(%peer, %key, error, skipped, "zone transfer refused: TSIG check failed");
            });
            return Some(vec![reply]);
        }
    };
    let apex = r53dns_zone::Name::from_wire(req.qname())?;
    let zone = zones.get(&apex);
    // A zone's own rule, else the server's.
    let (acl, keys) = match cfg.zone_transfer.get(&apex.to_lowercase()) {
        Some(rule) => (&rule.acl, &rule.keys),
        None => (&cfg.transfer_acl, &cfg.transfer_keys),
    };
    let by_key = tx.key().is_some_and(|k| keys.contains(&k.label().to_ascii_lowercase()));
    let by_network = allowed(acl, peer);
    if !(by_key || by_network) || zone.is_none() {
        if !by_key && !by_network {
            crate::logs::refused(crate::logs::Refusal::TransferNotAllowed, |skipped| {
                tracing::info!(%peer, skipped, "zone transfer refused: neither the network nor a transfer key allows it");
            });
        }
        // Unsigned: the ordinary answer path refuses it (with OPT when the client sent
        // one), as NSD does. Signed: refused here, signed.
        if !tx.is_signed() {
            return None;
        }
        let mut m = start(&req, true, wire::rcode::REFUSED);
        tx.seal(&mut m, || start(&req, true, wire::rcode::SERVFAIL));
        return Some(vec![m]);
    }
    let zone = zone?;
    let mut messages = match transfer(&req, zone, zones)? {
        Ok(m) => m,
        Err(TooLarge) => {
            // Never a partial zone: the secondary keeps what it has and retries.
            tracing::error!(%peer, zone = %apex, "zone transfer failed: a record does not fit in a message");
            vec![start(&req, true, wire::rcode::SERVFAIL)]
        }
    };
    for m in &mut messages {
        // Transfer messages are packed under 16 KiB (a lone large record under 65 535 less
        // room for TSIG), so the signature always fits; a failure fails the whole transfer
        // rather than leaving a message unsigned.
        if let Err(e) = tx.sign(m) {
            tracing::error!(%peer, zone = %apex, "zone transfer failed: TSIG: {e}");
            return Some(vec![start(&req, true, wire::rcode::SERVFAIL)]);
        }
    }
    Some(messages)
}

/// A record larger than any DNS message: the zone cannot be transferred.
#[derive(Debug)]
struct TooLarge;

fn transfer(req: &Request, zone: &Zone, zones: &ZoneSet) -> Option<Result<Vec<Vec<u8>>, TooLarge>> {
    let soa_item =
        Item { owner: Owner::Name(zone.apex().wire()), data: r53dns_zone::Data::Rrset(soa(zone)?), required: false };
    let ans = Answer::empty();
    if req.qtype == rtype::IXFR
        && let Some(serial) = req.ixfr_serial
    {
        if r53dns_zone::proto::serial::at_or_after(serial, zone.serial()) {
            return Some(pack(req, &[soa_item], &ans));
        }
        let journal = zones.journal(zone.apex());
        if let Some(deltas) = journal.and_then(|j| j.since(serial, zone.serial())) {
            return Some(ixfr(req, zone, deltas, soa_item, &ans));
        }
    }
    Some(axfr(req, zone, zones.routing(), soa_item, &ans))
}

/// The incremental form (RFC 1995 §4): current SOA, then per delta the old SOA, the
/// deletions, the new SOA and the additions, then the current SOA again.
fn ixfr<'a>(
    req: &Request,
    zone: &'a Zone,
    deltas: &'a [std::sync::Arc<r53dns_zone::journal::Delta>],
    soa_item: Item<'a>,
    ans: &Answer<'a>,
) -> Result<Vec<Vec<u8>>, TooLarge> {
    let owner = Owner::Name(zone.apex().wire());
    let item = |set: &'a r53dns_zone::Rrset, owner: Owner<'a>| Item {
        owner,
        data: r53dns_zone::Data::Rrset(set),
        required: false,
    };
    let mut items = vec![soa_item];
    for d in deltas {
        items.push(item(&d.from_soa, owner));
        items.extend(d.deleted.iter().map(|(n, set)| item(set, Owner::Name(n.wire()))));
        items.push(item(&d.to_soa, owner));
        items.extend(d.added.iter().map(|(n, set)| item(set, Owner::Name(n.wire()))));
    }
    items.push(soa_item);
    pack(req, &items, ans)
}

fn soa(zone: &Zone) -> Option<&r53dns_zone::Rrset> {
    zone.apex_node().get(rtype::SOA)
}

/// SOA, every other RRset (with its signatures), SOA, packed into as few messages as fit.
fn axfr<'a>(
    req: &Request,
    zone: &'a Zone,
    routing: &RoutingContext,
    soa_item: Item<'a>,
    ans: &Answer<'a>,
) -> Result<Vec<Vec<u8>>, TooLarge> {
    let mut items: Vec<Item<'a>> = vec![soa_item];
    for node in zone.sorted_nodes() {
        let owner = Owner::Name(node.name().wire());
        for rr in node.rrsets().iter().filter(|r| r.rtype() != rtype::SOA && !r.rdatas().is_empty()) {
            items.push(Item { owner, data: r53dns_zone::Data::Rrset(rr), required: false });
        }
        // A secondary cannot route: it gets what a default client would.
        for group in node.routed() {
            for rr in group.select(routing, Client::default()) {
                if !rr.rdatas().is_empty() {
                    items.push(Item { owner, data: r53dns_zone::Data::Rrset(rr), required: false });
                }
            }
        }
    }
    items.push(soa_item);
    pack(req, &items, ans)
}

/// Packs `items` into as few messages as fit. An RRset too large for one message is split
/// across messages record by record (RFC 5936 §2.2 allows it; every secondary reassembles
/// it), and a single record too large for a usual message gets a message of its own up to
/// the TCP limit. Nothing is ever left out: a record that fits in no message fails the
/// transfer.
fn pack(req: &Request, items: &[Item<'_>], ans: &Answer<'_>) -> Result<Vec<Vec<u8>>, TooLarge> {
    let mut messages = Vec::new();
    let mut current = start(req, true, 0);
    let mut count = 0u16;
    let flush = |current: &mut Vec<u8>, count: &mut u16, messages: &mut Vec<Vec<u8>>| {
        set_answers(current, *count);
        messages.push(std::mem::replace(current, start(req, false, 0)));
        *count = 0;
    };
    for item in items {
        loop {
            let mut enc = Encoder::new(&mut current, MESSAGE_LIMIT);
            match enc.item(item, ans, true) {
                Ok(n) => {
                    count += n;
                    break;
                }
                Err(_) if count > 0 => flush(&mut current, &mut count, &mut messages),
                Err(_) => {
                    let r53dns_zone::Data::Rrset(set) = item.data else { return Err(TooLarge) };
                    let sigs = set.sigs().filter(|_| set.rtype() != rtype::RRSIG);
                    let records = set
                        .rdatas()
                        .map(|rd| (set.rtype(), set.ttl(), rd))
                        .chain(sigs.into_iter().flat_map(|s| s.rdatas().map(move |rd| (s.rtype(), s.ttl(), rd))));
                    for (t, ttl, rd) in records {
                        loop {
                            let limit = if count == 0 { LONE_RECORD_LIMIT } else { MESSAGE_LIMIT };
                            match Encoder::new(&mut current, limit).record(item.owner, ans, t, ttl, rd) {
                                Ok(()) => {
                                    count += 1;
                                    break;
                                }
                                Err(_) if count > 0 => flush(&mut current, &mut count, &mut messages),
                                Err(_) => return Err(TooLarge),
                            }
                        }
                    }
                    break;
                }
            }
        }
    }
    set_answers(&mut current, count);
    messages.push(current);
    Ok(messages)
}
