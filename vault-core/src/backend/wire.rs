//! The rows, batches and conflicts of the seam as JSON (SPEC §7b,
//! `docs/API.md`): what a remote store and its clients exchange. Byte
//! fields are standard Base64 with padding; everything else is plain JSON.

use data_encoding::BASE64;
use serde::{Deserialize, Deserializer, Serializer};

fn decode<E: serde::de::Error>(s: &str) -> Result<Vec<u8>, E> {
    BASE64
        .decode(s.as_bytes())
        .map_err(|_| E::custom("a byte field is not Base64"))
}

/// `Vec<u8>` as a Base64 string.
pub mod bytes {
    use super::{BASE64, Deserialize, Deserializer, Serializer, decode};

    /// Serialises bytes as Base64.
    ///
    /// # Errors
    /// Those of the serializer.
    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&BASE64.encode(v))
    }

    /// Parses Base64.
    ///
    /// # Errors
    /// For anything that is not a Base64 string.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        decode(&s)
    }
}

/// `Option<Vec<u8>>` as a Base64 string or `null`.
pub mod opt_bytes {
    use super::{BASE64, Deserialize, Deserializer, Serializer, decode};

    /// Serialises bytes as Base64, `None` as `null`.
    ///
    /// # Errors
    /// Those of the serializer.
    #[allow(clippy::ref_option)]
    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_some(&BASE64.encode(b)),
            None => s.serialize_none(),
        }
    }

    /// Parses Base64 or `null`.
    ///
    /// # Errors
    /// For anything else.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| decode(&s))
            .transpose()
    }
}

/// Tree nodes, `[(id, hash or null)]`, hashes in Base64.
pub mod nodes {
    use super::{BASE64, Deserialize, Deserializer, Serializer, decode};
    use serde::ser::SerializeSeq;

    /// `(node id, hash)` pairs, `None` for a node deleted.
    type Nodes = Vec<(u32, Option<Vec<u8>>)>;

    /// Serialises `(id, hash)` pairs as `[id, "base64" | null]` arrays.
    ///
    /// # Errors
    /// Those of the serializer.
    pub fn serialize<S: Serializer>(v: &[(u32, Option<Vec<u8>>)], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(v.len()))?;
        for (id, h) in v {
            seq.serialize_element(&(id, h.as_ref().map(|b| BASE64.encode(b))))?;
        }
        seq.end()
    }

    /// Parses `[id, "base64" | null]` arrays.
    ///
    /// # Errors
    /// For anything else.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Nodes, D::Error> {
        Vec::<(u32, Option<String>)>::deserialize(d)?
            .into_iter()
            .map(|(id, h)| Ok((id, h.map(|s| decode(&s)).transpose()?)))
            .collect()
    }
}

/// Stored tree nodes as returned by a read: `[id, "base64"]` arrays.
#[cfg_attr(not(feature = "hazmat"), allow(dead_code))]
pub mod stored_nodes {
    use super::{BASE64, Deserialize, Deserializer, Serializer, decode};
    use serde::ser::SerializeSeq;

    /// Serialises `(id, hash)` pairs.
    ///
    /// # Errors
    /// Those of the serializer.
    pub fn serialize<S: Serializer>(v: &[(u32, Vec<u8>)], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(v.len()))?;
        for (id, h) in v {
            seq.serialize_element(&(id, BASE64.encode(h)))?;
        }
        seq.end()
    }

    /// Parses `[id, "base64"]` arrays.
    ///
    /// # Errors
    /// For anything else.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(u32, Vec<u8>)>, D::Error> {
        Vec::<(u32, String)>::deserialize(d)?
            .into_iter()
            .map(|(id, s)| Ok((id, decode(&s)?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::*;

    #[test]
    fn batch_round_trip() {
        let mut b = Batch::new();
        b.require(Precondition::VaultHead(None))
            .require(Precondition::RecordUnchanged {
                uuid: "u".into(),
                ciphertext: vec![0, 1, 255],
            })
            .write(Write::SetTreeNodes {
                identity_uuid: "i".into(),
                nodes: vec![(3, Some(vec![9; 32])), (4, None)],
            })
            .write(Write::SetVaultHead(vec![7; 10]))
            .write(Write::DeleteSessions(None));
        let json = serde_json::to_string(&b).unwrap();
        assert!(json.contains("\"AAH/\""), "{json}");
        let back: Batch = serde_json::from_str(&json).unwrap();
        assert_eq!(back, b);
        let c = Conflict::Precondition(2);
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(json, r#"{"precondition":2}"#);
        assert!(
            serde_json::from_str::<Batch>(r#"{"preconditions":[{"vault_head":"!!"}],"writes":[]}"#)
                .is_err()
        );
    }
}
