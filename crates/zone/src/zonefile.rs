//! RFC 1035 §5 master files: `$ORIGIN`, `$TTL`, `$INCLUDE`, `@`, relative names, parentheses,
//! comments, escapes, quoted strings, class and TTL in either order, RFC 3597 generic RDATA,
//! and BIND's `$GENERATE`.
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

/// Most records one `$GENERATE` may make. BIND sets no limit; this one is a /16 worth of
/// addresses, so a typo in a range (`1-2000000000`) is an error and not hours of work.
pub const MAX_GENERATE_RECORDS: u64 = 65_536;

/// Most records all the `$GENERATE`s of one file (its `$INCLUDE`s counted) may make: each
/// line can make 65 536 records, so a few lines could otherwise exhaust memory.
pub const MAX_GENERATED_PER_FILE: u64 = 1_048_576;

/// Reads a zone file from disk. `origin` is used until a `$ORIGIN` says otherwise.
pub fn read_file(path: &Path, origin: Option<&Name>) -> Result<Vec<SourceRecord>, ZoneFileError> {
    collect(|take| read_file_with(path, origin, take))
}

/// The records a streaming reader hands over, in a vector.
fn collect(
    read: impl FnOnce(
        &mut dyn FnMut(SourceRecord) -> Result<(), std::convert::Infallible>,
    ) -> Result<(), Stop<std::convert::Infallible>>,
) -> Result<Vec<SourceRecord>, ZoneFileError> {
    let mut out = Vec::new();
    read(&mut |r| {
        out.push(r);
        Ok(())
    })
    .map_err(|e| match e {
        Stop::File(e) => e,
        Stop::Taken(never) => match never {},
    })?;
    Ok(out)
}

/// Reads a zone file from disk like [`read_file`], handing each record to `take` as soon as
/// it is read ([`read_str_with`]). The file is read a block of lines at a time: its text is
/// never held whole.
pub fn read_file_with<E>(
    path: &Path,
    origin: Option<&Name>,
    mut take: impl FnMut(SourceRecord) -> Result<(), E>,
) -> Result<(), Stop<E>> {
    Reader { take: &mut take, last_owner: None, generated: 0 }.read_path(path, origin.cloned())
}

/// Reads zone-file text. `path` is used in errors and to resolve relative `$INCLUDE`s.
pub fn read_str(text: &str, path: &Path, origin: Option<&Name>) -> Result<Vec<SourceRecord>, ZoneFileError> {
    collect(|take| read_str_with(text, path, origin, take))
}

/// Why [`read_str_with`] stopped.
#[derive(Debug)]
pub enum Stop<E> {
    /// The text could not be read.
    File(ZoneFileError),
    /// What took the records refused one.
    Taken(E),
}

/// Reads zone-file text like [`read_str`], handing each record to `take` as soon as it is
/// read instead of collecting them: loading a zone this way never holds the records twice.
/// The first error, of the text or of `take`, stops the reading.
pub fn read_str_with<E>(
    text: &str,
    path: &Path,
    origin: Option<&Name>,
    mut take: impl FnMut(SourceRecord) -> Result<(), E>,
) -> Result<(), Stop<E>> {
    Reader { take: &mut take, last_owner: None, generated: 0 }.read(path, text, origin.cloned(), None, 0)
}

/// Splits RDATA in presentation form (one record's data, as Route53 and other APIs give it)
/// into tokens: quotes removed, escapes kept, comments and parentheses honoured.
pub fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    for entry in lex(text, 1) {
        let entry = entry.map_err(|e| e.message)?;
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
    /// Where the text after the entry starts.
    end: usize,
}

/// Text that is no entry.
struct LexError {
    line: usize,
    message: String,
    /// The text ended inside the entry (an open parenthesis or quote, an escape cut short):
    /// when it is one block of a longer file, more of the file completes it.
    cut: bool,
}

