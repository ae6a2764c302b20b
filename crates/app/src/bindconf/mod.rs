//! BIND's `named.conf`, read as a zone source: the `zone` statements (primary zones with
//! their files, secondary zones with their primaries), `key` statements, `acl`s, the
//! `options` that carry over (`directory`, `allow-transfer`, `also-notify`, `allow-query`),
//! `view`s with `match-clients` and the `tls` statements a secondary zone's primaries name
//! (XoT, RFC 9103). `include` files are followed.
//!
//! Everything the file says that r53dns cannot do is listed with file and line
//! ([`BindConfig::unsupported`]), never dropped silently; statements that only tune BIND
//! itself (logging, statistics channels, cache sizes…) are listed as ignored.

use std::fmt;
use std::path::{Path, PathBuf};

mod map;
pub use map::{Mapped, map};

/// Where a statement was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// The file.
    pub file: PathBuf,
    /// The line (1-based).
    pub line: usize,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// A parse error with its place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{place}: {message}")]
pub struct BindConfError {
    /// Where.
    pub place: Place,
    /// What.
    pub message: String,
}

/// One statement: a keyword, its arguments, and a block of statements if it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stmt {
    name: String,
    args: Vec<String>,
    block: Option<Vec<Stmt>>,
    place: Place,
}

impl Stmt {
    fn sub(&self, name: &str) -> Option<&Stmt> {
        self.block.as_ref()?.iter().find(|s| s.name.eq_ignore_ascii_case(name))
    }

    /// The elements of an address-match list or server list (`{ 10/8; !1.2.3.4; key k; }`).
    fn list(&self) -> Vec<String> {
        self.block
            .iter()
            .flatten()
            .map(|s| std::iter::once(s.name.clone()).chain(s.args.iter().cloned()).collect::<Vec<_>>().join(" "))
            .collect()
    }
}

/// The kind of a zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZoneKind {
    /// `type primary` (or `master`), loaded from `file`.
    Primary {
        /// The zone file, resolved against `directory`.
        file: PathBuf,
    },
    /// `type secondary` (or `slave`), transferred from `primaries` (or `masters`).
    Secondary {
        /// The primaries, in the order written.
        primaries: Vec<BindPrimary>,
    },
}

/// One element of a zone's `primaries` (or `masters`) list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindPrimary {
    /// `ADDR:PORT`: the element's port, else the list's, else 853 with `tls` and 53
    /// without (BIND's `tls-port` and `port` defaults).
    pub addr: String,
    /// The TSIG key named for it (`key NAME`).
    pub key: Option<String>,
    /// The `tls` statement named for it (`tls NAME`; `ephemeral` is BIND's built-in one).
    pub tls: Option<String>,
}

/// A `tls NAME { … }` statement: how BIND connects to a primary over TLS (or, named by
/// `listen-on … tls`, how it serves TLS itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindTls {
    /// The statement's name.
    pub name: String,
    /// `ca-file`: the trust anchors the peer's certificate must chain to, resolved against
    /// `directory`.
    pub ca_file: Option<PathBuf>,
    /// `remote-hostname`: the name the primary's certificate must carry.
    pub remote_hostname: Option<String>,
    /// `cert-file`/`key-file` given: a certificate of BIND's own to present.
    pub own_certificate: bool,
    /// The other fields (`protocols`, `ciphers`…), with their place.
    pub other: Vec<(String, Place)>,
    /// Where.
    pub place: Place,
}

/// A zone statement as r53dns can use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindZone {
    /// The zone name, absolute.
    pub name: String,
    /// Primary or secondary.
    pub kind: ZoneKind,
    /// The view it sits in, if any.
    pub view: Option<String>,
    /// `allow-transfer` elements (zone, else options).
    pub allow_transfer: Vec<String>,
    /// `also-notify` elements (zone, else options).
    pub also_notify: Vec<String>,
    /// `allow-update` elements.
    pub allow_update: Vec<String>,
    /// `update-policy` rules (`grant KEY zonesub ANY`…), or `local`.
    pub update_policy: Vec<String>,
    /// Where the statement is.
    pub place: Place,
}

/// A `key` statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindKey {
    /// The key name.
    pub name: String,
    /// `hmac-sha256` and so on.
    pub algorithm: String,
    /// Base64 secret.
    pub secret: String,
    /// Where.
    pub place: Place,
}

