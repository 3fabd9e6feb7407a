//! The file system as relink touches it: reading only regular files, rewriting a user's file
//! without losing a concurrent edit, its owner or its mode, never writing outside the corpus
//! folder, and one writer at a time per folder.
//!
//! Every write into a corpus goes through [`rewrite`]: the new bytes go to a temporary file
//! beside the old one (named [`TEMP_PREFIX`]..., so a later run can tell its own leftovers from
//! anyone else's files), which gets the old file's owner, group and mode and is then renamed over
//! it. Just before the rename the old file is read again; if someone wrote to it since it was
//! read, the edit is made again on the new text. The rename is an atomic exchange where the
//! system has one, so a file another program renamed over the path at the last moment is seen
//! and put back. Just after the rename, and once more a moment later ([`Settle`]), the old file
//! is read again through the descriptor kept open: a writer that had it open across the rename
//! wrote into the replaced file, and that text is carried into the new one (with whatever was
//! appended to the new one meanwhile, as an appender's next line is). What is left is the
//! window of a writer that keeps the file open longer than that and writes later, which no
//! rename-based writer (editors included) can close.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// Name prefix of every temporary file relink creates; leftovers of a killed run carry it.
pub const TEMP_PREFIX: &str = ".relink-tmp-";

/// How often a rewrite starts over because the file kept changing under it.
const MAX_TRIES: usize = 4;

/// Opens `path` for reading only if it is a regular file. A FIFO, socket or device would block
/// a plain `open` or `read` for ever; here they are refused at once.
pub fn open_regular(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            if meta.is_dir() {
                "a folder, not a file"
            } else {
                "not a regular file (a FIFO, socket or device)"
            },
        ));
    }
    // Back to blocking reads: O_NONBLOCK only served to make the open itself safe.
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor this function owns.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK);
        }
    }
    Ok(file)
}

/// The bytes of a regular file (see [`open_regular`]).
pub fn read_regular(path: &Path) -> io::Result<Vec<u8>> {
    let mut file = open_regular(path)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The text of a regular file (see [`open_regular`]).
pub fn read_regular_string(path: &Path) -> io::Result<String> {
    String::from_utf8(read_regular(path)?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not valid UTF-8"))
}

/// What identifies a file's state without reading it: device, inode, size, and the
/// modification and status-change times. Any write changes the status-change time, which no
/// program can set back, so an unchanged stamp means unchanged bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileStamp {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
}

impl FileStamp {
    pub fn of(meta: &fs::Metadata) -> FileStamp {
        FileStamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
            ctime_ns: meta.ctime() as i128 * 1_000_000_000 + meta.ctime_nsec() as i128,
        }
    }

    /// The stamp of the file at `path` now (following symbolic links).
    pub fn now(path: &Path) -> io::Result<FileStamp> {
        Ok(FileStamp::of(&fs::metadata(path)?))
    }
}

/// The bytes of a regular file and its stamp, taken from the open file before reading.
pub fn read_regular_stamped(path: &Path) -> io::Result<(Vec<u8>, FileStamp)> {
    let mut file = open_regular(path)?;
    let stamp = FileStamp::of(&file.metadata()?);
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok((bytes, stamp))
}

/// Whole contents of an open file, read from its start.
fn read_all_at(file: &File) -> io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut out = Vec::with_capacity(file.metadata()?.len() as usize + 64);
    let mut buf = vec![0u8; 64 * 1024];
    let mut offset = 0u64;
    loop {
        let n = file.read_at(&mut buf, offset)?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
        offset += n as u64;
    }
}

/// Why a file was not rewritten.
#[derive(Debug, thiserror::Error)]
pub enum WriteError<E> {
    /// The operating system said no.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// relink will not write this file (outside the folder, not writable, hard links...).
    #[error("{0}")]
    Refused(String),
    /// The edit function refused the file's current text.
    #[error("{0}")]
    Edit(E),
}

