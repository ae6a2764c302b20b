//! Zone files to zones: read, place, validate.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::name::Name;
use crate::zone::{Source, Zone, ZoneBuilder, ZoneError};
use crate::zonefile::{self, ZoneFileError};

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
    /// No `$ORIGIN` and no origin given.
    #[error("{}: no origin: add $ORIGIN or name the file <zone>.zone", .0.display())]
    NoOrigin(PathBuf),
}

/// The zone name a file implies: `example.com.zone` → `example.com.`.
pub fn origin_from_file_name(path: &Path) -> Option<Name> {
    let stem = path.file_name()?.to_str()?;
    let stem = stem.strip_suffix(".zone").unwrap_or(stem);
    stem.parse().ok()
}

/// Loads one zone file. The origin is `origin` if given, else the first `$ORIGIN` of the
/// file, else the file name minus `.zone`. Returns the zone and warnings.
pub fn load_zone_file(path: &Path, origin: Option<&Name>) -> Result<(Zone, Vec<String>), LoadError> {
    let text = std::fs::read_to_string(path).map_err(|e| ZoneFileError {
        file: path.to_owned(),
        line: 0,
        message: format!("cannot read: {e}"),
    })?;
    load_zone_str(&text, path, origin)
}

/// Like [`load_zone_file`] for text already in memory; `path` names it in errors.
pub fn load_zone_str(text: &str, path: &Path, origin: Option<&Name>) -> Result<(Zone, Vec<String>), LoadError> {
    let apex = match origin {
        Some(o) => o.clone(),
        None => first_origin(text)
            .or_else(|| origin_from_file_name(path))
            .ok_or_else(|| LoadError::NoOrigin(path.to_owned()))?,
    };
    let records = zonefile::read_str(text, path, Some(&apex))?;
    let mut b = ZoneBuilder::new(apex, Source::File(path.to_owned()));
    b.reserve(records.len());
    // Each file's name is written out once, not once per record.
    let mut file: Option<(std::sync::Arc<Path>, String)> = None;
    let mut at = String::new();
    for r in records {
        if !file.as_ref().is_some_and(|(f, _)| std::sync::Arc::ptr_eq(f, &r.file)) {
            file = Some((r.file.clone(), r.file.display().to_string()));
        }
        at.clear();
        let shown = file.as_ref().map_or("", |(_, s)| s.as_str());
        let _ = write!(at, "{shown}:{}: ", r.line);
        b.add(&r.owner, r.rtype, r.ttl, r.rdata.into(), &at)
            .map_err(|source| LoadError::Zone { file: path.to_owned(), source })?;
    }
    b.finish().map_err(|source| LoadError::Zone { file: path.to_owned(), source })
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
