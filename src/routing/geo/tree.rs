//! The search tree of an `.mmdb` file, read directly, and which of its
//! nodes cover addresses that all get one answer.
//!
//! An ECS scope may be as wide as the block of addresses that all get the
//! same decision. A database records each network separately, even where
//! neighbours carry the same answer, so its networks alone give narrow
//! scopes. Every tree node stands for one address block (its path from the
//! root), so marking once, when a snapshot is built, the nodes under which
//! every record and every gap decides alike makes the widest safe block a
//! by-product of the lookup the answer path does anyway: the first marked
//! node on the client's path. The walk here replaces the reader's own,
//! yielding the record, the network and that first marked node in one
//! pass; a miss costs one bit test per node above it. The first 16
//! levels come from a table built when the file is opened ([`Jump`]), so
//! the answer path's walk starts 16 levels down.
//!
//! Invariants:
//!
//! - [`Shape::walk`] reports the same record offset and prefix length as
//!   `maxminddb::Reader::lookup` for every address (tested against it), and
//!   with its jump tables what a walk bit by bit from the root reports
//!   (tested against one).
//! - A node is marked uniform only if every address block under it maps to
//!   one class; a node that cannot be classified (a pointer outside the
//!   data section, a cycle in a malformed file, a record the caller did
//!   not classify) is mixed, which only ever narrows a scope.
//! - In a file answering IPv6, the nodes above `::ffff:0:0/96` are mixed:
//!   IPv4-mapped clients are looked up as IPv4 (perhaps in another file),
//!   so what the tree holds there is not what they get.

use std::collections::{HashMap, HashSet};

/// Keyed by data offsets, hashed quickly: a pass hashes one per leaf.
pub(super) type ByOffset<T> = HashMap<usize, T, foldhash::fast::RandomState>;

/// Record `side` (0 left, 1 right) of `node` in a tree of `SIZE`-bit
/// records; `node` is below the node count, which `maxminddb` checked
/// fits the file.
#[inline(always)]
fn read_sized<const SIZE: u16>(buf: &[u8], node: usize, side: usize) -> usize {
    let be3 = |b: &[u8]| usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]);
    match SIZE {
        24 => be3(&buf[node * 6 + side * 3..][..3]),
        28 => {
            let b = &buf[node * 7..][..7];
            if side == 0 {
                usize::from(b[3] & 0xF0) << 20 | be3(&b[0..3])
            } else {
                usize::from(b[3] & 0x0F) << 24 | be3(&b[4..7])
            }
        }
        _ => {
            let b = &buf[node * 8 + side * 4..][..4];
            u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize
        }
    }
}

/// A data offset (as `maxminddb::LookupResult::offset` gives it), or
/// `None` for addresses the tree records nothing for.
pub(super) type Leaf = Option<usize>;

/// A class no decision has: the block under the node decides differently
/// in different places.
pub const MIXED: u32 = u32::MAX;
/// Not yet classified (build only).
const UNSEEN: u32 = u32::MAX - 1;
/// Being classified (build only): meeting it again means a cycle.
const OPEN: u32 = u32::MAX - 2;

/// Bytes between the search tree and the data section.
const DATA_SEPARATOR: usize = 16;
/// What precedes the metadata section.
const METADATA_MARKER: &[u8] = b"\xAB\xCD\xEFMaxMind.com";

/// Leading address bits a [`Jump`] table resolves in one step.
const JUMP_BITS: u32 = 16;
/// In a first-mark table: no marked node among the bits the jump took.
const NO_MARK: u8 = u8::MAX;

/// Where the first [`JUMP_BITS`] bits of an address lead from one root:
/// per prefix, the record value reached (a node at depth `JUMP_BITS`, or a
/// leaf value met sooner) and the depth, packed `value | depth << 32`.
/// Built when the file is opened, so a walk starts `JUMP_BITS` levels down
/// (512 KiB per root).
#[derive(Debug, Clone, Default)]
struct Jump {
    root: usize,
    /// `None` for a walk the file does not answer.
    entries: Option<Box<PerPrefix<u64>>>,
}

/// One value per [`JUMP_BITS`]-bit prefix: a fixed size, so an index by a
/// prefix needs no bounds check.
type PerPrefix<T> = [T; 1 << JUMP_BITS];

fn per_prefix<T: Copy>(value: T) -> Box<PerPrefix<T>> {
    vec![value; 1 << JUMP_BITS]
        .into_boxed_slice()
        .try_into()
        .unwrap_or_else(|_| unreachable!("the length is the array's"))
}

