//! Length-checked little-endian reads from ring-buffer records (no transmutes).

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("record of {len} bytes is shorter than {need} bytes needed for {what}")]
    Short { what: &'static str, len: usize, need: usize },
    #[error("unknown event kind {0}")]
    UnknownKind(u32),
    #[error("header says {claimed} bytes but the record has {actual}")]
    SizeMismatch { claimed: u32, actual: usize },
}

#[derive(Clone, Copy)]
pub struct Bytes<'a> {
    pub data: &'a [u8],
    pub what: &'static str,
}

impl<'a> Bytes<'a> {
    pub fn new(data: &'a [u8], what: &'static str) -> Self {
        Bytes { data, what }
    }

    pub fn require(&self, need: usize) -> Result<(), DecodeError> {
        if self.data.len() < need {
            return Err(DecodeError::Short { what: self.what, len: self.data.len(), need });
        }
        Ok(())
    }

    pub fn slice(&self, off: usize, len: usize) -> Result<&'a [u8], DecodeError> {
        self.data.get(off..off.saturating_add(len)).ok_or(DecodeError::Short {
            what: self.what,
            len: self.data.len(),
            need: off.saturating_add(len),
        })
    }

    fn array<const N: usize>(&self, off: usize) -> Result<[u8; N], DecodeError> {
        let s = self.slice(off, N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    pub fn u8(&self, off: usize) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(off)?[0])
    }
    pub fn u16(&self, off: usize) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array(off)?))
    }
    pub fn u32(&self, off: usize) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array(off)?))
    }
    pub fn i32(&self, off: usize) -> Result<i32, DecodeError> {
        Ok(i32::from_le_bytes(self.array(off)?))
    }
    pub fn u64(&self, off: usize) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array(off)?))
    }

    /// A string field of `cap` bytes of which `len` are used (clamped to `cap`), lossy UTF-8.
    pub fn string(&self, off: usize, cap: usize, len: usize) -> Result<String, DecodeError> {
        let field = self.slice(off, cap)?;
        let used = &field[..len.min(cap)];
        let used = used.split(|&b| b == 0).next().unwrap_or(used);
        Ok(String::from_utf8_lossy(used).into_owned())
    }

    /// A NUL-padded task name, decoded inline (no allocation).
    pub fn comm(&self, off: usize, cap: usize) -> Result<crate::event::Comm, DecodeError> {
        let field = self.slice(off, cap)?;
        let used = field.split(|&b| b == 0).next().unwrap_or(field);
        Ok(crate::event::Comm::from_utf8_lossy(used))
    }
}
