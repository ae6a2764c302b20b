//! Catalog zones (RFC 9432): a syncer publishes one, and Knot and BIND secondaries configured
//! with nothing but the catalog follow every Route53 zone, including one created afterwards,
//! and drop one deleted; so does r53dns as a secondary given only the catalog.

use std::time::{Duration, Instant};

use crate::route53::eventually;
use crate::support::bind::Bind;
use crate::support::dns::{Query, parse, udp_exchange};
use crate::support::knot::Knot;
use crate::support::moto::{Moto, Seeder, aws_env, rrset};
use crate::support::nsd::free_port;
use crate::support::server::Binary;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// The `www` A record of `zone` as `addr` answers it, if it answers with data.
fn www(addr: std::net::SocketAddr, zone: &str) -> Vec<String> {
    udp_exchange(addr, &Query::new(&format!("www.{zone}"), "A").to_wire())
        .and_then(|raw| parse(&raw).ok())
        .map(|r| r.section("answer"))
        .unwrap_or_default()
}

#[test]
fn knot_and_bind_follow_new_route53_zones_through_the_catalog() {
    let moto = Moto::start();
    let rt = rt();
    let s = rt.block_on(Seeder::new(&moto.endpoint()));
    rt.block_on(async {
        let id = s.zone("corp.example.", false).await;
        s.upsert(&id, vec![rrset("www.corp.example.", "A", 60, &["192.0.2.1"])]).await;
    });
    let (knot_port, bind_port) = (free_port(), free_port());
    let notify = format!("127.0.0.1:{knot_port},127.0.0.1:{bind_port}");
    let syncer = Binary::serve_with(
        &[
            "--route53",
            "--refresh",
            "1s",
            "--allow-transfer",
            "127.0.0.0/8",
            "--catalog-zone",
            "catalog.invalid",
            "--notify",
            &notify,
            "--drain",
            "0s",
        ],
        &aws_env(&moto.endpoint()),
    );
    let primary = syncer.addr.unwrap();
    eventually(Duration::from_secs(20), || !www(primary, "corp.example.").is_empty()).expect("syncer never served");
    // The catalog itself, as RFC 9432 asks.
    let version = udp_exchange(primary, &Query::new("version.catalog.invalid.", "TXT").to_wire()).unwrap();
    assert_eq!(parse(&version).unwrap().section("answer"), vec!["version.catalog.invalid. 0 IN TXT \"2\""]);
    let knot = Knot::catalog_consumer("catalog.invalid.", primary, knot_port);
    let bind = Bind::catalog_consumer("catalog.invalid.", primary, bind_port);
    // And r53dns itself as a consumer (checking the catalog every second, no NOTIFY).
    let ours = Binary::serve(&[
        "--primary",
        &primary.to_string(),
        "--secondary-catalog",
        "catalog.invalid",
        "--primary-refresh",
        "1s",
        "--drain",
        "0s",
    ]);
    for (name, addr) in [("knot", knot.addr), ("bind", bind.addr), ("r53dns", ours.addr.unwrap())] {
        eventually(Duration::from_secs(30), || {
            www(addr, "corp.example.") == vec!["www.corp.example. 60 IN A 192.0.2.1"]
        })
        .unwrap_or_else(|| panic!("{name} never served the member zone"));
    }
    // A hosted zone created in Route53: both serve it, with no configuration touched.
    let created = Instant::now();
    let new_id = rt.block_on(async {
        let id = s.zone("new.example.", false).await;
        s.upsert(&id, vec![rrset("www.new.example.", "A", 60, &["192.0.2.77"])]).await;
        id
    });
    for (name, addr) in [("knot", knot.addr), ("bind", bind.addr), ("r53dns", ours.addr.unwrap())] {
        eventually(Duration::from_secs(30), || {
            www(addr, "new.example.") == vec!["www.new.example. 60 IN A 192.0.2.77"]
        })
        .unwrap_or_else(|| {
            panic!("{name} never served the new zone:\n{}", if name == "knot" { knot.log() } else { bind.log() })
        });
        eprintln!("{name} serves the new zone {:?} after its creation", created.elapsed());
    }
    // Deleted from Route53: both stop serving it.
    rt.block_on(s.delete_zone(&new_id));
    for (name, addr) in [("knot", knot.addr), ("bind", bind.addr), ("r53dns", ours.addr.unwrap())] {
        eventually(Duration::from_secs(30), || www(addr, "new.example.").is_empty())
            .unwrap_or_else(|| panic!("{name} still serves the deleted zone"));
    }
    assert_eq!(www(bind.addr, "corp.example.").len(), 1);
    assert_eq!(www(knot.addr, "corp.example.").len(), 1);
    assert_eq!(www(ours.addr.unwrap(), "corp.example.").len(), 1);
    // The catalog is read, not served.
    let q = udp_exchange(ours.addr.unwrap(), &Query::new("version.catalog.invalid.", "TXT").to_wire()).unwrap();
    assert_eq!(parse(&q).unwrap().rcode_text(), "REFUSED");
}
