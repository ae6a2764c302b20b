//! RFC 1035 §5 master files: `$ORIGIN`, `$TTL`, `$INCLUDE`, `@`, relative names, parentheses,
//! comments, escapes, quoted strings, class and TTL in either order, RFC 3597 generic RDATA.
//!
//! The reader is our own so that every error carries the file and line, and so that real-world
//! syntax (`MX 10 @`, `TYPE65280 \# 2 abcd`) works. RDATA is handed to [`crate::rdata`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use thiserror::Error;

use crate::name::Name;
use crate::rdata::{self, Token, parse_ttl, type_from_str};

/// A zone file that could not be read: where and why.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{}:{line}: {message}", file.display())]
pub struct ZoneFileError {
    /// The file (the included one, for errors inside a `$INCLUDE`).
    pub file: PathBuf,
    /// 1-based line number; 0 when the file itself could not be opened.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// One resource record as read from a file, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRecord {
    /// Owner name, case preserved.
    pub owner: Name,
    /// Type code.
    pub rtype: u16,
    /// TTL in seconds.
    pub ttl: u32,
    /// Uncompressed wire RDATA.
    pub rdata: Vec<u8>,
    /// File the record was read from (shared by all its records).
    pub file: Arc<Path>,
    /// Line the record starts on.
    pub line: usize,
}

/// TTL of records before any TTL or `$TTL` is stated.
pub const DEFAULT_TTL: u32 = 3600;

/// Deepest `$INCLUDE` nesting accepted; deeper is almost surely a loop.
const MAX_INCLUDE_DEPTH: usize = 16;

/// Reads a zone file from disk. `origin` is used until a `$ORIGIN` says otherwise.
pub fn read_file(path: &Path, origin: Option<&Name>) -> Result<Vec<SourceRecord>, ZoneFileError> {
    let mut out = Vec::new();
    let text = std::fs::read_to_string(path).map_err(|e| ZoneFileError {
        file: path.to_owned(),
        line: 0,
        message: format!("cannot read: {e}"),
    })?;
    Reader { out: &mut out, last_owner: None }.read(path, &text, origin.cloned(), None, 0)?;
    Ok(out)
}

/// Reads zone-file text. `path` is used in errors and to resolve relative `$INCLUDE`s.
pub fn read_str(text: &str, path: &Path, origin: Option<&Name>) -> Result<Vec<SourceRecord>, ZoneFileError> {
    let mut out = Vec::new();
    Reader { out: &mut out, last_owner: None }.read(path, text, origin.cloned(), None, 0)?;
    Ok(out)
}

/// Splits RDATA in presentation form (one record's data, as Route53 and other APIs give it)
/// into tokens: quotes removed, escapes kept, comments and parentheses honoured.
pub fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    for entry in lex(text) {
        let entry = entry.map_err(|(_, m)| m)?;
        tokens.extend(entry.tokens);
    }
    Ok(tokens)
}

/// A logical entry: the tokens of one record or directive, parentheses folded.
struct Entry {
    line: usize,
    /// The entry began with white space: the owner is the previous one.
    blank_owner: bool,
    tokens: Vec<Token>,
}

fn lex(text: &str) -> impl Iterator<Item = Result<Entry, (usize, String)>> + '_ {
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut line = 1;
    std::iter::from_fn(move || {
        loop {
            if i >= bytes.len() {
                return None;
            }
            let start_line = line;
            let blank_owner = bytes[i] == b' ' || bytes[i] == b'\t';
            let mut tokens = Vec::new();
            let mut depth = 0usize;
            let mut paren_line = 0;
            loop {
                let Some(&c) = bytes.get(i) else {
                    if depth > 0 {
                        return Some(Err((paren_line, "unbalanced '(': missing ')'".into())));
                    }
                    break;
                };
                match c {
                    b'\n' => {
                        i += 1;
                        line += 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    b' ' | b'\t' | b'\r' => i += 1,
                    b';' => {
                        while i < bytes.len() && bytes[i] != b'\n' {
                            i += 1;
                        }
                    }
                    b'(' => {
                        if depth == 0 {
                            paren_line = line;
                        }
                        depth += 1;
                        i += 1;
                    }
                    b')' => {
                        if depth == 0 {
                            return Some(Err((line, "unbalanced ')'".into())));
                        }
                        depth -= 1;
                        i += 1;
                    }
                    b'"' => {
                        let quote_line = line;
                        i += 1;
                        let start = i;
                        loop {
                            match bytes.get(i) {
                                None => {
                                    return Some(Err((quote_line, "unterminated quoted string".into())));
                                }
                                Some(b'\\') => i += 2,
                                Some(b'"') => break,
                                Some(b'\n') => {
                                    line += 1;
                                    i += 1;
                                }
                                Some(_) => i += 1,
                            }
                        }
                        let Some(t) = text.get(start..i) else {
                            return Some(Err((quote_line, "bad escape at end of string".into())));
                        };
                        tokens.push(Token { text: t.to_owned(), quoted: true });
                        i += 1;
                    }
                    _ => {
                        // A bare token may embed a quoted part (`alpn="h2,h3"`, as in SVCB):
                        // the quotes go, the text joins the token.
                        let mut tok = String::new();
                        let mut start = i;
                        loop {
                            match bytes.get(i) {
                                Some(b'\\') => i += 2,
                                Some(b'"') => {
                                    let Some(t) = text.get(start..i) else {
                                        return Some(Err((line, "bad escape".into())));
                                    };
                                    tok.push_str(t);
                                    i += 1;
                                    start = i;
                                    while let Some(&c) = bytes.get(i) {
                                        match c {
                                            b'\\' => i += 2,
                                            b'"' => break,
                                            _ => i += 1,
                                        }
                                    }
                                    let Some(t) = text.get(start..i.min(bytes.len())) else {
                                        return Some(Err((line, "bad escape".into())));
                                    };
                                    tok.push_str(t);
                                    if i >= bytes.len() {
                                        return Some(Err((line, "unterminated quoted string".into())));
                                    }
                                    i += 1;
                                    start = i;
                                }
                                Some(b' ' | b'\t' | b'\r' | b'\n' | b';' | b'(' | b')') | None => {
                                    break;
                                }
                                Some(_) => i += 1,
                            }
                        }
                        let end = i.min(bytes.len());
                        let Some(t) = text.get(start..end) else {
                            return Some(Err((line, "bad escape".into())));
                        };
                        tok.push_str(t);
                        tokens.push(Token::bare(tok));
                    }
                }
            }
            if !tokens.is_empty() {
                return Some(Ok(Entry { line: start_line, blank_owner, tokens }));
            }
        }
    })
}

