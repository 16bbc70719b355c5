//! The record tree of an identity head (SPEC §4b): a binary Merkle tree of
//! fixed depth 16 over the first 16 bits of record uuids. Leaf `b` is the
//! XOR of the leaves (keyed MACs) of the records whose uuid starts with `b`;
//! a parent is SHA-256(left || right), or all-zero when both children are.
//! Node ids are heap positions: the root is 1, the leaf of bucket `b` is
//! 2^16 + b. Only non-zero nodes are stored; the root is in the head, under
//! its MAC, so one record is proven current by its bucket and 16 siblings.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::error::{Error, Result};
use crate::primitives::sha256;

/// Depth of the tree: 2^16 buckets.
pub(crate) const DEPTH: u32 = 16;
const ZERO: [u8; 32] = [0; 32];

/// The bucket of a record: the first 16 bits of its uuid.
pub(crate) fn bucket_of(uuid: &str) -> Result<u16> {
    uuid.get(..4)
        .and_then(|h| u16::from_str_radix(h, 16).ok())
        .ok_or_else(|| Error::Integrity(format!("stored id {uuid:?} is not a uuid")))
}

pub(crate) fn leaf_id(bucket: u16) -> u32 {
    (1 << DEPTH) + u32::from(bucket)
}

/// The ids of the 16 siblings on the path from a bucket's leaf to the root.
pub(crate) fn sibling_ids(bucket: u16) -> Vec<u32> {
    let mut id = leaf_id(bucket);
    let mut out = Vec::with_capacity(DEPTH as usize);
    while id > 1 {
        out.push(id ^ 1);
        id >>= 1;
    }
    out
}

fn combine(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    if *left == ZERO && *right == ZERO {
        return ZERO;
    }
    let mut both = [0u8; 64];
    both[..32].copy_from_slice(left);
    both[32..].copy_from_slice(right);
    sha256(&both)
}

/// Known nodes of one identity's tree (absent: all-zero), and which of
/// them changed.
#[derive(Default)]
pub(crate) struct Tree {
    nodes: HashMap<u32, [u8; 32]>,
    changed: BTreeSet<u32>,
}

impl Tree {
    /// From stored `(id, hash)` pairs.
    pub(crate) fn from_stored(pairs: Vec<(u32, Vec<u8>)>) -> Result<Self> {
        let mut nodes = HashMap::with_capacity(pairs.len());
        for (id, h) in pairs {
            let h: [u8; 32] = h
                .try_into()
                .map_err(|_| Error::Integrity("a record-tree node is malformed".into()))?;
            nodes.insert(id, h);
        }
        Ok(Tree {
            nodes,
            changed: BTreeSet::new(),
        })
    }

    /// The whole tree of these bucket values.
    pub(crate) fn from_buckets(buckets: &BTreeMap<u16, [u8; 32]>) -> Self {
        let mut t = Tree::default();
        let mut level: BTreeSet<u32> = BTreeSet::new();
        for (b, v) in buckets {
            if *v != ZERO {
                t.put(leaf_id(*b), *v);
                level.insert(leaf_id(*b));
            }
        }
        while level.iter().any(|id| *id > 1) {
            let parents: BTreeSet<u32> = level.iter().map(|id| id >> 1).collect();
            for p in &parents {
                let h = combine(&t.get(p << 1), &t.get((p << 1) | 1));
                t.put(*p, h);
            }
            level = parents;
        }
        t
    }

    pub(crate) fn get(&self, id: u32) -> [u8; 32] {
        self.nodes.get(&id).copied().unwrap_or(ZERO)
    }

    fn put(&mut self, id: u32, h: [u8; 32]) {
        if self.get(id) != h {
            self.changed.insert(id);
        }
        if h == ZERO {
            self.nodes.remove(&id);
        } else {
            self.nodes.insert(id, h);
        }
    }

    /// The root.
    pub(crate) fn root(&self) -> [u8; 32] {
        self.get(1)
    }