/// A `view` statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindView {
    /// The view name.
    pub name: String,
    /// `match-clients` elements (`any` if absent).
    pub match_clients: Vec<String>,
    /// Where.
    pub place: Place,
}

/// What r53dns takes from a `named.conf`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BindConfig {
    /// Zones, in the order written.
    pub zones: Vec<BindZone>,
    /// TSIG keys.
    pub keys: Vec<BindKey>,
    /// Views.
    pub views: Vec<BindView>,
    /// `acl name { … }` definitions, by name.
    pub acls: Vec<(String, Vec<String>)>,
    /// `tls` statements.
    pub tls: Vec<BindTls>,
    /// `options { allow-query { … }; }`.
    pub allow_query: Vec<String>,
    /// What cannot be carried over, one line each with its place.
    pub unsupported: Vec<String>,
    /// Statements that only tune BIND itself, with their place.
    pub ignored: Vec<String>,
}

/// Statements of BIND's own that have no bearing on what is served.
const BIND_ONLY: &[&str] = &[
    "logging",
    "statistics-channels",
    "controls",
    "trust-anchors",
    "managed-keys",
    "trusted-keys",
    "dnssec-policy",
    "http",
];

/// Options that carry over, or that only tune BIND.
const OPTIONS_USED: &[&str] = &["directory", "allow-transfer", "also-notify", "allow-query"];

/// Reads `path` (and its `include`s).
pub fn read(path: &Path) -> Result<BindConfig, BindConfError> {
    let stmts = parse_file(path, 0)?;
    Ok(interpret(&stmts, path))
}

fn err(file: &Path, line: usize, message: impl Into<String>) -> BindConfError {
    BindConfError { place: Place { file: file.to_owned(), line }, message: message.into() }
}

const MAX_INCLUDE_DEPTH: usize = 16;

/// Reads a file of BIND `key` statements (`tsig-keygen` output, `rndc.key`): `key "name" {
/// algorithm A; secret "B64"; };`, with BIND's comments. Anything else in the file, a field
/// other than `algorithm` and `secret`, or a key without a secret is an error with its line.
pub fn read_keys(text: &str, file: &Path) -> Result<Vec<crate::config::KeySpec>, BindConfError> {
    let tokens = lex(text, file)?;
    let mut at = 0;
    let mut keys = Vec::new();
    for s in parse_block(&tokens, &mut at, file, false)? {
        let line = s.place.line;
        if s.name != "key" {
            return Err(err(file, line, format!("expected 'key', found '{}'", s.name)));
        }
        let Some(name) = s.args.first() else { return Err(err(file, line, "key without a name")) };
        let mut k = crate::config::KeySpec { name: name.clone(), ..Default::default() };
        for f in s.block.iter().flatten() {
            let value =
                f.args.first().ok_or_else(|| err(file, f.place.line, format!("'{}' without a value", f.name)))?;
            match f.name.as_str() {
                "algorithm" => k.algorithm = Some(value.clone()),
                "secret" => k.secret.clone_from(value),
                other => {
                    return Err(err(file, f.place.line, format!("unknown key field '{other}' (algorithm, secret)")));
                }
            }
        }
        if k.secret.is_empty() {
            return Err(err(file, line, format!("key '{}' has no secret", k.name)));
        }
        keys.push(k);
    }
    Ok(keys)
}

fn parse_file(path: &Path, depth: usize) -> Result<Vec<Stmt>, BindConfError> {
    let text = std::fs::read_to_string(path).map_err(|e| err(path, 0, format!("cannot read: {e}")))?;
    let tokens = lex(&text, path)?;
    let mut at = 0;
    let stmts = parse_block(&tokens, &mut at, path, false)?;
    // `include "file";` at any level is replaced by the file's statements.
    expand(stmts, path, depth)
}

fn expand(stmts: Vec<Stmt>, path: &Path, depth: usize) -> Result<Vec<Stmt>, BindConfError> {
    let mut out = Vec::new();
    for mut s in stmts {
        if s.name == "include" {
            if depth >= MAX_INCLUDE_DEPTH {
                return Err(err(
                    &s.place.file,
                    s.place.line,
                    format!("include nested deeper than {MAX_INCLUDE_DEPTH}"),
                ));
            }
            let Some(f) = s.args.first() else {
                return Err(err(&s.place.file, s.place.line, "include needs a file name"));
            };
            let target = path.parent().unwrap_or(Path::new(".")).join(f);
            out.extend(parse_file(&target, depth + 1)?);
            continue;
        }
        if let Some(b) = s.block.take() {
            s.block = Some(expand(b, path, depth)?);
        }
        out.push(s);
    }
    Ok(out)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(String),
    Open,
    Close,
    Semi,
}

