//! String-array attributes of HDF5 groups, read straight from the file.
//!
//! Keras stores `layer_names` (on `model_weights`) and `weight_names` (on
//! each layer group) as 1-D string-array attributes. rust-hdf5 0.7.9 only
//! returns the first element of a string-array attribute of a group, so
//! this module finds the group's object header itself and decodes the
//! attribute message with rust-hdf5's public format decoders.
//!
//! Scope: the layout libhdf5 writes by default, which is what h5py and
//! Keras produce: a version 0/1 superblock, groups indexed by symbol tables
//! (v1 B-tree + local heap) and version 1 object headers. String elements
//! may be fixed-length (any padding) or variable-length (global heap).
//! Anything else is reported as an error so the caller can fall back.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use rust_hdf5::format::FormatContext;
use rust_hdf5::format::messages::attribute::AttributeMessage;
use rust_hdf5::format::messages::dataspace::DataspaceClass;
use rust_hdf5::format::messages::datatype::{DatatypeMessage, fixed_string_content};
use rust_hdf5::format::superblock::SuperblockV0V1;

const HDF5_SIGNATURE: &[u8; 8] = b"\x89HDF\r\n\x1a\n";
const MSG_SYMBOL_TABLE: u16 = 0x11;
const MSG_ATTRIBUTE: u16 = 0x0C;
const MSG_CONTINUATION: u16 = 0x10;
/// Guards against cycles and absurd sizes in a corrupt file.
const MAX_HEADER_BLOCKS: usize = 1024;
const MAX_BLOCK_BYTES: u64 = 64 << 20;

/// One raw object-header message.
struct HeaderMessage {
    msg_type: u16,
    data: Vec<u8>,
}

/// Reads group attributes of one HDF5 file.
pub(crate) struct GroupAttrReader {
    file: File,
    file_len: u64,
    /// Every address in the file is relative to this (the userblock size).
    base: u64,
    ctx: FormatContext,
    root_header: u64,
    /// Global heap collections already read, by address.
    heap_cache: HashMap<u64, Vec<(u16, Vec<u8>)>>,
}

type AttrResult<T> = Result<T, String>;

impl GroupAttrReader {
    pub(crate) fn open(path: &Path) -> AttrResult<Self> {
        let file = File::open(path).map_err(|e| e.to_string())?;
        let file_len = file.metadata().map_err(|e| e.to_string())?.len();
        let mut reader = Self {
            file,
            file_len,
            base: 0,
            ctx: FormatContext {
                sizeof_addr: 8,
                sizeof_size: 8,
            },
            root_header: 0,
            heap_cache: HashMap::new(),
        };
        // The superblock sits at 0, 512, 1024, 2048, ...
        let mut at = 0u64;
        loop {
            if at + 8 > file_len {
                return Err("no HDF5 superblock found".to_string());
            }
            if reader.read_abs(at, 8)? == HDF5_SIGNATURE {
                break;
            }
            at = if at == 0 { 512 } else { at * 2 };
        }
        let head = reader.read_abs(at, 256.min(file_len - at) as usize)?;
        if !matches!(head[8], 0 | 1) {
            return Err(format!(
                "superblock version {} (only 0/1, the h5py default, is read here)",
                head[8]
            ));
        }
        let superblock = SuperblockV0V1::decode(&head).map_err(|e| e.to_string())?;
        reader.ctx = FormatContext {
            sizeof_addr: superblock.sizeof_offsets,
            sizeof_size: superblock.sizeof_lengths,
        };
        reader.base = superblock.base_address.max(at);
        reader.root_header = superblock.root_symbol_table_entry.obj_header_addr;
        Ok(reader)
    }

    /// The values of the string attribute `attr` of the group at
    /// `group_path` (`""` is the root, `"a/b"` a nested group), or `None`
    /// when the group has no such attribute. A scalar string gives one
    /// element.
    pub(crate) fn string_array(
        &mut self,
        group_path: &str,
        attr: &str,
    ) -> AttrResult<Option<Vec<String>>> {
        let mut header = self.root_header;
        for name in group_path.split('/').filter(|s| !s.is_empty()) {
            header = self
                .find_child(header, name)?
                .ok_or_else(|| format!("group '{group_path}' not found (at '{name}')"))?;
        }
        for message in self.header_messages(header)? {
            if message.msg_type != MSG_ATTRIBUTE {
                continue;
            }
            let (decoded, _) =
                AttributeMessage::decode(&message.data, &self.ctx).map_err(|e| e.to_string())?;
            if decoded.name == attr {
                return self.decode_strings(&decoded).map(Some);
            }
        }
        Ok(None)
    }

