//! Heap-free containers for decoded events: a task name (`comm`) and a namespace list are
//! decoded for most events, and keeping them inline means decoding a fork, exit, setns,
//! unshare or OOM record allocates nothing.
use std::fmt;

use serde::{Serialize, Serializer, ser::SerializeSeq};

/// A string of at most `N` bytes, stored inline.

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ShortStr<const N: usize> {
    len: u8,
    buf: [u8; N],
}

/// A kernel task name: 15 bytes, each invalid byte becoming U+FFFD (3 bytes) at worst.
pub type Comm = ShortStr<48>;

impl<const N: usize> ShortStr<N> {
    const FITS: () = assert!(N <= u8::MAX as usize, "length is stored in a u8");

    /// `s`, cut at the last character boundary that fits.
    pub fn new(s: &str) -> Self {
        let mut out = Self::default();
        out.push(s);
        out
    }

    /// The same text `String::from_utf8_lossy` gives (NUL padding already stripped by the
    /// caller), without a heap buffer.
    pub fn from_utf8_lossy(bytes: &[u8]) -> Self {
        let mut out = Self::default();
        for chunk in bytes.utf8_chunks() {
            out.push(chunk.valid());
            if !chunk.invalid().is_empty() {
                out.push(char::REPLACEMENT_CHARACTER.encode_utf8(&mut [0; 4]));
            }
        }
        out
    }

    fn push(&mut self, s: &str) {
        let room = N - self.len as usize;
        let mut take = s.len().min(room);
        while !s.is_char_boundary(take) {
            take -= 1;
        }
        let at = self.len as usize;
        self.buf[at..at + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take as u8;
    }

    pub fn as_str(&self) -> &str {
        // Only whole UTF-8 characters are ever pushed, so this never falls back.
        std::str::from_utf8(&self.buf[..self.len as usize]).unwrap_or_default()
    }
}

impl<const N: usize> Default for ShortStr<N> {
    fn default() -> Self {
        let () = Self::FITS;
        ShortStr {
            len: 0,
            buf: [0; N],
        }
    }
}

impl<const N: usize> std::ops::Deref for ShortStr<N> {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl<const N: usize> From<&str> for ShortStr<N> {
    fn from(s: &str) -> Self {
        Self::new(s)
    }
}

impl<const N: usize> PartialEq<str> for ShortStr<N> {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl<const N: usize> PartialEq<&str> for ShortStr<N> {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl<const N: usize> fmt::Display for ShortStr<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str()) // honours width and alignment, as `str` does
    }
}

impl<const N: usize> fmt::Debug for ShortStr<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl<const N: usize> Serialize for ShortStr<N> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Namespace type names (`mnt`, `pid`, ...) in the order decoded, 10 bytes inline (names
/// are indices into one table, so a namespace event stays small).
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct NsList {
    len: u8,
    idx: [u8; NS_NAMES.len()],
}

/// Every namespace type a clone, unshare or setns can name or change.
const NS_NAMES: [&str; 9] = [
    "time",
    "mnt",
    "cgroup",
    "uts",
    "ipc",
    "user",
    "pid",
    "net",
    "pid_for_children",
];

impl NsList {
    /// Adds `name` (one of the namespace type names); an unknown or duplicate name, or more
    /// names than there are types, is ignored rather than panicking on a kernel surprise.
    pub fn push(&mut self, name: &str) {
        let Some(i) = NS_NAMES.iter().position(|n| *n == name) else {
            return;
        };
        if (self.len as usize) < NS_NAMES.len() && !self.contains(name) {
            self.idx[self.len as usize] = i as u8;
            self.len += 1;
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.idx[..self.len as usize]
            .iter()
            .map(|&i| NS_NAMES[i as usize])
    }

    pub fn contains(&self, name: &str) -> bool {
        self.iter().any(|n| n == name)
    }

    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn join(&self, sep: &str) -> String {
        self.iter().collect::<Vec<_>>().join(sep)
    }

    pub fn to_vec(&self) -> Vec<&'static str> {
        self.iter().collect()
    }

    /// Orders the names by `key` (stable).
    pub fn sort_by_key<K: Ord>(&mut self, mut key: impl FnMut(&'static str) -> K) {
        self.idx[..self.len as usize].sort_by_key(|&i| key(NS_NAMES[i as usize]));
    }
}

impl FromIterator<&'static str> for NsList {
    fn from_iter<I: IntoIterator<Item = &'static str>>(iter: I) -> Self {
        let mut out = NsList::default();
        iter.into_iter().for_each(|n| out.push(n));
        out
    }
}

impl<const K: usize> From<[&'static str; K]> for NsList {
    fn from(names: [&'static str; K]) -> Self {
        names.into_iter().collect()
    }
}

impl From<Vec<&'static str>> for NsList {
    fn from(names: Vec<&'static str>) -> Self {
        names.into_iter().collect()
    }
}

impl fmt::Debug for NsList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Serialize for NsList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.len()))?;
        for n in self.iter() {
            seq.serialize_element(n)?;
        }
        seq.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ns_list_keeps_order_and_is_a_json_array() {
        let l = NsList::from(["uts", "net"]);
        assert_eq!(l.to_vec(), ["uts", "net"]);
        assert!(l.contains("net") && !l.contains("pid"));
        assert_eq!(serde_json::to_string(&l).unwrap(), r#"["uts","net"]"#);
        assert_eq!(serde_json::to_string(&NsList::default()).unwrap(), "[]");
        let mut all: NsList = NS_NAMES
            .into_iter()
            .chain(NS_NAMES)
            .chain(["bogus"])
            .collect();
        assert_eq!(
            all.len(),
            NS_NAMES.len(),
            "duplicates and unknown names are ignored, not a panic"
        );
        all.sort_by_key(|n| n.len());
        assert_eq!(all.iter().next(), Some("mnt"));
        assert!(std::mem::size_of::<NsList>() <= 10);
    }

    #[test]
    fn lossy_decoding_matches_std() {
        let cases: [&[u8]; 5] = [b"bash", b"", b"a\xffb\xfe\xfd", b"\xe2\x82", &[0xff; 15]];
        for bytes in cases {
            let std = String::from_utf8_lossy(bytes);
            assert_eq!(Comm::from_utf8_lossy(bytes).as_str(), std, "{bytes:?}");
        }
    }

    #[test]
    fn long_text_is_cut_on_a_character_boundary() {
        let s = ShortStr::<4>::new("ab\u{e9}\u{e9}");
        assert_eq!(s.as_str(), "ab\u{e9}");
        assert_eq!(ShortStr::<3>::new("abcdef"), "abc");
        assert_eq!(format!("[{:<5}]", Comm::new("sh")), "[sh   ]");
    }

    #[test]
    fn serializes_as_a_plain_string() {
        assert_eq!(
            serde_json::to_string(&Comm::new("ru\"n")).unwrap(),
            r#""ru\"n""#
        );
    }
}