/// The two walks a file can start: IPv4 (from node 0 of an IPv4 file, or
/// the IPv4 subtree of an IPv6 one) and IPv6 (node 0 of an IPv6 file).
const V4_WALK: usize = 0;
const V6_WALK: usize = 1;

/// A file's uniform marks: one bit per node, and per walk a table of the
/// first marked node's depth among the nodes a [`Jump`] passes, per
/// prefix ([`NO_MARK`] for none), so a marked walk starts where an
/// unmarked one does.
#[derive(Debug, Clone, Default)]
pub(super) struct Marks {
    bits: Vec<u64>,
    first: [Option<Box<PerPrefix<u8>>>; 2],
}

impl Marks {
    pub(super) fn bytes(&self) -> usize {
        let tables = self.first.iter().flatten().count();
        self.bits.len() * 8 + tables * std::mem::size_of::<PerPrefix<u8>>()
    }
}

/// How to read one file's search tree.
#[derive(Debug, Clone)]
pub(super) struct Shape {
    node_count: usize,
    record_size: u16,
    node_bytes: usize,
    /// Where IPv4 addresses start: node 0 in an IPv4 file; in an IPv6 file
    /// the node (or leaf value) after 96 zero bits, or fewer if a leaf
    /// came first.
    ipv4_start: usize,
    /// Length of the data section: pointers beyond it are not records.
    data_len: usize,
    is_v6: bool,
    /// By walk ([`V4_WALK`], [`V6_WALK`]); empty for a walk the file
    /// does not answer.
    jumps: [Jump; 2],
}

/// Where a walk ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Walked {
    pub leaf: Leaf,
    /// Bits walked from the family's start: the network's prefix length
    /// (IPv4 lengths for IPv4 walks).
    pub depth: u8,
    /// Bits walked to the first node marked uniform, or `depth` when none
    /// was (a leaf is one block and always uniform).
    pub uniform: u8,
}

impl Shape {
    /// Reads the layout of a file `maxminddb` has already validated.
    pub(super) fn new(buf: &[u8], node_count: u32, record_size: u16, ip_version: u16) -> Shape {
        let node_count = node_count as usize;
        let node_bytes = usize::from(record_size) / 4;
        let data_start = node_count * node_bytes + DATA_SEPARATOR;
        let metadata = buf
            .windows(METADATA_MARKER.len())
            .rposition(|w| w == METADATA_MARKER)
            .unwrap_or(buf.len());
        let mut shape = Shape {
            node_count,
            record_size,
            node_bytes,
            ipv4_start: 0,
            data_len: metadata.saturating_sub(data_start),
            is_v6: ip_version == 6,
            jumps: Default::default(),
        };
        if shape.is_v6 {
            let mut node = 0;
            for _ in 0..96 {
                if node >= node_count {
                    break;
                }
                node = shape.read(buf, node, 0);
            }
            shape.ipv4_start = node;
        }
        shape.jumps[V4_WALK] = shape.jump(buf, shape.ipv4_start);
        if shape.is_v6 {
            shape.jumps[V6_WALK] = shape.jump(buf, 0);
        }
        shape
    }

    /// Visits the top [`JUMP_BITS`] levels under `root` depth first,
    /// calling `reached(prefixes, value, depth, first_mark)` once per
    /// leaf met above that depth and per node at it: `prefixes` are the
    /// jump-table indices whose path leads there, `first_mark` the depth
    /// of the first node on the way that `marked` says is marked.
    fn each_jump(
        &self,
        buf: &[u8],
        root: usize,
        marked: impl Fn(usize) -> bool,
        mut reached: impl FnMut(std::ops::Range<usize>, usize, u8, u8),
    ) {
        // (record value, depth, prefix walked, first mark so far)
        let mut stack = vec![(root, 0u32, 0usize, NO_MARK)];
        while let Some((value, depth, prefix, first)) = stack.pop() {
            if value >= self.node_count || depth == JUMP_BITS {
                let span = 1usize << (JUMP_BITS - depth);
                reached(
                    prefix * span..(prefix + 1) * span,
                    value,
                    depth as u8,
                    first,
                );
                continue;
            }
            let first = if first == NO_MARK && marked(value) {
                depth as u8
            } else {
                first
            };
            for side in 0..2 {
                let child = self.read(buf, value, side);
                stack.push((child, depth + 1, prefix << 1 | side, first));
            }
        }
    }

    fn jump(&self, buf: &[u8], root: usize) -> Jump {
        let mut entries = per_prefix(0u64);
        self.each_jump(
            buf,
            root,
            |_| false,
            |prefixes, value, depth, _| {
                entries[prefixes].fill(value as u64 | u64::from(depth) << 32);
            },
        );
        Jump {
            root,
            entries: Some(entries),
        }
    }

