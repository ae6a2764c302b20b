//! Zone files to zones: read, place, validate.

use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::name::Name;
use crate::zone::{Source, Zone, ZoneBuilder, ZoneError};
use crate::zonefile::{self, Stop, ZoneFileError};

/// Why a zone file could not be served.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LoadError {
    /// The text could not be read.
    #[error(transparent)]
    Syntax(#[from] ZoneFileError),
    /// The records do not form a valid zone.
    #[error("{}: {source}", file.display())]
    Zone {
        /// The zone file.
        file: PathBuf,
        /// What is wrong.
        source: ZoneError,
    },
    /// No origin given, no `$ORIGIN`, and a file name that does not give the zone.
    #[error("{}: {reason}: add `$ORIGIN <zone>.` at the top of the file or name it <zone>.zone", file.display())]
    NoOrigin {
        /// The zone file.
        file: PathBuf,
        /// Why its name does not give the zone.
        reason: String,
    },
}

/// The zone name a file's name gives: `<zone>.zone`, else Debian's `db.<zone>`, else RHEL's
/// `<zone>.db`. `None` when the name follows none of these or what it gives is not a zone
/// name (see [`load_zone_file`] for why each is refused).
pub fn origin_from_file_name(path: &Path) -> Option<Name> {
    zone_from_file_name(path).ok()
}

/// [`origin_from_file_name`] with the reason when there is no zone.
fn zone_from_file_name(path: &Path) -> Result<Name, String> {
    let file = path.file_name().map(|f| f.to_string_lossy()).unwrap_or_default();
    let stem = file
        .strip_suffix(".zone")
        .or_else(|| file.strip_prefix("db."))
        .or_else(|| file.strip_suffix(".db"))
        .ok_or_else(|| format!("no $ORIGIN, and the file name '{file}' is not <zone>.zone, db.<zone> or <zone>.db"))?;
    let bad = |why: &str| format!("no $ORIGIN, and '{stem}' from the file name '{file}' is not a zone name: {why}");
    if stem.is_empty() {
        return Err(bad("it is empty"));
    }
    let labels: Vec<&str> = stem.split('.').collect();
    if labels.iter().any(|l| l.is_empty()) {
        return Err(bad("it has an empty label"));
    }
    // Letters, digits, '-' and '_' only: anything else in a file name is far more likely a
    // suffix or a typo than a zone name, and cannot be told apart from one.
    if let Some(c) = stem.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))) {
        return Err(bad(&format!("'{c}' is not a letter, digit, '-' or '_'")));
    }
    // BIND admins name reverse zone files after the network (db.192.168.1) and give the zone
    // in named.conf; the name read as a zone would be 192.168.1., which is never right (no
    // top-level domain is all digits).
    if labels.last().is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit())) {
        let octets: Option<Vec<u8>> = labels.iter().map(|l| l.parse().ok()).collect();
        let hint = match octets {
            Some(o) if o.len() <= 3 => {
                let mut network: Vec<String> = o.iter().map(u8::to_string).collect();
                let reverse: Vec<&str> = labels.iter().rev().copied().collect();
                let bits = 8 * o.len();
                network.resize(4, "0".into());
                format!(
                    " (if it holds the reverse zone of {}/{bits}, that zone is {}.in-addr.arpa.)",
                    network.join("."),
                    reverse.join(".")
                )
            }
            _ => String::new(),
        };
        return Err(format!("no $ORIGIN, and the file name '{file}' names a network, not a zone{hint}"));
    }
    Name::parse(&format!("{stem}."), None).map_err(|e| bad(&e.to_string()))
}

/// Loads one zone file. The origin is `origin` if given, else the file's `$ORIGIN` (one that
/// comes before any record), else what its name gives ([`origin_from_file_name`]). Returns
/// the zone and warnings.
///
/// A file name that does not give a zone is an error saying to add `$ORIGIN`: a name that is
/// none of the three forms, one with characters other than letters, digits, `-` and `_`, and
/// one whose last label is all digits (`db.192.168.1`: a network, whose reverse zone BIND
/// takes from named.conf).
pub fn load_zone_file(path: &Path, origin: Option<&Name>) -> Result<(Zone, Vec<String>), LoadError> {
    let cannot =
        |e: std::io::Error| ZoneFileError { file: path.to_owned(), line: 0, message: format!("cannot read: {e}") };
    let apex = match origin {
        Some(o) => o.clone(),
        None => match first_origin(&head(path).map_err(cannot)?) {
            Some(o) => o,
            None => {
                zone_from_file_name(path).map_err(|reason| LoadError::NoOrigin { file: path.to_owned(), reason })?
            }
        },
    };
    // The file is read a block at a time, each record going straight into the zone.
    let mut b = ZoneBuilder::new(apex.clone(), Source::File(path.to_owned()));
    zonefile::read_file_with(path, Some(&apex), |r| b.add_record(&r)).map_err(|e| stopped(path, e))?;
    b.finish().map_err(|source| LoadError::Zone { file: path.to_owned(), source })
}

/// The first lines of a file, up to the first one that is not empty, a comment or `$TTL`:
/// all [`first_origin`] looks at.
fn head(path: &Path) -> std::io::Result<String> {
    use std::io::BufRead as _;
    let mut input = std::io::BufReader::new(std::fs::File::open(path)?);
    let mut text = String::new();
    loop {
        let start = text.len();
        if input.read_line(&mut text)? == 0 {
            return Ok(text);
        }
        let line = &text[start..];
        let t = line.trim_start();
        let more = t.is_empty()
            || t.starts_with(';')
            || (!line.starts_with([' ', '\t'])
                && t.split_whitespace().next().is_some_and(|w| w.eq_ignore_ascii_case("$TTL")));
        if !more {
            return Ok(text);
        }
    }
}

