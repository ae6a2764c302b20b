//! Every file under deploy/ is checked with the tool that owns its format: systemd-analyze
//! for the unit, kubernetes-validate for standard Kubernetes objects, promtool for the alert
//! rules, JSON/YAML parsers for the rest, and the example configuration with `r53dns check`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn tools_bin(name: &str) -> PathBuf {
    crate::support::moto::moto_bin().with_file_name(name)
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

#[test]
fn systemd_unit_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(deploy().join("systemd/r53dns.service")).unwrap();
    // verify checks that ExecStart exists: point it at the binary under test.
    let unit = unit.replace("/usr/bin/r53dns", env!("CARGO_BIN_EXE_r53dns"));
    let path = dir.path().join("r53dns.service");
    std::fs::write(&path, unit).unwrap();
    let out =
        Command::new("systemd-analyze").args(["verify", "--man=no"]).arg(&path).output().expect("systemd-analyze");
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    // Messages about the build host's own units are not ours; ours must be clean.
    let ours: Vec<&str> = text.lines().filter(|l| l.contains("r53dns.service")).collect();
    assert!(out.status.success() && ours.is_empty(), "systemd-analyze verify: {text}");
}

#[test]
fn kubernetes_manifests_validate() {
    let k8s = deploy().join("kubernetes");
    let standard = ["serviceaccount.yaml", "configmap.yaml", "deployment.yaml", "service.yaml", "hpa.yaml", "pdb.yaml"];
    let mut cmd = Command::new(tools_bin("kubernetes-validate"));
    cmd.args(["--strict", "-k", "1.30.0"]);
    for f in standard {
        cmd.arg(k8s.join(f));
    }
    run_ok(&mut cmd);
    // The alert rules of the PrometheusRule, checked by promtool.
    let rule: String = {
        let py = format!(
            "import yaml,sys; d=yaml.safe_load(open('{}')); assert d['kind']=='PrometheusRule'; \
             yaml.safe_dump({{'groups': d['spec']['groups']}}, sys.stdout)",
            k8s.join("prometheusrule.yaml").display()
        );
        run_ok(Command::new(tools_bin("python")).args(["-c", &py]))
    };
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yaml");
    std::fs::write(&rules, rule).unwrap();
    run_ok(Command::new("promtool").args(["check", "rules"]).arg(&rules));
    // ServiceMonitor and kustomization: well-formed, and the kustomization lists every file.
    let py = format!(
        "import yaml,os; d='{}'; k=yaml.safe_load(open(os.path.join(d,'kustomization.yaml'))); \
         s=yaml.safe_load(open(os.path.join(d,'servicemonitor.yaml'))); assert s['spec']['endpoints'][0]['port']=='metrics'; \
         files=set(f for f in os.listdir(d) if f.endswith('.yaml') and f!='kustomization.yaml'); \
         assert set(k['resources'])==files, (k['resources'], files)",
        k8s.display()
    );
    run_ok(Command::new(tools_bin("python")).args(["-c", &py]));
}

#[test]
fn fleet_manifests_validate_and_their_configs_check() {
    let fleet = deploy().join("kubernetes/fleet");
    let files: Vec<PathBuf> = std::fs::read_dir(&fleet)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml") && !p.ends_with("kustomization.yaml"))
        .collect();
    assert!(files.len() >= 8, "{files:?}");
    let scratch = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(tools_bin("kubernetes-validate"));
    cmd.args(["--strict", "-k", "1.30.0"]).args(&files);
    run_ok(&mut cmd);
    let py = format!(
        "import yaml,os; d='{}'; k=yaml.safe_load(open(os.path.join(d,'kustomization.yaml'))); \
         files=set(f for f in os.listdir(d) if f.endswith('.yaml') and f!='kustomization.yaml'); \
         assert set(k['resources'])==files, (k['resources'], files); \
         cm=yaml.safe_load(open(os.path.join(d,'configmap.yaml'))); \
         [open(os.path.join('{}', n), 'w').write(t) for n, t in cm['data'].items()]",
        fleet.display(),
        scratch.path().display()
    );
    run_ok(Command::new(tools_bin("python")).args(["-c", &py]));
    // Both configurations pass `r53dns check`; the follower's needs no AWS at all.
    for name in ["syncer.toml", "follower.toml"] {
        let out = Command::new(env!("CARGO_BIN_EXE_r53dns"))
            .args(["check", "--config"])
            .arg(scratch.path().join(name))
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let follower = std::fs::read_to_string(scratch.path().join("follower.toml")).unwrap();
    assert!(follower.contains("[[secondary]]") && !follower.contains("[route53]"));
}

#[test]
fn json_and_yaml_files_parse_and_the_example_config_checks() {
    for f in ["aws/iam-policy-read.json", "aws/iam-policy-update.json", "grafana/r53dns.json"] {
        let text = std::fs::read_to_string(deploy().join(f)).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(v.is_object(), "{f}");
    }
    let py = format!("import yaml; yaml.safe_load(open('{}'))", deploy().join("kickstart/cloud-init.yaml").display());
    run_ok(Command::new(tools_bin("python")).args(["-c", &py]));
    // The read policy allows exactly the calls the sync makes.
    let policy = std::fs::read_to_string(deploy().join("aws/iam-policy-read.json")).unwrap();
    for action in
        ["ListHostedZones", "GetHostedZone", "ListResourceRecordSets", "GetHealthCheckStatus", "ListCidrBlocks"]
    {
        assert!(policy.contains(&format!("route53:{action}")), "{action}");
    }
    // The configuration shipped in the ConfigMap is valid.
    let cm = std::fs::read_to_string(deploy().join("kubernetes/configmap.yaml")).unwrap();
    let toml_text: String = cm
        .lines()
        .skip_while(|l| !l.contains("r53dns.toml: |"))
        .skip(1)
        .map(|l| format!("{}\n", l.trim_start()))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("r53dns.toml");
    std::fs::write(&cfg, toml_text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_r53dns"))
        .args(["check", "--config"])
        .arg(&cfg)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