/// The entries of `text`, whose first line is `first_line` of its file.
fn lex(text: &str, first_line: usize) -> impl Iterator<Item = Result<Entry, LexError>> + '_ {
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut line = first_line;
    let fail =
        move |i: usize, line: usize, message: &str| LexError { line, message: message.into(), cut: i >= bytes.len() };
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
                        return Some(Err(fail(i, paren_line, "unbalanced '(': missing ')'")));
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
                            return Some(Err(fail(i, line, "unbalanced ')'")));
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
                                    return Some(Err(fail(i, quote_line, "unterminated quoted string")));
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
                            return Some(Err(fail(i, quote_line, "bad escape at end of string")));
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
                                        return Some(Err(fail(i, line, "bad escape")));
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
                                        return Some(Err(fail(i, line, "bad escape")));
                                    };
                                    tok.push_str(t);
                                    if i >= bytes.len() {
                                        return Some(Err(fail(i, line, "unterminated quoted string")));
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
                            return Some(Err(fail(i, line, "bad escape")));
                        };
                        tok.push_str(t);
                        tokens.push(Token::bare(tok));
                    }
                }
            }
            if !tokens.is_empty() {
                return Some(Ok(Entry { line: start_line, blank_owner, tokens, end: i.min(bytes.len()) }));
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

/// Why a record could not be read or taken.
enum Fail<E> {
    /// What is wrong with the text.
    Text(String),
    /// What took the record refused it.
    Taken(E),
}

impl<E> From<String> for Fail<E> {
    fn from(m: String) -> Self {
        Fail::Text(m)
    }
}

impl<E> From<&str> for Fail<E> {
    fn from(m: &str) -> Self {
        Fail::Text(m.into())
    }
}

/// Octets of a zone file read at a time (whole lines; more when one entry is longer).
const READ_BLOCK: usize = 1 << 20;

/// What a file's directives have set so far.
struct FileState {
    origin: Option<Name>,
    default_ttl: Option<u32>,
    /// The file's name, shared by all its records.
    shared: Arc<Path>,
}

struct Reader<'o, E> {
    take: &'o mut dyn FnMut(SourceRecord) -> Result<(), E>,
    last_owner: Option<Name>,
    /// Records made by `$GENERATE` so far, against [`MAX_GENERATED_PER_FILE`].
    generated: u64,
}

