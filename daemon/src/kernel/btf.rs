//! A small reader for raw BTF (`/sys/kernel/btf/vmlinux`, or the `.BTF` section of a vmlinux
//! image): just enough to find struct member offsets and enum values at load time.
//! Format: linux/Documentation/bpf/btf.rst.
use std::{collections::HashMap, path::Path};

#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error("cannot read BTF from {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("not BTF data (magic {0:#06x}, expected 0xeb9f)")]
    BadMagic(u16),
    #[error("BTF data is truncated ({0})")]
    Truncated(&'static str),
    #[error("BTF type #{id} has unknown kind {kind}")]
    UnknownKind { id: u32, kind: u32 },
    #[error("kernel BTF has no struct `{0}`")]
    NoStruct(String),
    #[error("kernel BTF: struct `{strukt}` has no member `{member}`")]
    NoMember { strukt: String, member: String },
    #[error("kernel BTF: `{strukt}.{member}` is a bitfield, not addressable")]
    Bitfield { strukt: String, member: String },
    #[error("kernel BTF: `{strukt}.{member}` is not a struct/union, cannot descend into it")]
    NotComposite { strukt: String, member: String },
}

const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

#[derive(Debug, Clone)]
pub struct Member {
    pub name_off: u32,
    pub type_id: u32,
    /// Offset in bits from the start of the enclosing struct.
    pub bit_offset: u32,
    /// Non-zero for bitfields.
    pub bitfield_size: u32,
}

#[derive(Debug, Clone)]
pub struct BtfType {
    pub kind: u32,
    pub name_off: u32,
    /// `size` for INT/STRUCT/UNION/ENUM, referenced type id for PTR/TYPEDEF/modifiers.
    pub size_or_type: u32,
    pub members: Vec<Member>,
    pub enum_values: Vec<(u32, i64)>,
    /// ARRAY: (element type, number of elements).
    pub array: Option<(u32, u32)>,
}

pub struct Btf {
    /// Index = type id; id 0 is `void`.
    types: Vec<BtfType>,
    strings: Vec<u8>,
    structs_by_name: HashMap<String, u32>,
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn u32(&mut self, what: &'static str) -> Result<u32, BtfError> {
        let b = self.data.get(self.pos..self.pos + 4).ok_or(BtfError::Truncated(what))?;
        self.pos += 4;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn skip(&mut self, n: usize, what: &'static str) -> Result<(), BtfError> {
        if self.pos + n > self.data.len() {
            return Err(BtfError::Truncated(what));
        }
        self.pos += n;
        Ok(())
    }
}

impl Btf {
    pub fn from_file(path: &Path) -> Result<Self, BtfError> {
        let data = std::fs::read(path)
            .map_err(|source| BtfError::Io { path: path.display().to_string(), source })?;
        Self::parse(&data)
    }

    /// Parses little-endian raw BTF (what the kernel exposes in sysfs).
    pub fn parse(data: &[u8]) -> Result<Self, BtfError> {
        let le16 = |b: &[u8]| u16::from_le_bytes([b[0], b[1]]);
        if data.len() < 24 {
            return Err(BtfError::Truncated("header"));
        }
        let magic = le16(&data[0..2]);
        if magic != 0xeb9f {
            return Err(BtfError::BadMagic(magic));
        }
        let mut hdr = Reader { data, pos: 4 };
        let hdr_len = hdr.u32("header")? as usize;
        let type_off = hdr.u32("header")? as usize;
        let type_len = hdr.u32("header")? as usize;
        let str_off = hdr.u32("header")? as usize;
        let str_len = hdr.u32("header")? as usize;
        let types_bytes = data
            .get(hdr_len + type_off..hdr_len + type_off + type_len)
            .ok_or(BtfError::Truncated("type section"))?;
        let strings = data
            .get(hdr_len + str_off..hdr_len + str_off + str_len)
            .ok_or(BtfError::Truncated("string section"))?
            .to_vec();

        let mut types = vec![BtfType {
            kind: 0,
            name_off: 0,
            size_or_type: 0,
            members: Vec::new(),
            enum_values: Vec::new(),
            array: None,
        }];
        let mut r = Reader { data: types_bytes, pos: 0 };
        while r.pos < types_bytes.len() {
            let id = types.len() as u32;
            let name_off = r.u32("type")?;
            let info = r.u32("type")?;
            let size_or_type = r.u32("type")?;
            let vlen = (info & 0xffff) as usize;
            let kind = (info >> 24) & 0x1f;
            let kind_flag = info >> 31 != 0;
            let mut t = BtfType {
                kind,
                name_off,
                size_or_type,
                members: Vec::new(),
                enum_values: Vec::new(),
                array: None,
            };
            match kind {
                KIND_INT => r.skip(4, "int")?,
                KIND_ARRAY => {
                    let elem = r.u32("array")?;
                    let _index = r.u32("array")?;
                    let n = r.u32("array")?;
                    t.array = Some((elem, n));
                }
                KIND_STRUCT | KIND_UNION => {
                    for _ in 0..vlen {
                        let name_off = r.u32("member")?;
                        let type_id = r.u32("member")?;
                        let off = r.u32("member")?;
                        let (bit_offset, bitfield_size) =
                            if kind_flag { (off & 0xff_ffff, off >> 24) } else { (off, 0) };
                        t.members.push(Member { name_off, type_id, bit_offset, bitfield_size });
                    }
                }
                KIND_ENUM => {
                    for _ in 0..vlen {
                        let n = r.u32("enum")?;
                        let v = r.u32("enum")?;
                        let v = if kind_flag { v as i32 as i64 } else { v as i64 };
                        t.enum_values.push((n, v));
                    }
                }
                KIND_ENUM64 => {
                    for _ in 0..vlen {
                        let n = r.u32("enum64")?;
                        let lo = r.u32("enum64")? as u64;
                        let hi = r.u32("enum64")? as u64;
                        t.enum_values.push((n, (hi << 32 | lo) as i64));
                    }
                }
                // FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, FLOAT, TYPE_TAG: no trailer.
                KIND_PTR | 7 | KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | 12
                | 16 | KIND_TYPE_TAG => {}
                13 => r.skip(8 * vlen, "func_proto")?,
                14 | 17 => r.skip(4, "var/decl_tag")?,
                15 => r.skip(12 * vlen, "datasec")?,
                _ => return Err(BtfError::UnknownKind { id, kind }),
            }
            types.push(t);
        }
        let mut btf = Btf { types, strings, structs_by_name: HashMap::new() };
        for (id, t) in btf.types.iter().enumerate() {
            // Keep the first complete definition; later same-named structs are rare dups.
            if t.kind == KIND_STRUCT {
                let name = btf.name(t.name_off).to_string();
                if !name.is_empty() {
                    btf.structs_by_name.entry(name).or_insert(id as u32);
                }
            }
        }
        Ok(btf)
    }

