//! The last good Route53 data on disk, so a restart serves at once even while AWS is
//! unreachable.
//!
//! The state directory holds one file per hosted zone under `zones/` (its record sets, named
//! from the zone ID, serial and content hash, so a name stands for one content and a file is
//! never rewritten in place) and a manifest, `route53-state.v2`, naming each zone's file with
//! its SHA-256 next to the account-wide parts (health checks, CIDR blocks, AWS endpoints, the
//! times Route53 confirmed the data). A save writes only the zone files not on disk yet, then
//! the manifest atomically (temporary file, fsync, rename, fsync of the directory); the
//! manifest it replaces becomes `.prev`, and files neither manifest names are removed.
//!
//! On load every zone file is checked against the manifest's SHA-256: a damaged one is
//! replaced by the previous manifest's version of that zone if there is one, otherwise the
//! zone is left out, logged and counted; the rest loads. A damaged manifest falls back to
//! `.prev`. The single-file format of earlier versions (`route53-snapshot.v1`) is still read,
//! and removed by the first save in the new layout.

use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use r53dns_route53::model::{HostedZone, RecordSet};

const LEGACY_MAGIC: &str = "r53dns-snapshot v1 sha256=";
const LEGACY_FILE: &str = "route53-snapshot.v1";
const MAGIC: &str = "r53dns-state v2 sha256=";
const MANIFEST: &str = "route53-state.v2";
const ZONES: &str = "zones";

/// One zone as persisted.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SavedZone {
    /// The hosted zone.
    pub zone: HostedZone,
    /// Its record sets, shared with the syncer that serves them (a save copies none).
    #[serde(with = "shared")]
    pub records: Arc<Vec<RecordSet>>,
    /// The serial published for it.
    pub serial: u32,
    /// Hex content hash the serial belongs to.
    pub hash: String,
    /// Unix time Route53 last confirmed this zone's records (a listing that completed).
    #[serde(default)]
    pub confirmed: Option<u64>,
}

/// Shared record sets, (de)serialized as the list they hold.
mod shared {
    use std::sync::Arc;

    use r53dns_route53::model::RecordSet;
    use serde::{Deserialize as _, Deserializer, Serialize as _, Serializer};

    pub(super) fn serialize<S: Serializer>(records: &Arc<Vec<RecordSet>>, s: S) -> Result<S::Ok, S::Error> {
        records.as_slice().serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<Vec<RecordSet>>, D::Error> {
        Vec::deserialize(d).map(Arc::new)
    }
}

/// Everything persisted.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Saved {
    /// Zones.
    pub zones: Vec<SavedZone>,
    /// Health-check status.
    pub health: Vec<(String, bool)>,
    /// CIDR blocks: (collection, location, blocks as text).
    pub cidr: Vec<(String, String, Vec<String>)>,
    /// AWS endpoint addresses: (name, A, AAAA).
    pub endpoints: Vec<(String, Vec<std::net::Ipv4Addr>, Vec<std::net::Ipv6Addr>)>,
    /// Unix time of the last sweep in which every zone was listed completely: how old the
    /// data is, also after a restart or on a replica.
    #[serde(default)]
    pub confirmed: Option<u64>,
    /// On a replica: its source's internal networks (who sees private zones), so a restart
    /// keeps the views before the source answers.
    #[serde(default)]
    pub internal_networks: Option<Vec<String>>,
}

/// The manifest: every zone's file and checksum, and the account-wide parts.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Manifest {
    zones: Vec<ManifestZone>,
    health: Vec<(String, bool)>,
    cidr: Vec<(String, String, Vec<String>)>,
    endpoints: Vec<(String, Vec<std::net::Ipv4Addr>, Vec<std::net::Ipv6Addr>)>,
    #[serde(default)]
    confirmed: Option<u64>,
    #[serde(default)]
    internal_networks: Option<Vec<String>>,
}

/// A zone in the manifest: what it is, and where its record sets are.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ManifestZone {
    zone: HostedZone,
    serial: u32,
    hash: String,
    #[serde(default)]
    confirmed: Option<u64>,
    /// The file's name under `zones/`.
    file: String,
    /// SHA-256 (hex) of the file.
    sha256: String,
}

