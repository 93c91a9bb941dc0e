//! The consistency token: ingest hands it out with every accepted movement; query-api
//! accepts it to answer only once the processors have passed those records. It names,
//! per partition of `inventory.movements.v1`, the offset that must have been processed.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Partition → offset of the last record the client wrote there.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsistencyToken {
    positions: BTreeMap<i32, i64>,
}

const VERSION: &str = "v1";

impl ConsistencyToken {
    pub fn at(partition: i32, offset: i64) -> Self {
        let mut token = Self::default();
        token.include(partition, offset);
        token
    }

    /// Widens the token to cover `offset` in `partition` too.
    pub fn include(&mut self, partition: i32, offset: i64) {
        let position = self.positions.entry(partition).or_insert(offset);
        *position = (*position).max(offset);
    }

    pub fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }

    /// Partition → offset the processors must have processed.
    pub fn positions(&self) -> &BTreeMap<i32, i64> {
        &self.positions
    }

    /// Opaque text for clients: URL-safe, no padding.
    pub fn encode(&self) -> String {
        let mut text = String::from(VERSION);
        for (partition, offset) in &self.positions {
            text.push_str(&format!(":{partition}.{offset}"));
        }
        URL_SAFE_NO_PAD.encode(text)
    }

    pub fn decode(token: &str) -> Option<Self> {
        let text = String::from_utf8(URL_SAFE_NO_PAD.decode(token).ok()?).ok()?;
        let mut parts = text.split(':');
        if parts.next()? != VERSION {
            return None;
        }
        let mut decoded = Self::default();
        for part in parts {
            let (partition, offset) = part.split_once('.')?;
            let (partition, offset) = (partition.parse().ok()?, offset.parse().ok()?);
            if partition < 0 || offset < 0 {
                return None;
            }
            decoded.include(partition, offset);
        }
        (!decoded.is_empty()).then_some(decoded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_covers_the_highest_offset_per_partition_and_reads_back() {
        let mut token = ConsistencyToken::at(3, 10);
        token.include(3, 7);
        token.include(0, 42);
        let decoded = ConsistencyToken::decode(&token.encode()).unwrap();
        assert_eq!(decoded, token);
        assert_eq!(
            decoded.positions().iter().collect::<Vec<_>>(),
            [(&0, &42), (&3, &10)]
        );
    }

    #[test]
    fn foreign_text_is_not_a_token() {
        for text in [
            "",
            "djE",
            "not-base64!",
            &URL_SAFE_NO_PAD.encode("v2:1.1"),
            &URL_SAFE_NO_PAD.encode("v1:1.-1"),
        ] {
            assert_eq!(ConsistencyToken::decode(text), None, "{text}");
        }
    }
}