/// Where `path` really is, provided that is inside `root`. A symbolic link that leads out of
/// the corpus folder (or anything else that resolves there) is refused, so relink never
/// writes, nor creates a temporary file, outside the folder it was given.
pub fn resolve_inside(path: &Path, root: &Path) -> io::Result<Result<PathBuf, String>> {
    let root = fs::canonicalize(root)?;
    let root_dir = if root.is_dir() {
        root
    } else {
        root.parent().map(Path::to_path_buf).unwrap_or(root)
    };
    let target = fs::canonicalize(path)?;
    if target.starts_with(&root_dir) {
        Ok(Ok(target))
    } else {
        Ok(Err(format!(
            "a symbolic link to {}, outside {}; relink never writes outside the corpus folder",
            target.display(),
            root_dir.display()
        )))
    }
}

/// The checks made before a file is replaced. Returns a reason to refuse.
fn refuse_reason(path: &Path, meta: &fs::Metadata) -> Option<String> {
    if !meta.file_type().is_file() {
        return Some("not a regular file".into());
    }
    if meta.nlink() > 1 {
        return Some(format!(
            "has {} hard links; replacing it would leave the other names with the old text",
            meta.nlink()
        ));
    }
    // Would this user be allowed to write the file itself? A rename in a writable folder could
    // replace it anyway; relink does not.
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: a valid C string; faccessat only reads it.
    let writable =
        unsafe { libc::faccessat(libc::AT_FDCWD, c.as_ptr(), libc::W_OK, libc::AT_EACCESS) } == 0;
    if !writable {
        return Some(format!(
            "permission denied: the file (mode {:04o}, owner uid {}) is not writable by this user",
            meta.mode() & 0o7777,
            meta.uid()
        ));
    }
    None
}

/// Gives `temp` the owner, group and mode of the file it replaces, or says why it cannot.
fn copy_owner_and_mode(temp: &File, meta: &fs::Metadata) -> Result<(), String> {
    let now = temp.metadata().map_err(|e| e.to_string())?;
    if now.uid() != meta.uid() || now.gid() != meta.gid() {
        // SAFETY: fchown on a descriptor we own.
        let r = unsafe { libc::fchown(temp.as_raw_fd(), meta.uid(), meta.gid()) };
        if r != 0 {
            return Err(format!(
                "owned by uid {} gid {}, which this user cannot give a new file; rewriting it would change its owner",
                meta.uid(),
                meta.gid()
            ));
        }
    }
    // After the chown: changing the owner clears set-id bits.
    temp.set_permissions(fs::Permissions::from_mode(meta.mode() & 0o7777))
        .map_err(|e| e.to_string())
}

/// A new temporary file in `path`'s folder (named [`TEMP_PREFIX`]...) holding `bytes`.
fn temp_beside(path: &Path, bytes: &[u8]) -> io::Result<tempfile::NamedTempFile> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut temp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(dir)?;
    temp.write_all(bytes)?;
    temp.flush()?;
    Ok(temp)
}

/// A temporary file beside `target` holding `bytes`, synced, with the owner and mode of `meta`.
fn write_temp(
    target: &Path,
    bytes: &[u8],
    meta: &fs::Metadata,
) -> Result<tempfile::NamedTempFile, WriteError<std::convert::Infallible>> {
    let temp = temp_beside(target, bytes)?;
    copy_owner_and_mode(temp.as_file(), meta).map_err(WriteError::Refused)?;
    temp.as_file().sync_all()?;
    Ok(temp)
}

fn same_file(a: &fs::Metadata, b: &fs::Metadata) -> bool {
    a.dev() == b.dev() && a.ino() == b.ino()
}

fn widen<E>(e: WriteError<std::convert::Infallible>) -> WriteError<E> {
    match e {
        WriteError::Io(e) => WriteError::Io(e),
        WriteError::Refused(r) => WriteError::Refused(r),
        WriteError::Edit(never) => match never {},
    }
}