/// A zone file's content, borrowed for writing.
#[derive(Serialize)]
struct ZoneFileRef<'a> {
    id: &'a str,
    serial: u32,
    hash: &'a str,
    records: &'a [RecordSet],
}

/// A zone file's content as read.
#[derive(Deserialize)]
struct ZoneFile {
    id: String,
    serial: u32,
    hash: String,
    records: Vec<RecordSet>,
}

fn manifest_path(dir: &Path) -> PathBuf {
    dir.join(MANIFEST)
}

fn manifest_prev_path(dir: &Path) -> PathBuf {
    dir.join(format!("{MANIFEST}.prev"))
}

fn legacy_path(dir: &Path) -> PathBuf {
    dir.join(LEGACY_FILE)
}

fn legacy_prev_path(dir: &Path) -> PathBuf {
    dir.join(format!("{LEGACY_FILE}.prev"))
}

/// Lower-case hex of `b` (checksums and content hashes on disk).
pub(crate) fn hex(b: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(b)
}

/// A content hash on disk that is not 64 hex digits.
#[derive(Debug, thiserror::Error)]
#[error("content hash '{text}' is not a SHA-256 in hex: {reason}")]
pub struct BadHash {
    text: String,
    reason: String,
}

/// The 32-byte hash a [`hex`] string stands for.
pub(crate) fn unhex(s: &str) -> Result<[u8; 32], BadHash> {
    let bad = |reason: String| BadHash { text: s.chars().take(80).collect(), reason };
    let bytes = data_encoding::HEXLOWER_PERMISSIVE.decode(s.as_bytes()).map_err(|e| bad(e.to_string()))?;
    <[u8; 32]>::try_from(bytes).map_err(|b| bad(format!("{} octets, not 32", b.len())))
}

impl SavedZone {
    /// The zone's content hash; a saved hash that is not one is logged and taken as unknown
    /// (all zeros), so the next listing of the zone gives it a new serial rather than
    /// keeping one that may belong to other content.
    pub(crate) fn content_hash(&self) -> [u8; 32] {
        unhex(&self.hash).unwrap_or_else(|e| {
            tracing::warn!(zone = %self.zone.name, "saved snapshot: {e}; the zone's serial moves at its next change");
            [0; 32]
        })
    }
}

/// `body` behind a header line `MAGIC` + the hex SHA-256 of the body.
pub(crate) fn frame_as(magic: &str, body: &[u8]) -> Vec<u8> {
    let sum = hex(&Sha256::digest(body));
    let mut out = format!("{magic}{sum}\n").into_bytes();
    out.extend_from_slice(body);
    out
}

/// The body behind a header line written by [`frame_as`] with `magic`, once its checksum
/// matches; otherwise what is wrong.
pub(crate) fn unframe<'a>(magic: &str, bytes: &'a [u8]) -> Result<&'a [u8], String> {
    let nl = bytes.iter().take(200).position(|&b| b == b'\n').ok_or("no header line")?;
    let header = std::str::from_utf8(&bytes[..nl]).map_err(|_| "bad header")?;
    let sum = header.strip_prefix(magic).ok_or_else(|| match header.split(" sha256=").next() {
        Some(h) if h.starts_with("r53dns-") => format!("format '{h}' is not the one this version reads"),
        _ => "not an r53dns snapshot".to_owned(),
    })?;
    let body = &bytes[nl + 1..];
    if hex(&Sha256::digest(body)) != sum {
        return Err("checksum mismatch (damaged or cut short)".into());
    }
    Ok(body)
}

/// `body` framed as a file of the single-file format of earlier versions, with its checksum:
/// what [`decode_v1`] reads (the fuzz target reaches the decoder through it).
pub fn frame_v1(body: &[u8]) -> Vec<u8> {
    frame_as(LEGACY_MAGIC, body)
}

/// Reads the single-file format of earlier versions (`route53-snapshot.v1`); any damage
/// (header, checksum, body) is an error saying which.
pub fn decode_v1(bytes: &[u8]) -> Result<Saved, String> {
    let body = unframe(LEGACY_MAGIC, bytes)?;
    serde_json::from_slice(body).map_err(|e| format!("unreadable: {e}"))
}

