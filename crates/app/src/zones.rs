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

/// The zone files named by the configuration: every `*.zone` of each directory (sorted), then
/// the single files.
pub fn zone_paths(dirs: &[PathBuf], files: &[PathBuf]) -> Result<Vec<PathBuf>, SourceError> {
    let mut out = Vec::new();
    for dir in dirs {
        let rd = std::fs::read_dir(dir).map_err(|error| SourceError::Dir { dir: dir.clone(), error })?;
        let mut found: Vec<PathBuf> = rd
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "zone") && p.is_file())
            .collect();
        found.sort();
        out.extend(found);
    }
    out.extend(files.iter().cloned());
    Ok(out)
}

/// The zones loaded from files, by file, so a reload can fall back per file.
#[derive(Debug, Clone, Default)]
pub struct FileZones {
    by_file: BTreeMap<PathBuf, Arc<Zone>>,
}

/// What a (re)load did.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Zones loaded (new or changed).
    pub loaded: Vec<(PathBuf, Name, u32, usize)>,
    /// Files that failed; on reload their previous version stays.
    pub errors: Vec<SourceError>,
    /// Non-fatal remarks (TTL mismatches…).
    pub warnings: Vec<String>,
}

impl FileZones {
    /// Loads every file. Errors are collected, not fatal here: the caller decides (startup
    /// refuses to run with any; a reload keeps the old version of failed files).
    pub fn load(paths: &[PathBuf], previous: Option<&FileZones>) -> (FileZones, LoadReport) {
        let mut report = LoadReport::default();
        let mut by_file = BTreeMap::new();
        let mut apexes: BTreeMap<Name, PathBuf> = BTreeMap::new();
        for path in paths {
            let zone = match load_zone_file(path, None) {
                Ok((zone, warnings)) => {
                    report.warnings.extend(warnings);
                    report.loaded.push((path.clone(), zone.apex().clone(), zone.serial(), zone.record_count()));
                    Arc::new(zone)
                }
                Err(e) => {
                    report.errors.push(e.into());
                    match previous.and_then(|p| p.by_file.get(path)) {
                        Some(old) => old.clone(),
                        None => continue,
                    }
                }
            };
            let apex = zone.apex().to_lowercase();
            if let Some(first) = apexes.get(&apex) {
                report.errors.push(SourceError::Duplicate {
                    file: path.clone(),
                    first: first.clone(),
                    apex: apex.to_text(),
                });
                continue;
            }
            apexes.insert(apex, path.clone());
            by_file.insert(path.clone(), zone);
        }
        (FileZones { by_file }, report)
    }

    /// A snapshot with every zone.
    pub fn to_set(&self) -> ZoneSet {
        let mut set = ZoneSet::new();
        for z in self.by_file.values() {
            set.insert(z.clone());
        }
        set
    }

    /// The files loaded.
    pub fn files(&self) -> impl Iterator<Item = &Path> {
        self.by_file.keys().map(PathBuf::as_path)
    }

    /// The zones loaded.
    pub fn zones(&self) -> impl Iterator<Item = &Arc<Zone>> {
        self.by_file.values()
    }
}
