//! `enclave restore`: turns an encrypted backup archive (made by `enclave backup`) into a new
//! data directory that `enclave serve --data-dir NEW` starts on.
//!
//! Nothing final is written before the whole archive has been decrypted and verified: the
//! files go into a private temporary directory next to NEW, which is renamed to NEW only at
//! the end (and removed on any error). A wrong master key is found before anything is
//! written at all.

use enclave_keys::{ArchiveReader, FileMasterKeys, KeyError};
use std::io::{BufReader, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

const EXIT_FAIL: i32 = 1;
const EXIT_USAGE: i32 = 2;

/// Arguments of `enclave restore`.
#[derive(clap::Args, Debug)]
pub struct RestoreArgs {
    /// The archive written by `enclave backup --out FILE`.
    #[arg(value_name = "FILE")]
    archive: PathBuf,
    /// The new data directory: must not exist, or be empty. Created with mode 0700.
    #[arg(long, value_name = "NEW")]
    data_dir: PathBuf,
    /// The master key that made the archive: a copy of the installation's `master.key`, or
    /// its `master.sealed` (then with --passphrase-stdin). It is copied into NEW.
    #[arg(long, value_name = "PATH")]
    master_key: Option<PathBuf>,
    /// Read the passphrase of a sealed master key (`master.sealed`) from standard input.
    #[arg(long)]
    passphrase_stdin: bool,
}

/// A failure: its message, an optional hint and the exit code.
struct Failed(i32, String, Option<String>);

fn fail(msg: impl Into<String>) -> Failed {
    Failed(EXIT_FAIL, msg.into(), None)
}

fn usage(msg: impl Into<String>, hint: impl Into<String>) -> Failed {
    Failed(EXIT_USAGE, msg.into(), Some(hint.into()))
}

/// `enclave restore FILE --data-dir NEW [--master-key PATH] [--passphrase-stdin]`.
pub fn restore(args: &RestoreArgs) -> i32 {
    match run(args) {
        Ok(()) => 0,
        Err(Failed(code, msg, hint)) => {
            eprintln!("error: {msg}");
            if let Some(h) = hint {
                eprintln!("hint: {h}");
            }
            code
        }
    }
}

/// The master key file to use: PATH, or the key file inside PATH when it is a directory.
fn key_file(path: &Path) -> Result<PathBuf, Failed> {
    if path.is_dir() {
        for name in [FileMasterKeys::LOCAL_FILE, FileMasterKeys::SEALED_FILE] {
            if path.join(name).is_file() {
                return Ok(path.join(name));
            }
        }
        return Err(usage(
            format!("{} holds no master.key or master.sealed", path.display()),
            "give --master-key the key file itself",
        ));
    }
    if !path.is_file() {
        return Err(usage(
            format!("the master key file {} does not exist", path.display()),
            "give --master-key a copy of the installation's master.key (or master.sealed)",
        ));
    }
    Ok(path.to_path_buf())
}

/// Opens the master key file: a plain key ring, or a sealed one unsealed with the passphrase
/// read from stdin. Returns the provider and whether it is sealed.
fn open_master(path: &Path, passphrase_stdin: bool) -> Result<(FileMasterKeys, bool), Failed> {
    let mut magic = [0u8; 4];
    let sealed = std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .map(|()| &magic == b"EKS1")
        .unwrap_or(false);
    if sealed {
        if !passphrase_stdin {
            return Err(usage(
                format!("{} is sealed with a passphrase", path.display()),
                "add --passphrase-stdin and give the passphrase on standard input",
            ));
        }
        let mut line = zeroize::Zeroizing::new(String::new());
        std::io::stdin().read_line(&mut line).map_err(|e| {
            fail(format!(
                "cannot read the passphrase from standard input: {e}"
            ))
        })?;
        let pass = zeroize::Zeroizing::new(line.trim_end_matches(['\n', '\r']).to_string());
        let m = FileMasterKeys::open_sealed(path)
            .map_err(|e| fail(format!("the sealed master key {}: {e}", path.display())))?;
        m.unseal(pass.as_bytes()).map_err(|e| match e {
            KeyError::WrongPassphrase => Failed(
                EXIT_FAIL,
                format!(
                    "wrong passphrase for {}; nothing was written",
                    path.display()
                ),
                Some("give the passphrase this sealed key file was made with".into()),
            ),
            other => fail(format!("the sealed master key {}: {other}", path.display())),
        })?;
        return Ok((m, true));
    }
    if passphrase_stdin {
        return Err(usage(
            format!("{} is not a sealed master key", path.display()),
            "--passphrase-stdin goes with a master.sealed file; leave it out for master.key",
        ));
    }
    let m = FileMasterKeys::open_or_create_local(path)
        .map_err(|e| fail(format!("the master key {}: {e}", path.display())))?;
    Ok((m, false))
}

/// Checks that `dir` does not exist or is an empty directory.
fn check_target(dir: &Path) -> Result<(), Failed> {
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(fail(format!("cannot inspect {}: {e}", dir.display()))),
        Ok(m) if !m.is_dir() => Err(usage(
            format!("{} exists and is not a directory", dir.display()),
            "give --data-dir a new directory",
        )),
        Ok(_) => {
            let mut entries = std::fs::read_dir(dir)
                .map_err(|e| fail(format!("cannot read {}: {e}", dir.display())))?;
            if entries.next().is_some() {
                return Err(usage(
                    format!("{} is not empty; nothing was written", dir.display()),
                    "restore into a new or empty directory (a restore never overwrites data)",
                ));
            }
            Ok(())
        }
    }
}

