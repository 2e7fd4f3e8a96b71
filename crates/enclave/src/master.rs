//! The master key on the server host: which file, how it is opened, and `enclave admin
//! init-sealed`, which creates a passphrase-sealed one.

use enclave_config::MasterKeySource;
use enclave_keys::{FileMasterKeys, KeyError, SealParams};
use std::path::Path;
use std::sync::Arc;

/// Opens the master keys of `data_dir` as configured. A local key file is created on first
/// start — but never next to existing encrypted data, which a new key could not open.
pub fn open(data_dir: &Path, source: MasterKeySource) -> Result<Arc<FileMasterKeys>, String> {
    match source {
        MasterKeySource::File => {
            let path = data_dir.join(FileMasterKeys::LOCAL_FILE);
            if !path.exists() && crate::trail::public_key(data_dir).is_ok() {
                return Err(format!(
                    "{} has encrypted data but no master key file {}: restore that file (a new key would open nothing)",
                    data_dir.display(),
                    path.display()
                ));
            }
            if data_dir.join(FileMasterKeys::SEALED_FILE).exists() {
                return Err(format!(
                    "{} holds a passphrase-sealed master key: set keys.master = \"passphrase\"",
                    data_dir.display()
                ));
            }
            FileMasterKeys::open_or_create_local(&path)
                .map(Arc::new)
                .map_err(|e| format!("the master key {}: {e}", path.display()))
        }
        MasterKeySource::Passphrase => {
            let path = data_dir.join(FileMasterKeys::SEALED_FILE);
            if !path.exists() {
                return Err(format!(
                    "no sealed master key in {}: create one with `enclave admin init-sealed --data-dir {} --passphrase-stdin`",
                    data_dir.display(),
                    data_dir.display()
                ));
            }
            FileMasterKeys::open_sealed(&path)
                .map(Arc::new)
                .map_err(|e| format!("the sealed master key {}: {e}", path.display()))
        }
    }
}

/// `enclave admin init-sealed`: creates `master.sealed` from a passphrase read on stdin.
pub fn init_sealed(data_dir: &Path) -> i32 {
    if let Err(e) = crate::serve::prepare_data_dir(data_dir) {
        eprintln!("error: cannot create {}: {e}", data_dir.display());
        return 1;
    }
    if data_dir.join(FileMasterKeys::LOCAL_FILE).exists() {
        eprintln!(
            "error: {} already has a local master key (master.key); sealing an existing installation is not supported",
            data_dir.display()
        );
        return 2;
    }
    let mut line = zeroize::Zeroizing::new(String::new());
    if std::io::stdin().read_line(&mut line).is_err() {
        eprintln!("error: cannot read the passphrase from standard input");
        return 2;
    }
    let passphrase = zeroize::Zeroizing::new(line.trim_end_matches(['\n', '\r']).to_string());
    let path = data_dir.join(FileMasterKeys::SEALED_FILE);
    match FileMasterKeys::create_sealed(&path, passphrase.as_bytes(), SealParams::default()) {
        Ok(_) => {
            println!(
                "created {}; start the server with keys.master = \"passphrase\" and unseal it with `enclave unseal`",
                path.display()
            );
            0
        }
        Err(KeyError::WeakPassphrase { min }) => {
            eprintln!("error: the passphrase must be at least {min} bytes long");
            2
        }
        Err(e) => {
            eprintln!("error: {}: {e}", path.display());
            1
        }
    }
}