impl<E> Reader<'_, E> {
    /// Reads one file's text. `origin` and `default_ttl` are inherited from an including
    /// file; changes to them here do not flow back (RFC 1035 §5.1 for the origin).
    fn read(
        &mut self,
        path: &Path,
        text: &str,
        origin: Option<Name>,
        default_ttl: Option<u32>,
        depth: usize,
    ) -> Result<(), Stop<E>> {
        let mut file = FileState { origin, default_ttl, shared: Arc::from(path) };
        self.entries(path, text, 1, &mut file, depth, true).map(drop)
    }

    /// Reads a file from disk a block at a time, so its text is never held whole.
    fn read_path(&mut self, path: &Path, origin: Option<Name>) -> Result<(), Stop<E>> {
        use std::io::BufRead as _;
        let cannot = |e: std::io::Error| {
            Stop::File(ZoneFileError { file: path.to_owned(), line: 0, message: format!("cannot read: {e}") })
        };
        let mut input = std::io::BufReader::new(std::fs::File::open(path).map_err(cannot)?);
        let mut file = FileState { origin, default_ttl: None, shared: Arc::from(path) };
        let mut text = String::new();
        let mut line = 1;
        loop {
            // Whole lines: a block more than what the last block left (an entry that did not
            // fit, or nothing), or twice that when it is big, so a runaway parenthesis is
            // not read again and again.
            let want = text.len() + READ_BLOCK.max(text.len());
            let mut end = false;
            while text.len() < want {
                if input.read_line(&mut text).map_err(cannot)? == 0 {
                    end = true;
                    break;
                }
            }
            let done = self.entries(path, &text, line, &mut file, 0, end)?;
            if end {
                return Ok(());
            }
            line += text.as_bytes()[..done].iter().filter(|&&b| b == b'\n').count();
            text.drain(..done);
        }
    }

    /// Reads the entries of `text`, a file's text from line `first_line` on; returns where
    /// the last one read ends. When `last` is false the text is one block of a longer file,
    /// and an entry it cuts short is left for the next block.
    fn entries(
        &mut self,
        path: &Path,
        text: &str,
        first_line: usize,
        file: &mut FileState,
        depth: usize,
        last: bool,
    ) -> Result<usize, Stop<E>> {
        let err = |line: usize, message: String| Stop::File(ZoneFileError { file: path.to_owned(), line, message });
        let fail = |line: usize, f: Fail<E>| match f {
            Fail::Text(m) => err(line, m),
            Fail::Taken(e) => Stop::Taken(e),
        };
        let mut done = 0;
        for entry in lex(text, first_line) {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) if e.cut && !last => return Ok(done),
                Err(e) => return Err(err(e.line, e.message)),
            };
            let line = entry.line;
            let toks = &entry.tokens;
            let first = &toks[0];
            let origin = &mut file.origin;
            let default_ttl = &mut file.default_ttl;
            if !entry.blank_owner && !first.quoted && first.text.starts_with('$') {
                let arg = |n: usize| toks.get(n).map(|t| t.text.as_str());
                match first.text.to_ascii_uppercase().as_str() {
                    "$ORIGIN" => {
                        let o = arg(1).ok_or_else(|| err(line, "$ORIGIN needs a name".into()))?;
                        let name = Name::parse(o, origin.as_ref())
                            .map_err(|e| err(line, format!("bad $ORIGIN '{o}': {e}")))?;
                        *origin = Some(name);
                        if toks.len() > 2 {
                            return Err(err(line, "extra text after $ORIGIN".into()));
                        }
                    }
                    "$TTL" => {
                        let t = arg(1).ok_or_else(|| err(line, "$TTL needs a value".into()))?;
                        *default_ttl = Some(parse_ttl(t).map_err(|e| err(line, e))?);
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
                        self.read(&inc, &inc_text, inc_origin, *default_ttl, depth + 1)?;
                    }
                    "$GENERATE" => {
                        self.generate(&entry, &file.shared, file.origin.as_ref(), file.default_ttl)
                            .map_err(|f| fail(line, f))?;
                    }
                    other => return Err(err(line, format!("unsupported directive {other}"))),
                }
            } else {
                self.record(&entry, &file.shared, file.origin.as_ref(), file.default_ttl).map_err(|f| fail(line, f))?;
            }
            done = entry.end;
        }
        Ok(done)
    }

    fn record(
        &mut self,
        entry: &Entry,
        path: &Arc<Path>,
        origin: Option<&Name>,
        default_ttl: Option<u32>,
    ) -> Result<(), Fail<E>> {
        let mut toks = entry.tokens.as_slice();
        let owner = if entry.blank_owner {
            self.last_owner.clone().ok_or("record has no owner name and no previous owner")?
        } else {
            let (o, rest) = toks.split_first().ok_or("empty entry")?;
            toks = rest;
            Name::parse(&o.text, origin).map_err(|e| format!("bad owner name '{}': {e}", o.text))?
        };
        self.last_owner = Some(owner.clone());
        let (ttl, code) = ttl_class_type(&mut toks)?;
        let data =
            rdata::parse_rdata(code, toks, origin).map_err(|e| format!("{}: {e}", rdata::type_to_string(code)))?;
        let ttl = ttl_or_default(ttl, default_ttl);
        let record = SourceRecord { owner, rtype: code, ttl, rdata: data, file: path.clone(), line: entry.line };
        (self.take)(record).map_err(Fail::Taken)
    }

    /// `$GENERATE range lhs [ttl] [class] type rhs`, as BIND 9.18 reads it: for each value of
    /// the range, `$` in lhs and rhs becomes the value and the result is read as a record
    /// written on this line. `rhs` is one token (quoted when the RDATA has spaces).
    fn generate(
        &mut self,
        entry: &Entry,
        path: &Arc<Path>,
        origin: Option<&Name>,
        default_ttl: Option<u32>,
    ) -> Result<(), Fail<E>> {
        const USAGE: &str = "$GENERATE needs a range, an owner, a type and RDATA \
                             ($GENERATE 1-254 host$ A 192.0.2.$)";
        let mut toks = entry.tokens.get(1..).unwrap_or_default();
        let [range, lhs, rest @ ..] = toks else { return Err(USAGE.into()) };
        toks = rest;
        if range.quoted || lhs.quoted {
            return Err("$GENERATE: the range and the owner cannot be quoted".into());
        }
        let (start, stop, step) = parse_range(&range.text)?;
        let count = u64::from((stop - start) / step) + 1;
        if count > MAX_GENERATE_RECORDS {
            return Err(format!(
                "$GENERATE: range '{}' makes {count} records, more than the {MAX_GENERATE_RECORDS} one \
                 $GENERATE may make",
                range.text
            )
            .into());
        }
        self.generated += count;
        if self.generated > MAX_GENERATED_PER_FILE {
            return Err(format!(
                "$GENERATE: this file's $GENERATE directives make more than {MAX_GENERATED_PER_FILE} records"
            )
            .into());
        }
        let lhs_t = Template::parse(&lhs.text)?;
        if toks.is_empty() {
            return Err(USAGE.into());
        }
        let (ttl, code) = ttl_class_type(&mut toks)?;
        let ttl = ttl_or_default(ttl, default_ttl);
        let (rhs, extra) = toks.split_first().ok_or(USAGE)?;
        if let Some(x) = extra.first() {
            return Err(format!(
                "$GENERATE: extra text '{}' after the RDATA '{}': RDATA with spaces is quoted \
                 (MX \"10 mail$\")",
                x.text, rhs.text
            )
            .into());
        }
        // BIND's lexer drops the backslash of `\"` inside a quoted string and keeps every
        // other escape; the expanded text is then read again, so `"\"a $\""` is one string.
        let rhs_text = if rhs.quoted { unescape_quotes(&rhs.text) } else { rhs.text.clone() };
        let rhs_t = Template::parse(&rhs_text)?;
        let type_name = rdata::type_to_string(code);
        let mut owner_text = String::new();
        let mut data_text = String::new();
        let mut value = start;
        loop {
            let at = |m: String| format!("$GENERATE at {value}: {m}");
            owner_text.clear();
            lhs_t.expand(value, &mut owner_text).map_err(at)?;
            let owner =
                Name::parse(&owner_text, origin).map_err(|e| at(format!("bad owner name '{owner_text}': {e}")))?;
            data_text.clear();
            rhs_t.expand(value, &mut data_text).map_err(at)?;
            let tokens = tokenize(&data_text).map_err(|e| at(format!("{type_name}: {e}")))?;
            let data = rdata::parse_rdata(code, &tokens, origin).map_err(|e| at(format!("{type_name}: {e}")))?;
            let record = SourceRecord { owner, rtype: code, ttl, rdata: data, file: path.clone(), line: entry.line };
            (self.take)(record).map_err(Fail::Taken)?;
            // `stop - value < step` also keeps `value + step` from overflowing.
            if stop - value < step {
                break;
            }
            value += step;
        }
        // `last_owner` is left alone: as in BIND, a blank owner after a $GENERATE is the
        // owner of the record before it.
        Ok(())
    }
}