fn run(args: &RestoreArgs) -> Result<(), Failed> {
    let key_path = match &args.master_key {
        Some(p) => key_file(p)?,
        None => {
            return Err(usage(
                "restore needs the master key that made the archive",
                "add --master-key PATH: a copy of the installation's master.key (or master.sealed with --passphrase-stdin)",
            ))
        }
    };
    check_target(&args.data_dir)?;
    let file = std::fs::File::open(&args.archive)
        .map_err(|e| fail(format!("cannot open {}: {e}", args.archive.display())))?;
    let mut reader = ArchiveReader::new(BufReader::with_capacity(1 << 20, file))
        .map_err(|e| fail(format!("{}: {e}", args.archive.display())))?;
    let info = reader.info().clone();
    let (master, sealed) = open_master(&key_path, args.passphrase_stdin)?;
    reader.unlock(&master).map_err(|e| match e {
        KeyError::WrongMasterKey => Failed(
            EXIT_FAIL,
            format!(
                "the master key {} does not open this archive: it was made with master key {}, which that file does not hold; nothing was written",
                key_path.display(),
                info.master_key_id
            ),
            Some("give --master-key the key file of the installation the backup came from".into()),
        ),
        KeyError::UnknownKey { key_id, .. } => Failed(
            EXIT_FAIL,
            format!(
                "{} has retired master key {key_id}, which made this archive (the master key was rotated after the backup); nothing was written",
                key_path.display()
            ),
            Some("use a copy of the master key file from the time of the backup".into()),
        ),
        other => fail(format!("{}: {other}; nothing was written", args.archive.display())),
    })?;

    // Extract into a private temporary directory next to NEW.
    let target = absolute(&args.data_dir);
    let parent = target
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .ok_or_else(|| {
            usage(
                "--data-dir must name a directory",
                "e.g. --data-dir ./restored",
            )
        })?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&parent)
        .map_err(|e| fail(format!("cannot create {}: {e}", parent.display())))?;
    let tmp = parent.join(format!(".{name}.restore-{}", std::process::id()));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&tmp)
        .map_err(|e| fail(format!("cannot create {}: {e}", tmp.display())))?;
    match extract_into(reader, &tmp, &key_path, sealed, &args.archive, &target) {
        Ok(files) => {
            println!(
                "restored backup {} (made {}, master key {}) into {}:",
                info.archive_id,
                enclave_core::Timestamp(info.created_at).rfc3339(),
                info.master_key_id,
                target.display()
            );
            for (n, len) in files {
                println!("  {n:<20} {len} bytes");
            }
            let mode = if sealed {
                " with keys.master = \"passphrase\" (then `enclave unseal`)"
            } else {
                ""
            };
            println!(
                "start it with: enclave serve --data-dir {}{mode}\n\
                 the TLS certificate is new (self-signed, generated at the first start); verify the trail with: enclave admin verify-audit --data-dir {}",
                target.display(),
                target.display()
            );
            Ok(())
        }
        Err(f) => {
            let _ = std::fs::remove_dir_all(&tmp);
            Err(f)
        }
    }
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}

fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

/// Decrypts every file into `tmp`, adds the master key file, makes it durable and renames
/// `tmp` to `target`. Returns the files written with their sizes.
fn extract_into<R: Read>(
    reader: ArchiveReader<R>,
    tmp: &Path,
    key_path: &Path,
    sealed: bool,
    archive: &Path,
    target: &Path,
) -> Result<Vec<(String, u64)>, Failed> {
    let files = reader
        .extract(|name, _len| {
            create_private(&tmp.join(name)).map(|f| std::io::BufWriter::with_capacity(1 << 20, f))
        })
        .map_err(|e| fail(format!("{}: {e}; nothing was written", archive.display())))?;
    if !files.iter().any(|f| f.name == enclave_app::BACKUP_DB_NAME) {
        return Err(fail(format!(
            "{} holds no database ({}); nothing was written",
            archive.display(),
            enclave_app::BACKUP_DB_NAME
        )));
    }
    let key_name = if sealed {
        FileMasterKeys::SEALED_FILE
    } else {
        FileMasterKeys::LOCAL_FILE
    };
    if files.iter().any(|f| f.name == key_name) {
        return Err(fail(format!(
            "{} holds a master key file, which archives never do; nothing was written",
            archive.display()
        )));
    }
    let key_bytes = zeroize::Zeroizing::new(
        std::fs::read(key_path)
            .map_err(|e| fail(format!("cannot read {}: {e}", key_path.display())))?,
    );
    let io = |what: &Path, e: std::io::Error| fail(format!("cannot write {}: {e}", what.display()));
    let kp = tmp.join(key_name);
    create_private(&kp)
        .and_then(|mut f| f.write_all(&key_bytes).map(|()| f))
        .map_err(|e| io(&kp, e))?;
    let mut out: Vec<(String, u64)> = files.into_iter().map(|f| (f.name, f.len)).collect();
    out.push((key_name.to_string(), key_bytes.len() as u64));
    for (n, _) in &out {
        let p = tmp.join(n);
        std::fs::File::open(&p)
            .and_then(|f| f.sync_all())
            .map_err(|e| io(&p, e))?;
    }
    sync_dir(tmp).map_err(|e| io(tmp, e))?;
    // NEW was checked to be absent or empty; an empty directory is replaced by the rename.
    std::fs::rename(tmp, target).map_err(|e| io(target, e))?;
    if let Some(parent) = target.parent() {
        let _ = sync_dir(parent);
    }
    Ok(out)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir).and_then(|d| d.sync_all())
}