/// Puts `temp` at `target` in place of the file `expected` describes, and returns the new file.
/// Where the system can (Linux's `renameat2` with `RENAME_EXCHANGE`) the two are swapped
/// atomically and the file swapped out is checked: if it is not `expected` (a program renamed
/// a file of its own over the path just before), it is swapped back and `None` returned, so
/// that save is not lost. Elsewhere a plain rename.
fn replace(
    temp: tempfile::NamedTempFile,
    target: &Path,
    expected: &fs::Metadata,
) -> io::Result<Option<File>> {
    let (file, temp_path) = temp.into_parts();
    let c = |p: &Path| std::ffi::CString::new(p.as_os_str().as_encoded_bytes());
    let (Ok(from), Ok(to)) = (c(&temp_path), c(target)) else {
        temp_path.persist(target).map_err(|e| e.error)?;
        return Ok(Some(file));
    };
    let exchange = |a: &std::ffi::CString, b: &std::ffi::CString| {
        // SAFETY: two valid C strings; the call only reads them.
        unsafe {
            libc::syscall(
                libc::SYS_renameat2,
                libc::AT_FDCWD,
                a.as_ptr(),
                libc::AT_FDCWD,
                b.as_ptr(),
                libc::RENAME_EXCHANGE,
            )
        }
    };
    if exchange(&from, &to) != 0 {
        let err = io::Error::last_os_error();
        if matches!(
            err.raw_os_error(),
            Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::EOPNOTSUPP)
        ) {
            temp_path.persist(target).map_err(|e| e.error)?;
            return Ok(Some(file));
        }
        return Err(err);
    }
    // The temporary path now holds what was at the target.
    let swapped_out = fs::symlink_metadata(&temp_path)?;
    if same_file(&swapped_out, expected) {
        // The old file, as expected: it goes (its descriptor stays open for the settle).
        drop(temp_path);
        return Ok(Some(file));
    }
    if exchange(&to, &from) != 0 {
        // Never delete the other program's file: leave it where it is and say so.
        let err = io::Error::last_os_error();
        let kept = temp_path.keep().map_err(|e| e.error)?;
        return Err(io::Error::new(
            err.kind(),
            format!(
                "replaced while relink wrote it; the other version is kept as {}: {err}",
                kept.display()
            ),
        ));
    }
    // `temp_path` holds relink's text again and is removed when dropped.
    drop(temp_path);
    Ok(None)
}

/// A file just replaced: the old one, still open, to be read once more a moment later by
/// [`settle`], in case a writer that had it open wrote into it after the rename.
pub struct Settle {
    target: PathBuf,
    old: File,
    /// The old file's bytes when it was replaced.
    old_bytes: Vec<u8>,
    /// The text that was edited into `written`, where it is not `old_bytes` (text carried
    /// over from an earlier replaced file).
    source: Option<Vec<u8>>,
    /// What was written in its place.
    written: Vec<u8>,
    /// The new file's stamp, right after the rename.
    stamp: FileStamp,
}

impl Settle {
    /// The stamp and the xxh3 of the bytes of the file written.
    fn written(&self) -> (FileStamp, u64) {
        (self.stamp, xxhash_rust::xxh3::xxh3_64(&self.written))
    }

    /// The text that was edited into the file written.
    fn source(&self) -> &[u8] {
        self.source.as_deref().unwrap_or(&self.old_bytes)
    }
}

/// An edit of a file's bytes: `Ok(None)` leaves them as they are, `Err` refuses the text.
pub type Edit<'a, E> = dyn Fn(&[u8]) -> Result<Option<Vec<u8>>, E> + 'a;

/// What a [`rewrite`] did.
pub enum Rewritten {
    /// The edit left the bytes as they were; nothing was written.
    Unchanged,
    /// The file was replaced; [`settle`] it after a moment.
    Changed(Settle),
}

/// The text to edit once a file that held `base` is found holding `now`, where `source` is the
/// text the edit was to be made on: `base` itself when relink has not written the file (then
/// `now` is simply the newer text), or the text whose edit relink wrote as `base` (then only an
/// append to `base` can be carried over, onto `source`; the edit cannot be made on text that
/// already holds it). `None` when the change cannot be carried over.
fn carry(base: &[u8], source: &[u8], now: &[u8]) -> Option<Vec<u8>> {
    if base == source {
        Some(now.to_vec())
    } else {
        let tail = now.strip_prefix(base)?;
        Some([source, tail].concat())
    }
}