/// The optional TTL and class (either order) and the type that start a record after its
/// owner; `toks` is left at the RDATA.
fn ttl_class_type(toks: &mut &[Token]) -> Result<(Option<u32>, u16), String> {
    let mut ttl = None;
    let mut class_seen = false;
    loop {
        let (t, rest) = toks.split_first().ok_or("missing record type")?;
        *toks = rest;
        if !class_seen && is_class(&t.text) {
            if !t.text.eq_ignore_ascii_case("IN") {
                return Err(format!("class {} is not served (only IN)", t.text));
            }
            class_seen = true;
        } else if ttl.is_none() && looks_like_ttl(&t.text) {
            ttl = Some(parse_ttl(&t.text)?);
        } else {
            let code = type_from_str(&t.text).ok_or_else(|| format!("unknown record type '{}'", t.text))?;
            return Ok((ttl, code));
        }
    }
}

/// An explicit TTL, else $TTL, else 3600. RFC 1035 §5.1 would reuse the last TTL stated;
/// RFC 2308 §4 replaced that with $TTL, and NSD and Knot use 3600 without it, so the same
/// file gives the same answers on all three.
fn ttl_or_default(ttl: Option<u32>, default_ttl: Option<u32>) -> u32 {
    ttl.or(default_ttl).unwrap_or(DEFAULT_TTL)
}

