//! The fast path's name index: wire-format names to their nodes, looked up
//! with the name as the query wrote it, in any letter case.
//!
//! A general hash map needs the query's name lower-cased into a buffer
//! first (zeroed, copied, folded), then hashes it with a hasher built for
//! any input and compares it byte by byte: on a memo hit that was about a
//! sixth of an answer's instructions. Names here are short and the keys
//! few and fixed at snapshot build, so this index hashes eight bytes at a
//! time with the case folded into the hash, and compares eight bytes at a
//! time, lower-casing the query's word on the fly. Nothing is copied.
//!
//! Queries cannot add keys, so a fixed hash is no flooding risk: a crafted
//! name can at worst probe a table that is at most half full.

use std::sync::Arc;

/// Keys in lower-case wire form, each with its value. Shared when cloned
/// (`Arc`s, read through as directly as boxes): a snapshot whose names
/// did not change takes the previous one's index as it is.
#[derive(Debug)]
pub struct NameIndex<V> {
    entries: Arc<[Entry<V>]>,
    /// Open addressing, linear probing: an index into `entries`, or
    /// `EMPTY`. A power of two at least twice the number of keys.
    slots: Arc<[u32]>,
}

impl<V> Clone for NameIndex<V> {
    fn clone(&self) -> Self {
        NameIndex {
            entries: self.entries.clone(),
            slots: self.slots.clone(),
        }
    }
}

#[derive(Debug)]
struct Entry<V> {
    hash: u64,
    key: Key,
    value: V,
}

/// A lower-case wire name, made ready to be compared with names in any
/// letter case.
#[derive(Debug)]
pub struct Key {
    len: usize,
    /// The key as the words `words` reads, each with the bits a query's
    /// word may differ in: the 0x20 bit of each letter (lower-case in the
    /// key, so the query's may be either case) and nothing else.
    words: Box<[(u64, u64)]>,
}

const EMPTY: u32 = u32::MAX;

/// Every byte's 0x20 bit: ASCII upper and lower case differ only there.
const CASE: u64 = 0x2020_2020_2020_2020;

/// A name as words: its whole words from the start but the last, and
/// its last eight bytes (overlapping the word before), or for a name
/// shorter than eight bytes the name zero-padded. Hash and comparison
/// read the same words.
#[inline(always)]
fn words(name: &[u8]) -> (&[[u8; 8]], u64) {
    match name.last_chunk::<8>() {
        Some(last) => {
            let (whole, _) = name.as_chunks::<8>();
            // Whole words before the last eight bytes: `(len - 1) / 8`
            // of the `len / 8` there are.
            let head = &whole[..(name.len() - 1) / 8];
            (head, u64::from_le_bytes(*last))
        }
        None => {
            let mut bytes = [0u8; 8];
            bytes[..name.len()].copy_from_slice(name);
            (&[], u64::from_le_bytes(bytes))
        }
    }
}

#[inline(always)]
pub(super) fn mix(h: u64, word: u64) -> u64 {
    let m = u128::from(h ^ word) * 0x9E37_79B9_7F4A_7C15u128;
    (m as u64) ^ ((m >> 64) as u64)
}

/// A hash that is the same for any letter case of a name of `len` bytes
/// read as `words`: every byte's 0x20 bit is set before mixing (which
/// also merges some non-letters; those only collide, and the comparison
/// tells them apart).
#[inline(always)]
fn hash_words(len: usize, (head, last): (&[[u8; 8]], u64)) -> u64 {
    let mut h = len as u64;
    for word in head {
        h = mix(h, u64::from_le_bytes(*word) | CASE);
    }
    mix(h, last | CASE)
}

fn hash(name: &[u8]) -> u64 {
    hash_words(name.len(), words(name))
}

impl Key {
    /// `lower` must be lower-case (a snapshot's names are).
    pub fn new(lower: &[u8]) -> Key {
        let letters: Vec<u8> = lower
            .iter()
            .map(|b| if b.is_ascii_lowercase() { 0x20 } else { 0 })
            .collect();
        let word_list = |name| {
            let (head, last) = words(name);
            let mut list: Vec<u64> = head.iter().map(|w| u64::from_le_bytes(*w)).collect();
            list.push(last);
            list
        };
        let pairs: Vec<(u64, u64)> = word_list(lower)
            .into_iter()
            .zip(word_list(&letters))
            .collect();
        Key {
            len: lower.len(),
            words: pairs.into_boxed_slice(),
        }
    }

    /// Whether `name`, in any letter case, is this key.
    #[inline]
    pub fn matches(&self, name: &[u8]) -> bool {
        name.len() == self.len && self.matches_words(words(name))
    }

