//! Domain names in uncompressed wire form.
//!
//! The snapshot keeps every owner name as its wire encoding (length-prefixed labels ending in
//! the root label). Keys are lower-cased (RFC 4343 comparison is ASCII case-insensitive), so a
//! lookup is a hash probe on a byte slice and needs no allocation.

use std::fmt::Write as _;

use thiserror::Error;

/// Longest name in wire form (RFC 1035 §2.3.4).
pub const MAX_NAME_LEN: usize = 255;
/// Longest label (RFC 1035 §2.3.4).
pub const MAX_LABEL_LEN: usize = 63;

/// Why a name in presentation form could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NameError {
    /// A label longer than 63 octets.
    #[error("label longer than 63 octets")]
    LabelTooLong,
    /// A name longer than 255 octets in wire form.
    #[error("name longer than 255 octets")]
    NameTooLong,
    /// Two dots in a row, or a leading dot.
    #[error("empty label")]
    EmptyLabel,
    /// A backslash escape that is cut short or out of range.
    #[error("bad escape sequence")]
    BadEscape,
    /// A relative name where no origin is known.
    #[error("relative name without an origin")]
    NoOrigin,
}

/// An owned domain name in uncompressed wire form, case preserved.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(Box<[u8]>);

impl Name {
    /// The root name.
    pub fn root() -> Self {
        Self(Box::new([0]))
    }

    /// Wraps wire bytes that are already known to be a valid uncompressed name.
    ///
    /// Returns `None` unless `wire` is exactly one well-formed name.
    pub fn from_wire(wire: &[u8]) -> Option<Self> {
        (wire_len(wire) == Some(wire.len())).then(|| Self(wire.into()))
    }

    /// Parses presentation form (`www.example.com.`, `\046`, `\.`); `origin` completes
    /// relative names and `@`.
    pub fn parse(text: &str, origin: Option<&Name>) -> Result<Self, NameError> {
        if text == "@" {
            return origin.cloned().ok_or(NameError::NoOrigin);
        }
        if text == "." {
            return Ok(Self::root());
        }
        let mut out = Vec::with_capacity(text.len() + 2);
        let mut label_start = 0;
        out.push(0);
        let bytes = text.as_bytes();
        let mut i = 0;
        let mut absolute = false;
        while i < bytes.len() {
            let b = bytes[i];
            match b {
                b'.' => {
                    close_label(&mut out, label_start)?;
                    if i + 1 == bytes.len() {
                        absolute = true;
                    }
                    label_start = out.len();
                    out.push(0);
                    i += 1;
                    continue;
                }
                b'\\' => {
                    let (octet, used) = unescape(&bytes[i + 1..])?;
                    out.push(octet);
                    i += 1 + used;
                }
                _ => {
                    out.push(b);
                    i += 1;
                }
            }
            if out.len() - label_start - 1 > MAX_LABEL_LEN {
                return Err(NameError::LabelTooLong);
            }
        }
        if absolute {
            // The trailing dot opened an empty label: that is the root label.
            out.truncate(label_start);
            out.push(0);
        } else {
            close_label(&mut out, label_start)?;
            let origin = origin.ok_or(NameError::NoOrigin)?;
            out.extend_from_slice(origin.wire());
        }
        if out.len() > MAX_NAME_LEN {
            return Err(NameError::NameTooLong);
        }
        Ok(Self(out.into()))
    }

    /// The wire form, ending in the root label.
    pub fn wire(&self) -> &[u8] {
        &self.0
    }

    /// The lower-cased copy used as a lookup key.
    pub fn to_lowercase(&self) -> Self {
        Self(self.0.to_ascii_lowercase().into())
    }

    /// Number of labels, not counting the root.
    pub fn label_count(&self) -> usize {
        label_offsets(&self.0).count()
    }

    /// Whether `self` equals `ancestor` or lies below it (case-insensitive).
    pub fn is_subdomain_of(&self, ancestor: &Name) -> bool {
        is_subdomain(&self.0, &ancestor.0)
    }

    /// The name one label up, or `None` for the root.
    pub fn parent(&self) -> Option<Name> {
        if self.0.len() == 1 {
            return None;
        }
        let skip = 1 + self.0[0] as usize;
        Some(Self(self.0[skip..].into()))
    }

    /// The first label's octets (empty for the root).
    pub fn first_label(&self) -> &[u8] {
        &self.0[1..1 + self.0[0] as usize]
    }

    /// Whether the first label is `*` (RFC 4592 wildcard owner).
    pub fn is_wildcard(&self) -> bool {
        self.first_label() == b"*"
    }

    /// `label.self` as a new name.
    pub fn prepend(&self, label: &[u8]) -> Result<Name, NameError> {
        if label.is_empty() {
            return Err(NameError::EmptyLabel);
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(NameError::LabelTooLong);
        }
        let mut out = Vec::with_capacity(self.0.len() + label.len() + 1);
        out.push(label.len() as u8);
        out.extend_from_slice(label);
        out.extend_from_slice(&self.0);
        if out.len() > MAX_NAME_LEN {
            return Err(NameError::NameTooLong);
        }
        Ok(Self(out.into()))
    }

    /// Presentation form with a trailing dot and RFC 1035 escapes.
    pub fn to_text(&self) -> String {
        wire_to_text(&self.0)
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_text())
    }
}