/// A zone's file name: its ID, serial and content hash, each reduced to characters safe in
/// a file name (an ID that is not is replaced by its SHA-256).
fn zone_file_name(z: &SavedZone) -> String {
    let safe = |s: &str| !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    let id =
        if safe(&z.zone.id) { z.zone.id.clone() } else { format!("x{}", hex(&Sha256::digest(z.zone.id.as_bytes()))) };
    let hash = if safe(&z.hash) { z.hash.clone() } else { hex(&Sha256::digest(z.hash.as_bytes())) };
    format!("{id}-{}-{hash}.json", z.serial)
}

/// What one save wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    /// Zone files written (zones whose content, serial or hash changed).
    pub zone_files: usize,
    /// Bytes written, the manifest included.
    pub bytes: u64,
}

/// A writer that hashes and counts what passes through it.
struct Hashing<W> {
    inner: W,
    sha: Sha256,
    n: u64,
}

impl<W: std::io::Write> std::io::Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha.update(&buf[..n]);
        self.n += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Creates the directory 0700 (tightening it if others may read it).
fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let meta = std::fs::symlink_metadata(dir)?;
    if !meta.is_dir() {
        return Err(std::io::Error::other(format!("{} is not a directory", dir.display())));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        // Ours to tighten (systemd's StateDirectory is 0700 already); if not, say so.
        if let Err(e) = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)) {
            tracing::warn!(dir = %dir.display(), error = %e, "the state directory is readable by others and cannot be made 0700");
        }
    }
    Ok(())
}

/// The temporary file a new `target` is written to before it is renamed into place.
fn tmp_of(target: &Path) -> PathBuf {
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    target.with_file_name(format!(".{name}.tmp"))
}

/// Writes the temporary file for `target` ([`tmp_of`]) and fsyncs it, for the caller to
/// rename into place: a reader sees the old file or the whole new one. The file is 0600
/// and no symbolic link is followed (it is created new; a rename replaces a link). Returns
/// the temporary file and what `fill` returned.
fn write_tmp<T>(
    target: &Path,
    fill: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<T>,
) -> std::io::Result<(PathBuf, T)> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let tmp = tmp_of(target);
    match std::fs::symlink_metadata(&tmp) {
        Ok(_) => std::fs::remove_file(&tmp)?, // a leftover of a crash, or a planted link
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
    let out = fill(&mut w)?;
    let f = w.into_inner().map_err(|e| e.into_error())?;
    f.sync_all()?;
    Ok((tmp, out))
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Writes zone `z` as `zones/<name>`; returns the file's SHA-256 and size.
fn write_zone(zones: &Path, name: &str, z: &SavedZone) -> std::io::Result<(String, u64)> {
    let target = zones.join(name);
    let (tmp, out) = write_tmp(&target, |w| {
        let mut h = Hashing { inner: w, sha: Sha256::new(), n: 0 };
        let body = ZoneFileRef { id: &z.zone.id, serial: z.serial, hash: &z.hash, records: &z.records };
        serde_json::to_writer(&mut h, &body).map_err(std::io::Error::other)?;
        Ok((hex(&h.sha.finalize()), h.n))
    })?;
    std::fs::rename(&tmp, &target)?;
    Ok(out)
}

fn encode_manifest(m: &Manifest) -> std::io::Result<Vec<u8>> {
    Ok(frame_as(MAGIC, &serde_json::to_vec(m).map_err(std::io::Error::other)?))
}

/// Refuses a symbolic link: everything read here is a file this server wrote.
fn read_plain(p: &Path) -> Result<Vec<u8>, String> {
    if std::fs::symlink_metadata(p).map_err(|e| e.to_string())?.file_type().is_symlink() {
        return Err("a symbolic link, not a file this server wrote".into());
    }
    std::fs::read(p).map_err(|e| e.to_string())
}

/// The manifest at `p`: `Ok(None)` if there is none, an error saying what is wrong if it
/// cannot be used.
fn read_manifest(p: &Path) -> Result<Option<Manifest>, String> {
    match std::fs::symlink_metadata(p) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        _ => {}
    }
    let bytes = read_plain(p)?;
    let body = unframe(MAGIC, &bytes)?;
    serde_json::from_slice(body).map(Some).map_err(|e| format!("unreadable: {e}"))
}

