//! Reproducible ramdisks: cpio archives in the "newc" format the kernel unpacks into its
//! initramfs (feature `writer`).
//!
//! The bytes depend only on the entries: they are written sorted by path (so a parent always
//! comes before its children), every entry gets the same modification time, inode numbers
//! are assigned in that order, and owners and modes are exactly those given. Two builds of
//! the same files give the same archive, and so the same PCRs.
//!
//! Entries can be given in code or as a list in the format of the kernel's `gen_init_cpio`
//! (`usr/gen_init_cpio.c`), which is also what `govctl eif ramdisk` reads:
//!
//! ```text
//! dir   <path> <mode> <uid> <gid>
//! file  <path> <source> <mode> <uid> <gid>
//! nod   <path> <mode> <uid> <gid> c|b <major> <minor>
//! slink <path> <target> <mode> <uid> <gid>
//! ```
//!
//! ```
//! use ea_eif::ramdisk::Ramdisk;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut ramdisk = Ramdisk::new(1_700_000_000);
//! ramdisk.directory("/dev", 0o755, 0, 0)?;
//! ramdisk.char_device("/dev/console", 0o600, 0, 0, 5, 1)?;
//! ramdisk.file("/init", 0o755, 0, 0, b"#!/bin/true\n".to_vec())?;
//! let bytes = ramdisk.to_cpio();
//! assert!(bytes.starts_with(b"070701"));
//! assert_eq!(bytes, ramdisk.to_cpio()); // deterministic
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The newc magic.
const MAGIC: &[u8; 6] = b"070701";
/// The name of the entry that ends an archive.
const TRAILER: &str = "TRAILER!!!";
/// File type bits of `st_mode`.
const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFCHR: u32 = 0o020_000;
const S_IFBLK: u32 = 0o060_000;
/// Permission bits an entry may carry (setuid, setgid, sticky and rwx for all).
const PERMISSION_BITS: u32 = 0o7777;
/// Longest list accepted by [`Ramdisk::from_list`].
pub const MAX_LIST_LEN: usize = 1 << 20;