/// Words, quoted strings, braces and semicolons, with `//`, `#` and `/* */` comments gone.
fn lex(text: &str, file: &Path) -> Result<Vec<(Tok, usize)>, BindConfError> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    while i < b.len() {
        match b[i] {
            b'\n' => {
                line += 1;
                i += 1;
            }
            c if c.is_ascii_whitespace() => i += 1,
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let start = line;
                i += 2;
                loop {
                    match b.get(i) {
                        None => return Err(err(file, start, "comment not closed")),
                        Some(b'*') if b.get(i + 1) == Some(&b'/') => {
                            i += 2;
                            break;
                        }
                        Some(b'\n') => {
                            line += 1;
                            i += 1;
                        }
                        Some(_) => i += 1,
                    }
                }
            }
            b'{' => {
                out.push((Tok::Open, line));
                i += 1;
            }
            b'}' => {
                out.push((Tok::Close, line));
                i += 1;
            }
            b';' => {
                out.push((Tok::Semi, line));
                i += 1;
            }
            b'"' => {
                let start = line;
                let mut s = Vec::new();
                i += 1;
                loop {
                    match b.get(i) {
                        None => return Err(err(file, start, "quoted string not closed")),
                        Some(b'"') => {
                            i += 1;
                            break;
                        }
                        Some(b'\\') if i + 1 < b.len() => {
                            s.push(b[i + 1]);
                            i += 2;
                        }
                        Some(&c) => {
                            if c == b'\n' {
                                line += 1;
                            }
                            s.push(c);
                            i += 1;
                        }
                    }
                }
                out.push((Tok::Word(String::from_utf8_lossy(&s).into_owned()), start));
            }
            _ => {
                let start = i;
                while i < b.len() && !b[i].is_ascii_whitespace() && !b"{};\"#".contains(&b[i]) {
                    if b[i] == b'/' && matches!(b.get(i + 1), Some(b'/' | b'*')) {
                        break;
                    }
                    i += 1;
                }
                out.push((Tok::Word(String::from_utf8_lossy(&b[start..i]).into_owned()), line));
            }
        }
    }
    Ok(out)
}

fn parse_block(toks: &[(Tok, usize)], at: &mut usize, file: &Path, nested: bool) -> Result<Vec<Stmt>, BindConfError> {
    let mut out = Vec::new();
    loop {
        let Some((t, line)) = toks.get(*at) else {
            return if nested { Err(err(file, toks.last().map_or(0, |t| t.1), "'{' not closed")) } else { Ok(out) };
        };
        match t {
            Tok::Close if nested => {
                *at += 1;
                return Ok(out);
            }
            Tok::Close => return Err(err(file, *line, "'}' without '{'")),
            Tok::Semi => *at += 1, // an empty statement
            Tok::Open => {
                // An anonymous block: an address list element like `{ 10/8; };` nested.
                *at += 1;
                let block = parse_block(toks, at, file, true)?;
                out.push(Stmt {
                    name: String::new(),
                    args: vec![],
                    block: Some(block),
                    place: Place { file: file.to_owned(), line: *line },
                });
                expect_semi(toks, at, file)?;
            }
            Tok::Word(w) => {
                let place = Place { file: file.to_owned(), line: *line };
                let name = w.clone();
                *at += 1;
                let mut args = Vec::new();
                let mut block = None;
                while let Some((t, _)) = toks.get(*at) {
                    match t {
                        Tok::Word(a) => {
                            args.push(a.clone());
                            *at += 1;
                        }
                        Tok::Open => {
                            *at += 1;
                            block = Some(parse_block(toks, at, file, true)?);
                            // Words after the block (`zone "x" { … } ;`) are rare; allow them.
                            while let Some((Tok::Word(a), _)) = toks.get(*at) {
                                args.push(a.clone());
                                *at += 1;
                            }
                            break;
                        }
                        _ => break,
                    }
                }
                expect_semi(toks, at, file)?;
                out.push(Stmt { name, args, block, place });
            }
        }
    }
}