/// Saves `saved`: the zone files not on disk yet, then the manifest (atomically; the one it
/// replaces becomes `.prev`), then removes the files neither manifest names and the
/// single-file snapshot of earlier versions. The data holds private zones: the directories
/// are made 0700 and the files 0600, and no symbolic link is followed.
pub fn save(dir: &Path, saved: &Saved) -> std::io::Result<Written> {
    private_dir(dir)?;
    let zones_dir = dir.join(ZONES);
    private_dir(&zones_dir)?;
    let cur = manifest_path(dir);
    let prev = manifest_prev_path(dir);
    let old = read_manifest(&cur).unwrap_or_else(|e| {
        tracing::warn!(file = %cur.display(), error = %e, "the state manifest is damaged; writing every zone again");
        None
    });
    let older = read_manifest(&prev).ok().flatten();
    // Files on disk that a manifest vouches for: a zone whose file is among them is not
    // written again.
    let known: HashMap<&str, &str> = old
        .iter()
        .chain(&older)
        .flat_map(|m| &m.zones)
        .filter(|z| std::fs::symlink_metadata(zones_dir.join(&z.file)).is_ok_and(|m| m.is_file()))
        .map(|z| (z.file.as_str(), z.sha256.as_str()))
        .collect();
    let mut written = Written::default();
    let mut manifest = Manifest {
        zones: Vec::with_capacity(saved.zones.len()),
        health: saved.health.clone(),
        cidr: saved.cidr.clone(),
        endpoints: saved.endpoints.clone(),
        confirmed: saved.confirmed,
        internal_networks: saved.internal_networks.clone(),
    };
    for z in &saved.zones {
        let file = zone_file_name(z);
        let sha256 = match known.get(file.as_str()) {
            Some(sum) => (*sum).to_owned(),
            None => {
                let (sum, n) = write_zone(&zones_dir, &file, z)?;
                written.zone_files += 1;
                written.bytes += n;
                sum
            }
        };
        manifest.zones.push(ManifestZone {
            zone: z.zone.clone(),
            serial: z.serial,
            hash: z.hash.clone(),
            confirmed: z.confirmed,
            file,
            sha256,
        });
    }
    if written.zone_files > 0 {
        sync_dir(&zones_dir)?;
    }
    let bytes = encode_manifest(&manifest)?;
    written.bytes += bytes.len() as u64;
    let (tmp, ()) = write_tmp(&cur, |w| w.write_all(&bytes))?;
    // The manifest replaced becomes `.prev`; a damaged one does not replace a good `.prev`.
    let kept = if old.is_some() {
        std::fs::rename(&cur, &prev)?;
        old
    } else {
        if std::fs::symlink_metadata(&cur).is_ok() {
            std::fs::remove_file(&cur)?;
        }
        older
    };
    std::fs::rename(&tmp, &cur)?;
    sync_dir(dir)?;
    let keep: HashSet<&str> =
        manifest.zones.iter().chain(kept.iter().flat_map(|m| &m.zones)).map(|z| z.file.as_str()).collect();
    remove_unreferenced(&zones_dir, &keep);
    for p in [legacy_path(dir), legacy_prev_path(dir), dir.join(format!(".{LEGACY_FILE}.tmp"))] {
        match std::fs::remove_file(&p) {
            Ok(()) => tracing::info!(file = %p.display(), "removed the snapshot of the earlier single-file format"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(file = %p.display(), error = %e, "cannot remove the earlier snapshot file"),
        }
    }
    Ok(written)
}

/// Removes what `zones` holds beyond `keep` (older versions, temporary files a crash left).
/// A failure is logged: the save stands.
fn remove_unreferenced(zones: &Path, keep: &HashSet<&str>) {
    let entries = match std::fs::read_dir(zones) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(dir = %zones.display(), error = %e, "cannot list the zone files to remove old ones");
            return;
        }
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name.to_str().is_some_and(|n| keep.contains(n)) {
            continue;
        }
        let p = entry.path();
        if let Err(e) = std::fs::remove_file(&p) {
            tracing::warn!(file = %p.display(), error = %e, "cannot remove a zone file no manifest names");
        }
    }
}

/// A name a zone file of ours may have: no path, not hidden.
fn plain_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('.') && !name.contains('/')
}