/// Largest start or stop of a `$GENERATE` range: BIND reads them as C `int`s.
const MAX_RANGE_VALUE: u32 = i32::MAX as u32;

/// `start-stop` or `start-stop/step`.
fn parse_range(text: &str) -> Result<(u32, u32, u32), String> {
    let bad = || {
        format!(
            "$GENERATE: bad range '{text}': expected start-stop or start-stop/step, decimal, \
             0 <= start <= stop <= {MAX_RANGE_VALUE}, step >= 1"
        )
    };
    let number = |s: &str| -> Result<u32, String> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse::<u32>().ok().filter(|n| *n <= MAX_RANGE_VALUE).ok_or_else(bad)
    };
    let (bounds, step) = match text.split_once('/') {
        Some((b, s)) => (b, number(s)?),
        None => (text, 1),
    };
    let (start, stop) = bounds.split_once('-').ok_or_else(bad)?;
    let (start, stop) = (number(start)?, number(stop)?);
    if stop < start {
        return Err(format!("$GENERATE: range '{text}' ends before it starts"));
    }
    if step == 0 {
        return Err(format!("$GENERATE: range '{text}' has step 0"));
    }
    Ok((start, stop, step))
}

/// Text of a quoted token as BIND's lexer keeps it: `\"` loses its backslash, every other
/// escape stays for the second reading.
fn unescape_quotes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('"') => out.push('"'),
            Some(n) => {
                out.push('\\');
                out.push(n);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// How a `$GENERATE` value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Base {
    /// `d`: decimal.
    Decimal,
    /// `o`: octal.
    Octal,
    /// `x`: lower-case hexadecimal.
    Hex,
    /// `X`: upper-case hexadecimal.
    HexUpper,
    /// `n`: nibbles, least significant first, dot-separated (ip6.arpa labels).
    Nibble,
    /// `N`: the same in upper case.
    NibbleUpper,
}

/// One part of a `$GENERATE` template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    /// Copied as it is.
    Text(String),
    /// The iterator plus `offset`, at least `width` characters wide.
    Value { offset: i32, width: usize, base: Base },
}

/// Widest value a modifier may ask for: BIND writes each value into 128 octets.
const MAX_WIDTH: usize = 127;

/// A `$GENERATE` lhs or rhs, split once into text and values.
#[derive(Debug)]
struct Template(Vec<Piece>);

