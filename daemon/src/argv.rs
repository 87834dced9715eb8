//! An exec's argument list in one heap buffer (arguments separated by NUL, which no argument
//! can contain): decoding an exec costs one allocation for its argv, not one per argument.
use std::fmt;

use serde::{Serialize, Serializer, ser::SerializeSeq};

#[derive(Clone, Default, PartialEq, Eq)]
pub struct Argv {
    /// The arguments joined by NUL.
    buf: String,
    count: usize,
}

impl Argv {
    /// argv as the kernel copied it (NUL-separated, as in /proc/<pid>/cmdline; one trailing
    /// NUL is not an argument), decoded as lossy UTF-8. A cut last argument is kept.
    pub fn from_raw(raw: &[u8]) -> Self {
        let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
        if raw.is_empty() {
            return Argv::default();
        }
        // An invalid UTF-8 sequence never spans a NUL (it is ASCII), so decoding the whole
        // buffer at once gives the same text as decoding each argument.
        let buf = String::from_utf8_lossy(raw).into_owned();
        let count = buf.bytes().filter(|&b| b == 0).count() + 1;
        Argv { buf, count }
    }

    pub fn push(&mut self, arg: &str) {
        if self.count > 0 {
            self.buf.push('\0');
        }
        // A NUL inside an argument would split it; the kernel never hands us one.
        self.buf.extend(arg.chars().filter(|&c| c != '\0'));
        self.count += 1;
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        // `take` keeps an empty list empty (splitting "" yields one empty argument).
        self.buf.split('\0').take(self.count)
    }

    pub fn first(&self) -> Option<&str> {
        self.iter().next()
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn join(&self, sep: &str) -> String {
        self.iter().collect::<Vec<_>>().join(sep)
    }

    pub fn to_vec(&self) -> Vec<String> {
        self.iter().map(str::to_string).collect()
    }
}

impl<S: AsRef<str>> FromIterator<S> for Argv {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        let mut out = Argv::default();
        iter.into_iter().for_each(|a| out.push(a.as_ref()));
        out
    }
}

impl fmt::Debug for Argv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Serialize for Argv {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.count))?;
        for a in self.iter() {
            seq.serialize_element(a)?;
        }
        seq.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_argv_splits_like_cmdline() {
        assert_eq!(
            Argv::from_raw(b"ls\0-l\0/tmp\0").to_vec(),
            ["ls", "-l", "/tmp"]
        );
        assert_eq!(
            Argv::from_raw(b"ls\0\0x").to_vec(),
            ["ls", "", "x"],
            "empty arguments are kept"
        );
        assert_eq!(Argv::from_raw(b"cut-shor").to_vec(), ["cut-shor"]);
        assert!(Argv::from_raw(b"").is_empty() && Argv::from_raw(b"\0").is_empty());
        assert_eq!(Argv::from_raw(b"a\xff\0b").to_vec(), ["a\u{fffd}", "b"]);
    }

    #[test]
    fn built_lists_match_their_items() {
        let mut a: Argv = ["sh", "-c", ""].into_iter().collect();
        assert_eq!((a.len(), a.first()), (3, Some("sh")));
        a.push("x");
        assert_eq!(a.to_vec(), ["sh", "-c", "", "x"]);
        assert_eq!(serde_json::to_string(&a).unwrap(), r#"["sh","-c","","x"]"#);
        let one_empty: Argv = [""].into_iter().collect();
        assert_eq!(
            one_empty.to_vec(),
            [""],
            "a single empty argument is not an empty list"
        );
        assert_eq!(serde_json::to_string(&Argv::default()).unwrap(), "[]");
    }
}