/// A reading stopped by the text or by the zone.
fn stopped(path: &Path, e: Stop<ZoneError>) -> LoadError {
    match e {
        Stop::File(e) => LoadError::Syntax(e),
        Stop::Taken(source) => LoadError::Zone { file: path.to_owned(), source },
    }
}

/// Like [`load_zone_file`] for text already in memory; `path` names it in errors.
pub fn load_zone_str(text: &str, path: &Path, origin: Option<&Name>) -> Result<(Zone, Vec<String>), LoadError> {
    read_into_builder(text, path, origin)?.finish().map_err(|source| LoadError::Zone { file: path.to_owned(), source })
}

/// Reads the text straight into a zone builder, record by record, so the records are never
/// held apart from the zone they make. The first error, of the text or of the zone, stops it.
fn read_into_builder(text: &str, path: &Path, origin: Option<&Name>) -> Result<ZoneBuilder, LoadError> {
    let apex = match origin {
        Some(o) => o.clone(),
        None => match first_origin(text) {
            Some(o) => o,
            None => {
                zone_from_file_name(path).map_err(|reason| LoadError::NoOrigin { file: path.to_owned(), reason })?
            }
        },
    };
    let mut b = ZoneBuilder::new(apex.clone(), Source::File(path.to_owned()));
    zonefile::read_str_with(text, path, Some(&apex), |r| b.add_record(&r)).map_err(|e| stopped(path, e))?;
    Ok(b)
}

/// The name in the first `$ORIGIN` line, if it comes before any record.
fn first_origin(text: &str) -> Option<Name> {
    for line in text.lines() {
        let t = line.trim_start();
        if t.is_empty() || t.starts_with(';') {
            continue;
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            return None;
        }
        let mut words = t.split_whitespace();
        let w = words.next()?;
        if w.eq_ignore_ascii_case("$ORIGIN") {
            return Name::parse(words.next()?, None).ok();
        }
        if w.eq_ignore_ascii_case("$TTL") {
            continue;
        }
        return None;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(file: &str) -> Result<String, String> {
        zone_from_file_name(Path::new("/etc/bind/zones").join(file).as_path()).map(|n| n.to_text())
    }

    #[test]
    fn the_file_name_gives_the_zone() {
        assert_eq!(zone("example.com.zone").as_deref(), Ok("example.com."));
        assert_eq!(zone("db.example.com").as_deref(), Ok("example.com."));
        assert_eq!(zone("example.org.db").as_deref(), Ok("example.org."));
        assert_eq!(zone("db.1.168.192.in-addr.arpa").as_deref(), Ok("1.168.192.in-addr.arpa."));
        assert_eq!(zone("_tcp.Example-1.net.zone").as_deref(), Ok("_tcp.Example-1.net."));
        // The forms are tried in this order.
        assert_eq!(zone("db.example.zone").as_deref(), Ok("db.example."));
        assert_eq!(zone("db.example.db").as_deref(), Ok("example.db."));
        assert_eq!(origin_from_file_name(Path::new("db.example")).map(|n| n.to_text()).as_deref(), Some("example."));
    }

    #[test]
    fn names_that_give_no_zone_are_refused_with_the_reason() {
        let e = zone("db.192.168.1").unwrap_err();
        assert!(
            e.ends_with(
                "names a network, not a zone (if it holds the reverse zone of 192.168.1.0/24, that zone is \
                         1.168.192.in-addr.arpa.)"
            ),
            "{e}"
        );
        assert!(zone("db.10").unwrap_err().contains("10.0.0.0/8, that zone is 10.in-addr.arpa."));
        assert!(zone("db.192.168.1.0").unwrap_err().ends_with("names a network, not a zone"));
        assert!(zone("10.db").unwrap_err().contains("names a network"));
        assert!(zone("example.com").unwrap_err().contains("is not <zone>.zone, db.<zone> or <zone>.db"));
        assert!(zone("zonefile.txt").is_err());
        assert!(zone("db.").unwrap_err().contains("it is empty"));
        assert!(zone(".zone").unwrap_err().contains("it is empty"));
        assert!(zone("db.example..com").unwrap_err().contains("empty label"));
        assert!(zone("db.my zone").unwrap_err().contains("' ' is not a letter"));
        assert!(zone("example.com.zone.bak").is_err());
        assert!(zone(&format!("{}.zone", "a".repeat(64))).unwrap_err().contains("label longer than 63"));
        assert!(origin_from_file_name(Path::new("db.10")).is_none());
    }

    #[test]
    fn a_file_without_origin_names_itself_in_the_error() {
        let text = "$TTL 60\n@ SOA ns h 1 2 3 4 5\n NS ns\nns A 192.0.2.1\n";
        let e = load_zone_str(text, Path::new("zones/db.192.168.1"), None).unwrap_err().to_string();
        assert!(e.starts_with("zones/db.192.168.1: no $ORIGIN"), "{e}");
        assert!(e.ends_with("add `$ORIGIN <zone>.` at the top of the file or name it <zone>.zone"), "{e}");
        // $ORIGIN wins over any file name.
        let with_origin = format!("$ORIGIN 1.168.192.in-addr.arpa.\n{text}");
        let (z, _) = load_zone_str(&with_origin, Path::new("db.192.168.1"), None).unwrap();
        assert_eq!(z.apex().to_text(), "1.168.192.in-addr.arpa.");
        let (z, _) = load_zone_str(text, Path::new("zones/db.example.com"), None).unwrap();
        assert_eq!(z.apex().to_text(), "example.com.");
    }
}