/// The record sets of `z` from its file, once its checksum and identity match the
/// manifest's.
fn read_zone(zones: &Path, z: &ManifestZone) -> Result<Vec<RecordSet>, String> {
    if !plain_name(&z.file) {
        return Err(format!("'{}' is not a zone file name", z.file));
    }
    let bytes = read_plain(&zones.join(&z.file))?;
    if hex(&Sha256::digest(&bytes)) != z.sha256 {
        return Err("checksum mismatch (damaged or cut short)".into());
    }
    let f: ZoneFile = serde_json::from_slice(&bytes).map_err(|e| format!("unreadable: {e}"))?;
    if f.id != z.zone.id || f.serial != z.serial || f.hash != z.hash {
        return Err(format!("holds zone {} serial {}, not {} serial {}", f.id, f.serial, z.zone.id, z.serial));
    }
    Ok(f.records)
}

/// What [`load_counted`] read.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// The data.
    pub saved: Saved,
    /// Zones whose file was damaged and that are served from the previous manifest's
    /// version.
    pub previous: usize,
    /// Zones whose file was damaged with no good previous version: left out.
    pub skipped: usize,
}

/// Loads the newest good data: the manifest, else the previous one, else the single-file
/// snapshot of earlier versions. Damage is logged, never fatal.
pub fn load(dir: &Path) -> Option<Saved> {
    load_counted(dir).map(|l| l.saved)
}

/// [`load`], saying how many zones were damaged.
pub fn load_counted(dir: &Path) -> Option<Loaded> {
    let read = |p: &Path| {
        read_manifest(p).unwrap_or_else(|e| {
            tracing::warn!(file = %p.display(), error = %e, "ignoring the damaged state manifest");
            None
        })
    };
    let cur = read(&manifest_path(dir));
    let prev = read(&manifest_prev_path(dir));
    match (cur, prev) {
        (Some(m), p) => return Some(assemble(dir, m, p.as_ref())),
        (None, Some(p)) => return Some(assemble(dir, p, None)),
        (None, None) => {}
    }
    for p in [legacy_path(dir), legacy_prev_path(dir)] {
        if !p.exists() {
            continue;
        }
        match read_plain(&p).and_then(|b| decode_v1(&b)) {
            Ok(saved) => return Some(Loaded { saved, previous: 0, skipped: 0 }),
            Err(e) => tracing::warn!(file = %p.display(), error = %e, "ignoring persisted snapshot"),
        }
    }
    None
}

