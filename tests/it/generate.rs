//! `$GENERATE` against BIND itself: the zones of tests/data/generate, expanded by r53dns and
//! written back, are the records `named-checkzone -D` prints for them; broken directives
//! fail in both, and r53dns names the line BIND names.

use std::path::Path;
use std::process::Command;

use r53dns_zone::{Name, load_zone_file, load_zone_str};

use crate::support::server::data_dir;

const ZONES: &[&str] = &["generate.example", "1.10.in-addr.arpa", "8.b.d.0.1.0.0.2.ip6.arpa"];

/// One record a line, fields separated by one space, lower case, sorted; comments and
/// anything that is not a record (named-checkzone's remarks) dropped.
fn normalise(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.len() > 4 && !f[0].starts_with(';') && f[2] == "IN")
        .map(|f| f.join(" ").to_lowercase())
        .collect();
    lines.sort();
    lines
}

/// `named-checkzone -D -o -`: exit status and everything it printed.
fn named_checkzone(zone: &str, file: &Path) -> (bool, String) {
    let out = Command::new("named-checkzone")
        .args(["-D", "-o", "-", zone])
        .arg(file)
        .output()
        .expect("named-checkzone must be installed (apt-get install bind9-utils)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn generated_records_are_the_records_bind_generates() {
    for zone in ZONES {
        let file = data_dir().join("generate").join(format!("{zone}.zone"));
        let (ok, bind_text) = named_checkzone(zone, &file);
        assert!(ok, "BIND does not load {}: {bind_text}", file.display());
        let bind = normalise(&bind_text);

        let (ours, warnings) = load_zone_file(&file, None).unwrap_or_else(|e| panic!("{e}"));
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(ours.apex().to_text(), format!("{zone}."));
        let text = ours.to_text();
        let mine = normalise(&text);
        assert_eq!(mine.len(), ours.record_count(), "every record is compared");
        assert!(mine.len() > 250, "{zone}: {}", mine.len());
        assert_eq!(mine.len(), bind.len(), "{zone}");
        let only_bind: Vec<_> = bind.iter().filter(|l| !mine.contains(l)).collect();
        let only_ours: Vec<_> = mine.iter().filter(|l| !bind.contains(l)).collect();
        assert!(
            only_bind.is_empty() && only_ours.is_empty(),
            "{zone}: BIND only {only_bind:#?}\nr53dns only {only_ours:#?}"
        );

        // What r53dns writes back has no $GENERATE left and loads to the same zone.
        let origin = Name::parse(&format!("{zone}."), None).unwrap();
        let (again, _) = load_zone_str(&text, Path::new("again.zone"), Some(&origin)).unwrap();
        assert_eq!(again.to_text(), text);
    }
}

#[test]
fn broken_directives_fail_in_both_at_the_same_line() {
    let head = "$TTL 60\n$ORIGIN broken.example.\n@ SOA ns h 1 2 3 4 5\n NS ns\nns A 192.0.2.1\n";
    let cases = [
        ("$GENERATE 10-1 h$ A 10.0.0.$", "ends before it starts"),
        ("$GENERATE 1-10/0 h$ A 10.0.0.$", "step 0"),
        ("$GENERATE a-b h$ A 10.0.0.$", "bad range 'a-b'"),
        ("$GENERATE 1-2 h${0,3,q} A 10.0.0.$", "bad modifier '${0,3,q}'"),
        ("$GENERATE 1-2 h${0,3 A 10.0.0.$", "without '}'"),
        ("$GENERATE 250-260 h$ A 10.0.0.$", "$GENERATE at 256: A: bad IPv4 address '10.0.0.256'"),
        ("$GENERATE 1-2 mx$ MX 10 mail$", "extra text 'mail$'"),
        ("$GENERATE 1-2 h$ NOTATYPE x", "unknown record type 'NOTATYPE'"),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (line, want) in cases {
        let file = dir.path().join("broken.example.zone");
        std::fs::write(&file, format!("{head}\n{line}\n")).unwrap();
        let (ok, bind) = named_checkzone("broken.example", &file);
        assert!(!ok, "BIND loads {line}");
        assert!(bind.contains("broken.example.zone:7"), "BIND names line 7 for {line}: {bind}");
        let e = load_zone_file(&file, None).unwrap_err().to_string();
        let at = format!("{}:7: ", file.display());
        assert!(e.starts_with(&at) && e.contains(want), "{line}: {e}");
    }
}