    /// The root computed from a bucket's leaf value and its stored siblings.
    pub(crate) fn root_through(&self, bucket: u16, leaf: &[u8; 32]) -> [u8; 32] {
        let mut id = leaf_id(bucket);
        let mut h = *leaf;
        while id > 1 {
            h = if id & 1 == 0 {
                combine(&h, &self.get(id ^ 1))
            } else {
                combine(&self.get(id ^ 1), &h)
            };
            id >>= 1;
        }
        h
    }

    /// Sets a bucket's leaf and recomputes its path to the root. Every
    /// path node is written (or deleted when it becomes all-zero), even one
    /// that was not loaded: only the leaf and siblings are read.
    pub(crate) fn set_leaf(&mut self, bucket: u16, value: [u8; 32]) {
        let mut id = leaf_id(bucket);
        self.put(id, value);
        self.changed.insert(id);
        while id > 1 {
            let p = id >> 1;
            let h = combine(&self.get(p << 1), &self.get((p << 1) | 1));
            self.put(p, h);
            self.changed.insert(p);
            id = p;
        }
    }

    /// The changed nodes, as writes (`None`: now all-zero, delete).
    pub(crate) fn changes(&self) -> Vec<(u32, Option<Vec<u8>>)> {
        self.changed
            .iter()
            .map(|id| (*id, self.nodes.get(id).map(|h| h.to_vec())))
            .collect()
    }

    /// Every stored (non-zero) node, as writes.
    pub(crate) fn all_nodes(&self) -> Vec<(u32, Option<Vec<u8>>)> {
        let mut v: Vec<_> = self
            .nodes
            .iter()
            .map(|(id, h)| (*id, Some(h.to_vec())))
            .collect();
        v.sort_by_key(|(id, _)| *id);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incremental_equals_whole_and_proofs_check() {
        let mut buckets = BTreeMap::new();
        for (b, v) in [(0u16, 1u8), (1, 2), (0x8000, 3), (0xffff, 4)] {
            buckets.insert(b, [v; 32]);
        }
        let whole = Tree::from_buckets(&buckets);
        let mut inc = Tree::default();
        for (b, v) in &buckets {
            inc.set_leaf(*b, *v);
        }
        assert_eq!(whole.root(), inc.root());
        assert_ne!(whole.root(), ZERO);
        for (b, v) in &buckets {
            assert_eq!(whole.root_through(*b, v), whole.root());
            assert_ne!(whole.root_through(*b, &[9; 32]), whole.root());
        }
        // emptying every bucket gives the empty tree, with nothing stored
        for b in buckets.keys() {
            inc.set_leaf(*b, ZERO);
        }
        assert_eq!(inc.root(), ZERO);
        assert!(inc.nodes.is_empty());
        // a partial tree (leaf and siblings only) deletes the path nodes
        // that become zero, although it never loaded them
        let stored: Vec<(u32, Vec<u8>)> = whole
            .all_nodes()
            .into_iter()
            .map(|(id, h)| (id, h.unwrap()))
            .collect();
        let only = |b: u16| -> Vec<(u32, Vec<u8>)> {
            let ids: Vec<u32> = std::iter::once(leaf_id(b)).chain(sibling_ids(b)).collect();
            stored
                .iter()
                .filter(|(id, _)| ids.contains(id))
                .cloned()
                .collect()
        };
        let mut part = Tree::from_stored(only(0)).unwrap();
        part.set_leaf(0, ZERO);
        let mut applied: HashMap<u32, Vec<u8>> = stored.iter().cloned().collect();
        for (id, h) in part.changes() {
            match h {
                Some(h) => applied.insert(id, h),
                None => applied.remove(&id),
            };
        }
        let mut rest = buckets.clone();
        rest.remove(&0);
        let expected: HashMap<u32, Vec<u8>> = Tree::from_buckets(&rest)
            .all_nodes()
            .into_iter()
            .map(|(id, h)| (id, h.unwrap()))
            .collect();
        assert_eq!(applied, expected);
        assert_eq!(sibling_ids(0).len(), 16);
        assert_eq!(
            bucket_of("abcd0000-0000-4000-8000-000000000000").unwrap(),
            0xabcd
        );
        assert!(bucket_of("zz").is_err());
    }
}