    pub(super) fn node_count(&self) -> usize {
        self.node_count
    }

    /// Record `side` (0 left, 1 right) of `node`, which is below
    /// `node_count`.
    #[inline(always)]
    fn read(&self, buf: &[u8], node: usize, side: usize) -> usize {
        let at = node * self.node_bytes;
        let b = &buf[at..at + self.node_bytes];
        let be3 = |x: &[u8]| usize::from(x[0]) << 16 | usize::from(x[1]) << 8 | usize::from(x[2]);
        match (self.record_size, side) {
            (24, 0) => be3(&b[0..3]),
            (24, _) => be3(&b[3..6]),
            (28, 0) => usize::from(b[3] & 0xF0) << 20 | be3(&b[0..3]),
            (28, _) => usize::from(b[3] & 0x0F) << 24 | be3(&b[4..7]),
            (_, 0) => u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize,
            (_, _) => u32::from_be_bytes([b[4], b[5], b[6], b[7]]) as usize,
        }
    }

    /// The leaf a record value names, once the walk left the tree.
    fn leaf(&self, value: usize) -> Result<Leaf, ()> {
        if value == self.node_count {
            return Ok(None);
        }
        match value.checked_sub(self.node_count + DATA_SEPARATOR) {
            Some(offset) if offset < self.data_len => Ok(Some(offset)),
            // A pointer into the tree's tail or past the data: the reader
            // refuses it, and so do we.
            _ => Err(()),
        }
    }

    /// Walks `bits` (the address left-aligned in a `u128`, `len` of them
    /// meaningful) from the family's start node, testing each node against
    /// `uniform` (one bit per node) until one is set. `Err` where the
    /// reader would fail the lookup.
    #[inline]
    pub(super) fn walk(
        &self,
        buf: &[u8],
        bits: u128,
        len: u8,
        uniform: Option<&Marks>,
    ) -> Result<Walked, ()> {
        // One loop per record size, so the loop body has no size dispatch.
        match self.record_size {
            24 => self.walk_sized::<24>(buf, bits, len, uniform),
            28 => self.walk_sized::<28>(buf, bits, len, uniform),
            _ => self.walk_sized::<32>(buf, bits, len, uniform),
        }
    }

    #[inline(always)]
    fn walk_sized<const SIZE: u16>(
        &self,
        buf: &[u8],
        mut bits: u128,
        len: u8,
        marks: Option<&Marks>,
    ) -> Result<Walked, ()> {
        let count = self.node_count;
        let which = if len == 128 && self.is_v6 {
            V6_WALK
        } else {
            V4_WALK
        };
        let jump = &self.jumps[which];
        let uniform = marks.map_or(&[][..], |m| &m.bits[..]);
        let mut node = jump.root;
        let mut depth = 0u8;
        let mut found = None;
        if let Some(entries) = jump.entries.as_deref()
            && u32::from(len) >= JUMP_BITS
        {
            // The first levels at once: a walk of 32 or 128 bits.
            let prefix = (bits >> (128 - JUMP_BITS)) as u16 as usize;
            let entry = entries[prefix];
            node = entry as u32 as usize;
            depth = (entry >> 32) as u8;
            bits <<= depth;
            if let Some(first) = marks.and_then(|m| m.first[which].as_deref())
                && first[prefix] != NO_MARK
            {
                found = Some(first[prefix]);
            }
        }
        let mut step = |node: usize| {
            let side = (bits >> 127) as usize;
            bits <<= 1;
            read_sized::<SIZE>(buf, node, side)
        };
        // Until the first marked node, test each node's mark (none when
        // there are no marks), then walk on without.
        if !uniform.is_empty() && found.is_none() {
            while node < count && depth < len {
                if uniform[node >> 6] >> (node & 63) & 1 == 1 {
                    found = Some(depth);
                    break;
                }
                node = step(node);
                depth += 1;
            }
        }
        while node < count && depth < len {
            node = step(node);
            depth += 1;
        }
        let leaf = if node < count {
            // Out of bits on a node: the reader reports nothing recorded.
            None
        } else {
            self.leaf(node)?
        };
        Ok(Walked {
            leaf,
            depth,
            uniform: found.unwrap_or(depth),
        })
    }