    fn sa(&self) -> usize {
        usize::from(self.ctx.sizeof_addr)
    }

    fn ss(&self) -> usize {
        usize::from(self.ctx.sizeof_size)
    }

    fn read_abs(&mut self, at: u64, len: usize) -> AttrResult<Vec<u8>> {
        if at
            .checked_add(len as u64)
            .is_none_or(|end| end > self.file_len)
        {
            return Err(format!(
                "structure at byte {at} (+{len}) lies past the end of the file (truncated?)"
            ));
        }
        let mut buf = vec![0u8; len];
        self.file
            .seek(SeekFrom::Start(at))
            .and_then(|_| self.file.read_exact(&mut buf))
            .map_err(|e| e.to_string())?;
        Ok(buf)
    }

    /// Reads `len` bytes at file address `addr` (relative to the base).
    fn read(&mut self, addr: u64, len: usize) -> AttrResult<Vec<u8>> {
        let at = addr
            .checked_add(self.base)
            .ok_or_else(|| format!("bad address {addr}"))?;
        self.read_abs(at, len)
    }

    /// The messages of the version 1 object header at `addr`, following
    /// continuation blocks.
    fn header_messages(&mut self, addr: u64) -> AttrResult<Vec<HeaderMessage>> {
        let prefix = self.read(addr, 16)?;
        if prefix[0] != 1 {
            return Err(format!(
                "object header version {} at {addr} (only version 1 is read here)",
                prefix[0]
            ));
        }
        let header_size = u64::from(u32::from_le_bytes([
            prefix[8], prefix[9], prefix[10], prefix[11],
        ]));
        let mut blocks = vec![(addr.saturating_add(16), header_size)];
        let mut messages = Vec::new();
        let mut next = 0;
        while next < blocks.len() {
            if blocks.len() > MAX_HEADER_BLOCKS {
                return Err(format!(
                    "object header at {addr} has too many continuation blocks"
                ));
            }
            let (block_addr, block_len) = blocks[next];
            next += 1;
            if block_len > MAX_BLOCK_BYTES {
                return Err(format!(
                    "object header block at {block_addr} is {block_len} bytes"
                ));
            }
            let block = self.read(block_addr, block_len as usize)?;
            let mut pos = 0usize;
            while pos + 8 <= block.len() {
                let msg_type = u16::from_le_bytes([block[pos], block[pos + 1]]);
                let size = usize::from(u16::from_le_bytes([block[pos + 2], block[pos + 3]]));
                let flags = block[pos + 4];
                let data = block
                    .get(pos + 8..pos + 8 + size)
                    .ok_or_else(|| {
                        format!("object header message at {block_addr}+{pos} overruns its block")
                    })?
                    .to_vec();
                pos += 8 + size;
                // A shared message (flag bit 1) holds a pointer, not the
                // message; none of the messages read here are shared by
                // libhdf5's defaults.
                if flags & 0x02 != 0 {
                    continue;
                }
                if msg_type == MSG_CONTINUATION {
                    let (sa, ss) = (self.sa(), self.ss());
                    if data.len() < sa + ss {
                        return Err("short continuation message".to_string());
                    }
                    blocks.push((read_uint(&data[..sa]), read_uint(&data[sa..sa + ss])));
                } else {
                    messages.push(HeaderMessage { msg_type, data });
                }
            }
        }
        Ok(messages)
    }

    /// The object header address of the child `name` of the group whose
    /// object header is at `group_header`.
    fn find_child(&mut self, group_header: u64, name: &str) -> AttrResult<Option<u64>> {
        let symbol_table = self
            .header_messages(group_header)?
            .into_iter()
            .find(|m| m.msg_type == MSG_SYMBOL_TABLE)
            .ok_or_else(|| {
                "group is not indexed by a symbol table (newer HDF5 layout)".to_string()
            })?;
        let sa = self.sa();
        if symbol_table.data.len() < 2 * sa {
            return Err("short symbol table message".to_string());
        }
        let btree = read_uint(&symbol_table.data[..sa]);
        let heap = read_uint(&symbol_table.data[sa..2 * sa]);
        let heap_data = self.local_heap_data(heap)?;
        self.search_btree(btree, &heap_data, name, 0)
    }