fn expect_semi(toks: &[(Tok, usize)], at: &mut usize, file: &Path) -> Result<(), BindConfError> {
    match toks.get(*at) {
        Some((Tok::Semi, _)) => {
            *at += 1;
            Ok(())
        }
        Some((_, line)) => Err(err(file, *line, "missing ';'")),
        None => Err(err(file, toks.last().map_or(0, |t| t.1), "missing ';' at the end")),
    }
}

/// Statements naming a list of servers a zone's `primaries` and `also-notify` may refer to:
/// `primaries NAME [port P] { … };` (`masters` before BIND 9.18, `remote-servers` since 9.20).
const REMOTE_LISTS: &[&str] = &["primaries", "masters", "remote-servers"];

/// The word after `what` among a statement's or list element's words (`port 5353`,
/// `key "k"`, `tls t`).
pub(crate) fn word_after<'a, S: AsRef<str>>(words: &'a [S], what: &str) -> Option<&'a str> {
    words.windows(2).find(|w| w[0].as_ref() == what).map(|w| w[1].as_ref())
}

/// The elements of a `primaries` or `also-notify` list with the named lists they refer to
/// expanded in place, as BIND's `named_config_getipandkeylist` does: lists may refer to
/// lists; an address keeps its own `port`, else takes its list's, else the port inherited
/// from the list that named that one; a `key` or `tls` written after a list's name goes to
/// the addresses of that list that name none (one level, not further down); a list already
/// being expanded is skipped (a loop adds nothing). Names compare case-insensitively. An
/// element that is neither an address nor a list defined here is an error: BIND takes no
/// host names there.
fn expand_remotes(
    elements: &[String],
    (port, key, tls): (Option<&str>, Option<&str>, Option<&str>),
    lists: &std::collections::HashMap<String, &Stmt>,
    seen: &mut Vec<String>,
) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for e in elements {
        let words: Vec<&str> = e.split_whitespace().collect();
        let Some(head) = words.first().copied() else { continue };
        let after = |what: &str| word_after(&words, what);
        if head.parse::<std::net::IpAddr>().is_ok() {
            let mut element = e.clone();
            for (what, inherited) in [("port", port), ("key", key), ("tls", tls)] {
                if let (None, Some(v)) = (after(what), inherited) {
                    element = format!("{element} {what} {v}");
                }
            }
            out.push(element);
            continue;
        }
        let name = head.trim_matches('"').to_ascii_lowercase();
        let Some(list) = lists.get(&name) else {
            return Err(format!("'{head}' is neither an address nor a primaries list defined here"));
        };
        if seen.contains(&name) {
            continue;
        }
        let own_port = word_after(&list.args, "port");
        seen.push(name);
        let members = expand_remotes(&list.list(), (own_port.or(port), after("key"), after("tls")), lists, seen);
        seen.pop();
        out.extend(members?);
    }
    Ok(out)
}

