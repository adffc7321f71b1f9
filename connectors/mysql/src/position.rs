//! Binlog positions: file + offset (+ GTID), encoded so that byte order is
//! position order.

use ferry_core::Position;

/// Version byte of the encoding.
const VERSION: u8 = 1;

/// A point in the binary log: what `SHOW MASTER STATUS` reports, plus the GTID
/// position at that point (MariaDB `gtid_binlog_pos`, MySQL `gtid_executed`) where
/// the server has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinlogPosition {
    /// Binlog file name, e.g. `binlog.000042`.
    pub file: String,
    /// Byte offset in that file.
    pub offset: u64,
    /// GTID position or set, if the server reports one.
    pub gtid: Option<String>,
}

impl BinlogPosition {
    /// The file's sequence number (the digits after the last `.`).
    pub fn file_number(&self) -> u64 {
        self.file
            .rsplit_once('.')
            .and_then(|(_, n)| n.parse().ok())
            .unwrap_or(0)
    }

    /// Encodes as `[version][file number, 8 bytes BE][offset, 8 bytes BE][base name
    /// length][base name][GTID]`: positions in one binlog sequence compare in
    /// position order byte by byte.
    pub fn encode(&self) -> Position {
        let base = self
            .file
            .rsplit_once('.')
            .map(|(b, _)| b)
            .unwrap_or(&self.file);
        let base = &base.as_bytes()[..base.len().min(255)];
        let mut out =
            Vec::with_capacity(18 + base.len() + self.gtid.as_ref().map_or(0, String::len));
        out.push(VERSION);
        out.extend_from_slice(&self.file_number().to_be_bytes());
        out.extend_from_slice(&self.offset.to_be_bytes());
        out.push(base.len() as u8);
        out.extend_from_slice(base);
        if let Some(g) = &self.gtid {
            out.extend_from_slice(g.as_bytes());
        }
        Position::from_bytes(out)
    }

    /// Decodes [`BinlogPosition::encode`]'s output.
    pub fn decode(position: &Position) -> Option<Self> {
        let b = position.as_bytes();
        if b.first() != Some(&VERSION) || b.len() < 18 {
            return None;
        }
        let number = u64::from_be_bytes(b.get(1..9)?.try_into().ok()?);
        let offset = u64::from_be_bytes(b.get(9..17)?.try_into().ok()?);
        let len = usize::from(*b.get(17)?);
        let base = std::str::from_utf8(b.get(18..18 + len)?).ok()?;
        let gtid = std::str::from_utf8(b.get(18 + len..)?).ok()?;
        Some(BinlogPosition {
            file: format!("{base}.{number:06}"),
            offset,
            gtid: (!gtid.is_empty()).then(|| gtid.to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(file: &str, offset: u64) -> BinlogPosition {
        BinlogPosition {
            file: file.into(),
            offset,
            gtid: Some("0-1-42".into()),
        }
    }

    #[test]
    fn round_trip() {
        let p = pos("binlog.000042", 1234);
        assert_eq!(BinlogPosition::decode(&p.encode()), Some(p));
        let q = BinlogPosition {
            file: "mysql-bin.000001".into(),
            offset: 4,
            gtid: None,
        };
        assert_eq!(BinlogPosition::decode(&q.encode()), Some(q));
    }

    #[test]
    fn byte_order_is_position_order() {
        let a = pos("binlog.000009", 999_999).encode();
        let b = pos("binlog.000010", 4).encode();
        let c = pos("binlog.000010", 5).encode();
        assert!(a < b && b < c);
    }
}
