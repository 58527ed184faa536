//! Files regtap writes that may hold credentials (HAR exports, exported
//! bodies): mode 0600 in directories created 0700, written through a
//! temporary file created exclusively under an unpredictable name and renamed
//! into place, so that neither another user nor a planted symlink sees or
//! redirects them.

use std::fs;
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::Path;

use anyhow::Context as _;
use sha2::{Digest as _, Sha256};

/// Creates `dir` (and missing parents) with mode 0700.
pub fn create_dir(dir: &Path) -> anyhow::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))
}

/// A temporary file next to `path`: 0600, `O_EXCL`, random name.
fn temporary_beside(path: &Path) -> anyhow::Result<tempfile::NamedTempFile> {
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    tempfile::Builder::new()
        .prefix(".regtap-")
        .permissions(fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))
}

/// Writes `bytes` to `path` (mode 0600), replacing it whole.
pub fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    write_with(path, |file| {
        file.write_all(bytes)
            .with_context(|| format!("cannot write {}", path.display()))
    })
}

/// Writes `path` (mode 0600) through `fill`, which streams into it; the file
/// replaces `path` only once `fill` succeeded, so a failed export leaves no
/// half-written file behind.
///
/// A device or a FIFO (`-o /dev/null`, a named pipe) is written into, not
/// replaced: renaming a file over `/dev/null` would break every program
/// on the machine.
pub fn write_with<T>(
    path: &Path,
    fill: impl FnOnce(&mut io::BufWriter<&mut fs::File>) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    if is_device_or_fifo(path) {
        let mut device = fs::OpenOptions::new()
            .write(true)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        let mut out = io::BufWriter::with_capacity(256 * 1024, &mut device);
        let value = fill(&mut out)?;
        out.flush()
            .with_context(|| format!("cannot write {}", path.display()))?;
        return Ok(value);
    }
    let mut file = temporary_beside(path)?;
    let mut out = io::BufWriter::with_capacity(256 * 1024, file.as_file_mut());
    let value = fill(&mut out)?;
    out.flush()
        .with_context(|| format!("cannot write {}", path.display()))?;
    drop(out);
    file.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(value)
}

/// Copies the regular file `source` to `target` (mode 0600) only if its bytes
/// hash to `sha256` (lowercase hex): a crafted capture cannot make regtap
/// copy an unrelated file (a symlink to `/etc/passwd`, a device).
pub fn copy_verified(source: &Path, target: &Path, sha256: &str) -> anyhow::Result<()> {
    let mut input =
        fs::File::open(source).with_context(|| format!("cannot open {}", source.display()))?;
    let metadata = input
        .metadata()
        .with_context(|| format!("cannot read {}", source.display()))?;
    anyhow::ensure!(
        metadata.is_file(),
        "{} is not a regular file",
        source.display()
    );
    let mut output = temporary_beside(target)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        let read = match input.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", source.display())),
        };
        hasher.update(&buffer[..read]);
        output
            .write_all(&buffer[..read])
            .with_context(|| format!("cannot write {}", target.display()))?;
    }
    let actual = hex_lower(&hasher.finalize());
    anyhow::ensure!(
        actual == sha256,
        "{} does not hold that body (its bytes hash to sha256:{actual})",
        source.display()
    );
    output
        .persist(target)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot write {}", target.display()))?;
    Ok(())
}

/// Whether `path` itself (not a symlink's target) is a character or block
/// device, or a FIFO.
fn is_device_or_fifo(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt as _;
    fs::symlink_metadata(path).is_ok_and(|metadata| {
        let kind = metadata.file_type();
        kind.is_char_device() || kind.is_block_device() || kind.is_fifo()
    })
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `-o /dev/null` or a named pipe: the bytes go into it and it stays
    /// what it was (a FIFO here, as a test must not risk `/dev/null`).
    #[test]
    fn a_fifo_is_written_into_not_replaced() {
        use std::os::unix::fs::FileTypeExt as _;
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || fs::read(fifo).unwrap())
        };
        write(&fifo, b"exported").unwrap();
        let kind = fs::symlink_metadata(&fifo).unwrap().file_type();
        assert!(kind.is_fifo(), "{kind:?}");
        assert_eq!(reader.join().unwrap(), b"exported");
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no file left beside it"
        );
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn files_are_private_and_replace_symlinks_instead_of_following_them() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, b"keep").unwrap();
        let out = dir.path().join("out.har");
        std::os::unix::fs::symlink(&victim, &out).unwrap();
        write(&out, b"{}").unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"keep");
        assert_eq!(fs::read(&out).unwrap(), b"{}");
        assert_eq!(mode(&out), 0o600);
        let sub = dir.path().join("a/b");
        create_dir(&sub).unwrap();
        assert_eq!(mode(&sub), 0o700);
        // Nothing temporary is left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 3);
    }

    #[test]
    fn a_copy_is_made_only_of_the_bytes_the_hash_names() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("source");
        fs::write(&source, b"blob").unwrap();
        let target = dir.path().join("target");
        let good = hex_lower(&Sha256::digest(b"blob"));
        let err = copy_verified(&source, &target, &"0".repeat(64)).unwrap_err();
        assert!(
            format!("{err:#}").contains("does not hold that body"),
            "{err:#}"
        );
        assert!(!target.exists());
        let err = copy_verified(Path::new("/dev/null"), &target, &good).unwrap_err();
        assert!(format!("{err:#}").contains("not a regular file"), "{err:#}");
        copy_verified(&source, &target, &good).unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"blob");
        assert_eq!(mode(&target), 0o600);
    }
}