/// The refusal when a file and the one it replaced were both written to in ways that cannot be
/// put together.
fn edited_twice<E>() -> WriteError<E> {
    WriteError::Refused(
        "edited twice while relink wrote it (once in the replaced file, not only by appending); \
         left as it is now, without the text written into the replaced file"
            .into(),
    )
}

/// The refusal when a file kept changing for every try.
fn kept_changing<E>() -> WriteError<E> {
    WriteError::Refused("kept changing while relink wrote it; left as it is now".into())
}

/// Replaces the file at `path` (inside `root`) with `edit(its bytes)`, keeping its owner, group
/// and mode. `edit` returns `Ok(None)` when nothing needs writing, and is called again on the
/// new text whenever the file changes during the rewrite; it refuses a text it cannot edit
/// with `Err`.
///
/// Refused without writing: a path that resolves outside `root`, anything but a regular file,
/// a file with other hard links, and a file this user could not write in place.
pub fn rewrite<E>(
    path: &Path,
    root: &Path,
    edit: &Edit<'_, E>,
) -> Result<Rewritten, WriteError<E>> {
    let target = resolve_inside(path, root)?.map_err(WriteError::Refused)?;
    let file = open_regular(&target)?;
    let on_disk = read_all_at(&file)?;
    let source = on_disk.clone();
    rewrite_from(&target, file, on_disk, source, edit)
}

/// The rewrite loop. `file` is what `target` holds now, `on_disk` its bytes, and `source` the
/// text to edit (the same bytes, unless text written into a replaced file is being carried
/// over; see [`carry`]).
fn rewrite_from<E>(
    target: &Path,
    mut file: File,
    mut on_disk: Vec<u8>,
    mut source: Vec<u8>,
    edit: &Edit<'_, E>,
) -> Result<Rewritten, WriteError<E>> {
    let mut changed: Option<Settle> = None;
    for _ in 0..MAX_TRIES {
        let meta = file.metadata()?;
        if let Some(reason) = refuse_reason(target, &meta) {
            return Err(WriteError::Refused(reason));
        }
        let new = edit(&source)
            .map_err(WriteError::Edit)?
            .unwrap_or_else(|| source.clone());
        if new == on_disk {
            return Ok(changed.map_or(Rewritten::Unchanged, Rewritten::Changed));
        }
        let temp = write_temp(target, &new, &meta).map_err(widen)?;
        // The last look before the rename: the same file, with the same bytes?
        let still_there = fs::symlink_metadata(target).is_ok_and(|m| same_file(&m, &meta));
        let now = read_all_at(&file)?;
        let replaced = if now != on_disk || !still_there {
            None
        } else {
            // `None`: another program put a new file at the path between the last look and
            // the swap (an editor saving by rename); it was put back.
            replace(temp, target, &meta)?
        };
        let Some(new_file) = replaced else {
            // Start over from what the path holds now: the same file, written to, or another
            // file put there.
            let now = if still_there && now != on_disk {
                now
            } else {
                file = open_regular(target)?;
                read_all_at(&file)?
            };
            source = carry(&on_disk, &source, &now).ok_or_else(edited_twice)?;
            on_disk = now;
            continue;
        };
        let stamp = FileStamp::of(&new_file.metadata()?);
        // Straight after the rename: did anyone write into the old file meanwhile?
        let after = read_all_at(&file)?;
        if after == on_disk {
            return Ok(Rewritten::Changed(Settle {
                target: target.to_path_buf(),
                old: file,
                source: (source != on_disk).then_some(source),
                old_bytes: on_disk,
                written: new,
                stamp,
            }));
        }
        source = carry(&on_disk, &source, &after).ok_or_else(edited_twice)?;
        // Go on from the new file, as written; it is settled in its turn.
        file = new_file;
        on_disk = new;
        changed = Some(Settle {
            target: target.to_path_buf(),
            old: file.try_clone()?,
            old_bytes: on_disk.clone(),
            source: Some(source.clone()),
            written: on_disk.clone(),
            stamp,
        });
    }
    Err(kept_changing())
}

