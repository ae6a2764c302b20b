//! Zone files → snapshot. Startup is all-or-nothing; a reload keeps the previous version of
//! any file that fails, so one bad edit never takes a zone off the air.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use r53dns_zone::{LoadError, Name, Zone, ZoneSet, load_zone_file};

/// A problem with one zone source.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The file does not load.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A directory cannot be listed.
    #[error("cannot list zone directory {}: {error}", dir.display())]
    Dir {
        /// The directory.
        dir: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The `named.conf` no longer reads or maps.
    #[error("{0}")]
    BindConfig(String),
    /// The configuration read again on reload is not valid; the running one stays.
    #[error("configuration not re-read (the running one stays): {0}")]
    Config(String),
    /// Two files define the same zone.
    #[error("{}: zone {apex} is already defined by {}", file.display(), first.display())]
    Duplicate {
        /// The second file.
        file: PathBuf,
        /// The first file.
        first: PathBuf,
        /// The zone.
        apex: String,
    },
}

/// Which clients a zone file's zone is served to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Audience {
    /// Everyone.
    All,
    /// Clients of the internal networks only (the first of two `named.conf` views).
    Internal,
    /// Clients outside the internal networks only (the second view).
    External,
}

impl Audience {
    /// Whether the two share clients.
    pub fn overlaps(self, other: Audience) -> bool {
        self == Audience::All || other == Audience::All || self == other
    }
}

/// One zone file to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneSource {
    /// The file.
    pub path: PathBuf,
    /// The zone's name when the configuration gives it (`named.conf`); else the file's
    /// `$ORIGIN` or its name.
    pub origin: Option<Name>,
    /// Who sees it.
    pub audience: Audience,
    /// Served only while Route53 has no zone of that name (a `named.conf` zone that takes
    /// UPDATEs, which r53dns writes to Route53).
    pub yields_to_route53: bool,
}

impl ZoneSource {
    /// A file whose zone is named by its contents, served to everyone.
    pub fn file(path: PathBuf) -> Self {
        Self { path, origin: None, audience: Audience::All, yields_to_route53: false }
    }
}

/// Every zone file of the configuration: [`zone_paths`], then the primary zones of its
/// `named.conf` (read again, so a reload sees zones added or removed there).
pub fn zone_sources(config: &crate::Config) -> Result<Vec<ZoneSource>, SourceError> {
    let mut out: Vec<ZoneSource> =
        zone_paths(&config.zone_dirs, &config.zone_files)?.into_iter().map(ZoneSource::file).collect();
    if let Some(mapped) = bind_config(config)? {
        out.extend(mapped.zones);
    }
    Ok(out)
}

/// The configuration's `named.conf` read and mapped again, if it has one.
pub fn bind_config(config: &crate::Config) -> Result<Option<crate::bindconf::Mapped>, SourceError> {
    if let Some(path) = &config.bind_config {
        let route53 = config.route53.is_some();
        let mapped = crate::bindconf::read(path).map_err(|e| SourceError::BindConfig(e.to_string())).and_then(|c| {
            crate::bindconf::map(&c, route53).map_err(|errs| {
                SourceError::BindConfig(errs.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))
            })
        })?;
        return Ok(Some(mapped));
    }
    Ok(None)
}

/// The zone files named by the configuration: the zone files of each directory (sorted, see
/// [`dir_entry_kind`]), then the single files. What a directory holds besides its zone files
/// is logged at debug level with the reason it was passed over.
pub fn zone_paths(dirs: &[PathBuf], files: &[PathBuf]) -> Result<Vec<PathBuf>, SourceError> {
    let mut out = Vec::new();
    for dir in dirs {
        let rd = std::fs::read_dir(dir).map_err(|error| SourceError::Dir { dir: dir.clone(), error })?;
        let mut found = Vec::new();
        for entry in rd.filter_map(Result::ok) {
            let path = entry.path();
            let skipped = match entry.file_name().to_str() {
                None => Some("the name is not UTF-8"),
                Some(name) => dir_entry_kind(name).err(),
            };
            let skipped = skipped.or_else(|| (!path.is_file()).then_some("not a regular file"));
            match skipped {
                None => found.push(path),
                Some(reason) => tracing::debug!(file = %path.display(), reason, "zone directory: skipped"),
            }
        }
        found.sort();
        out.extend(found);
    }
    out.extend(files.iter().cloned());
    Ok(out)
}

/// Endings of files a zone directory may hold that are never zone files: editor backups and
/// swap files, BIND's journals, inline-signing output and package-manager leftovers. A
/// `db.example.com~` would otherwise load as a second example.com, or as a zone named
/// `example.com~.` if it has no `$ORIGIN`.
pub const NOT_ZONE_FILES: &[&str] = &[
    "~",
    ".swp",
    ".swo",
    ".bak",
    ".orig",
    ".rej",
    ".tmp",
    ".jnl",
    ".jnw",
    ".jbk",
    ".signed",
    ".dpkg-old",
    ".dpkg-new",
    ".dpkg-dist",
    ".dpkg-bak",
    ".rpmsave",
    ".rpmnew",
    ".rpmorig",
];