/// The data `m` describes, each zone read from its file; a damaged file is replaced by
/// `fallback`'s version of the zone, or the zone left out.
fn assemble(dir: &Path, m: Manifest, fallback: Option<&Manifest>) -> Loaded {
    let zones_dir = dir.join(ZONES);
    let mut loaded = Loaded {
        saved: Saved {
            zones: Vec::with_capacity(m.zones.len()),
            health: m.health,
            cidr: m.cidr,
            endpoints: m.endpoints,
            confirmed: m.confirmed,
            internal_networks: m.internal_networks,
        },
        previous: 0,
        skipped: 0,
    };
    let to_saved = |z: &ManifestZone, records: Vec<RecordSet>| SavedZone {
        zone: z.zone.clone(),
        records: Arc::new(records),
        serial: z.serial,
        hash: z.hash.clone(),
        confirmed: z.confirmed,
    };
    for z in &m.zones {
        let path = zones_dir.join(&z.file);
        let e = match read_zone(&zones_dir, z) {
            Ok(records) => {
                loaded.saved.zones.push(to_saved(z, records));
                continue;
            }
            Err(e) => e,
        };
        // Out of the way, so that a save never takes the damaged file for this version
        // (the next save removes it).
        if plain_name(&z.file) && std::fs::symlink_metadata(&path).is_ok() {
            let aside = zones_dir.join(format!(".{}.damaged", z.file));
            if let Err(e) = std::fs::rename(&path, &aside) {
                tracing::warn!(file = %path.display(), error = %e, "cannot move the damaged zone file aside");
            }
        }
        let older = fallback.and_then(|f| f.zones.iter().find(|o| o.zone.id == z.zone.id && o.file != z.file));
        match older.map(|o| (o, read_zone(&zones_dir, o))) {
            Some((o, Ok(records))) => {
                tracing::warn!(zone = %z.zone.name, file = %path.display(), error = %e, serial = o.serial, "damaged zone file; serving the zone's previous version");
                loaded.saved.zones.push(to_saved(o, records));
                loaded.previous += 1;
            }
            Some((o, Err(e2))) => {
                tracing::error!(zone = %z.zone.name, file = %path.display(), error = %e, previous = %zones_dir.join(&o.file).display(), previous_error = %e2, "damaged zone file and no good previous version; the zone is left out until it is listed again");
                loaded.skipped += 1;
            }
            None => {
                tracing::error!(zone = %z.zone.name, file = %path.display(), error = %e, "damaged zone file and no previous version; the zone is left out until it is listed again");
                loaded.skipped += 1;
            }
        }
    }
    loaded
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(id: &str, serial: u32, hosts: usize) -> SavedZone {
        let name = format!("{}.example.", id.to_lowercase());
        SavedZone {
            zone: HostedZone {
                id: id.into(),
                name: name.clone(),
                private: false,
                vpcs: vec![],
                account: String::new(),
            },
            records: Arc::new(
                (0..hosts)
                    .map(|i| {
                        RecordSet::plain(format!("h{i}.{name}"), "A".into(), 60, vec![format!("192.0.2.{}", i % 250)])
                    })
                    .collect(),
            ),
            serial,
            hash: hex(&Sha256::digest(format!("{id}{serial}"))),
            confirmed: Some(1_700_000_000),
        }
    }

    fn sample() -> Saved {
        Saved {
            zones: vec![zone("Z1", 7, 3)],
            health: vec![("hc".into(), false)],
            cidr: vec![("c".into(), "l".into(), vec!["192.0.2.0/24".into()])],
            endpoints: vec![("e".into(), vec!["192.0.2.1".parse().unwrap()], vec![])],
            confirmed: Some(1_700_000_001),
            internal_networks: Some(vec!["10.0.0.0/8".into()]),
        }
    }

    /// The zone files on disk, by name.
    fn zone_files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir.join(ZONES))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn file_of(dir: &Path, id: &str) -> PathBuf {
        let m = read_manifest(&manifest_path(dir)).unwrap().unwrap();
        dir.join(ZONES).join(&m.zones.iter().find(|z| z.zone.id == id).unwrap().file)
    }

    fn damage(p: &Path) {
        let mut bytes = std::fs::read(p).unwrap();
        let n = bytes.len();
        bytes[n - 3] ^= 0x55;
        std::fs::write(p, &bytes).unwrap();
    }

    #[test]
    fn hashes_in_hex_round_trip_and_bad_ones_are_errors() {
        let h = [0xa5u8; 32];
        assert_eq!(unhex(&hex(&h)).unwrap(), h);
        assert_eq!(unhex(&hex(&h).to_uppercase()).unwrap(), h);
        let short = unhex("ab").unwrap_err().to_string();
        assert!(short.contains("1 octets, not 32"), "{short}");
        let not_hex = unhex(&"zz".repeat(32)).unwrap_err().to_string();
        assert!(not_hex.contains("invalid symbol"), "{not_hex}");
        assert!(unhex("abc").is_err(), "an odd number of digits");
    }

    #[test]
    fn round_trips_every_part() {
        let dir = tempfile::tempdir().unwrap();
        let mut saved = sample();
        saved.zones.push(zone("Z2", 9, 5));
        // An ID that is no file name is written under its hash, and still read back.
        saved.zones.push(zone("../Z3", 1, 1));
        let w = save(dir.path(), &saved).unwrap();
        assert_eq!(w.zone_files, 3);
        assert!(w.bytes > 0);
        assert_eq!(load(dir.path()).unwrap(), saved);
        assert_eq!(zone_files(dir.path()).len(), 3);
        assert!(zone_files(dir.path()).iter().all(|n| !n.contains("..")), "{:?}", zone_files(dir.path()));
    }

    #[test]
    fn only_the_zones_that_changed_are_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut saved = sample();
        saved.zones.extend([zone("Z2", 9, 50), zone("Z3", 4, 50)]);
        save(dir.path(), &saved).unwrap();
        let stamp = |id: &str| std::fs::metadata(file_of(dir.path(), id)).unwrap().modified().unwrap();
        let before: Vec<_> = ["Z1", "Z3"].iter().map(|id| (file_of(dir.path(), id), stamp(id))).collect();
        std::thread::sleep(std::time::Duration::from_millis(20));
        // Only the confirmation times moved: the manifest alone.
        for z in &mut saved.zones {
            z.confirmed = Some(1_800_000_000);
        }
        saved.confirmed = Some(1_800_000_000);
        let w = save(dir.path(), &saved).unwrap();
        assert_eq!(w.zone_files, 0);
        assert!(w.bytes < 4096, "{w:?}");
        assert_eq!(load(dir.path()).unwrap(), saved);
        // One zone changed: its file alone.
        saved.zones[1] = zone("Z2", 10, 51);
        let w = save(dir.path(), &saved).unwrap();
        assert_eq!(w.zone_files, 1);
        for (path, at) in before {
            assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), at, "{} rewritten", path.display());
        }
        assert_eq!(load(dir.path()).unwrap(), saved);
        // Z2's old file stays for the previous manifest: 3 current files and 1 previous.
        assert_eq!(zone_files(dir.path()).len(), 4);
    }

    #[test]
    fn a_damaged_zone_file_falls_back_to_its_previous_version_or_is_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let mut first = sample();
        first.zones.push(zone("Z2", 3, 4));
        save(dir.path(), &first).unwrap();
        let mut second = first.clone();
        second.zones[0] = zone("Z1", 8, 4);
        second.zones.push(zone("Z9", 1, 2));
        save(dir.path(), &second).unwrap();
        // Z1's newest file damaged: its previous version is served, the rest as saved.
        damage(&file_of(dir.path(), "Z1"));
        let l = load_counted(dir.path()).unwrap();
        assert_eq!((l.previous, l.skipped), (1, 0));
        assert_eq!(l.saved.zones[0], first.zones[0]);
        assert_eq!(&l.saved.zones[1..], &second.zones[1..]);
        assert_eq!(l.saved.health, second.health);
        // Z9 (new, no previous version) cut short: left out, never served partly.
        let p = file_of(dir.path(), "Z9");
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
        let l = load_counted(dir.path()).unwrap();
        assert_eq!((l.previous, l.skipped), (1, 1));
        let ids: Vec<&str> = l.saved.zones.iter().map(|z| z.zone.id.as_str()).collect();
        assert_eq!(ids, ["Z1", "Z2"]);
        // The damaged files were moved aside, and the next save writes those zones again
        // rather than trusting the names, and removes what was moved aside.
        let w = save(dir.path(), &second).unwrap();
        assert_eq!(w.zone_files, 2);
        assert!(zone_files(dir.path()).iter().all(|n| !n.ends_with(".damaged")), "{:?}", zone_files(dir.path()));
        assert_eq!(load(dir.path()).unwrap(), second);
    }

    #[test]
    fn a_damaged_manifest_falls_back_to_the_previous_one_and_does_not_replace_it() {
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), &sample()).unwrap();
        let mut second = sample();
        second.zones[0] = zone("Z1", 8, 3);
        save(dir.path(), &second).unwrap();
        assert_eq!(load(dir.path()).unwrap(), second);
        damage(&manifest_path(dir.path()));
        assert_eq!(load(dir.path()).unwrap(), sample());
        // Saving again keeps the good previous manifest rather than the damaged one.
        let mut third = sample();
        third.zones[0] = zone("Z1", 9, 3);
        save(dir.path(), &third).unwrap();
        assert_eq!(load(dir.path()).unwrap(), third);
        std::fs::remove_file(manifest_path(dir.path())).unwrap();
        assert_eq!(load(dir.path()).unwrap(), sample());
        std::fs::remove_file(manifest_prev_path(dir.path())).unwrap();
        assert!(load(dir.path()).is_none());
    }

    #[test]
    fn the_manifest_is_replaced_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), &sample()).unwrap();
        // A save cut short before its rename leaves a temporary manifest (and maybe zone
        // files no manifest names): what loads is the last whole manifest.
        let tmp = dir.path().join(format!(".{MANIFEST}.tmp"));
        std::fs::write(&tmp, b"r53dns-state v2 sha256=00\n{\"zo").unwrap();
        std::fs::write(dir.path().join(ZONES).join(".Z1-8-ab.json.tmp"), b"[").unwrap();
        std::fs::write(dir.path().join(ZONES).join("Z1-8-ab.json"), b"{}").unwrap();
        assert_eq!(load(dir.path()).unwrap(), sample());
        // The next save replaces the temporary file and removes the strays.
        let mut second = sample();
        second.zones[0] = zone("Z1", 8, 3);
        save(dir.path(), &second).unwrap();
        assert!(!tmp.exists());
        assert_eq!(zone_files(dir.path()).len(), 2, "{:?}", zone_files(dir.path()));
        assert_eq!(load(dir.path()).unwrap(), second);
    }

    #[test]
    fn files_no_manifest_names_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let names: Vec<String> = (1..=4)
            .map(|serial| {
                let mut s = sample();
                s.zones[0] = zone("Z1", serial, 3);
                save(dir.path(), &s).unwrap();
                zone_file_name(&s.zones[0])
            })
            .collect();
        // The current and the previous manifest's versions, nothing older.
        assert_eq!(zone_files(dir.path()), names[2..].to_vec());
        // A zone gone from the account goes from the disk two saves later.
        save(dir.path(), &Saved::default()).unwrap();
        assert_eq!(zone_files(dir.path()), names[3..].to_vec());
        save(dir.path(), &Saved::default()).unwrap();
        assert!(zone_files(dir.path()).is_empty());
    }

    /// The single-file format of earlier versions.
    fn encode_v1(saved: &Saved) -> Vec<u8> {
        frame_as(LEGACY_MAGIC, &serde_json::to_vec(saved).unwrap())
    }

    #[test]
    fn the_single_file_snapshot_of_earlier_versions_loads_and_is_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let mut old = sample();
        old.zones[0].serial = 6;
        std::fs::write(legacy_prev_path(dir.path()), encode_v1(&old)).unwrap();
        std::fs::write(legacy_path(dir.path()), encode_v1(&sample())).unwrap();
        assert_eq!(load(dir.path()).unwrap(), sample());
        // Its damaged newest file falls back to its `.prev`, as it always did.
        let mut bytes = encode_v1(&sample());
        let n = bytes.len();
        bytes[n - 3] ^= 0x55;
        std::fs::write(legacy_path(dir.path()), &bytes).unwrap();
        assert_eq!(load(dir.path()).unwrap(), old);
        // The first save writes the new layout and removes the old files.
        save(dir.path(), &old).unwrap();
        assert!(!legacy_path(dir.path()).exists() && !legacy_prev_path(dir.path()).exists());
        assert!(manifest_path(dir.path()).exists());
        assert_eq!(load(dir.path()).unwrap(), old);
    }

    #[test]
    fn the_saved_files_are_private_and_links_are_neither_followed_nor_read() {
        use std::os::unix::fs::PermissionsExt as _;
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("state");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        // A link planted where the temporary file goes, and one in place of the file itself.
        let victim = root.path().join("victim");
        std::fs::write(&victim, "untouched").unwrap();
        std::os::unix::fs::symlink(&victim, dir.join(format!(".{MANIFEST}.tmp"))).unwrap();
        std::os::unix::fs::symlink(&victim, manifest_path(&dir)).unwrap();
        std::fs::create_dir(dir.join(ZONES)).unwrap();
        let zone_name = zone_file_name(&sample().zones[0]);
        std::os::unix::fs::symlink(&victim, dir.join(ZONES).join(format!(".{zone_name}.tmp"))).unwrap();
        save(&dir, &sample()).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&manifest_path(&dir)), 0o600);
        assert_eq!(mode(&file_of(&dir, "Z1")), 0o600);
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(ZONES)), 0o700);
        assert_eq!(load(&dir).unwrap(), sample());
        // A link where a file should be is not read: the zone is left out.
        let real = file_of(&dir, "Z1");
        let elsewhere = root.path().join("elsewhere");
        std::fs::rename(&real, &elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &real).unwrap();
        assert_eq!(load_counted(&dir).unwrap().skipped, 1);
        // Nor in place of the manifest.
        std::fs::remove_file(manifest_prev_path(&dir)).ok();
        let m = manifest_path(&dir);
        std::fs::rename(&m, root.path().join("manifest")).unwrap();
        std::os::unix::fs::symlink(root.path().join("manifest"), &m).unwrap();
        assert!(load(&dir).is_none());
    }
}