impl Template {
    /// BIND's rules (`genname` in lib/dns/master.c): `$$` is a `$`; a backslash and the
    /// character after it are copied unchanged (so `\$` reaches the name or RDATA reader as
    /// an escaped, literal `$`); `$` is the value; `${offset[,width[,base]]}` modifies it.
    fn parse(text: &str) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut lit = String::new();
        let mut chars = text.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    lit.push(c);
                    if let Some((_, n)) = chars.next() {
                        lit.push(n);
                    }
                }
                '$' => match chars.peek() {
                    Some((_, '$')) => {
                        chars.next();
                        lit.push('$');
                    }
                    Some(&(open, '{')) => {
                        let body_start = open + 1;
                        let close = text[body_start..]
                            .find('}')
                            .map(|n| body_start + n)
                            .ok_or_else(|| format!("$GENERATE: '${{' without '}}' in '{text}'"))?;
                        let spec = &text[i..=close];
                        let piece = parse_modifier(&text[body_start..close]).ok_or_else(|| {
                            format!(
                                "$GENERATE: bad modifier '{spec}': expected ${{offset}}, ${{offset,width}} or \
                                 ${{offset,width,base}}, base one of d, o, x, X, n, N, width at most {MAX_WIDTH}"
                            )
                        })?;
                        while chars.next_if(|(j, _)| *j <= close).is_some() {}
                        if !lit.is_empty() {
                            pieces.push(Piece::Text(std::mem::take(&mut lit)));
                        }
                        pieces.push(piece);
                    }
                    _ => {
                        if !lit.is_empty() {
                            pieces.push(Piece::Text(std::mem::take(&mut lit)));
                        }
                        pieces.push(Piece::Value { offset: 0, width: 0, base: Base::Decimal });
                    }
                },
                _ => lit.push(c),
            }
        }
        if !lit.is_empty() {
            pieces.push(Piece::Text(lit));
        }
        Ok(Self(pieces))
    }

    /// Appends the template for iterator `it` to `out`.
    fn expand(&self, it: u32, out: &mut String) -> Result<(), String> {
        use std::fmt::Write as _;
        for piece in &self.0 {
            let (offset, width, base) = match piece {
                Piece::Text(t) => {
                    out.push_str(t);
                    continue;
                }
                Piece::Value { offset, width, base } => (*offset, *width, *base),
            };
            // BIND computes in a C int and refuses a sum past its maximum; below zero is
            // allowed and written as the 32-bit two's complement in the unsigned bases.
            let v = i32::try_from(i64::from(it) + i64::from(offset))
                .map_err(|_| format!("{it} + {offset} is more than {}", i32::MAX))?;
            let u = v as u32;
            // Writing to a String cannot fail.
            let _ = match base {
                Base::Decimal => write!(out, "{v:0width$}"),
                Base::Octal => write!(out, "{u:0width$o}"),
                Base::Hex => write!(out, "{u:0width$x}"),
                Base::HexUpper => write!(out, "{u:0width$X}"),
                Base::Nibble | Base::NibbleUpper => {
                    nibbles(out, u, width, base == Base::NibbleUpper);
                    Ok(())
                }
            };
        }
        Ok(())
    }
}

/// `offset`, `offset,width` or `offset,width,base` (the text between the braces).
fn parse_modifier(body: &str) -> Option<Piece> {
    let mut parts = body.split(',');
    let offset = parts.next()?;
    let digits = offset.strip_prefix(['+', '-']).unwrap_or(offset);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let offset: i32 = offset.strip_prefix('+').unwrap_or(offset).parse().ok()?;
    let width = match parts.next() {
        None => 0,
        Some(w) => {
            let w = w.strip_prefix('+').unwrap_or(w);
            if w.is_empty() || !w.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            w.parse::<usize>().ok().filter(|w| *w <= MAX_WIDTH)?
        }
    };
    let base = match parts.next() {
        None => Base::Decimal,
        Some("d") => Base::Decimal,
        Some("o") => Base::Octal,
        Some("x") => Base::Hex,
        Some("X") => Base::HexUpper,
        Some("n") => Base::Nibble,
        Some("N") => Base::NibbleUpper,
        Some(_) => return None,
    };
    if parts.next().is_some() {
        return None;
    }
    Some(Piece::Value { offset, width, base })
}