fn is_class(s: &str) -> bool {
    ["IN", "CH", "CS", "HS"].iter().any(|c| c.eq_ignore_ascii_case(s))
        || s.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("CLASS"))
}

fn looks_like_ttl(s: &str) -> bool {
    s.as_bytes().first().is_some_and(u8::is_ascii_digit)
}

struct Reader<'o> {
    out: &'o mut Vec<SourceRecord>,
    last_owner: Option<Name>,
}

impl Reader<'_> {
    /// Reads one file. `origin` and `default_ttl` are inherited from an including file;
    /// changes to them here do not flow back (RFC 1035 §5.1 for the origin).
    fn read(
        &mut self,
        path: &Path,
        text: &str,
        mut origin: Option<Name>,
        mut default_ttl: Option<u32>,
        depth: usize,
    ) -> Result<(), ZoneFileError> {
        let err = |line: usize, message: String| ZoneFileError { file: path.to_owned(), line, message };
        let shared: Arc<Path> = Arc::from(path);
        for entry in lex(text) {
            let entry = entry.map_err(|(line, m)| err(line, m))?;
            let line = entry.line;
            let toks = &entry.tokens;
            let first = &toks[0];
            if !entry.blank_owner && !first.quoted && first.text.starts_with('$') {
                let arg = |n: usize| toks.get(n).map(|t| t.text.as_str());
                match first.text.to_ascii_uppercase().as_str() {
                    "$ORIGIN" => {
                        let o = arg(1).ok_or_else(|| err(line, "$ORIGIN needs a name".into()))?;
                        let name = Name::parse(o, origin.as_ref())
                            .map_err(|e| err(line, format!("bad $ORIGIN '{o}': {e}")))?;
                        origin = Some(name);
                        if toks.len() > 2 {
                            return Err(err(line, "extra text after $ORIGIN".into()));
                        }
                    }
                    "$TTL" => {
                        let t = arg(1).ok_or_else(|| err(line, "$TTL needs a value".into()))?;
                        default_ttl = Some(parse_ttl(t).map_err(|e| err(line, e))?);
                        if toks.len() > 2 {
                            return Err(err(line, "extra text after $TTL".into()));
                        }
                    }
                    "$INCLUDE" => {
                        let f = arg(1).ok_or_else(|| err(line, "$INCLUDE needs a file name".into()))?;
                        if depth >= MAX_INCLUDE_DEPTH {
                            return Err(err(line, format!("$INCLUDE nested deeper than {MAX_INCLUDE_DEPTH}")));
                        }
                        let inc_origin = match arg(2) {
                            Some(o) => Some(
                                Name::parse(o, origin.as_ref())
                                    .map_err(|e| err(line, format!("bad $INCLUDE origin '{o}': {e}")))?,
                            ),
                            None => origin.clone(),
                        };
                        let inc = Path::new(f);
                        let inc = if inc.is_absolute() {
                            inc.to_owned()
                        } else {
                            path.parent().unwrap_or(Path::new(".")).join(inc)
                        };
                        let inc_text = std::fs::read_to_string(&inc)
                            .map_err(|e| err(line, format!("cannot read $INCLUDE file {}: {e}", inc.display())))?;
                        // RFC 1035 §5.1: the include never changes the parent's origin.
                        self.read(&inc, &inc_text, inc_origin, default_ttl, depth + 1)?;
                    }
                    other => return Err(err(line, format!("unsupported directive {other}"))),
                }
                continue;
            }
            self.record(&entry, &shared, origin.as_ref(), default_ttl).map_err(|m| err(line, m))?;
        }
        Ok(())
    }

    fn record(
        &mut self,
        entry: &Entry,
        path: &Arc<Path>,
        origin: Option<&Name>,
        default_ttl: Option<u32>,
    ) -> Result<(), String> {
        let mut toks = entry.tokens.as_slice();
        let owner = if entry.blank_owner {
            self.last_owner.clone().ok_or("record has no owner name and no previous owner")?
        } else {
            let (o, rest) = toks.split_first().ok_or("empty entry")?;
            toks = rest;
            Name::parse(&o.text, origin).map_err(|e| format!("bad owner name '{}': {e}", o.text))?
        };
        self.last_owner = Some(owner.clone());
        let mut ttl = None;
        let mut class_seen = false;
        let code = loop {
            let (t, rest) = toks.split_first().ok_or("missing record type")?;
            toks = rest;
            if !class_seen && is_class(&t.text) {
                if !t.text.eq_ignore_ascii_case("IN") {
                    return Err(format!("class {} is not served (only IN)", t.text));
                }
                class_seen = true;
            } else if ttl.is_none() && looks_like_ttl(&t.text) {
                ttl = Some(parse_ttl(&t.text)?);
            } else {
                break type_from_str(&t.text).ok_or_else(|| format!("unknown record type '{}'", t.text))?;
            }
        };
        let data =
            rdata::parse_rdata(code, toks, origin).map_err(|e| format!("{}: {e}", rdata::type_to_string(code)))?;
        // An explicit TTL, else $TTL, else 3600. RFC 1035 §5.1 would reuse the last TTL
        // stated; RFC 2308 §4 replaced that with $TTL, and NSD and Knot use 3600 without it,
        // so the same file gives the same answers on all three.
        let ttl = ttl.or(default_ttl).unwrap_or(DEFAULT_TTL);
        self.out.push(SourceRecord { owner, rtype: code, ttl, rdata: data, file: path.clone(), line: entry.line });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rdata::rtype;

    fn read(text: &str) -> Result<Vec<SourceRecord>, ZoneFileError> {
        let origin: Name = "example.com.".parse().unwrap();
        read_str(text, Path::new("t.zone"), Some(&origin))
    }

    #[test]
    fn reads_common_syntax() {
        let recs = read(
            "$TTL 1h\n@ IN SOA ns1 host.master ( 1 ; serial\n 2h 15m 2w 5m )\n  NS ns1\n\
             \tMX 10 @\nwww 300 IN A 192.0.2.1\n IN 60 AAAA 2001:db8::1\ntxt TXT \"a b\" c \"q\\\"\"\n",
        )
        .unwrap();
        assert_eq!(recs.len(), 6);
        assert_eq!(recs[0].ttl, 3600);
        assert_eq!(recs[0].line, 2);
        assert_eq!(recs[2].owner.to_text(), "example.com.");
        assert_eq!(rdata::rdata_to_text(rtype::MX, &recs[2].rdata), "10 example.com.");
        assert_eq!(recs[3].ttl, 300);
        assert_eq!(recs[4].owner.to_text(), "www.example.com.");
        assert_eq!(recs[4].ttl, 60);
        assert_eq!(rdata::rdata_to_text(rtype::TXT, &recs[5].rdata), "\"a b\" \"c\" \"q\\\"\"");
        assert_eq!(recs[5].line, 8);
    }

    #[test]
    fn errors_name_the_line() {
        let e = read("$TTL 60\nwww A 192.0.2.1\nbad A 300.1.1.1\n").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.to_string().starts_with("t.zone:3: A: bad IPv4 address"), "{e}");
        let e = read("$TTL 60\nx ( A\n 192.0.2.1\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert_eq!(read("www A 192.0.2.1\n").unwrap()[0].ttl, DEFAULT_TTL);
        let e = read("$TTL 60\nwww CH A 192.0.2.1\n").unwrap_err();
        assert!(e.message.contains("class CH"));
        let e = read("$TTL 60\nwww BOGUS 1\n").unwrap_err();
        assert!(e.message.contains("unknown record type"));
    }

    #[test]
    fn origin_changes_and_generic_types() {
        let recs =
            read("$TTL 5\n$ORIGIN sub.example.com.\nx TYPE65280 \\# 2 abcd\n$ORIGIN example.org.\n@ A 192.0.2.1\n")
                .unwrap();
        assert_eq!(recs[0].owner.to_text(), "x.sub.example.com.");
        assert_eq!(recs[0].rtype, 65280);
        assert_eq!(recs[0].rdata, vec![0xab, 0xcd]);
        assert_eq!(recs[1].owner.to_text(), "example.org.");
    }
}
