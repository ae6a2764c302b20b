//! TSIG keys: `[[tsig.key]]` and BIND key files read into a [`KeyRing`].

use anyhow::{Context as _, bail};
use r53dns_proto::tsig::{Algorithm, Key, KeyRing};

use crate::config::{KeySpec, TsigSpec};

use super::grants::absolute;

/// Reads `[[tsig.key]]` and the key files into a key ring.
pub(crate) fn load_keys(spec: &TsigSpec) -> anyhow::Result<KeyRing> {
    let mut specs: Vec<(String, KeySpec)> = spec.key.iter().map(|k| ("tsig.key".to_owned(), k.clone())).collect();
    for path in &spec.key_files {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("tsig.key-files: cannot read {}", path.display()))?;
        let keys = crate::bindconf::read_keys(&text, path)?;
        specs.extend(keys.into_iter().map(|k| (path.display().to_string(), k)));
    }
    let mut keys = Vec::new();
    for (origin, k) in specs {
        let ctx = || format!("{origin}: key '{}'", k.name);
        let algorithm = match &k.algorithm {
            Some(a) => Algorithm::from_name(a).with_context(|| format!("{}: unknown algorithm '{a}'", ctx()))?,
            None => Algorithm::HmacSha256,
        };
        let secret = data_encoding::BASE64
            .decode(k.secret.trim().as_bytes())
            .with_context(|| format!("{}: the secret is not base64", ctx()))?;
        if secret.is_empty() {
            bail!("{}: empty secret", ctx());
        }
        let name = absolute(&k.name).with_context(ctx)?;
        keys.push(Key { name, algorithm, secret });
    }
    Ok(KeyRing::new(keys))
}
