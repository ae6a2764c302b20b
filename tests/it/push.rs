//! `r53dns push` against the moto emulator: a zone file moved into Route53 is served from
//! Route53 as it was from the file; plans are printed first, dry runs send nothing, a second
//! run changes nothing, types Route53 cannot hold stop the push before any request, and a
//! large zone goes in batches within Route53's limits, through throttling.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use crate::support::dns::{Query, ask};
use crate::support::moto::{Fault, FaultProxy, Moto, aws_env};
use crate::support::server::Binary;

const ZONE: &str = r#"$ORIGIN push.example.
$TTL 300
@ SOA ns1 hostmaster 1 7200 900 1209600 300
@ NS ns1.push.example.
@ MX 10 mail
@ TXT "v=spf1 -all"
@ CAA 0 issue "letsencrypt.org"
ns1 A 192.0.2.1
www A 192.0.2.10
www A 192.0.2.11
www AAAA 2001:db8::10
mail 3600 A 192.0.2.20
alias CNAME www
_sip._tcp SRV 10 5 5060 www
txt TXT "two words" "semi;colon" "quote\"d"
sshfp SSHFP 1 1 123456789ABCDEF67890123456789ABCDEF67890
_443._tcp TLSA 3 1 1 0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF
sub NS ns.sub
ns.sub A 192.0.2.53
sub DS 60485 5 1 2BB183AF5F22588179A53B0A98631FAD1A292118
"#;

fn push(endpoint: &str, args: &[&str]) -> (Output, String) {
    let out = Binary::command().arg("push").args(args).envs(aws_env(endpoint)).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out, text)
}

fn write(dir: &Path, text: &str) -> String {
    let f = dir.join("push.example.zone");
    std::fs::write(&f, text).unwrap();
    f.display().to_string()
}

/// Every (name, type) of the zone file, asked of both servers: the same answers.
fn same_answers(from_file: std::net::SocketAddr, from_route53: std::net::SocketAddr) -> Vec<String> {
    let mut diffs = Vec::new();
    for (n, t) in [
        ("push.example.", "MX"),
        ("push.example.", "TXT"),
        ("push.example.", "CAA"),
        ("www.push.example.", "A"),
        ("www.push.example.", "AAAA"),
        ("mail.push.example.", "A"),
        ("alias.push.example.", "A"),
        ("_sip._tcp.push.example.", "SRV"),
        ("txt.push.example.", "TXT"),
        ("sshfp.push.example.", "SSHFP"),
        ("_443._tcp.push.example.", "TLSA"),
        ("x.sub.push.example.", "A"),
        ("sub.push.example.", "DS"),
    ] {
        let q = Query::new(n, t);
        let (a, b) = (ask(from_file, &q), ask(from_route53, &q));
        let mut sa = a.section("answer");
        let mut sb = b.section("answer");
        sa.sort();
        sb.sort();
        // The apex NS (in positive answers' authority) is Route53's own; a referral's is
        // the file's delegation.
        let referral = n.ends_with("sub.push.example.") && t == "A";
        if sa != sb || (referral && a.section("authority") != b.section("authority")) {
            diffs.push(format!("{n} {t}: file {sa:?} / Route53 {sb:?}"));
        }
    }
    diffs
}

