//! The last good Route53 data on disk, so a restart serves at once even while AWS is
//! unreachable. Written atomically (temporary file, fsync, rename, fsync of the directory),
//! checked with SHA-256 on load; the previous file is kept and used if the newest is damaged.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use r53dns_route53::model::{HostedZone, RecordSet};

const MAGIC: &str = "r53dns-snapshot v1 sha256=";
const FILE: &str = "route53-snapshot.v1";

/// One zone as persisted.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SavedZone {
    /// The hosted zone.
    pub zone: HostedZone,
    /// Its record sets.
    pub records: Vec<RecordSet>,
    /// The serial published for it.
    pub serial: u32,
    /// Hex content hash the serial belongs to.
    pub hash: String,
    /// Unix time Route53 last confirmed this zone's records (a listing that completed).
    #[serde(default)]
    pub confirmed: Option<u64>,
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

fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

fn prev_path(dir: &Path) -> PathBuf {
    dir.join(format!("{FILE}.prev"))
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

/// The file format: a header line with the SHA-256 of the body, then the body (JSON).
pub fn encode(saved: &Saved) -> std::io::Result<Vec<u8>> {
    Ok(frame(&serde_json::to_vec(saved).map_err(std::io::Error::other)?))
}

/// `body` with its header line: what [`decode`] reads.
pub fn frame(body: &[u8]) -> Vec<u8> {
    frame_as(MAGIC, body)
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

/// Reads the file format back; any damage (header, checksum, body) is an error saying which.
pub fn decode(bytes: &[u8]) -> Result<Saved, String> {
    let body = unframe(MAGIC, bytes)?;
    serde_json::from_slice(body).map_err(|e| format!("unreadable: {e}"))
}

/// Writes `saved` atomically; the file it replaces becomes `.prev`. The data holds private
/// zones: the directory is made 0700 and the file 0600, and no symbolic link is followed
/// (the temporary file is created new, and renames replace links rather than follow them).
pub fn save(dir: &Path, saved: &Saved) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let meta = std::fs::metadata(dir)?;
    if meta.permissions().mode() & 0o077 != 0 {
        // Ours to tighten (systemd's StateDirectory is 0700 already); if not, say so.
        if let Err(e) = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)) {
            tracing::warn!(dir = %dir.display(), error = %e, "the state directory is readable by others and cannot be made 0700");
        }
    }
    let bytes = encode(saved)?;
    let tmp = dir.join(format!(".{FILE}.tmp"));
    match std::fs::symlink_metadata(&tmp) {
        Ok(_) => std::fs::remove_file(&tmp)?, // a leftover of a crash, or a planted link
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
    }
    let target = path(dir);
    if target.exists() {
        std::fs::rename(&target, prev_path(dir))?;
    }
    std::fs::rename(&tmp, &target)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

fn read_one(p: &Path) -> Result<Saved, String> {
    if std::fs::symlink_metadata(p).map_err(|e| e.to_string())?.file_type().is_symlink() {
        return Err("a symbolic link, not a file this server wrote".into());
    }
    decode(&std::fs::read(p).map_err(|e| e.to_string())?)
}

/// Loads the newest good snapshot: the current file, else the previous one. Damage is
/// logged, never fatal.
pub fn load(dir: &Path) -> Option<Saved> {
    for p in [path(dir), prev_path(dir)] {
        if !p.exists() {
            continue;
        }
        match read_one(&p) {
            Ok(s) => return Some(s),
            Err(e) => {
                tracing::warn!(file = %p.display(), error = %e, "ignoring persisted snapshot")
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Saved {
        Saved {
            zones: vec![SavedZone {
                zone: HostedZone {
                    id: "Z1".into(),
                    name: "example.com.".into(),
                    private: false,
                    vpcs: vec![],
                    account: String::new(),
                },
                records: vec![],
                serial: 7,
                hash: "ab".into(),
                confirmed: None,
            }],
            health: vec![("hc".into(), false)],
            ..Default::default()
        }
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
    fn round_trips_and_falls_back_to_the_previous_file() {
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), &sample()).unwrap();
        let mut second = sample();
        second.zones[0].serial = 8;
        save(dir.path(), &second).unwrap();
        assert_eq!(load(dir.path()).unwrap().zones[0].serial, 8);
        // Damage the newest: the previous one is used.
        let p = path(dir.path());
        let mut bytes = std::fs::read(&p).unwrap();
        let n = bytes.len();
        bytes[n - 3] ^= 0x55;
        std::fs::write(&p, &bytes).unwrap();
        assert_eq!(load(dir.path()).unwrap().zones[0].serial, 7);
        // Cut short: likewise.
        std::fs::write(&p, &bytes[..n / 2]).unwrap();
        assert_eq!(load(dir.path()).unwrap().zones[0].serial, 7);
        std::fs::remove_file(prev_path(dir.path())).unwrap();
        assert!(load(dir.path()).is_none());
    }

    #[test]
    fn the_saved_file_is_private_and_links_are_neither_followed_nor_read() {
        use std::os::unix::fs::PermissionsExt as _;
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("state");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        // A link planted where the temporary file goes, and one in place of the file itself.
        let victim = root.path().join("victim");
        std::fs::write(&victim, "untouched").unwrap();
        std::os::unix::fs::symlink(&victim, dir.join(format!(".{FILE}.tmp"))).unwrap();
        std::os::unix::fs::symlink(&victim, path(&dir)).unwrap();
        save(&dir, &sample()).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path(&dir)), 0o600);
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(load(&dir).unwrap().zones[0].serial, 7);
        // A link where the file should be is not read.
        std::fs::remove_file(path(&dir)).unwrap();
        std::fs::remove_file(prev_path(&dir)).unwrap();
        let elsewhere = root.path().join("elsewhere");
        std::fs::write(&elsewhere, encode(&sample()).unwrap()).unwrap();
        std::os::unix::fs::symlink(&elsewhere, path(&dir)).unwrap();
        assert!(load(&dir).is_none());
    }
}
