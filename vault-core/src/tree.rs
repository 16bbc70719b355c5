//! The record tree of an identity head (SPEC §4b): a Merkle tree over the
//! first 16 bits of record uuids, 16 children per node, 4 levels above the
//! 65,536 leaves. Leaf `b` is the XOR of the leaves (keyed MACs) of the
//! records whose uuid starts with `b`; a node is SHA-256 of its 16
//! children's hashes in order, or all-zero when they all are. A node at
//! level `l` (root 0, leaves 4) and index `i` has id `(16^l − 1) / 15 + i`.
//! Only non-zero nodes are stored; the root is in the head, under its MAC,
//! so one record is proven current by its bucket and the 60 siblings on its
//! path, and a write rewrites 5 nodes.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::error::{Error, Result};
use crate::primitives::sha256;

const FANOUT: u32 = 16;
/// Levels below the root.
pub(crate) const DEPTH: u32 = 4;
const ZERO: [u8; 32] = [0; 32];

/// Node ids of tree slot `s` are offset by `s * SLOT_SPAN`: an identity's
/// head names the slot its tree is in, and a rotation in chunks builds the
/// tree of its new key in the other one (SPEC §4e).
pub(crate) const SLOT_SPAN: u32 = 1 << 17;
/// How many nodes a whole tree has (ids `0..NODE_COUNT`).
pub(crate) const NODE_COUNT: u32 = (FANOUT.pow(DEPTH + 1) - 1) / (FANOUT - 1);

/// The first stored node id of a slot.
pub(crate) fn slot_base(slot: u8) -> u32 {
    u32::from(slot) * SLOT_SPAN
}

/// Node ids as stored in a slot.
pub(crate) fn in_slot(ids: &[u32], slot: u8) -> Vec<u32> {
    ids.iter().map(|i| i + slot_base(slot)).collect()
}

/// Node writes as stored in a slot.
pub(crate) fn writes_in_slot(
    mut nodes: Vec<(u32, Option<Vec<u8>>)>,
    slot: u8,
) -> Vec<(u32, Option<Vec<u8>>)> {
    for (id, _) in &mut nodes {
        *id += slot_base(slot);
    }
    nodes
}

/// The bucket of a record: the first 16 bits of its uuid.
pub(crate) fn bucket_of(uuid: &str) -> Result<u16> {
    uuid.get(..4)
        .and_then(|h| u16::from_str_radix(h, 16).ok())
        .ok_or_else(|| Error::Integrity(format!("stored id {uuid:?} is not a uuid")))
}

/// The id of the node at `level`, `index`.
fn id(level: u32, index: u32) -> u32 {
    (FANOUT.pow(level) - 1) / (FANOUT - 1) + index
}

pub(crate) fn leaf_id(bucket: u16) -> u32 {
    id(DEPTH, u32::from(bucket))
}

/// The ids of the siblings on the path from a bucket's leaf to the root
/// (15 per level).
pub(crate) fn sibling_ids(bucket: u16) -> Vec<u32> {
    let mut out = Vec::with_capacity(((FANOUT - 1) * DEPTH) as usize);
    let mut index = u32::from(bucket);
    for level in (1..=DEPTH).rev() {
        let first = index - index % FANOUT;
        out.extend(
            (first..first + FANOUT)
                .filter(|i| *i != index)
                .map(|i| id(level, i)),
        );
        index /= FANOUT;
    }
    out
}

fn combine(children: &[[u8; 32]]) -> [u8; 32] {
    if children.iter().all(|c| *c == ZERO) {
        return ZERO;
    }
    sha256(&children.concat())
}

/// Known nodes of one identity's tree (absent: all-zero), and which of
/// them changed.
#[derive(Default)]
pub(crate) struct Tree {
    nodes: HashMap<u32, [u8; 32]>,
    changed: BTreeSet<u32>,
}

impl Tree {
    /// The tree in `slot`, from stored `(id, hash)` pairs (nodes of other
    /// slots, and ids no tree has, are left out).
    pub(crate) fn from_slot(pairs: Vec<(u32, Vec<u8>)>, slot: u8) -> Result<Self> {
        let base = slot_base(slot);
        Tree::from_stored(
            pairs
                .into_iter()
                .filter_map(|(id, h)| {
                    id.checked_sub(base)
                        .filter(|i| *i < NODE_COUNT)
                        .map(|i| (i, h))
                })
                .collect(),
        )
    }

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

    /// The hash of the node at `level`, `index` from its children.
    fn node_from_children(&self, level: u32, index: u32) -> [u8; 32] {
        let first = index * FANOUT;
        let children: Vec<[u8; 32]> = (first..first + FANOUT)
            .map(|c| self.get(id(level + 1, c)))
            .collect();
        combine(&children)
    }

