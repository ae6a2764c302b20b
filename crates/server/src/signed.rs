//! Signed queries (TSIG, RFC 8945) on the ordinary answer path — a secondary checking its
//! primary's SOA, say. The request is verified, answered as if it were unsigned, and the
//! response signed with the same key; a request that fails the check gets NOTAUTH with the
//! TSIG error. Rare, so this path may parse and allocate.

use std::net::IpAddr;

use r53dns_zone::ZoneSet;

use crate::handler::{Note, Outcome, Transport, answer_noting};
use crate::{ServerConfig, xfr};
use r53dns_proto::message;
use r53dns_proto::tsig::{self, Opened, Transaction};
use r53dns_proto::wire::{self, Request};

/// Answers the signed request `msg` into `out` (see the module documentation).
pub(crate) fn answer(
    zones: &ZoneSet,
    msg: &[u8],
    transport: Transport,
    cfg: &ServerConfig,
    client: IpAddr,
    out: &mut Vec<u8>,
    note: &mut Note,
) -> Outcome {
    let mut req = Request::empty();
    if wire::read_request(msg, &mut req).is_err() {
        return answer_noting(zones, msg, transport, &cfg.answer, Some(client), out, note);
    }
    let Some(parsed) = message::parse(msg) else {
        *out = xfr::start(&req, true, wire::rcode::FORMERR);
        return Outcome::Respond;
    };
    let mut tx = match Transaction::open(&cfg.tsig_keys, msg, &parsed, tsig::now(), |rc| xfr::start(&req, true, rc)) {
        Opened::Go(tx) if tx.is_signed() => tx,
        Opened::Go(_) => return answer_noting(zones, msg, transport, &cfg.answer, Some(client), out, note),
        Opened::Malformed(reply) => {
            *out = reply;
            return Outcome::Respond;
        }
        Opened::Failed { reply, key, error } => {
            crate::logs::refused(crate::logs::Refusal::QueryTsig, |skipped| {
                tracing::info!(%client, %key, error, skipped, "signed query refused: TSIG check failed");
            });
            *out = reply;
            return Outcome::Respond;
        }
    };
    let Some(tsig_at) = parsed.additional.last().map(|r| r.offset) else { return Outcome::Drop };
    let mut unsigned = msg[..tsig_at.min(msg.len())].to_vec();
    if unsigned.len() < 12 {
        return Outcome::Drop;
    }
    let ar = u16::from_be_bytes([unsigned[10], unsigned[11]]).saturating_sub(1);
    unsigned[10..12].copy_from_slice(&ar.to_be_bytes());
    // The signature must fit under the same limit as the answer: 512 without EDNS, the
    // client's size, 65 535 on TCP. (A TSIG record is a few hundred octets at most.)
    let mut acfg = cfg.answer;
    acfg.reserve = u16::try_from(tx.reserve()).unwrap_or(u16::MAX);
    let outcome = answer_noting(zones, &unsigned, transport, &acfg, Some(client), out, note);
    note.tsig = true;
    if outcome == Outcome::Respond {
        tx.seal(out, || xfr::start(&req, true, wire::rcode::SERVFAIL));
    }
    outcome
}