/// Reads a replaced file once more; text written into it after the rename is carried into the
/// file now at its path (edited again by `edit`), as is text appended since to the file relink
/// wrote. Returns the stamp and the xxh3 of the bytes of the file relink wrote last.
pub fn settle<E>(s: Settle, edit: &Edit<'_, E>) -> Result<(FileStamp, u64), WriteError<E>> {
    let mut s = s;
    for _ in 0..MAX_TRIES {
        let after = read_all_at(&s.old)?;
        let file = open_regular(&s.target)?;
        let old_is_target = same_file(&file.metadata()?, &s.old.metadata()?);
        let (source, on_disk) = if old_is_target {
            // Still the file relink wrote (relink replaced the file once more, and this is the
            // file it wrote): only what was appended to it counts.
            if after == s.written {
                return Ok(s.written());
            }
            (carry(&s.written, s.source(), &after), after)
        } else {
            if after == s.old_bytes {
                return Ok(s.written());
            }
            let now = read_all_at(&file)?;
            let source = carry(&s.old_bytes, s.source(), &after)
                .and_then(|source| carry(&s.written, &source, &now));
            (source, now)
        };
        let source = source.ok_or_else(edited_twice)?;
        match rewrite_from(&s.target, file, on_disk, source, edit)? {
            Rewritten::Unchanged => return Ok(s.written()),
            Rewritten::Changed(next) => s = next,
        }
    }
    Err(kept_changing())
}

/// Writes a file relink owns (state, reports) through a temporary file and a rename. A new file
/// gets the mode the umask gives, as any other program's output; an existing one keeps its mode.
pub fn write_new(path: &Path, contents: &[u8]) -> io::Result<()> {
    persist_new(temp_beside(path, contents)?, path)
}

/// [`write_new`], with the contents written by `fill` through a buffer, so that a large file
/// (the per-file records of a million articles) is never held whole in memory.
pub fn write_new_with(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    let mut temp = temp_beside(path, &[])?;
    {
        let mut w = io::BufWriter::with_capacity(1 << 20, temp.as_file_mut());
        fill(&mut w)?;
        w.flush()?;
    }
    persist_new(temp, path)
}

/// Gives `temp` the mode of the file at `path` (or the umask's for a new one), syncs it and
/// renames it there.
fn persist_new(temp: tempfile::NamedTempFile, path: &Path) -> io::Result<()> {
    let mode = match fs::metadata(path) {
        Ok(m) => m.mode() & 0o7777,
        Err(_) => 0o666 & !umask(),
    };
    temp.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))?;
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// The process's umask (read by setting it and setting it back).
fn umask() -> u32 {
    // SAFETY: umask cannot fail; the value is restored at once.
    unsafe {
        let old = libc::umask(0o022);
        libc::umask(old);
        old as u32
    }
}

/// relink's own temporary files directly in `dir` (by their [`TEMP_PREFIX`]).
pub fn stale_temps_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(TEMP_PREFIX))
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .collect()
}

/// Removes temporary files a killed run left (found by [`stale_temps_in`] or a corpus walk);
/// returns how many were removed. Call it with the folder's lock held, so that no running relink
/// is still writing them.
pub fn remove_stale_temps(files: &[PathBuf]) -> usize {
    files
        .iter()
        .filter(|f| {
            f.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(TEMP_PREFIX))
                && fs::remove_file(f).is_ok()
        })
        .count()
}

/// An advisory lock on a folder (`<dir>/lock`, held with `flock`), so that one relink at a time
/// writes a corpus and its state. The lock ends with the process, however it ends.
pub struct FolderLock {
    _file: File,
    pub path: PathBuf,
    /// The folder locked beside it ([`FolderLock::and_folder`]).
    _folder: Option<File>,
}

/// What another process holding the lock wrote about itself.
pub fn lock_holder(path: &Path) -> String {
    read_regular_string(path)
        .ok()
        .map(|t| t.trim().replace('\n', ", "))
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "another process".into())
}

