//! NSEC3 (RFC 5155) for pre-signed zones: the zone's hash parameters, its chain of hashed
//! owners, and the denial proofs of §7.2 put together the way NSD answers them, so a
//! validating resolver gets the same records from either server.
//!
//! Hashing happens at query time (a name, its next closer, the wildcard at its closest
//! encloser), only for DO queries in NSEC3 zones; it uses the stack, not the heap.

use sha1::{Digest, Sha1};

use crate::name::MAX_NAME_LEN;
use crate::rdata::rtype;
use crate::zone::{Node, Nodes, Rrset};

/// Hash algorithm 1 (SHA-1) is the only one defined.
const SHA1: u8 = 1;
/// More iterations than any signer uses (BIND refuses more than 150, RFC 9276 asks for 0):
/// such a chain is not used, so a hostile zone cannot make each query cost a million hashes.
const MAX_ITERATIONS: u16 = 2500;

/// The parameters and the hashed owners of a zone's NSEC3 chain.
#[derive(Debug, Clone)]
pub(crate) struct Chain {
    iterations: u16,
    salt: Box<[u8]>,
    /// Decoded hash of each NSEC3 owner with these parameters and the node's index,
    /// sorted by hash.
    owners: Box<[([u8; 20], usize)]>,
}

/// The NSEC3 RDATA's algorithm, iterations and salt.
fn params(rdata: &[u8]) -> Option<(u8, u16, &[u8])> {
    let alg = *rdata.first()?;
    let iterations = u16::from_be_bytes([*rdata.get(2)?, *rdata.get(3)?]);
    let salt_len = usize::from(*rdata.get(4)?);
    Some((alg, iterations, rdata.get(5..5 + salt_len)?))
}

/// Whether any record of an NSEC3 RRset uses these parameters.
fn uses(set: &Rrset, iterations: u16, salt: &[u8]) -> bool {
    set.rdatas().any(|rd| params(rd) == Some((SHA1, iterations, salt)))
}

/// Decodes a base32hex label (RFC 4648 §7, no padding, any case) into a SHA-1 hash.
fn decode_label(label: &[u8]) -> Option<[u8; 20]> {
    let text = std::str::from_utf8(label).ok()?;
    crate::rdata::decode_base32hex(text).ok()?.try_into().ok()
}

/// Whether the node holds NSEC3 records and nothing else but signatures: a hashed owner,
/// which is not part of the zone's namespace (RFC 5155 §7.2.8).
pub(crate) fn only_nsec3(node: &Node) -> bool {
    let rrsets = node.rrsets();
    rrsets.iter().any(|r| r.rtype() == rtype::NSEC3)
        && rrsets.iter().all(|r| matches!(r.rtype(), rtype::NSEC3 | rtype::RRSIG))
        && node.routed().is_empty()
}

impl Chain {
    /// The chain of a zone whose apex has an NSEC3PARAM matching an NSEC3 at the apex's
    /// hash; `None` for zones without one (they get NSEC proofs, or none).
    pub(crate) fn build(apex: &Node, nodes: &Nodes) -> Option<Self> {
        let param = apex.get(rtype::NSEC3PARAM)?;
        for rd in param.rdatas() {
            let Some((alg, iterations, salt)) = params(rd) else { continue };
            if alg != SHA1 || iterations > MAX_ITERATIONS {
                continue;
            }
            let apex_labels = apex.name().label_count();
            let mut owners: Vec<([u8; 20], usize)> = nodes
                .iter()
                .enumerate()
                .filter(|(_, n)| n.name().label_count() == apex_labels + 1)
                .filter(|(_, n)| n.get(rtype::NSEC3).is_some_and(|s| uses(s, iterations, salt)))
                .filter_map(|(i, n)| {
                    let wire = n.name().wire();
                    let label = wire.get(1..1 + usize::from(*wire.first()?))?;
                    Some((decode_label(label)?, i))
                })
                .collect();
            owners.sort_unstable();
            let chain = Self { iterations, salt: salt.into(), owners: owners.into() };
            let mut lower = [0u8; MAX_NAME_LEN];
            if chain.cover(&chain.hash(apex.name().wire(), &mut lower)).is_some_and(|(_, exact)| exact) {
                return Some(chain);
            }
        }
        None
    }

    /// The hash of a wire name (any case): RFC 5155 §5, iterated SHA-1 over the canonical
    /// (lower-case) name and the salt. `scratch` holds the lower-cased name.
    pub(crate) fn hash(&self, wire: &[u8], scratch: &mut [u8; MAX_NAME_LEN]) -> [u8; 20] {
        let n = wire.len().min(MAX_NAME_LEN);
        scratch[..n].copy_from_slice(&wire[..n]);
        scratch[..n].make_ascii_lowercase();
        let mut h: [u8; 20] = Sha1::new().chain_update(&scratch[..n]).chain_update(&self.salt).finalize().into();
        for _ in 0..self.iterations {
            h = Sha1::new().chain_update(h).chain_update(&self.salt).finalize().into();
        }
        h
    }

    /// The NSEC3 owner at or before `hash` in hash order (wrapping to the last), as a node
    /// index, and whether it is `hash` itself.
    pub(crate) fn cover(&self, hash: &[u8; 20]) -> Option<(usize, bool)> {
        let (i, exact) = match self.owners.binary_search_by(|(h, _)| h.cmp(hash)) {
            Ok(i) => (i, true),
            Err(0) => (self.owners.len().checked_sub(1)?, false),
            Err(i) => (i - 1, false),
        };
        Some((self.owners[i].1, exact))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc5155_appendix_a_hashes() {
        // Salt aabbccdd, 12 iterations: "example" → 0p9mhaveqvm6t7vbl5lop2u3t2rp3tom.
        let chain = Chain { iterations: 12, salt: [0xaa, 0xbb, 0xcc, 0xdd].into(), owners: Box::new([]) };
        let mut s = [0u8; MAX_NAME_LEN];
        assert_eq!(chain.hash(b"\x07EXAMPLE\x00", &mut s), decode_label(b"0p9mhaveqvm6t7vbl5lop2u3t2rp3tom").unwrap());
        assert_eq!(
            chain.hash(b"\x01a\x07example\x00", &mut s),
            decode_label(b"35mthgpgcu1qg68fab165klnsnk3dpvl").unwrap()
        );
        assert_eq!(
            chain.hash(b"\x01*\x01w\x07example\x00", &mut s),
            decode_label(b"r53bq7cc2uvmubfu5ocmm6pers9tk9en").unwrap()
        );
        assert!(decode_label(b"0p9mhaveqvm6t7vbl5lop2u3t2rp3to").is_none());
        assert!(decode_label(b"0p9mhaveqvm6t7vbl5lop2u3t2rp3toz").is_none());
    }
}