fn interpret(stmts: &[Stmt], path: &Path) -> BindConfig {
    let mut c = BindConfig::default();
    let lists: std::collections::HashMap<String, &Stmt> = stmts
        .iter()
        .filter(|s| REMOTE_LISTS.contains(&s.name.as_str()))
        .filter_map(|s| Some((s.args.first()?.trim_matches('"').to_ascii_lowercase(), s)))
        .collect();
    let options = stmts.iter().find(|s| s.name == "options");
    let directory = options
        .and_then(|o| o.sub("directory"))
        .and_then(|d| d.args.first())
        .map_or_else(|| path.parent().unwrap_or(Path::new(".")).to_owned(), PathBuf::from);
    let global = |name: &str| options.and_then(|o| o.sub(name)).map(Stmt::list).unwrap_or_default();
    c.allow_query = global("allow-query");
    if let Some(o) = options {
        for s in o.block.iter().flatten() {
            if !OPTIONS_USED.contains(&s.name.as_str()) {
                c.ignored.push(format!("{}: options {}", s.place, s.name));
            }
        }
    }
    let zone = |s: &Stmt, view: Option<&str>, c: &mut BindConfig| {
        let Some(name) = s.args.first() else {
            c.unsupported.push(format!("{}: zone without a name", s.place));
            return;
        };
        let name = if name.ends_with('.') { name.clone() } else { format!("{name}.") };
        if let Some(class) = s.args.get(1).filter(|c| !c.eq_ignore_ascii_case("IN")) {
            c.unsupported.push(format!("{}: zone {name} of class {class} (only IN is served)", s.place));
            return;
        }
        let kind = s.sub("type").and_then(|t| t.args.first()).map(|t| t.to_ascii_lowercase()).unwrap_or_default();
        let kind = match kind.as_str() {
            "primary" | "master" => match s.sub("file").and_then(|f| f.args.first()) {
                Some(f) => ZoneKind::Primary { file: directory.join(f) },
                None => {
                    c.unsupported.push(format!("{}: zone {name}: a primary zone without a file", s.place));
                    return;
                }
            },
            "secondary" | "slave" => {
                let list = s.sub("primaries").or_else(|| s.sub("masters"));
                let port = list.and_then(|l| word_after(&l.args, "port"));
                let elements = list.map(Stmt::list).unwrap_or_default();
                let elements = match expand_remotes(&elements, (port, None, None), &lists, &mut vec![]) {
                    Ok(e) => e,
                    Err(e) => {
                        c.unsupported.push(format!("{}: zone {name}: primaries: {e}", s.place));
                        return;
                    }
                };
                let primaries = elements
                    .iter()
                    .map(|e| {
                        let words: Vec<&str> = e.split_whitespace().collect();
                        let addr = words.first().copied().unwrap_or_default();
                        let after = |what: &str| word_after(&words, what).map(str::to_owned);
                        let (key, tls) = (after("key"), after("tls"));
                        let default_port = if tls.is_some() { "853" } else { "53" };
                        let p = after("port").unwrap_or_else(|| default_port.to_owned());
                        let addr = if addr.contains(':') { format!("[{addr}]:{p}") } else { format!("{addr}:{p}") };
                        BindPrimary { addr, key, tls }
                    })
                    .collect::<Vec<_>>();
                if primaries.is_empty() {
                    c.unsupported.push(format!("{}: zone {name}: a secondary zone without primaries", s.place));
                    return;
                }
                ZoneKind::Secondary { primaries }
            }
            "hint" => {
                c.ignored.push(format!("{}: zone {name} of type hint (root hints are a resolver's)", s.place));
                return;
            }
            other => {
                c.unsupported
                    .push(format!("{}: zone {name} of type {other} (primary and secondary zones are served)", s.place));
                return;
            }
        };
        let own = |n: &str| s.sub(n).map(Stmt::list);
        for sub in s.block.iter().flatten() {
            let used = [
                "type",
                "file",
                "primaries",
                "masters",
                "allow-transfer",
                "also-notify",
                "allow-update",
                "update-policy",
            ];
            if !used.contains(&sub.name.as_str()) {
                c.ignored.push(format!("{}: zone {name}: {}", sub.place, sub.name));
            }
        }
        let also_notify = own("also-notify").unwrap_or_else(|| global("also-notify"));
        let also_notify = match expand_remotes(&also_notify, (None, None, None), &lists, &mut vec![]) {
            Ok(a) => a,
            Err(e) => {
                c.unsupported.push(format!("{}: zone {name}: also-notify: {e}", s.place));
                return;
            }
        };
        c.zones.push(BindZone {
            name,
            kind,
            view: view.map(str::to_owned),
            allow_transfer: own("allow-transfer").unwrap_or_else(|| global("allow-transfer")),
            also_notify,
            allow_update: own("allow-update").unwrap_or_default(),
            update_policy: s
                .sub("update-policy")
                .map(|p| if p.block.is_some() { p.list() } else { p.args.clone() })
                .unwrap_or_default(),
            place: s.place.clone(),
        });
    };
    for s in stmts {
        match s.name.as_str() {
            "options" => {}
            // Read above, used where a zone names them.
            n if REMOTE_LISTS.contains(&n) => {}
            "zone" => zone(s, None, &mut c),
            "key" => {
                let (Some(name), Some(alg), Some(secret)) = (
                    s.args.first(),
                    s.sub("algorithm").and_then(|a| a.args.first()),
                    s.sub("secret").and_then(|a| a.args.first()),
                ) else {
                    c.unsupported.push(format!("{}: key without a name, algorithm or secret", s.place));
                    continue;
                };
                c.keys.push(BindKey {
                    name: name.clone(),
                    algorithm: alg.clone(),
                    secret: secret.clone(),
                    place: s.place.clone(),
                });
            }
            "tls" => {
                let Some(name) = s.args.first() else {
                    c.unsupported.push(format!("{}: tls without a name", s.place));
                    continue;
                };
                let mut t = BindTls {
                    name: name.clone(),
                    ca_file: None,
                    remote_hostname: None,
                    own_certificate: false,
                    other: Vec::new(),
                    place: s.place.clone(),
                };
                for f in s.block.iter().flatten() {
                    match (f.name.as_str(), f.args.first()) {
                        ("ca-file", Some(v)) => t.ca_file = Some(directory.join(v)),
                        ("remote-hostname", Some(v)) => t.remote_hostname = Some(v.clone()),
                        ("cert-file" | "key-file", _) => t.own_certificate = true,
                        (other, _) => t.other.push((other.to_owned(), f.place.clone())),
                    }
                }
                c.tls.push(t);
            }
            "acl" => match s.args.first() {
                Some(n) => c.acls.push((n.clone(), s.list())),
                None => c.unsupported.push(format!("{}: acl without a name", s.place)),
            },
            "view" => {
                let Some(vname) = s.args.first() else {
                    c.unsupported.push(format!("{}: view without a name", s.place));
                    continue;
                };
                c.views.push(BindView {
                    name: vname.clone(),
                    match_clients: s.sub("match-clients").map(Stmt::list).unwrap_or_else(|| vec!["any".into()]),
                    place: s.place.clone(),
                });
                for v in s.block.iter().flatten() {
                    match v.name.as_str() {
                        "zone" => zone(v, Some(vname), &mut c),
                        "match-clients" => {}
                        other => c.ignored.push(format!("{}: view {vname}: {other}", v.place)),
                    }
                }
            }
            other if BIND_ONLY.contains(&other) => c.ignored.push(format!("{}: {other} (BIND's own)", s.place)),
            other => c.unsupported.push(format!("{}: {other} statement", s.place)),
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn a_debian_named_conf_with_includes_views_and_keys() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(
            d,
            "named.conf.options",
            r#"options {
    directory "/var/cache/bind";  // BIND's working directory
    allow-transfer { 10.0.0.2; key xfr; };
    also-notify { 10.0.0.2 port 5300; };
    recursion no; # BIND only
    /* a
       block comment */
    allow-query { any; };
};
"#,
        );
        write(
            d,
            "named.conf.local",
            r#"key "xfr" { algorithm hmac-sha256; secret "c2VjcmV0LWZvci10cmFuc2ZlcnMtb25seS0xMjM0NTY="; };
acl internal { 10.0.0.0/8; 192.168.0.0/16; };
zone "example.com" { type master; file "/etc/bind/db.example.com"; allow-update { key xfr; }; };
zone "2.0.192.in-addr.arpa" IN { type primary; file "db.192.0.2"; notify yes; };
zone "secondary.example" { type slave; masters port 5353 { 192.0.2.1; 192.0.2.2 port 53 key xfr; }; };
zone "." { type hint; file "/usr/share/dns/root.hints"; };
view "inside" {
    match-clients { internal; };
    zone "corp.example" { type primary; file "db.corp.inside"; };
};
logging { channel x { file "/var/log/named.log"; }; };
"#,
        );
        let conf = write(d, "named.conf", "include \"named.conf.options\";\ninclude \"named.conf.local\";\n");
        let c = read(&conf).unwrap();
        let names: Vec<&str> = c.zones.iter().map(|z| z.name.as_str()).collect();
        assert_eq!(names, ["example.com.", "2.0.192.in-addr.arpa.", "secondary.example.", "corp.example."]);
        assert_eq!(c.zones[0].kind, ZoneKind::Primary { file: "/etc/bind/db.example.com".into() });
        assert_eq!(c.zones[1].kind, ZoneKind::Primary { file: "/var/cache/bind/db.192.0.2".into() });
        assert_eq!(
            c.zones[2].kind,
            ZoneKind::Secondary {
                primaries: vec![
                    BindPrimary { addr: "192.0.2.1:5353".into(), key: None, tls: None },
                    BindPrimary { addr: "192.0.2.2:53".into(), key: Some("xfr".into()), tls: None }
                ]
            }
        );
        assert_eq!(c.zones[0].allow_transfer, ["10.0.0.2", "key xfr"], "options apply to zones that say nothing");
        assert_eq!(c.zones[0].allow_update, ["key xfr"]);
        assert_eq!(c.zones[3].view.as_deref(), Some("inside"));
        assert_eq!(c.views[0].match_clients, ["internal"]);
        assert_eq!(c.acls[0], ("internal".to_owned(), vec!["10.0.0.0/8".to_owned(), "192.168.0.0/16".to_owned()]));
        assert_eq!(c.keys[0].algorithm, "hmac-sha256");
        assert_eq!(c.allow_query, ["any"]);
        // The hint zone has no place on an authoritative server: listed with its place.
        assert!(c.unsupported.is_empty(), "{:?}", c.unsupported);
        assert!(
            c.ignored.iter().any(|i| i.contains("named.conf.local:6") && i.contains("type hint")),
            "{:?}",
            c.ignored
        );
        assert!(c.ignored.iter().any(|i| i.contains("options recursion")), "{:?}", c.ignored);
        assert!(c.ignored.iter().any(|i| i.contains("logging")), "{:?}", c.ignored);
        assert!(c.ignored.iter().any(|i| i.contains("notify")), "{:?}", c.ignored);
    }

    /// Named server lists (`primaries NAME { … };`, `masters` in older files) are expanded
    /// where a zone's `primaries` or `also-notify` names them, lists inside lists too, with
    /// BIND's port and key inheritance (a key on a list's name reaches that list's addresses,
    /// not the lists it names); a loop adds nothing; a name that is no list stops with the
    /// zone's place instead of being taken for a host name.
    #[test]
    fn named_primaries_lists_are_expanded_where_zones_name_them() {
        let dir = tempfile::tempdir().unwrap();
        let conf = write(
            dir.path(),
            "named.conf",
            r#"primaries hq port 5353 { 192.0.2.1; 192.0.2.2 port 53; };
masters "All" { hq key xfr; 2001:db8::1; deep key xfr; };
primaries deep { deeper; };
primaries deeper { 192.0.2.3; };
primaries loop { loop2; 192.0.2.4; };
primaries loop2 { LOOP; };
zone "a.example" { type secondary; primaries { all; }; also-notify { hq; }; };
zone "b.example" { type secondary; primaries port 8053 { hq; 192.0.2.9; }; };
zone "c.example" { type secondary; primaries { ns1.example.net; }; };
zone "d.example" { type secondary; primaries { loop; }; };
"#,
        );
        let c = read(&conf).unwrap();
        let p = |addr: &str, key: Option<&str>| BindPrimary { addr: addr.into(), key: key.map(Into::into), tls: None };
        assert_eq!(
            c.zones[0].kind,
            ZoneKind::Secondary {
                primaries: vec![
                    p("192.0.2.1:5353", Some("xfr")),
                    p("192.0.2.2:53", Some("xfr")),
                    p("[2001:db8::1]:53", None),
                    p("192.0.2.3:53", None)
                ]
            }
        );
        assert_eq!(c.zones[0].also_notify, ["192.0.2.1 port 5353", "192.0.2.2 port 53"]);
        // The list's own port wins over the port of the list that names it.
        assert_eq!(
            c.zones[1].kind,
            ZoneKind::Secondary {
                primaries: vec![p("192.0.2.1:5353", None), p("192.0.2.2:53", None), p("192.0.2.9:8053", None)]
            }
        );
        assert_eq!(c.zones[2].kind, ZoneKind::Secondary { primaries: vec![p("192.0.2.4:53", None)] });
        assert_eq!(c.zones.len(), 3, "{:?}", c.zones);
        assert_eq!(c.unsupported.len(), 1, "{:?}", c.unsupported);
        assert!(
            c.unsupported[0].contains("named.conf:9: zone c.example.: primaries: 'ns1.example.net' is neither"),
            "{:?}",
            c.unsupported
        );
    }

    #[test]
    fn syntax_errors_name_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let f = write(dir.path(), "named.conf", "options {\n  directory \"/x\"\n};\n");
        let e = read(&f).unwrap_err();
        assert_eq!(e.place.line, 3, "{e}");
        assert!(e.to_string().contains("missing ';'"), "{e}");
        let f = write(dir.path(), "named.conf", "zone \"a\" {\n type master;\n");
        assert!(read(&f).unwrap_err().to_string().contains("not closed"));
        let f = write(dir.path(), "named.conf", "/* open\n\n");
        assert_eq!(read(&f).unwrap_err().place.line, 1);
        let f = write(dir.path(), "named.conf", "include \"missing.conf\";\n");
        assert!(read(&f).unwrap_err().to_string().contains("missing.conf"));
        let f = write(dir.path(), "loop.conf", "include \"loop.conf\";\n");
        assert!(read(&f).unwrap_err().to_string().contains("deeper"));
    }
}