    /// Whether a name of this key's length, read as `words`, is the key.
    #[inline(always)]
    fn matches_words(&self, (head, last): (&[[u8; 8]], u64)) -> bool {
        // Same length, same number of words: the key's last pair is the
        // name's last word.
        let Some((&(key_last, case_last), key_head)) = self.words.split_last() else {
            return false;
        };
        (last ^ key_last) & !case_last == 0
            && key_head
                .iter()
                .zip(head)
                .all(|(&(word, case), w)| (u64::from_le_bytes(*w) ^ word) & !case == 0)
    }

    pub fn len(&self) -> usize {
        self.len
    }
}

impl<V> NameIndex<V> {
    /// Indexes `entries`, whose keys must be lower-case wire names and
    /// distinct (a later duplicate is never found).
    pub fn build(entries: Vec<(Box<[u8]>, V)>) -> NameIndex<V> {
        let size = (entries.len() * 2).next_power_of_two().max(8);
        let mut slots = vec![EMPTY; size].into_boxed_slice();
        let entries: Vec<Entry<V>> = entries
            .into_iter()
            .map(|(key, value)| Entry {
                hash: hash(&key),
                key: Key::new(&key),
                value,
            })
            .collect();
        for (i, entry) in entries.iter().enumerate() {
            let mut at = entry.hash as usize & (size - 1);
            while slots[at] != EMPTY {
                at = (at + 1) & (size - 1);
            }
            slots[at] = u32::try_from(i).expect("fewer than 2^32 names");
        }
        NameIndex {
            entries: entries.into(),
            slots: slots.into(),
        }
    }

    /// Whether the two are one index, shared.
    #[cfg(test)]
    pub fn is_shared_with(&self, other: &NameIndex<V>) -> bool {
        Arc::ptr_eq(&self.entries, &other.entries)
    }

    /// The value at `name`, a wire name in any letter case. Inlined: it
    /// is on every fast-path answer, and a call costs a fifth of it.
    #[inline(always)]
    pub fn get(&self, name: &[u8]) -> Option<&V> {
        let words = words(name);
        let h = hash_words(name.len(), words);
        let mask = self.slots.len() - 1;
        let mut at = h as usize & mask;
        loop {
            let slot = self.slots[at];
            if slot == EMPTY {
                return None;
            }
            let entry = &self.entries[slot as usize];
            if entry.hash == h && entry.key.len == name.len() && entry.key.matches_words(words) {
                return Some(&entry.value);
            }
            at = (at + 1) & mask;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(name: &str) -> Box<[u8]> {
        let mut out = Vec::new();
        for label in name.split('.').filter(|l| !l.is_empty()) {
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
        out.push(0);
        out.into_boxed_slice()
    }

    #[test]
    fn names_are_found_in_any_case_and_only_themselves() {
        let names = [
            "gslb.example.",
            "www.gslb.example.",
            "a.gslb.example.",
            "mail.gslb.example.",
            "x.",
            ".",
            "abcdefg.",
            "abcdefgh.",
            "split.apps.gslb.example.",
            "@.gslb.example.",
        ];
        let index = NameIndex::build(
            names
                .iter()
                .enumerate()
                .map(|(i, n)| (wire(&n.to_ascii_lowercase()), i))
                .collect(),
        );
        assert_eq!(index.entries.len(), names.len());
        for (i, name) in names.iter().enumerate() {
            assert_eq!(index.get(&wire(name)), Some(&i), "{name}");
            assert_eq!(index.get(&wire(&name.to_ascii_uppercase())), Some(&i));
            let mixed: String = name
                .chars()
                .enumerate()
                .map(|(j, c)| {
                    if j % 2 == 0 {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    }
                })
                .collect();
            assert_eq!(index.get(&wire(&mixed)), Some(&i), "{mixed}");
        }
        // Near misses: a case-folded non-letter ('`' is '@' | 0x20), one
        // byte more or less, another label.
        for name in [
            "`.gslb.example.",
            "ww.gslb.example.",
            "wwww.gslb.example.",
            "www.gslb.exampl.",
            "abcdefgi.",
            "y.",
            "gslb.example.com.",
        ] {
            assert_eq!(index.get(&wire(name)), None, "{name}");
        }
        let mut truncated = wire("www.gslb.example.").to_vec();
        truncated.pop();
        assert_eq!(index.get(&truncated), None);
    }

    #[test]
    fn a_full_table_of_colliding_probes_still_ends() {
        let keys: Vec<(Box<[u8]>, usize)> = (0..1000)
            .map(|i| (wire(&format!("s{i}.gslb.example.")), i))
            .collect();
        let index = NameIndex::build(keys);
        for i in 0..1000 {
            assert_eq!(index.get(&wire(&format!("S{i}.GSLB.example."))), Some(&i));
            assert_eq!(index.get(&wire(&format!("t{i}.gslb.example."))), None);
        }
    }
}