    /// The whole tree of these bucket values.
    pub(crate) fn from_buckets(buckets: &BTreeMap<u16, [u8; 32]>) -> Self {
        let mut t = Tree::default();
        let mut level_indexes: BTreeSet<u32> = BTreeSet::new();
        for (b, v) in buckets {
            if *v != ZERO {
                t.put(leaf_id(*b), *v);
                level_indexes.insert(u32::from(*b));
            }
        }
        for level in (0..DEPTH).rev() {
            let parents: BTreeSet<u32> = level_indexes.iter().map(|i| i / FANOUT).collect();
            for p in &parents {
                let h = t.node_from_children(level, *p);
                t.put(id(level, *p), h);
            }
            level_indexes = parents;
        }
        t
    }

    /// The root of a whole tree given as every bucket's value, in order
    /// (65,536 of them), computed level by level without keeping the nodes.
    pub(crate) fn root_of_all(buckets: &[[u8; 32]]) -> [u8; 32] {
        let mut level: Vec<[u8; 32]> = buckets.chunks(FANOUT as usize).map(combine).collect();
        while level.len() > 1 {
            level = level.chunks(FANOUT as usize).map(combine).collect();
        }
        level.first().copied().unwrap_or(ZERO)
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
        self.get(id(0, 0))
    }

    /// The root computed from a bucket's leaf value and its stored siblings.
    pub(crate) fn root_through(&self, bucket: u16, leaf: &[u8; 32]) -> [u8; 32] {
        let mut h = *leaf;
        let mut index = u32::from(bucket);
        for level in (1..=DEPTH).rev() {
            let first = index - index % FANOUT;
            let children: Vec<[u8; 32]> = (first..first + FANOUT)
                .map(|i| {
                    if i == index {
                        h
                    } else {
                        self.get(id(level, i))
                    }
                })
                .collect();
            h = combine(&children);
            index /= FANOUT;
        }
        h
    }

    /// Sets a bucket's leaf and recomputes its path to the root. Every
    /// path node is written (or deleted when it becomes all-zero), even one
    /// that was not loaded: only the leaf and siblings are read.
    pub(crate) fn set_leaf(&mut self, bucket: u16, value: [u8; 32]) {
        let leaf = leaf_id(bucket);
        self.put(leaf, value);
        self.changed.insert(leaf);
        let mut index = u32::from(bucket);
        for level in (0..DEPTH).rev() {
            index /= FANOUT;
            let h = self.node_from_children(level, index);
            self.put(id(level, index), h);
            self.changed.insert(id(level, index));
        }
    }

    /// Whether two trees hold the same nodes.
    pub(crate) fn same_nodes(&self, other: &Tree) -> bool {
        self.nodes == other.nodes
    }

    /// Sets a node as stored (`None`: deleted), not counted as a change.
    pub(crate) fn put_raw(&mut self, id: u32, h: Option<&[u8]>) {
        match h.and_then(|h| <[u8; 32]>::try_from(h).ok()) {
            Some(h) if h != ZERO => {
                self.nodes.insert(id, h);
            }
            _ => {
                self.nodes.remove(&id);
            }
        }
    }

    /// The changed nodes, as writes, forgetting them: the next call returns
    /// only what changes after this one.
    pub(crate) fn take_changes(&mut self) -> Vec<(u32, Option<Vec<u8>>)> {
        let out = self.changes();
        self.changed.clear();
        out
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
        assert_eq!(sibling_ids(0).len(), 60);
        assert_eq!(leaf_id(0), 4369);
        assert_eq!(leaf_id(0xffff), 69904);
        assert_eq!(
            bucket_of("abcd0000-0000-4000-8000-000000000000").unwrap(),
            0xabcd
        );
        assert!(bucket_of("zz").is_err());
    }

    #[test]
    fn root_of_all_buckets_is_the_trees_root() {
        let mut dense = vec![ZERO; 1 << 16];
        let mut sparse = BTreeMap::new();
        assert_eq!(
            Tree::root_of_all(&dense),
            Tree::from_buckets(&sparse).root()
        );
        for (i, b) in [0u16, 1, 15, 16, 4095, 4096, 40_000, 65_535]
            .into_iter()
            .enumerate()
        {
            let v = [u8::try_from(i).unwrap() + 1; 32];
            dense[usize::from(b)] = v;
            sparse.insert(b, v);
            assert_eq!(
                Tree::root_of_all(&dense),
                Tree::from_buckets(&sparse).root()
            );
        }
    }
}