#[test]
fn a_zone_file_moves_into_route53_and_is_served_the_same() {
    let moto = Moto::start();
    let endpoint = moto.endpoint();
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), ZONE);

    // A dry run plans the creation and sends nothing.
    let (out, text) = push(&endpoint, &["--zone", &file, "--create", "--dry-run"]);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("would create hosted zone push.example.") && text.contains("dry run"), "{text}");
    assert!(text.contains("+ www.push.example. 300 A 192.0.2.10 | 192.0.2.11"), "{text}");
    let (out, text) = push(&endpoint, &["--zone", &file]);
    assert_eq!(out.status.code(), Some(2), "no zone was created by the dry run: {text}");
    assert!(text.contains("no hosted zone push.example."), "{text}");

    // Created and filled; the apex SOA and NS stay Route53's.
    let (out, text) = push(&endpoint, &["--zone", &file, "--create"]);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("created hosted zone push.example.") && text.contains("changes applied"), "{text}");
    assert!(!text.contains("push.example. 300 SOA") && !text.contains("+ push.example. 300 NS"), "{text}");

    // moto writes an apex SOA that is not valid presentation data (Route53's own is);
    // replace it as the other emulator tests do, so the zone can be served.
    let id = text.split("created hosted zone push.example. (").nth(1).and_then(|r| r.split(')').next()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let seeder = crate::support::moto::Seeder::new(&endpoint).await;
        let soa = "ns-1.awsdns-01.org. awsdns-hostmaster.amazon.com. 1 7200 900 1209600 86400";
        seeder.upsert(id, vec![crate::support::moto::rrset("push.example.", "SOA", 900, &[soa])]).await;
    });
    // Served from Route53 as from the file.
    let from_file = Binary::serve(&["--zone", &file]);
    let from_route53 = Binary::serve_with(&["--route53", "--refresh", "1s"], &aws_env(&endpoint));
    let synced = crate::route53::eventually(Duration::from_secs(20), || {
        ask(from_route53.addr.unwrap(), &Query::new("www.push.example.", "A")).answer.len() == 2
    });
    assert!(synced.is_some(), "the pushed zone is never served from Route53");
    let diffs = same_answers(from_file.addr.unwrap(), from_route53.addr.unwrap());
    assert!(diffs.is_empty(), "{diffs:#?}");

    // Again: nothing to do (the hosted zone is found by name).
    let (out, text) = push(&endpoint, &["--zone", &file]);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("0 to create, 0 to change, 0 to delete"), "{text}");

    // An edit: one set changed, one removed, one added; applied, then nothing again.
    let edited = ZONE.replace("mail 3600 A 192.0.2.20", "mail 3600 A 192.0.2.21").replace("alias CNAME www\n", "")
        + "new A 192.0.2.99\n";
    let file = write(dir.path(), &edited);
    let (out, text) = push(&endpoint, &["--zone", &file]);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 to create, 1 to change, 1 to delete"), "{text}");
    assert!(
        text.contains("~ mail.push.example. 3600 A 192.0.2.21") && text.contains("- alias.push.example."),
        "{text}"
    );
    let (_, text) = push(&endpoint, &["--zone", &file]);
    assert!(text.contains("0 to create, 0 to change, 0 to delete"), "{text}");
}

#[test]
fn types_route53_cannot_hold_stop_the_push_before_any_request() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(moto.addr);
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), &format!("{ZONE}loc LOC 42 21 54 N 71 06 18 W -24m\nkey KEY 256 3 8 AQID\n"));
    let (out, text) = push(&proxy.endpoint(), &["--zone", &file, "--create"]);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("loc.push.example. LOC: Route53 cannot hold this type"), "{text}");
    assert!(text.contains("key.push.example. KEY"), "{text}");
    assert_eq!(proxy.requests(), 0, "a request was sent: {text}");
}

#[test]
fn five_thousand_records_go_in_batches_within_the_limits_through_throttling() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(moto.addr);
    let dir = tempfile::tempdir().unwrap();
    let mut text = ZONE.to_owned();
    for i in 0..5000 {
        text.push_str(&format!("h{i} A 10.0.{}.{}\n", i / 256, i % 256));
    }
    let file = write(dir.path(), &text);
    // After two change batches, Route53 throttles every one for a while.
    proxy.set_path(Some(Fault::Throttle), Some("POST /2013-04-01/hostedzone/"), 3);
    let plan = proxy.plan.clone();
    let healer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(2500));
        let mut p = plan.lock().unwrap();
        p.fault = None;
    });
    let (out, log) = push(&proxy.endpoint(), &["--zone", &file, "--create", "--rate", "20"]);
    healer.join().unwrap();
    assert!(out.status.success(), "{log}");
    assert!(proxy.injected() > 0, "no throttling was injected");
    let requests: usize =
        log.lines().find_map(|l| l.split(" changes in ").nth(1)?.split_whitespace().next()?.parse().ok()).unwrap_or(0);
    assert!(requests >= 10, "5 000 UPSERTs (counted twice) need at least 10 requests: {log}");
    let (_, again) = push(&moto.endpoint(), &["--zone", &file]);
    assert!(again.contains("0 to create, 0 to change, 0 to delete"), "every record arrived: {again}");
}