    /// Each data record the tree points to, once, with the first address
    /// (left-aligned bits) found to lead to it: a depth-first pass over the
    /// nodes, each visited once, so a database with few records is read
    /// without enumerating its networks.
    pub(super) fn records(&self, buf: &[u8]) -> Vec<(usize, u128)> {
        let mut seen_node = vec![false; self.node_count];
        let mut seen_record: HashSet<usize, foldhash::fast::RandomState> = HashSet::default();
        let mut out = Vec::new();
        // A v4 file's addresses are 32 bits, left-aligned like the rest.
        let mut stack = vec![(0usize, 0u128, 0u32)];
        while let Some((node, bits, depth)) = stack.pop() {
            if node >= self.node_count {
                if let Ok(Some(offset)) = self.leaf(node)
                    && seen_record.insert(offset)
                {
                    out.push((offset, bits));
                }
                continue;
            }
            if depth >= 128 || std::mem::replace(&mut seen_node[node], true) {
                continue;
            }
            for side in 0..2 {
                let child = self.read(buf, node, side);
                let bit = (side as u128) << (127 - depth);
                stack.push((child, bits | bit, depth + 1));
            }
        }
        out
    }

    /// Marks the nodes whose whole block maps to one class, given the class
    /// of each leaf (`classes` by data offset, `empty` for no record):
    /// one bit per node.
    pub(super) fn uniform_nodes(&self, buf: &[u8], classes: &ByOffset<u32>, empty: u32) -> Marks {
        let class_of_leaf = |value: usize| match self.leaf(value) {
            Ok(None) => empty,
            Ok(Some(offset)) => classes.get(&offset).copied().unwrap_or(MIXED),
            Err(()) => MIXED,
        };
        let mut class = vec![UNSEEN; self.node_count];
        let mut stack = Vec::new();
        for root in [0, self.ipv4_start] {
            if root < self.node_count {
                stack.push(root);
            }
        }
        while let Some(&node) = stack.last() {
            match class[node] {
                UNSEEN => {
                    class[node] = OPEN;
                    for side in 0..2 {
                        let child = self.read(buf, node, side);
                        if child < self.node_count && class[child] == UNSEEN {
                            stack.push(child);
                        }
                    }
                }
                OPEN => {
                    let side_class = |side| {
                        let child = self.read(buf, node, side);
                        if child < self.node_count {
                            // Still open: a cycle, which no valid file has.
                            match class[child] {
                                OPEN | UNSEEN => MIXED,
                                c => c,
                            }
                        } else {
                            class_of_leaf(child)
                        }
                    };
                    let (left, right) = (side_class(0), side_class(1));
                    class[node] = if left == right { left } else { MIXED };
                    stack.pop();
                }
                _ => {
                    stack.pop();
                }
            }
        }
        if self.is_v6 {
            // The path to ::ffff:0:0/96: bits 80..96 are ones.
            let mapped: u128 = 0xffff << 32;
            let mut node = 0;
            for depth in 0..96 {
                if node >= self.node_count {
                    break;
                }
                class[node] = MIXED;
                let side = (mapped >> (127 - depth)) as usize & 1;
                node = self.read(buf, node, side);
            }
        }
        let mut bits = vec![0u64; self.node_count.div_ceil(64)];
        for (node, c) in class.iter().enumerate() {
            if *c != MIXED && *c != UNSEEN {
                bits[node >> 6] |= 1 << (node & 63);
            }
        }
        let marked = |node: usize| bits[node >> 6] >> (node & 63) & 1 == 1;
        let first = std::array::from_fn(|which| {
            let jump = &self.jumps[which];
            jump.entries.as_ref().map(|_| {
                let mut first = per_prefix(NO_MARK);
                self.each_jump(buf, jump.root, marked, |prefixes, _, _, mark| {
                    first[prefixes].fill(mark);
                });
                first
            })
        });
        Marks { bits, first }
    }
}

#[cfg(test)]
impl Shape {
    /// [`Shape::walk`] one bit at a time from the root, with no jump
    /// table: what the tables must reproduce.
    pub(super) fn walk_bit_by_bit(
        &self,
        buf: &[u8],
        mut bits: u128,
        len: u8,
        marks: Option<&Marks>,
    ) -> Result<Walked, ()> {
        let mut node = if len == 32 && self.is_v6 {
            self.ipv4_start
        } else {
            0
        };
        let (mut depth, mut found) = (0u8, None);
        while node < self.node_count && depth < len {
            let marked = marks.is_some_and(|m| m.bits[node >> 6] >> (node & 63) & 1 == 1);
            if found.is_none() && marked {
                found = Some(depth);
            }
            node = self.read(buf, node, (bits >> 127) as usize);
            bits <<= 1;
            depth += 1;
        }
        let leaf = if node < self.node_count {
            None
        } else {
            self.leaf(node)?
        };
        Ok(Walked {
            leaf,
            depth,
            uniform: found.unwrap_or(depth),
        })
    }
}