/// Whether a file of a zone directory is a zone file: `<zone>.zone`, `db.<zone>` (Debian) or
/// `<zone>.db` (RHEL), not hidden and not one of [`NOT_ZONE_FILES`]. `Err` says why not.
pub fn dir_entry_kind(name: &str) -> Result<(), &'static str> {
    if name.starts_with('.') {
        return Err("hidden file");
    }
    if NOT_ZONE_FILES.iter().any(|end| name.ends_with(end)) {
        return Err("editor backup, journal or leftover file");
    }
    if name.ends_with(".zone") || name.starts_with("db.") || name.ends_with(".db") {
        Ok(())
    } else {
        Err("not named <zone>.zone, db.<zone> or <zone>.db")
    }
}

/// A zone loaded from a file, with whom it is for.
#[derive(Debug, Clone)]
pub struct FileZone {
    /// The zone.
    pub zone: Arc<Zone>,
    /// Who sees it.
    pub audience: Audience,
    /// Served only while Route53 has no zone of that name.
    pub yields_to_route53: bool,
}

/// The zones loaded from files, by file (and audience: one file may serve one view each),
/// so a reload can fall back per file.
#[derive(Debug, Clone, Default)]
pub struct FileZones {
    by_file: BTreeMap<(PathBuf, Audience), FileZone>,
}

/// What a (re)load did.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Zones loaded (new or changed): file, apex, serial, records, audience.
    pub loaded: Vec<(PathBuf, Name, u32, usize, Audience)>,
    /// Files that failed; on reload their previous version stays.
    pub errors: Vec<SourceError>,
    /// Non-fatal remarks (TTL mismatches…).
    pub warnings: Vec<String>,
}

impl FileZones {
    /// Loads every file. Errors are collected, not fatal here: the caller decides (startup
    /// refuses to run with any; a reload keeps the old version of failed files).
    pub fn load(sources: &[ZoneSource], previous: Option<&FileZones>) -> (FileZones, LoadReport) {
        let mut report = LoadReport::default();
        let mut by_file = BTreeMap::new();
        let mut apexes: Vec<(Name, Audience, PathBuf)> = Vec::new();
        for source in sources {
            let path = &source.path;
            let key = (path.clone(), source.audience);
            let zone = match load_zone_file(path, source.origin.as_ref()) {
                Ok((zone, warnings)) => {
                    report.warnings.extend(warnings);
                    report.loaded.push((
                        path.clone(),
                        zone.apex().clone(),
                        zone.serial(),
                        zone.record_count(),
                        source.audience,
                    ));
                    Arc::new(zone)
                }
                Err(e) => {
                    report.errors.push(e.into());
                    match previous.and_then(|p| p.by_file.get(&key)) {
                        Some(old) => old.zone.clone(),
                        None => continue,
                    }
                }
            };
            let apex = zone.apex().to_lowercase();
            if let Some((_, _, first)) = apexes.iter().find(|(a, aud, _)| *a == apex && aud.overlaps(source.audience)) {
                report.errors.push(SourceError::Duplicate {
                    file: path.clone(),
                    first: first.clone(),
                    apex: apex.to_text(),
                });
                continue;
            }
            apexes.push((apex, source.audience, path.clone()));
            let entry = FileZone { zone, audience: source.audience, yields_to_route53: source.yields_to_route53 };
            by_file.insert(key, entry);
        }
        (FileZones { by_file }, report)
    }

    /// A snapshot with every zone.
    pub fn to_set(&self) -> ZoneSet {
        let mut set = ZoneSet::new();
        for z in self.by_file.values().filter(|z| z.audience != Audience::External) {
            set.insert(z.zone.clone());
        }
        set
    }

    /// The files loaded.
    pub fn files(&self) -> impl Iterator<Item = &Path> {
        self.by_file.keys().map(|(p, _)| p.as_path())
    }

    /// The zones loaded (of every audience).
    pub fn zones(&self) -> impl Iterator<Item = &Arc<Zone>> {
        self.by_file.values().map(|z| &z.zone)
    }

    /// The zones loaded, with their audiences.
    pub fn entries(&self) -> impl Iterator<Item = &FileZone> {
        self.by_file.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_hold_zone_files_in_three_layouts() {
        for name in ["example.com.zone", "db.example.com", "example.org.db", "db.192.168.1", "Db.example.zone"] {
            assert_eq!(dir_entry_kind(name), Ok(()), "{name}");
        }
        for name in [
            ".example.com.zone",
            ".db.example.com.swp",
            "db.example.com~",
            "example.com.zone.bak",
            "db.example.com.jnl",
            "example.org.db.jnl",
            "db.example.com.signed",
            "db.local.dpkg-dist",
            "example.com.zone.orig",
            "named.conf",
            "rndc.key",
            "example.com",
            "README",
        ] {
            assert!(dir_entry_kind(name).is_err(), "{name}");
        }
    }

    #[test]
    fn only_zone_files_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["db.example.com", "example.org.db", "a.zone", "db.example.com~", ".b.zone", "named.conf"] {
            std::fs::write(dir.path().join(f), "").unwrap();
        }
        std::fs::create_dir(dir.path().join("db.sub")).unwrap();
        let single = PathBuf::from("/elsewhere/anything");
        let paths = zone_paths(&[dir.path().to_owned()], std::slice::from_ref(&single)).unwrap();
        let names: Vec<_> = paths.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["a.zone", "db.example.com", "example.org.db", "anything"]);
    }
}