/// Nibble form, as BIND writes it: the hex digits of `value` least significant first, a dot
/// between them, zero nibbles added until `width` characters (dots counted) are written.
/// An even width thus ends in a dot: `${0,4,n}` of 0x12 is `2.1.`, ready to prefix a name.
fn nibbles(out: &mut String, mut value: u32, mut width: usize, upper: bool) {
    loop {
        let digit = char::from_digit(value & 0xf, 16).unwrap_or('0');
        out.push(if upper { digit.to_ascii_uppercase() } else { digit });
        value >>= 4;
        width = width.saturating_sub(1);
        if width > 0 || value != 0 {
            out.push('.');
            width = width.saturating_sub(1);
        }
        if value == 0 && width == 0 {
            break;
        }
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

    fn texts(recs: &[SourceRecord]) -> Vec<String> {
        recs.iter()
            .map(|r| {
                format!(
                    "{} {} {} {}",
                    r.owner.to_text(),
                    r.ttl,
                    rdata::type_to_string(r.rtype),
                    rdata::rdata_to_text(r.rtype, &r.rdata)
                )
            })
            .collect()
    }

    #[test]
    fn generate_expands_like_bind() {
        let recs = read(
            "$TTL 300\n\
             $GENERATE 1-3 host-${0,3} A 10.0.0.$\n\
             $GENERATE 10-20/5 $.rev 60 IN PTR h${-9,2,x}.example.net.\n\
             $GENERATE 250-251 n${0,4,n}x IN AAAA 2001:db8::${0,0,X}\n\
             $GENERATE 0-0 esc\\$$ TXT \"a \\\"$\\\" \\$ $$\"\n\
             $GENERATE 0-0 neg${-1,3} CNAME ${-1,3,o}.oct\n",
        )
        .unwrap();
        assert_eq!(
            texts(&recs),
            [
                "host-001.example.com. 300 A 10.0.0.1",
                "host-002.example.com. 300 A 10.0.0.2",
                "host-003.example.com. 300 A 10.0.0.3",
                "10.rev.example.com. 60 PTR h01.example.net.",
                "15.rev.example.com. 60 PTR h06.example.net.",
                "20.rev.example.com. 60 PTR h0b.example.net.",
                "na.f.x.example.com. 300 AAAA 2001:db8::fa",
                "nb.f.x.example.com. 300 AAAA 2001:db8::fb",
                "esc\\$0.example.com. 300 TXT \"a\" \"0\" \"$\" \"$\"",
                "neg-01.example.com. 300 CNAME 37777777777.oct.example.com.",
            ]
        );
        assert!(recs.iter().all(|r| r.line > 1));
        assert_eq!(recs[3].line, 3);
    }

    #[test]
    fn nibbles_are_written_as_bind_writes_them() {
        let n = |v: u32, w: usize| {
            let mut s = String::new();
            nibbles(&mut s, v, w, false);
            s
        };
        assert_eq!(n(0, 0), "0");
        assert_eq!(n(0x12, 0), "2.1");
        assert_eq!(n(0x12, 3), "2.1");
        // An even width ends in a dot, so `${0,4,n}` can prefix the rest of a name.
        assert_eq!(n(0x12, 4), "2.1.");
        assert_eq!(n(0x1, 7), "1.0.0.0");
        assert_eq!(n(u32::MAX, 0), "f.f.f.f.f.f.f.f");
        let mut s = String::new();
        nibbles(&mut s, 0xab, 3, true);
        assert_eq!(s, "B.A");
    }

    #[test]
    fn generate_owner_and_ttl_follow_the_file() {
        // $ORIGIN applies, TTL defaults like a written record, the owner before the
        // $GENERATE stays the owner of a following blank-owner line.
        let recs = read(
            "www A 192.0.2.1\n$ORIGIN sub.example.com.\n$GENERATE 1-1 @ A 192.0.2.$\n\
             $GENERATE 2-2 h$ A 192.0.2.$\n  TXT after\n",
        )
        .unwrap();
        assert_eq!(
            texts(&recs),
            [
                "www.example.com. 3600 A 192.0.2.1",
                "sub.example.com. 3600 A 192.0.2.1",
                "h2.sub.example.com. 3600 A 192.0.2.2",
                "www.example.com. 3600 TXT \"after\"",
            ]
        );
    }

    #[test]
    fn generate_errors_name_the_line() {
        let cases = [
            ("$GENERATE 5-1 h$ A 10.0.0.$", "ends before it starts"),
            ("$GENERATE 1-10x h$ A 10.0.0.$", "bad range '1-10x'"),
            ("$GENERATE -1-10 h$ A 10.0.0.$", "bad range"),
            ("$GENERATE 1-10/0 h$ A 10.0.0.$", "step 0"),
            ("$GENERATE 1-2147483648 h$ A 10.0.0.$", "bad range"),
            ("$GENERATE 0-65536 h$ A 10.0.0.1", "makes 65537 records, more than the 65536"),
            ("$GENERATE 1-2 h${0,3,q} A 10.0.0.$", "bad modifier '${0,3,q}'"),
            ("$GENERATE 1-2 h${0,3 A 10.0.0.$", "'${' without '}'"),
            ("$GENERATE 1-2 h${0,128} A 10.0.0.$", "bad modifier"),
            ("$GENERATE 1-2 h${x} A 10.0.0.$", "bad modifier"),
            ("$GENERATE 1-2 h$ MX 10 mail$", "extra text 'mail$' after the RDATA '10'"),
            ("$GENERATE 1-2 h$ BOGUS x", "unknown record type 'BOGUS'"),
            ("$GENERATE 1-2 h$ CH A 10.0.0.$", "class CH"),
            ("$GENERATE 1-2 h$", "needs a range, an owner, a type and RDATA"),
            ("$GENERATE 1-2 h$ A", "needs a range"),
            ("$GENERATE 255-256 h$ A 10.0.0.$", "$GENERATE at 256: A: bad IPv4 address '10.0.0.256'"),
            ("$GENERATE 2147483647-2147483647 h${1} A 10.0.0.1", "is more than 2147483647"),
        ];
        for (line, want) in cases {
            let e = read(&format!("$TTL 60\n\n{line}\n")).unwrap_err();
            assert_eq!(e.line, 3, "{line}: {e}");
            assert!(e.message.contains(want), "{line}: {e}");
            assert!(e.to_string().starts_with("t.zone:3: "), "{e}");
        }
    }

    #[test]
    fn a_file_read_block_by_block_reads_as_its_whole_text() {
        // Entries spanning lines (parentheses, quoted strings with newlines, comments) in
        // more than two blocks' worth of text, so blocks end inside entries.
        let mut text = String::from("$ORIGIN example.com.\n$TTL 60\n@ SOA ns h ( 1 2\n 3 4 5 )\n");
        let mut i = 0;
        while text.len() < 2 * READ_BLOCK + 4096 {
            text.push_str(&format!("h{i} 300 IN TXT ( \"a\" ; one\n  \"b;\n{i}\" )\n  A 192.0.2.{}\n", i % 250));
            i += 1;
        }
        let path = std::env::temp_dir().join(format!("r53dns-blocks-{}.zone", std::process::id()));
        std::fs::write(&path, &text).unwrap();
        let whole = read_str(&text, &path, None).unwrap();
        let streamed = read_file(&path, None);
        // An error after the first block names the same line either way.
        std::fs::write(&path, format!("{text}ok A 192.0.2.1\nbad A 192.0.2.300\n")).unwrap();
        let error = read_file(&path, None).unwrap_err();
        std::fs::remove_file(&path).unwrap();
        let streamed = streamed.unwrap();
        assert_eq!(streamed.len(), whole.len());
        assert!(streamed == whole, "the same records, lines and all");
        assert_eq!(error.line, text.lines().count() + 2, "{error}");
        assert!(error.message.contains("bad IPv4 address"), "{error}");
    }

    #[test]
    fn generated_records_are_limited_per_file() {
        let line = "$GENERATE 1-65536 h$ TXT x\n";
        let e = read(&line.repeat(17)).unwrap_err();
        assert_eq!(e.line, 17);
        assert!(e.message.contains("more than 1048576 records"), "{e}");
    }
}
