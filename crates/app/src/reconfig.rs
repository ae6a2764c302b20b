//! What a reload (SIGHUP, `ctl reload`) does with a configuration read again: the settings
//! it can apply to a running server (which zone files to serve), and the ones it
//! cannot (listeners, keys, Route53…), which are named in the log and the reload's report
//! rather than ignored.

use crate::Config;

/// Settings a reload applies: the zone directories and files. Everything else takes a
/// restart — the `named.conf` path too (what it names besides zones is taken at startup;
/// its zone list is read again on every reload whatever this says).
pub(crate) const APPLIED: [&str; 2] = ["zones.dirs", "zones.files"];

/// The settings (`section.key`, as the TOML spells them) whose values differ between `old`
/// and `new`, sorted. Secrets are compared too, though the printed configuration hides them.
pub(crate) fn differences(old: &Config, new: &Config) -> Vec<String> {
    let parse = |c: &Config| toml::from_str::<toml::Table>(&c.to_toml()).unwrap_or_default();
    let (a, b) = (parse(old), parse(new));
    let mut out = Vec::new();
    let sections: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    for section in sections {
        match (a.get(section), b.get(section)) {
            (Some(toml::Value::Table(x)), Some(toml::Value::Table(y))) => {
                let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                for k in keys {
                    if x.get(k) != y.get(k) {
                        out.push(format!("{section}.{k}"));
                    }
                }
            }
            (x, y) if x != y => out.push(section.clone()),
            _ => {}
        }
    }
    if !old.tsig_keys.same_keys(&new.tsig_keys) && !out.iter().any(|k| k.starts_with("tsig.")) {
        out.push("tsig.key".to_owned());
    }
    out
}

/// `running` with the settings of `new` that a reload applies.
pub(crate) fn apply(running: &Config, new: &Config) -> Config {
    let mut out = running.clone();
    out.zone_dirs.clone_from(&new.zone_dirs);
    out.zone_files.clone_from(&new.zone_files);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Spec;

    fn config(text: &str) -> Config {
        toml::from_str::<Spec>(text).unwrap().validate().unwrap()
    }

    #[test]
    fn every_changed_setting_is_named_and_only_zone_sources_apply() {
        let old = config("[zones]\nfiles = [\"a.zone\"]\n[server]\nlisten = [\"127.0.0.1:5300\"]\n");
        let new = config(
            "[zones]\nfiles = [\"a.zone\", \"b.zone\"]\n[server]\nlisten = [\"127.0.0.1:5301\"]\n[rrl]\nresponses-per-second = 5\n\
             [[tsig.key]]\nname = \"k\"\nsecret = \"c2VjcmV0LWZvci10ZXN0cy1vbmx5LTEyMzQ1Njc4OTA=\"\n",
        );
        let d = differences(&old, &new);
        assert_eq!(
            d,
            [
                "rrl.errors-per-second",
                "rrl.nxdomains-per-second",
                "rrl.responses-per-second",
                "server.listen",
                "tsig.key",
                "zones.files"
            ]
        );
        let applied = apply(&old, &new);
        assert_eq!(applied.zone_files.len(), 2);
        assert_eq!(applied.server.listen, old.server.listen, "listeners stay as they are");
        assert!(differences(&old, &old).is_empty());
        // A secret changed (hidden in the printed configuration) is still a difference.
        let k =
            |s: &str| config(&format!("[zones]\nfiles = [\"a.zone\"]\n[[tsig.key]]\nname = \"k\"\nsecret = \"{s}\"\n"));
        let (k1, k2) =
            (k("c2VjcmV0LWZvci10ZXN0cy1vbmx5LTEyMzQ1Njc4OTA="), k("b3RoZXItc2VjcmV0LWZvci10ZXN0cy0xMjM0NTY3OA=="));
        assert_eq!(differences(&k1, &k2), ["tsig.key"]);
    }
}
