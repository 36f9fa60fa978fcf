//! A minimal ZIP writer (stored, no compression) for downloading a clip's PNG frames in one
//! file. PNGs are already compressed, so storing them loses nothing.

use anyhow::{Result, ensure};

/// Builds a ZIP archive of `(name, bytes)` entries.
pub fn store(entries: &[(String, Vec<u8>)]) -> Result<Vec<u8>> {
    ensure!(entries.len() < u16::MAX as usize, "too many entries for a zip");
    let mut out = Vec::new();
    let mut central = Vec::new();
    // 1980-01-01 00:00, the earliest DOS date: reproducible archives.
    let (time, date): (u16, u16) = (0, (1 << 5) | 1);
    for (name, data) in entries {
        ensure!(data.len() < u32::MAX as usize && out.len() < u32::MAX as usize, "zip too large");
        let crc = crc32fast::hash(data);
        let offset = out.len() as u32;
        let header = |sig: u32, central: bool| {
            let mut h = Vec::new();
            h.extend_from_slice(&sig.to_le_bytes());
            if central {
                h.extend_from_slice(&20u16.to_le_bytes()); // made by
            }
            h.extend_from_slice(&20u16.to_le_bytes()); // needed to extract
            h.extend_from_slice(&0u16.to_le_bytes()); // flags
            h.extend_from_slice(&0u16.to_le_bytes()); // method: stored
            h.extend_from_slice(&time.to_le_bytes());
            h.extend_from_slice(&date.to_le_bytes());
            h.extend_from_slice(&crc.to_le_bytes());
            h.extend_from_slice(&(data.len() as u32).to_le_bytes());
            h.extend_from_slice(&(data.len() as u32).to_le_bytes());
            h.extend_from_slice(&(name.len() as u16).to_le_bytes());
            h.extend_from_slice(&0u16.to_le_bytes()); // extra length
            if central {
                h.extend_from_slice(&0u16.to_le_bytes()); // comment length
                h.extend_from_slice(&0u16.to_le_bytes()); // disk
                h.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
                h.extend_from_slice(&0u32.to_le_bytes()); // external attributes
                h.extend_from_slice(&offset.to_le_bytes());
            }
            h.extend_from_slice(name.as_bytes());
            h
        };
        out.extend(header(0x0403_4b50, false));
        out.extend_from_slice(data);
        central.extend(header(0x0201_4b50, true));
    }
    let central_offset = out.len() as u32;
    let n = entries.len() as u16;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]); // disk numbers
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&central_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes()); // comment length
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u32_at(b: &[u8], i: usize) -> u32 {
        u32::from_le_bytes(b[i..i + 4].try_into().unwrap())
    }

    #[test]
    fn archive_structure_reads_back() {
        let entries = vec![("a.txt".to_string(), b"hello".to_vec()), ("b/c.bin".to_string(), vec![0u8, 1, 2, 255])];
        let zip = store(&entries).unwrap();
        // End of central directory: two entries, central directory where it says.
        let eocd = zip.len() - 22;
        assert_eq!(u32_at(&zip, eocd), 0x0605_4b50);
        assert_eq!(u16::from_le_bytes([zip[eocd + 10], zip[eocd + 11]]), 2);
        let cd_offset = u32_at(&zip, eocd + 16) as usize;
        assert_eq!(u32_at(&zip, cd_offset), 0x0201_4b50);
        // Walk the local entries: names, sizes and CRCs match the input.
        let mut at = 0;
        for (name, data) in &entries {
            assert_eq!(u32_at(&zip, at), 0x0403_4b50);
            assert_eq!(u32_at(&zip, at + 14), crc32fast::hash(data));
            let size = u32_at(&zip, at + 18) as usize;
            let name_len = u16::from_le_bytes([zip[at + 26], zip[at + 27]]) as usize;
            assert_eq!(&zip[at + 30..at + 30 + name_len], name.as_bytes());
            assert_eq!(&zip[at + 30 + name_len..at + 30 + name_len + size], &data[..]);
            at += 30 + name_len + size;
        }
        assert_eq!(at, cd_offset);
    }
}
