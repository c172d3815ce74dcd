//! Bounded reads of the files an operator points us at (the policy file,
//! the certificate and key, the inputs of the offline commands), and the
//! one content digest used to tell whether a re-read file changed.
//!
//! Every read stops after `limit + 1` bytes, so a huge file, `/dev/zero` or
//! an endless pipe costs at most the limit in memory and time, and is
//! refused with a clear error.
//!
//! The long-running reloaders read with [`read_regular`], which opens
//! without blocking and refuses anything but a regular file: a FIFO would
//! block the reloader (and with it shutdown) until someone writes it, and a
//! character device such as `/dev/zero` would be read at every interval.
//! Files in ConfigMap and Secret volumes are regular files behind the
//! kubelet's symlinks, which are followed. The offline commands read with
//! [`read_any`], which also takes pipes and devices (`<(kubectl ...)`,
//! stdin), bounded the same way.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

/// Why a file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Opening or reading failed.
    #[error("cannot read {path}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        cause: std::io::Error,
    },
    /// The path is not a regular file (a FIFO, a device, a directory...).
    #[error("{path} is {kind}, not a regular file; refusing to read it")]
    NotRegular {
        /// The file.
        path: PathBuf,
        /// What it is instead.
        kind: &'static str,
    },
    /// The content is larger than the limit.
    #[error("{path} is larger than the limit of {limit} bytes{size}")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit.
        limit: usize,
        /// The size, when known (regular files), as ` (N bytes)`.
        size: String,
    },
}

impl ReadError {
    fn io(path: &Path, cause: std::io::Error) -> Self {
        ReadError::Io {
            path: path.to_owned(),
            cause,
        }
    }
}

/// Reads at most `limit` bytes from `reader`; more is an error. Reads
/// `limit + 1` bytes at most, whatever the source.
pub fn read_bounded(reader: impl Read, limit: usize, path: &Path) -> Result<Vec<u8>, ReadError> {
    let mut out = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    reader
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|cause| ReadError::io(path, cause))?;
    if out.len() > limit {
        return Err(ReadError::TooLarge {
            path: path.to_owned(),
            limit,
            size: String::new(),
        });
    }
    Ok(out)
}

/// Reads a regular file of at most `limit` bytes, without ever blocking on
/// a FIFO or reading a device (see the module documentation).
pub fn read_regular(path: &Path, limit: usize) -> Result<Vec<u8>, ReadError> {
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a
    // writer. It changes nothing for regular files.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|cause| ReadError::io(path, cause))?;
    let meta = file
        .metadata()
        .map_err(|cause| ReadError::io(path, cause))?;
    let kind = meta.file_type();
    if !kind.is_file() {
        return Err(ReadError::NotRegular {
            path: path.to_owned(),
            kind: describe(&kind),
        });
    }
    let size = meta.len();
    if size > u64::try_from(limit).unwrap_or(u64::MAX) {
        return Err(ReadError::TooLarge {
            path: path.to_owned(),
            limit,
            size: format!(" ({size} bytes)"),
        });
    }
    // The file may grow between the check and the read: still bounded.
    read_bounded(file, limit, path)
}

/// The bytes read as UTF-8 text; invalid UTF-8 is an error naming the byte.
pub fn into_text(bytes: Vec<u8>, path: &Path) -> Result<String, ReadError> {
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        ReadError::io(
            path,
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("not valid UTF-8 (at byte {at})"),
            ),
        )
    })
}

/// Reads a file of any kind (regular, pipe, device), or stdin for `-`, at
/// most `limit` bytes.
pub fn read_any(path: &Path, limit: usize) -> Result<Vec<u8>, ReadError> {
    if path == Path::new("-") {
        return read_bounded(std::io::stdin().lock(), limit, Path::new("stdin"));
    }
    let file = File::open(path).map_err(|cause| ReadError::io(path, cause))?;
    if file.metadata().is_ok_and(|m| m.is_dir()) {
        return Err(ReadError::NotRegular {
            path: path.to_owned(),
            kind: "a directory",
        });
    }
    read_bounded(file, limit, path)
}

fn describe(kind: &std::fs::FileType) -> &'static str {
    if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "a special file"
    }
}

/// A digest of a file's content, to tell whether a re-read file changed
/// without keeping a copy of it: SHA-256 (ring's, already linked for TLS).
/// A 64-bit non-cryptographic hash such as `DefaultHasher` could, in
/// principle, be made to collide by whoever writes the file, and then a
/// changed policy or certificate would be taken as unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Digest([u8; 32]);

impl Digest {
    /// The digest of the concatenation of `parts`, each length-prefixed so
    /// that `("ab", "c")` and `("a", "bc")` differ.
    pub fn of(parts: &[&[u8]]) -> Self {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        for part in parts {
            ctx.update(&(part.len() as u64).to_le_bytes());
            ctx.update(part);
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        Digest(out)
    }

    /// The first four bytes, for short labels (e.g. an Event's action).
    pub fn short(&self) -> u32 {
        u32::from_be_bytes([self.0[0], self.0[1], self.0[2], self.0[3]])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_are_read_up_to_the_limit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        std::fs::write(&path, b"12345").expect("write");
        assert_eq!(read_regular(&path, 5).expect("fits"), b"12345");
        let err = read_regular(&path, 4).expect_err("too large");
        assert_eq!(
            err.to_string(),
            format!(
                "{} is larger than the limit of 4 bytes (5 bytes)",
                path.display()
            )
        );
        assert!(matches!(
            read_regular(&dir.path().join("missing"), 4),
            Err(ReadError::Io { .. })
        ));
    }

    #[test]
    fn devices_fifos_and_directories_are_refused_without_blocking() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = read_regular(Path::new("/dev/zero"), 1 << 20).expect_err("device");
        assert!(err.to_string().contains("a character device"), "{err}");
        let link = dir.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &link).expect("symlink");
        assert!(matches!(
            read_regular(&link, 1 << 20),
            Err(ReadError::NotRegular { .. })
        ));
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo");
        assert!(made.success());
        let err = read_regular(&fifo, 1 << 20).expect_err("fifo");
        assert!(err.to_string().contains("a FIFO"), "{err}");
        let err = read_regular(dir.path(), 1 << 20).expect_err("dir");
        assert!(err.to_string().contains("a directory"), "{err}");
    }

    #[test]
    fn endless_sources_are_cut_at_the_limit() {
        let err = read_any(Path::new("/dev/zero"), 1000).expect_err("endless");
        assert_eq!(
            err.to_string(),
            "/dev/zero is larger than the limit of 1000 bytes"
        );
        let ok = read_bounded(&b"abc"[..], 3, Path::new("x")).expect("fits");
        assert_eq!(ok, b"abc");
        let err = into_text(b"ab\xff".to_vec(), Path::new("x")).expect_err("utf-8");
        assert_eq!(
            err.to_string(),
            "cannot read x: not valid UTF-8 (at byte 2)"
        );
    }

    #[test]
    fn digests_tell_contents_apart() {
        assert_eq!(Digest::of(&[b"a", b"b"]), Digest::of(&[b"a", b"b"]));
        assert_ne!(Digest::of(&[b"ab", b"c"]), Digest::of(&[b"a", b"bc"]));
        assert_ne!(Digest::of(&[b"a"]), Digest::of(&[b"b"]));
    }
}