    /// The data segment of the local heap at `addr`.
    fn local_heap_data(&mut self, addr: u64) -> AttrResult<Vec<u8>> {
        let (sa, ss) = (self.sa(), self.ss());
        let head = self.read(addr, 8 + 2 * ss + sa)?;
        if &head[..4] != b"HEAP" {
            return Err(format!("no local heap at {addr}"));
        }
        let data_size = read_uint(&head[8..8 + ss]);
        let data_addr = read_uint(&head[8 + 2 * ss..8 + 2 * ss + sa]);
        if data_size > MAX_BLOCK_BYTES {
            return Err(format!("local heap at {addr} is {data_size} bytes"));
        }
        self.read(data_addr, data_size as usize)
    }

    /// Looks `name` up in the group B-tree node at `addr` and below.
    fn search_btree(
        &mut self,
        addr: u64,
        heap: &[u8],
        name: &str,
        depth: usize,
    ) -> AttrResult<Option<u64>> {
        if depth > 64 {
            return Err("group B-tree is too deep (corrupt file?)".to_string());
        }
        let (sa, ss) = (self.sa(), self.ss());
        let head = self.read(addr, 8 + 2 * sa)?;
        if &head[..4] != b"TREE" || head[4] != 0 {
            return Err(format!("no group B-tree node at {addr}"));
        }
        let level = head[5];
        let entries = usize::from(u16::from_le_bytes([head[6], head[7]]));
        let body = self.read(
            addr.saturating_add(8 + 2 * sa as u64),
            entries * (ss + sa) + ss,
        )?;
        for i in 0..entries {
            let child_at = i * (ss + sa) + ss;
            let child = read_uint(&body[child_at..child_at + sa]);
            let found = if level > 0 {
                self.search_btree(child, heap, name, depth + 1)?
            } else {
                self.search_symbol_node(child, heap, name)?
            };
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    /// Looks `name` up in the symbol table node (SNOD) at `addr`.
    fn search_symbol_node(
        &mut self,
        addr: u64,
        heap: &[u8],
        name: &str,
    ) -> AttrResult<Option<u64>> {
        let (sa, ss) = (self.sa(), self.ss());
        let head = self.read(addr, 8)?;
        if &head[..4] != b"SNOD" {
            return Err(format!("no symbol table node at {addr}"));
        }
        let symbols = usize::from(u16::from_le_bytes([head[6], head[7]]));
        let entry_size = ss + sa + 24;
        let body = self.read(addr.saturating_add(8), symbols * entry_size)?;
        for entry in body.chunks_exact(entry_size) {
            let name_offset = read_uint(&entry[..ss]) as usize;
            let entry_name = heap
                .get(name_offset..)
                .and_then(|rest| rest.split(|&b| b == 0).next())
                .ok_or_else(|| format!("symbol name offset {name_offset} outside its heap"))?;
            if entry_name == name.as_bytes() {
                return Ok(Some(read_uint(&entry[ss..ss + sa])));
            }
        }
        Ok(None)
    }

    /// The elements of a string attribute.
    fn decode_strings(&mut self, attr: &AttributeMessage) -> AttrResult<Vec<String>> {
        let count = match attr.dataspace.class {
            DataspaceClass::Scalar => 1,
            DataspaceClass::Null => 0,
            DataspaceClass::Simple => attr
                .dataspace
                .dims
                .iter()
                .try_fold(1u64, |acc, &d| acc.checked_mul(d))
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| format!("attribute '{}' declares too many elements", attr.name))?,
        };
        if count == 0 {
            // h5py writes an empty list as an empty float64 array.
            return Ok(Vec::new());
        }
        match attr.datatype {
            DatatypeMessage::FixedString { size, padding, .. } => {
                let size = size as usize;
                // The element count is checked against the bytes the
                // attribute holds before anything is sized from it.
                if size == 0 || count.checked_mul(size).is_none_or(|n| attr.data.len() < n) {
                    return Err(format!("attribute '{}' holds too few bytes", attr.name));
                }
                attr.data[..count * size]
                    .chunks_exact(size)
                    .map(|element| {
                        fixed_string_content(element, padding)
                            .map(|s| String::from_utf8_lossy(s).into_owned())
                            .ok_or_else(|| {
                                format!("attribute '{}' has string padding {padding}", attr.name)
                            })
                    })
                    .collect()
            }
            DatatypeMessage::VarLenString { .. } => {
                let sa = self.sa();
                let reference_size = 4 + sa + 4;
                if count
                    .checked_mul(reference_size)
                    .is_none_or(|n| attr.data.len() < n)
                {
                    return Err(format!("attribute '{}' holds too few bytes", attr.name));
                }
                let references: Vec<(u64, u16)> = attr.data[..count * reference_size]
                    .chunks_exact(reference_size)
                    .map(|r| {
                        let collection = read_uint(&r[4..4 + sa]);
                        let index =
                            u32::from_le_bytes([r[4 + sa], r[5 + sa], r[6 + sa], r[7 + sa]]);
                        (collection, index as u16)
                    })
                    .collect();
                references
                    .into_iter()
                    .map(|(collection, index)| self.global_heap_string(collection, index))
                    .collect()
            }
            ref other => Err(format!(
                "attribute '{}' is not a string but {other}",
                attr.name
            )),
        }
    }

    /// Object `index` of the global heap collection at `addr`, as text.
    fn global_heap_string(&mut self, addr: u64, index: u16) -> AttrResult<String> {
        if addr == 0 || addr == u64::MAX {
            return Ok(String::new());
        }
        if !self.heap_cache.contains_key(&addr) {
            let objects = self.read_global_heap(addr)?;
            self.heap_cache.insert(addr, objects);
        }
        self.heap_cache
            .get(&addr)
            .and_then(|objects| objects.iter().find(|(i, _)| *i == index))
            .map(|(_, bytes)| String::from_utf8_lossy(bytes).into_owned())
            .ok_or_else(|| format!("global heap object {index} missing at {addr}"))
    }

    /// All objects of the global heap collection (GCOL) at `addr`.
    fn read_global_heap(&mut self, addr: u64) -> AttrResult<Vec<(u16, Vec<u8>)>> {
        let ss = self.ss();
        let head = self.read(addr, 8 + ss)?;
        if &head[..4] != b"GCOL" {
            return Err(format!("no global heap collection at {addr}"));
        }
        let size = read_uint(&head[8..8 + ss]);
        if size > MAX_BLOCK_BYTES || size < (8 + ss) as u64 {
            return Err(format!("global heap collection at {addr} is {size} bytes"));
        }
        let collection = self.read(addr, size as usize)?;
        let mut objects = Vec::new();
        let mut pos = 8 + ss;
        while pos + 8 + ss <= collection.len() {
            let index = u16::from_le_bytes([collection[pos], collection[pos + 1]]);
            if index == 0 {
                break; // free space: the rest of the collection
            }
            let len = usize::try_from(read_uint(&collection[pos + 8..pos + 8 + ss]))
                .unwrap_or(usize::MAX);
            let start = pos + 8 + ss;
            let bytes = start
                .checked_add(len)
                .and_then(|end| collection.get(start..end))
                .ok_or_else(|| format!("global heap object {index} overruns its collection"))?;
            objects.push((index, bytes.to_vec()));
            // `len` fits in the collection (checked above), so this cannot
            // overflow.
            pos = start + len.div_ceil(8) * 8;
        }
        Ok(objects)
    }
}

/// A little-endian unsigned integer of 1 to 8 bytes.
fn read_uint(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .rev()
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    use deepinterp_testdata::keras_fixture as fixture;

    /// Both string encodings (h5py 3 variable-length, h5py 2 fixed-length
    /// NULLPAD) give every element, not only the first one.
    #[test]
    fn reads_whole_string_arrays_in_both_encodings() {
        for name in [
            "model_fmri_unet_denoiser.h5",
            "model_fmri_unet_denoiser_legacy_layout.h5",
        ] {
            let mut reader = GroupAttrReader::open(&fixture(name)).expect("open");
            let layers = reader
                .string_array("model_weights", "layer_names")
                .expect("read")
                .expect("present");
            assert_eq!(layers.len(), 15, "{name}: {layers:?}");
            assert_eq!(layers[0], "input_1", "{name}");
            assert!(
                layers.contains(&"conv3d_5".to_string()),
                "{name}: {layers:?}"
            );
            let weights = reader
                .string_array("model_weights/conv3d", "weight_names")
                .expect("read")
                .expect("present");
            assert_eq!(weights, ["conv3d/kernel:0", "conv3d/bias:0"], "{name}");
            let none = reader
                .string_array("model_weights/input_1", "weight_names")
                .expect("read")
                .expect("present");
            assert!(none.is_empty(), "{name}: {none:?}");
            assert_eq!(
                reader
                    .string_array("model_weights", "absent")
                    .expect("read"),
                None
            );
            assert!(reader.string_array("no_such_group", "layer_names").is_err());
        }
    }
}
