//! Every file under deploy/ is checked with the tool that owns its format: systemd-analyze
//! for the unit, kubernetes-validate for standard Kubernetes objects, promtool for the alert
//! rules, JSON/YAML parsers for the rest, and the example configuration with `r53dns check`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::server::Binary;

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
fn kubernetes_fleet_validates_and_its_configs_check() {
    let k8s = deploy().join("kubernetes");
    let standard = [
        "serviceaccount.yaml",
        "configmap.yaml",
        "syncer.yaml",
        "syncer-service.yaml",
        "replica.yaml",
        "service.yaml",
        "hpa.yaml",
        "pdb.yaml",
    ];
    let mut cmd = Command::new(tools_bin("kubernetes-validate"));
    cmd.args(["--strict", "-k", "1.30.0"]);
    for f in standard {
        cmd.arg(k8s.join(f));
    }
    run_ok(&mut cmd);
    // The alert rules of the PrometheusRule: checked by promtool, and tested on the
    // situations they exist for (tests/data/alerts/*.test.yaml).
    let rule: String = {
        let py = format!(
            "import yaml,sys; d=yaml.safe_load(open('{}')); assert d['kind']=='PrometheusRule'; \
             yaml.safe_dump({{'groups': d['spec']['groups']}}, sys.stdout)",
            k8s.join("prometheusrule.yaml").display()
        );
        run_ok(Command::new(tools_bin("python")).args(["-c", &py]))
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yaml"), rule).unwrap();
    run_ok(Command::new("promtool").args(["check", "rules"]).arg(dir.path().join("rules.yaml")));
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/alerts/fleet.test.yaml");
    std::fs::copy(&tests, dir.path().join("fleet.test.yaml")).unwrap();
    let out = run_ok(Command::new("promtool").args(["test", "rules"]).arg(dir.path().join("fleet.test.yaml")));
    assert!(out.contains("SUCCESS"), "{out}");
    // The kustomization lists every file; the ServiceMonitor scrapes both Services (syncer and
    // replicas), each with a metrics port; one syncer sweeps, the replicas have no AWS identity.
    let py = format!(
        "import yaml,os; d='{}'; k=yaml.safe_load(open(os.path.join(d,'kustomization.yaml'))); \
         files=set(f for f in os.listdir(d) if f.endswith('.yaml') and f!='kustomization.yaml'); \
         assert set(k['resources'])==files, (k['resources'], files); \
         sm=yaml.safe_load(open(os.path.join(d,'servicemonitor.yaml'))); \
         assert sm['spec']['endpoints'][0]['port']=='metrics'; sel=sm['spec']['selector']['matchLabels']; \
         svcs=[yaml.safe_load(open(os.path.join(d,f))) for f in ('service.yaml','syncer-service.yaml')]; \
         assert all(all(s['metadata']['labels'].get(a)==b for a,b in sel.items()) for s in svcs); \
         assert all(any(p['name']=='metrics' for p in s['spec']['ports']) for s in svcs); \
         sy=yaml.safe_load(open(os.path.join(d,'syncer.yaml'))); assert sy['spec']['replicas']==1; \
         rp=yaml.safe_load(open(os.path.join(d,'replica.yaml'))); t=rp['spec']['template']['spec']; \
         assert 'serviceAccountName' not in t and t['automountServiceAccountToken'] is False; \
         assert t['terminationGracePeriodSeconds'] > 5; \
         cm=yaml.safe_load(open(os.path.join(d,'configmap.yaml'))); \
         [open(os.path.join('{}', n), 'w').write(v) for n, v in cm['data'].items()]",
        k8s.display(),
        dir.path().display()
    );
    run_ok(Command::new(tools_bin("python")).args(["-c", &py]));
    // Both configurations pass `r53dns check`; the replica's needs no AWS at all.
    for name in ["syncer.toml", "replica.toml"] {
        let out = Binary::check_config(&dir.path().join(name));
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains("warning"),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let replica = std::fs::read_to_string(dir.path().join("replica.toml")).unwrap();
    assert!(replica.contains("[follow]") && !replica.contains("enabled = true"), "{replica}");
}

#[test]
fn json_and_yaml_files_parse_and_the_read_policy_covers_the_sync() {
    for f in [
        "aws/iam-policy-read.json",
        "aws/iam-policy-update.json",
        "aws/iam-policy-snapshots-write.json",
        "aws/iam-policy-snapshots-read.json",
        "grafana/r53dns.json",
    ] {
        let text = std::fs::read_to_string(deploy().join(f)).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(v.is_object(), "{f}");
    }
    // The configurations the unattended installs write pass `r53dns check`.
    let dir = tempfile::tempdir().unwrap();
    let py = format!(
        "import yaml; d=yaml.safe_load(open('{}')); open('{}','w').write(d['write_files'][0]['content'])",
        deploy().join("kickstart/cloud-init.yaml").display(),
        dir.path().join("cloud-init.toml").display()
    );
    run_ok(Command::new(tools_bin("python")).args(["-c", &py]));
    let ks = std::fs::read_to_string(deploy().join("kickstart/r53dns.ks")).unwrap();
    let conf = ks.split("<<'CONF'\n").nth(1).and_then(|r| r.split("\nCONF").next()).unwrap();
    std::fs::write(dir.path().join("kickstart.toml"), conf).unwrap();
    for name in ["cloud-init.toml", "kickstart.toml"] {
        let out = Binary::check_config(&dir.path().join(name));
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
    }
    // The read policy allows exactly the calls the sync makes.
    let policy = std::fs::read_to_string(deploy().join("aws/iam-policy-read.json")).unwrap();
    for action in
        ["ListHostedZones", "GetHostedZone", "ListResourceRecordSets", "GetHealthCheckStatus", "ListCidrBlocks"]
    {
        assert!(policy.contains(&format!("route53:{action}")), "{action}");
    }
    // Replicas following S3 need reading only; syncers writing there need what the
    // conditional writes and the clean-up of old zone objects use.
    let read = std::fs::read_to_string(deploy().join("aws/iam-policy-snapshots-read.json")).unwrap();
    assert!(read.contains("s3:GetObject") && !read.contains("s3:PutObject"));
    let write = std::fs::read_to_string(deploy().join("aws/iam-policy-snapshots-write.json")).unwrap();
    for action in ["GetObject", "PutObject", "DeleteObject"] {
        assert!(write.contains(&format!("s3:{action}")), "{action}");
    }
}

#[test]
fn route53_event_delivery_template_passes_cfn_lint_and_matches_the_plain_json() {
    let aws = deploy().join("aws");
    let template = aws.join("route53-events.cfn.yaml");
    run_ok(Command::new(tools_bin("cfn-lint")).arg(&template));
    for f in [
        "route53-events-rule.json",
        "route53-events-queue-policy.json",
        "route53-events-queue-attributes.json",
        "iam-policy-events.json",
    ] {
        let text = std::fs::read_to_string(aws.join(f)).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(v.is_object(), "{f}");
    }
    // The template and the plain JSON say the same: the rule's pattern, the reader's
    // actions; and the pattern takes exactly the calls r53dns acts on, in us-east-1.
    let py = format!(
        "import yaml,json,sys\n\
         class L(yaml.SafeLoader): pass\n\
         L.add_multi_constructor('!', lambda l, s, n: None)\n\
         t = yaml.load(open('{template}'), Loader=L)\n\
         r = t['Resources']\n\
         assert r['Rule']['Properties']['EventPattern'] == json.load(open('{rule}')), 'event pattern differs'\n\
         a = r['ReaderPolicy']['Properties']['PolicyDocument']['Statement'][0]['Action']\n\
         assert a == json.load(open('{iam}'))['Statement'][0]['Action'], 'reader actions differ'\n\
         assert r['Queue']['Properties']['RedrivePolicy'], 'no dead-letter queue'\n\
         print(json.dumps(json.load(open('{rule}'))))",
        template = template.display(),
        rule = aws.join("route53-events-rule.json").display(),
        iam = aws.join("iam-policy-events.json").display(),
    );
    let out = run_ok(Command::new(tools_bin("python")).args(["-c", &py]));
    let pattern: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(pattern["source"][0], r53dns_route53::events::SOURCE);
    assert_eq!(pattern["detail-type"][0], r53dns_route53::events::DETAIL_TYPE);
    assert_eq!(pattern["detail"]["eventSource"][0], r53dns_route53::events::EVENT_SOURCE);
    let names: Vec<&str> =
        pattern["detail"]["eventName"].as_array().unwrap().iter().filter_map(|n| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "ChangeResourceRecordSets",
            "CreateHostedZone",
            "DeleteHostedZone",
            "AssociateVPCWithHostedZone",
            "DisassociateVPCFromHostedZone"
        ]
    );
    let iam = std::fs::read_to_string(aws.join("iam-policy-events.json")).unwrap();
    for action in ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"] {
        assert!(iam.contains(action), "{action}");
    }
}