/// Why a ramdisk cannot be made as asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RamdiskError {
    /// A path that is not absolute and normal (`/a/b`: no `.`, `..`, empty or trailing parts).
    #[error("{path:?} is not an absolute, normalised path inside the ramdisk")]
    BadPath {
        /// The path given.
        path: String,
    },
    /// The same path twice.
    #[error("{path} is listed twice")]
    Duplicate {
        /// The path.
        path: String,
    },
    /// An entry whose parent directory was not declared before it.
    #[error("{path}: its parent directory {parent} is not in the ramdisk (declare it with `dir`)")]
    MissingParent {
        /// The entry.
        path: String,
        /// The parent it needs.
        parent: String,
    },
    /// A mode with bits beyond the permission bits.
    #[error("{path}: mode {mode:o} has bits beyond 7777")]
    BadMode {
        /// The entry.
        path: String,
        /// The mode given.
        mode: u32,
    },
    /// A file too large for the format's 32-bit size field.
    #[error("{path}: {len} bytes is more than a cpio entry can hold")]
    TooLarge {
        /// The entry.
        path: String,
        /// Its size.
        len: usize,
    },
    /// A line of a list that cannot be read.
    #[error("line {line}: {reason}")]
    List {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The list is longer than [`MAX_LIST_LEN`].
    #[error("the list has {len} bytes, more than the {MAX_LIST_LEN} accepted")]
    ListTooLong {
        /// Its length.
        len: usize,
    },
    /// A source file named by a list could not be read.
    #[error("line {line}: reading {}: {source}", path.display())]
    Source {
        /// 1-based line number.
        line: usize,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Directory,
    File(Vec<u8>),
    Symlink(String),
    Device { block: bool, major: u32, minor: u32 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    kind: Kind,
    mode: u32,
    uid: u32,
    gid: u32,
}

/// A ramdisk being assembled; see the [module documentation](self).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ramdisk {
    mtime: u32,
    /// Keyed by path without its leading `/`, which is also the name written to the archive.
    entries: BTreeMap<String, Entry>,
}

impl Ramdisk {
    /// An empty ramdisk whose entries will all carry this modification time (seconds since
    /// the Unix epoch; use `SOURCE_DATE_EPOCH`).
    pub fn new(mtime: u32) -> Self {
        Self {
            mtime,
            entries: BTreeMap::new(),
        }
    }

    /// Adds a directory.
    pub fn directory(
        &mut self,
        path: &str,
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> Result<(), RamdiskError> {
        self.insert(path, Kind::Directory, mode, uid, gid)
    }

    /// Adds a regular file with these contents.
    pub fn file(
        &mut self,
        path: &str,
        mode: u32,
        uid: u32,
        gid: u32,
        contents: Vec<u8>,
    ) -> Result<(), RamdiskError> {
        if u32::try_from(contents.len()).is_err() {
            return Err(RamdiskError::TooLarge {
                path: path.to_owned(),
                len: contents.len(),
            });
        }
        self.insert(path, Kind::File(contents), mode, uid, gid)
    }

    /// Adds a symbolic link to `target`.
    pub fn symlink(
        &mut self,
        path: &str,
        target: &str,
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> Result<(), RamdiskError> {
        self.insert(path, Kind::Symlink(target.to_owned()), mode, uid, gid)
    }

    /// Adds a character device node (such as `/dev/console`, 5:1, which the kernel opens
    /// for init's standard streams before any devtmpfs is mounted).
    pub fn char_device(
        &mut self,
        path: &str,
        mode: u32,
        uid: u32,
        gid: u32,
        major: u32,
        minor: u32,
    ) -> Result<(), RamdiskError> {
        let kind = Kind::Device {
            block: false,
            major,
            minor,
        };
        self.insert(path, kind, mode, uid, gid)
    }

    fn insert(
        &mut self,
        path: &str,
        kind: Kind,
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> Result<(), RamdiskError> {
        let name = normalised(path)?;
        if mode & !PERMISSION_BITS != 0 {
            return Err(RamdiskError::BadMode {
                path: path.to_owned(),
                mode,
            });
        }
        if let Some((parent, _)) = name.rsplit_once('/') {
            if !matches!(
                self.entries.get(parent),
                Some(Entry {
                    kind: Kind::Directory,
                    ..
                })
            ) {
                return Err(RamdiskError::MissingParent {
                    path: path.to_owned(),
                    parent: format!("/{parent}"),
                });
            }
        }
        if self.entries.contains_key(name) {
            return Err(RamdiskError::Duplicate {
                path: path.to_owned(),
            });
        }
        self.entries.insert(
            name.to_owned(),
            Entry {
                kind,
                mode,
                uid,
                gid,
            },
        );
        Ok(())
    }

    /// Reads a `gen_init_cpio` list; `source` paths that are relative are taken from
    /// `base`. Blank lines and lines starting with `#` are skipped.
    pub fn from_list(list: &str, base: &Path, mtime: u32) -> Result<Self, RamdiskError> {
        if list.len() > MAX_LIST_LEN {
            return Err(RamdiskError::ListTooLong { len: list.len() });
        }
        let mut ramdisk = Self::new(mtime);
        for (number, raw) in list.lines().enumerate() {
            let line = number + 1;
            let text = raw.trim();
            if text.is_empty() || text.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = text.split_whitespace().collect();
            let bad = |reason: &str| RamdiskError::List {
                line,
                reason: reason.to_owned(),
            };
            match fields.as_slice() {
                ["dir", path, mode, uid, gid] => ramdisk
                    .directory(
                        path,
                        octal(mode, line)?,
                        number_at(uid, line)?,
                        number_at(gid, line)?,
                    )
                    .map_err(|e| at_line(e, line))?,
                ["file", path, source, mode, uid, gid] => {
                    let source_path = base.join(source);
                    let contents =
                        std::fs::read(&source_path).map_err(|source| RamdiskError::Source {
                            line,
                            path: source_path.clone(),
                            source,
                        })?;
                    ramdisk
                        .file(
                            path,
                            octal(mode, line)?,
                            number_at(uid, line)?,
                            number_at(gid, line)?,
                            contents,
                        )
                        .map_err(|e| at_line(e, line))?;
                }
                ["slink", path, target, mode, uid, gid] => ramdisk
                    .symlink(
                        path,
                        target,
                        octal(mode, line)?,
                        number_at(uid, line)?,
                        number_at(gid, line)?,
                    )
                    .map_err(|e| at_line(e, line))?,
                ["nod", path, mode, uid, gid, kind, major, minor] => {
                    let block = match *kind {
                        "c" => false,
                        "b" => true,
                        _ => return Err(bad("a device is c (character) or b (block)")),
                    };
                    let kind = Kind::Device {
                        block,
                        major: number_at(major, line)?,
                        minor: number_at(minor, line)?,
                    };
                    ramdisk
                        .insert(
                            path,
                            kind,
                            octal(mode, line)?,
                            number_at(uid, line)?,
                            number_at(gid, line)?,
                        )
                        .map_err(|e| at_line(e, line))?;
                }
                [kind, ..] if ["dir", "file", "slink", "nod"].contains(kind) => {
                    return Err(bad(&format!("wrong number of fields for `{kind}`")))
                }
                [kind, ..] => {
                    return Err(bad(&format!(
                        "unknown entry type `{kind}` (dir, file, slink or nod)"
                    )))
                }
                [] => {}
            }
        }
        Ok(ramdisk)
    }

    /// The archive: every entry sorted by path, then the trailer.
    pub fn to_cpio(&self) -> Vec<u8> {
        let data_len: usize = self
            .entries
            .iter()
            .map(|(name, entry)| 110 + name.len() + 4 + content(entry).len() + 4)
            .sum();
        let mut out = Vec::with_capacity(data_len + 128);
        let mut inode: u32 = 0;
        for (name, entry) in &self.entries {
            inode = inode.saturating_add(1);
            let (type_bits, nlink, (major, minor)) = match &entry.kind {
                Kind::Directory => (S_IFDIR, 2, (0, 0)),
                Kind::File(_) => (S_IFREG, 1, (0, 0)),
                Kind::Symlink(_) => (S_IFLNK, 1, (0, 0)),
                Kind::Device {
                    block,
                    major,
                    minor,
                } => (if *block { S_IFBLK } else { S_IFCHR }, 1, (*major, *minor)),
            };
            let header = Header {
                inode,
                mode: type_bits | entry.mode,
                uid: entry.uid,
                gid: entry.gid,
                nlink,
                mtime: self.mtime,
                rdev: (major, minor),
            };
            write_entry(&mut out, &header, name, content(entry));
        }
        let trailer = Header {
            inode: 0,
            mode: 0,
            uid: 0,
            gid: 0,
            nlink: 1,
            mtime: 0,
            rdev: (0, 0),
        };
        write_entry(&mut out, &trailer, TRAILER, &[]);
        out
    }
}

fn content(entry: &Entry) -> &[u8] {
    match &entry.kind {
        Kind::File(data) => data,
        Kind::Symlink(target) => target.as_bytes(),
        Kind::Directory | Kind::Device { .. } => &[],
    }
}

struct Header {
    inode: u32,
    mode: u32,
    uid: u32,
    gid: u32,
    nlink: u32,
    mtime: u32,
    rdev: (u32, u32),
}

fn write_entry(out: &mut Vec<u8>, header: &Header, name: &str, data: &[u8]) {
    let hex =
        |out: &mut Vec<u8>, value: u32| out.extend_from_slice(format!("{value:08X}").as_bytes());
    out.extend_from_slice(MAGIC);
    // The sizes fit: `file` refuses contents over u32::MAX, and names are short paths.
    let file_size = u32::try_from(data.len()).unwrap_or(u32::MAX);
    let name_size = u32::try_from(name.len() + 1).unwrap_or(u32::MAX);
    for value in [
        header.inode,
        header.mode,
        header.uid,
        header.gid,
        header.nlink,
        header.mtime,
        file_size,
        0, // devmajor: the device the file lives on, meaningless here
        0, // devminor
        header.rdev.0,
        header.rdev.1,
        name_size,
        0, // check: only for the "070702" variant
    ] {
        hex(out, value);
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
    out.extend_from_slice(data);
    pad4(out);
}

fn pad4(out: &mut Vec<u8>) {
    while out.len() % 4 != 0 {
        out.push(0);
    }
}

/// `/a/b` → `a/b`, refusing anything that is not absolute and normal.
fn normalised(path: &str) -> Result<&str, RamdiskError> {
    let bad = || RamdiskError::BadPath {
        path: path.to_owned(),
    };
    let name = path.strip_prefix('/').ok_or_else(bad)?;
    if name.is_empty()
        || name
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..")
        || name.bytes().any(|b| b == 0 || b.is_ascii_whitespace())
    {
        return Err(bad());
    }
    Ok(name)
}

fn at_line(error: RamdiskError, line: usize) -> RamdiskError {
    match error {
        RamdiskError::List { .. } | RamdiskError::Source { .. } => error,
        other => RamdiskError::List {
            line,
            reason: other.to_string(),
        },
    }
}

fn octal(text: &str, line: usize) -> Result<u32, RamdiskError> {
    u32::from_str_radix(text, 8).map_err(|_| RamdiskError::List {
        line,
        reason: format!("mode {text:?} is not an octal number"),
    })
}

fn number_at(text: &str, line: usize) -> Result<u32, RamdiskError> {
    text.parse().map_err(|_| RamdiskError::List {
        line,
        reason: format!("{text:?} is not a number"),
    })
}

#[cfg(test)]
mod tests;
