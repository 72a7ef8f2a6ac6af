//! File identity: device, inode and a checksum of the first bytes.
//!
//! Device and inode alone are not enough: inodes are reused as soon as a file is deleted, and a
//! copytruncate keeps the inode while replacing the content. A checksum of the first bytes alone
//! is not enough either: two files can start alike. Together they identify a file across
//! renames, and the checksum alone lets a compressed copy (`0.log.<stamp>.gz`) be recognised as
//! the file it was made from (issue [2/8]).

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, MetadataExt};

/// How many leading bytes the checksum covers once the file is that long. Kubelet CRI lines
/// start with a nanosecond timestamp, so a few hundred bytes are unique in practice.
pub const HEAD_BYTES: usize = 512;

/// Device and inode of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Inode {
    pub dev: u64,
    pub ino: u64,
}

impl Inode {
    pub fn of(meta: &std::fs::Metadata) -> Inode {
        Inode {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// Checksum of the first `len` bytes of a file's content.
///
/// A file shorter than [`HEAD_BYTES`] gets a head as long as it is; the head is lengthened as
/// the file grows (see [`Head::upgrade`]) and compared only over the bytes it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Head {
    pub len: u32,
    pub crc: u32,
}

impl Head {
    pub const EMPTY: Head = Head { len: 0, crc: 0 };

    pub fn of_bytes(bytes: &[u8]) -> Head {
        let bytes = &bytes[..bytes.len().min(HEAD_BYTES)];
        Head {
            len: bytes.len() as u32,
            crc: crc32fast::hash(bytes),
        }
    }

    /// Reads the head of a plain file without moving its cursor.
    pub fn read_plain(file: &File) -> io::Result<Head> {
        let mut buf = [0u8; HEAD_BYTES];
        let n = read_at_full(file, &mut buf, 0)?;
        Ok(Head::of_bytes(&buf[..n]))
    }

    /// Reads the first bytes of the uncompressed content of a gzip file.
    pub fn read_gzip(file: &File) -> io::Result<Head> {
        let bytes = gzip_prefix(file, HEAD_BYTES)?;
        Ok(Head::of_bytes(&bytes))
    }

    /// True when `other` (read from a file) starts with the bytes this head covers.
    pub fn is_prefix_of(&self, other_bytes: &[u8]) -> bool {
        let n = self.len as usize;
        other_bytes.len() >= n && crc32fast::hash(&other_bytes[..n]) == self.crc
    }

    /// Whether `bytes` (the current first bytes of the file) extend this head.
    pub fn upgrade(&self, bytes: &[u8]) -> Option<Head> {
        if (self.len as usize) < HEAD_BYTES
            && bytes.len() > self.len as usize
            && self.is_prefix_of(bytes)
        {
            Some(Head::of_bytes(bytes))
        } else {
            None
        }
    }
}

/// Reads up to `buf.len()` bytes at `offset`, retrying short reads; returns the count read.
pub fn read_at_full(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// The first `n` bytes of a gzip file's uncompressed content (fewer if it is shorter or ends
/// early: a file still being compressed is read as far as it goes).
pub fn gzip_prefix(file: &File, n: usize) -> io::Result<Vec<u8>> {
    let mut dec = flate2::read::MultiGzDecoder::new(io::BufReader::new(file.try_clone()?));
    let mut out = vec![0u8; n];
    let mut done = 0;
    while done < n {
        match dec.read(&mut out[done..]) {
            Ok(0) => break,
            Ok(k) => done += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if done > 0 => {
                // A truncated stream still identifies its content by what it has.
                tracing::debug!(error = %e, "gzip head ended early");
                break;
            }
            Err(e) => return Err(e),
        }
    }
    out.truncate(done);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn head_grows_with_the_file_and_recognises_its_prefix() {
        let short = Head::of_bytes(b"2024-05-01T10:00:00Z stdout F a");
        let longer = b"2024-05-01T10:00:00Z stdout F a\n2024-05-01T10:00:01Z stdout F b\n";
        assert!(short.is_prefix_of(longer));
        let up = short.upgrade(longer).unwrap();
        assert_eq!(up.len as usize, longer.len());
        assert!(up.upgrade(longer).is_none());
        assert!(!up.is_prefix_of(b"2024-05-01T10:00:00Z stdout F a\n"));
        assert!(!Head::of_bytes(b"other").is_prefix_of(longer));
        assert!(Head::EMPTY.is_prefix_of(b""));
        let big = vec![b'x'; 2 * HEAD_BYTES];
        assert_eq!(Head::of_bytes(&big).len as usize, HEAD_BYTES);
    }

    #[test]
    fn gzip_copy_has_the_same_head_as_its_original() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("0.log");
        let body: Vec<u8> = (0..100)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect();
        std::fs::write(&plain, &body).unwrap();
        let gz = dir.path().join("0.log.gz");
        let mut enc = flate2::write::GzEncoder::new(
            File::create(&gz).unwrap(),
            flate2::Compression::default(),
        );
        enc.write_all(&body).unwrap();
        enc.finish().unwrap();
        let a = Head::read_plain(&File::open(&plain).unwrap()).unwrap();
        let b = Head::read_gzip(&File::open(&gz).unwrap()).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len as usize, HEAD_BYTES);
    }
}