impl FolderLock {
    /// Takes the lock in `dir` (created if needed). When another process holds it: with `wait`,
    /// `waiting(holder)` is called once and the lock is awaited; without, `Err(holder)`.
    pub fn acquire(
        dir: &Path,
        what: &str,
        wait: bool,
        waiting: &mut dyn FnMut(&str),
    ) -> io::Result<Result<FolderLock, String>> {
        fs::create_dir_all(dir)?;
        let path = dir.join("lock");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
            .open(&path)?;
        if !file.metadata()?.file_type().is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: not a regular file", path.display()),
            ));
        }
        let fd = file.as_raw_fd();
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(err);
            }
            let holder = lock_holder(&path);
            if !wait {
                return Ok(Err(holder));
            }
            waiting(&holder);
            // SAFETY: as above; this call blocks until the holder is done.
            if unsafe { libc::flock(fd, libc::LOCK_EX) } != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        let started = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ");
        let info = format!("pid {}\n{what}\nsince {started}\n", std::process::id());
        file.set_len(0)?;
        (&file).write_all(info.as_bytes())?;
        Ok(Ok(FolderLock {
            _file: file,
            path,
            _folder: None,
        }))
    }

    /// This lock, holding `folder` itself locked as well (`flock` on the folder, which needs
    /// no write permission there, so every user who can read the folder takes the same lock).
    /// When another process holds it: with `wait`, `waiting(holder)` is called once and the
    /// lock is awaited; without, `Err(holder)`.
    pub fn and_folder(
        mut self,
        folder: &Path,
        wait: bool,
        waiting: &mut dyn FnMut(&str),
    ) -> io::Result<Result<FolderLock, String>> {
        // Where the folder cannot be opened or locked this way (a folder this user may only
        // pass through, a network file system without flock), the state folder's lock is
        // what there is, as before.
        let unsupported = |e: &io::Error| {
            matches!(
                e.raw_os_error(),
                Some(libc::EACCES | libc::EBADF | libc::ENOLCK | libc::EOPNOTSUPP | libc::EINVAL)
            )
        };
        let dir = match OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(folder)
        {
            Ok(dir) => dir,
            Err(e) if unsupported(&e) => return Ok(Ok(self)),
            Err(e) => return Err(e),
        };
        let fd = dir.as_raw_fd();
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let err = io::Error::last_os_error();
            if unsupported(&err) {
                return Ok(Ok(self));
            }
            if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(err);
            }
            // The holder may be another user, whose own state folder says who it is.
            let holder = "another relink run on this corpus (with a state folder of its own)";
            if !wait {
                return Ok(Err(holder.into()));
            }
            waiting(holder);
            // SAFETY: as above; this call blocks until the holder is done.
            if unsafe { libc::flock(fd, libc::LOCK_EX) } != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        self._folder = Some(dir);
        Ok(Ok(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edit_upper(b: &[u8]) -> Result<Option<Vec<u8>>, String> {
        Ok(Some(b.to_ascii_uppercase()))
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("f.md");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        let err = read_regular(&fifo).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        assert!(read_regular(dir.path()).is_err());
    }

    #[test]
    fn rewrite_keeps_mode_and_refuses_links_out_and_hard_links() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("corpus");
        fs::create_dir(&root).unwrap();
        let a = root.join("a.md");
        fs::write(&a, "abc").unwrap();
        fs::set_permissions(&a, fs::Permissions::from_mode(0o604)).unwrap();
        let Rewritten::Changed(s) = rewrite(&a, &root, &edit_upper).unwrap() else {
            panic!("not written")
        };
        settle(s, &edit_upper).unwrap();
        assert_eq!(fs::read(&a).unwrap(), b"ABC");
        assert_eq!(fs::metadata(&a).unwrap().mode() & 0o7777, 0o604);

        let outside = dir.path().join("outside.md");
        fs::write(&outside, "out").unwrap();
        std::os::unix::fs::symlink(&outside, root.join("link.md")).unwrap();
        let err = rewrite(&root.join("link.md"), &root, &edit_upper)
            .err()
            .unwrap();
        assert!(err.to_string().contains("outside"), "{err}");
        assert_eq!(fs::read(&outside).unwrap(), b"out");

        fs::hard_link(&a, root.join("b.md")).unwrap();
        let err = rewrite(&a, &root, &edit_upper).err().unwrap();
        assert!(err.to_string().contains("2 hard links"), "{err}");
        let leftovers = fs::read_dir(&root)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(TEMP_PREFIX)
            })
            .count();
        assert_eq!(leftovers, 0);
    }

    /// Rewrites "abc\n" with `edit_upper` while a writer that opened the file before the
    /// rename writes "late\n" after it; `meanwhile` then acts on the path before the settle.
    /// Returns the settle's error, if any, and the file's bytes.
    fn written_across_the_swap(meanwhile: impl FnOnce(&Path)) -> (Result<(), String>, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.md");
        fs::write(&a, "abc\n").unwrap();
        let mut late = OpenOptions::new().append(true).open(&a).unwrap();
        let Rewritten::Changed(s) = rewrite(&a, dir.path(), &edit_upper).unwrap() else {
            panic!("not written")
        };
        late.write_all(b"late\n").unwrap();
        meanwhile(&a);
        let settled = settle(s, &edit_upper)
            .map(|_| ())
            .map_err(|e| e.to_string());
        (settled, fs::read(&a).unwrap())
    }

    #[test]
    fn text_written_into_the_replaced_file_is_carried_over() {
        let (settled, bytes) = written_across_the_swap(|_| {});
        settled.unwrap();
        assert_eq!(bytes, b"ABC\nLATE\n");
    }

    #[test]
    fn appends_to_both_the_replaced_file_and_the_new_one_are_kept() {
        // The writer's next line lands in the new file.
        let (settled, bytes) = written_across_the_swap(|a| {
            let mut next = OpenOptions::new().append(true).open(a).unwrap();
            next.write_all(b"next\n").unwrap();
        });
        settled.unwrap();
        assert_eq!(bytes, b"ABC\nLATE\nNEXT\n");
    }

    #[test]
    fn a_new_file_rewritten_while_the_replaced_one_was_written_is_left_as_it_is() {
        // Not an append: the text relink wrote is changed in place.
        let (settled, bytes) = written_across_the_swap(|a| {
            let mut f = OpenOptions::new().write(true).open(a).unwrap();
            f.write_all(b"X").unwrap();
        });
        let why = settled.unwrap_err();
        assert!(why.contains("edited twice"), "{why}");
        assert_eq!(bytes, b"XBC\n");
    }

    #[test]
    fn a_file_renamed_over_the_path_at_the_last_moment_is_put_back() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.md");
        fs::write(&a, "relink read this").unwrap();
        let expected = fs::metadata(&a).unwrap();
        // An editor saves by renaming its own file over the path.
        let saved = dir.path().join(".editor-save");
        fs::write(&saved, "the editor's save").unwrap();
        fs::rename(&saved, &a).unwrap();
        let temp = temp_beside(&a, b"relink's version").unwrap();
        assert!(replace(temp, &a, &expected).unwrap().is_none());
        assert_eq!(fs::read(&a).unwrap(), b"the editor's save");
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "a temporary file left"
        );
        // With the expected file in place, the swap goes through.
        let now = fs::metadata(&a).unwrap();
        let temp = temp_beside(&a, b"relink's version").unwrap();
        assert!(replace(temp, &a, &now).unwrap().is_some());
        assert_eq!(fs::read(&a).unwrap(), b"relink's version");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn stale_temps_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(format!("{TEMP_PREFIX}x1")), "").unwrap();
        fs::write(dir.path().join(".tmpABCDEF"), "").unwrap();
        assert_eq!(remove_stale_temps(&stale_temps_in(dir.path())), 1);
        assert!(dir.path().join(".tmpABCDEF").exists());
    }

    #[test]
    fn a_second_lock_is_refused_and_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let _held = FolderLock::acquire(dir.path(), "relink refresh", true, &mut |_| {})
            .unwrap()
            .unwrap();
        // flock locks belong to the open file description: a second open is a second holder.
        let holder = FolderLock::acquire(dir.path(), "relink eval", false, &mut |_| {})
            .unwrap()
            .err()
            .unwrap();
        assert!(
            holder.contains(&format!("pid {}", std::process::id())),
            "{holder}"
        );
        assert!(holder.contains("relink refresh"), "{holder}");
    }
}