impl std::fmt::Debug for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Name({})", self.to_text())
    }
}

impl std::str::FromStr for Name {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = if s.ends_with('.') || s == "@" { s.to_owned() } else { format!("{s}.") };
        Self::parse(&s, None)
    }
}

fn close_label(out: &mut [u8], label_start: usize) -> Result<(), NameError> {
    let len = out.len() - label_start - 1;
    if len == 0 {
        return Err(NameError::EmptyLabel);
    }
    // Lossless: the parser refuses a label over MAX_LABEL_LEN (63) before closing it.
    out[label_start] = len as u8;
    Ok(())
}

/// Decodes the escape after a backslash: `\DDD` or `\X`. Returns the octet and bytes used.
pub(crate) fn unescape(rest: &[u8]) -> Result<(u8, usize), NameError> {
    match rest {
        [a, b, c, ..] if a.is_ascii_digit() && b.is_ascii_digit() && c.is_ascii_digit() => {
            let v = u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0');
            u8::try_from(v).map(|o| (o, 3)).map_err(|_| NameError::BadEscape)
        }
        [d, ..] if d.is_ascii_digit() => Err(NameError::BadEscape),
        [x, ..] => Ok((*x, 1)),
        [] => Err(NameError::BadEscape),
    }
}

/// Length of the well-formed uncompressed name at the start of `wire`.
pub fn wire_len(wire: &[u8]) -> Option<usize> {
    let mut i = 0;
    loop {
        let len = *wire.get(i)? as usize;
        if len > MAX_LABEL_LEN {
            return None;
        }
        i += 1 + len;
        if i > MAX_NAME_LEN {
            return None;
        }
        if len == 0 {
            return Some(i);
        }
    }
}

/// Start offsets of each label of a well-formed wire name (not the root label).
pub fn label_offsets(wire: &[u8]) -> impl Iterator<Item = usize> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        let len = *wire.get(i)? as usize;
        if len == 0 {
            return None;
        }
        let at = i;
        i += 1 + len;
        Some(at)
    })
}

/// Whether `name` equals `ancestor` or lies below it; both well-formed, compared
/// case-insensitively label by label.
pub fn is_subdomain(name: &[u8], ancestor: &[u8]) -> bool {
    if ancestor.len() > name.len() {
        return false;
    }
    let start = name.len() - ancestor.len();
    // The suffix must begin on a label boundary.
    let on_boundary = start == 0 || start + 1 == name.len() || label_offsets(name).any(|o| o == start);
    on_boundary && name[start..].eq_ignore_ascii_case(ancestor)
}

/// Presentation form of a wire name.
pub fn wire_to_text(wire: &[u8]) -> String {
    let mut s = String::with_capacity(wire.len() + 1);
    for off in label_offsets(wire) {
        let len = wire[off] as usize;
        for &b in &wire[off + 1..off + 1 + len] {
            push_escaped(&mut s, b, b".;()\"\\@$ ");
        }
        s.push('.');
    }
    if s.is_empty() {
        s.push('.');
    }
    s
}

/// Appends octet `b`, escaping it when it is special or not printable.
pub(crate) fn push_escaped(s: &mut String, b: u8, special: &[u8]) {
    if special.contains(&b) {
        s.push('\\');
        s.push(b as char);
    } else if b.is_ascii_graphic() || b == b' ' {
        s.push(b as char);
    } else {
        let _ = write!(s, "\\{b:03}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_relative_absolute_and_escapes() {
        let origin = Name::parse("example.com.", None).unwrap();
        let n = Name::parse("www", Some(&origin)).unwrap();
        assert_eq!(n.to_text(), "www.example.com.");
        let n = Name::parse("a\\.b.example.", None).unwrap();
        assert_eq!(n.label_count(), 2);
        assert_eq!(n.first_label(), b"a.b");
        assert_eq!(n.to_text(), "a\\.b.example.");
        let n = Name::parse("\\042.example.", None).unwrap();
        assert!(n.is_wildcard());
        assert_eq!(Name::parse("@", Some(&origin)).unwrap(), origin);
        assert_eq!(Name::parse(".", None).unwrap(), Name::root());
    }

    #[test]
    fn rejects_bad_names() {
        assert_eq!(Name::parse("a..b.", None), Err(NameError::EmptyLabel));
        assert_eq!(Name::parse("www", None), Err(NameError::NoOrigin));
        let long = "a".repeat(64);
        assert_eq!(Name::parse(&format!("{long}."), None), Err(NameError::LabelTooLong));
        let many = "abcdefghi.".repeat(26);
        assert_eq!(Name::parse(&many, None), Err(NameError::NameTooLong));
        assert_eq!(Name::parse("a\\256.", None), Err(NameError::BadEscape));
    }

    #[test]
    fn subdomain_respects_label_boundaries() {
        let a = Name::parse("www.Example.com.", None).unwrap();
        let b = Name::parse("example.COM.", None).unwrap();
        let c = Name::parse("ample.com.", None).unwrap();
        assert!(a.is_subdomain_of(&b));
        assert!(!a.is_subdomain_of(&c));
        assert!(a.is_subdomain_of(&Name::root()));
    }
}