    pub fn type_count(&self) -> usize {
        self.types.len() - 1
    }

    pub fn name(&self, off: u32) -> &str {
        let s = self.strings.get(off as usize..).unwrap_or(&[]);
        let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
        std::str::from_utf8(&s[..end]).unwrap_or("")
    }

    fn get(&self, id: u32) -> Option<&BtfType> {
        self.types.get(id as usize)
    }

    /// Follows typedefs and qualifiers to the underlying type id.
    fn resolve(&self, mut id: u32) -> u32 {
        for _ in 0..32 {
            match self.get(id) {
                Some(t)
                    if matches!(
                        t.kind,
                        KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG
                    ) =>
                {
                    id = t.size_or_type
                }
                _ => break,
            }
        }
        id
    }

    pub fn struct_id(&self, name: &str) -> Result<u32, BtfError> {
        self.structs_by_name.get(name).copied().ok_or_else(|| BtfError::NoStruct(name.into()))
    }

    pub fn struct_size(&self, name: &str) -> Result<u32, BtfError> {
        Ok(self.types[self.struct_id(name)? as usize].size_or_type)
    }

    /// Finds `member` in composite `id`, descending into anonymous struct/union members
    /// (e.g. `mm_struct` wraps most fields in an unnamed struct). Returns (bit offset, member).
    fn find_member(&self, id: u32, member: &str) -> Option<(u32, &Member)> {
        let t = self.get(self.resolve(id))?;
        for m in &t.members {
            let name = self.name(m.name_off);
            if name == member {
                return Some((m.bit_offset, m));
            }
            if name.is_empty()
                && let Some((inner, found)) = self.find_member(m.type_id, member)
            {
                return Some((m.bit_offset + inner, found));
            }
        }
        None
    }

    /// Byte offset of a dotted member path, e.g. `offset_of("uts_namespace", "ns.inum")`.
    pub fn offset_of(&self, strukt: &str, path: &str) -> Result<u32, BtfError> {
        let mut id = self.struct_id(strukt)?;
        let mut bits = 0u32;
        let parts: Vec<&str> = path.split('.').collect();
        for (i, part) in parts.iter().enumerate() {
            let err = || BtfError::NoMember { strukt: strukt.into(), member: path.into() };
            let (off, m) = self.find_member(id, part).ok_or_else(err)?;
            if m.bitfield_size != 0 || off % 8 != 0 {
                return Err(BtfError::Bitfield { strukt: strukt.into(), member: path.into() });
            }
            bits += off;
            id = self.resolve(m.type_id);
            if i + 1 < parts.len() {
                let kind = self.get(id).map(|t| t.kind).unwrap_or(0);
                if kind != KIND_STRUCT && kind != KIND_UNION {
                    return Err(BtfError::NotComposite {
                        strukt: strukt.into(),
                        member: parts[..=i].join("."),
                    });
                }
            }
        }
        Ok(bits / 8)
    }

    /// Value of an enumerator (searches every enum, as `memory_cgrp_id` lives in an
    /// anonymous-looking `enum cgroup_subsys_id`).
    pub fn enum_value(&self, enumerator: &str) -> Option<i64> {
        self.types
            .iter()
            .filter(|t| t.kind == KIND_ENUM || t.kind == KIND_ENUM64)
            .flat_map(|t| t.enum_values.iter())
            .find(|(n, _)| self.name(*n) == enumerator)
            .map(|(_, v)| *v)
    }
}

#[cfg(test)]
mod tests;