#[test]
fn installs_pin_their_version_and_checksum() {
    // No manifest or install script takes whatever is newest: images carry a version, and
    // every download is checked against a SHA-256 before it is installed.
    for f in [
        "kubernetes/replica.yaml",
        "kubernetes/syncer.yaml",
        "kickstart/cloud-init.yaml",
        "kickstart/r53dns.ks",
        "container/Containerfile",
    ] {
        let text = std::fs::read_to_string(deploy().join(f)).unwrap();
        assert!(!text.contains(":latest") && !text.contains("/latest"), "{f} names a moving version");
        let downloads = text.matches("curl ").count();
        if downloads > 0 {
            let checked = text.matches("sha256sum -c").count();
            assert!(checked >= 1, "{f}: {downloads} downloads, none checked");
            // The commands after the first download: the check comes before any install.
            let after = &text[text.find("curl ").unwrap()..];
            let commands: Vec<&str> =
                after.lines().map(|l| l.trim().trim_start_matches("- ")).filter(|l| !l.starts_with('#')).collect();
            let first = |p: &dyn Fn(&str) -> bool| commands.iter().position(|l| p(l)).unwrap();
            let check = first(&|l| l.contains("sha256sum -c"));
            let install = first(&|l| l.starts_with("install ") || l.contains("apt-get install"));
            assert!(check < install, "{f}: checked after installing");
        }
    }
    // The image's build context is a directory deploy/container/build.sh stages, never the
    // tree (whose target/ is gigabytes): the Containerfile copies only what it names.
    let containerfile = std::fs::read_to_string(deploy().join("container/Containerfile")).unwrap();
    let copies: Vec<&str> = containerfile.lines().filter(|l| l.starts_with("COPY ")).collect();
    assert!(!copies.is_empty());
    for copy in copies {
        assert!(!copy.split_whitespace().any(|w| w == "." || w == "./"), "copies the whole context: {copy}");
    }
    let build = std::fs::read_to_string(deploy().join("container/build.sh")).unwrap();
    assert!(build.contains("context=$(mktemp -d)"), "the build context is staged");
}
