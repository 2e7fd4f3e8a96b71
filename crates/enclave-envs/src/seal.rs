//! File-system work on a built environment: scripts made independent of the build path, the
//! tree made read-only for everyone but its owner, whole trees removed.

use crate::command::MOUNT_PATH;
use crate::{Error, Result};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Scripts larger than this are left alone (console scripts are a few hundred bytes).
const MAX_SCRIPT: u64 = 1 << 20;

/// The first lines of a console script that finds its interpreter next to itself (the form uv
/// writes for relocatable venvs; Python reads the `'''…'''` as a string and goes on).
const RELOCATABLE_SHEBANG: &str =
    "#!/bin/sh\n'''exec' \"$(dirname -- \"$(realpath -- \"$0\")\")\"/'python' \"$0\" \"$@\"\n' '''\n";

/// Makes the scripts in `env/bin` and `env/pyvenv.cfg` independent of `build_path` (where the
/// venv was created, which will not exist afterwards): a `#!build_path/bin/python…` line becomes
/// the relocatable header above, and any other mention of `build_path` becomes
/// [`MOUNT_PATH`], where sandboxes see the environment. Returns how many files changed.
pub(crate) fn relocate_scripts(env: &Path, build_path: &Path) -> Result<usize> {
    let needle = build_path.as_os_str().as_encoded_bytes().to_vec();
    let mut files: Vec<PathBuf> = vec![env.join("pyvenv.cfg")];
    let bin = env.join("bin");
    for entry in fs::read_dir(&bin).map_err(Error::io(format!("cannot list {}", bin.display())))? {
        let entry = entry.map_err(Error::io(format!("cannot list {}", bin.display())))?;
        files.push(entry.path());
    }
    let mut changed = 0;
    for file in files {
        let Ok(meta) = fs::symlink_metadata(&file) else {
            continue;
        };
        if !meta.is_file() || meta.len() > MAX_SCRIPT {
            continue;
        }
        let bytes =
            fs::read(&file).map_err(Error::io(format!("cannot read {}", file.display())))?;
        if let Some(new) = relocate(&bytes, &needle) {
            fs::write(&file, new).map_err(Error::io(format!("cannot write {}", file.display())))?;
            changed += 1;
        }
    }
    Ok(changed)
}

/// The relocated content of one file, or `None` when it does not mention `build_path`.
fn relocate(content: &[u8], build_path: &[u8]) -> Option<Vec<u8>> {
    if build_path.is_empty() || find(content, build_path).is_none() {
        return None;
    }
    let mut body = content;
    let mut out: Vec<u8> = Vec::with_capacity(content.len() + 64);
    let mut shebang = b"#!".to_vec();
    shebang.extend_from_slice(build_path);
    shebang.extend_from_slice(b"/bin/python");
    if content.starts_with(&shebang) {
        let first_end = content
            .iter()
            .position(|&b| b == b'\n')
            .map_or(content.len(), |i| i + 1);
        let first = &content[shebang.len()..first_end];
        // Only "python", "python3", "python3.11" followed by the end of line.
        if first
            .iter()
            .all(|&b| b.is_ascii_digit() || b == b'.' || b == b'\n' || b == b'\r')
        {
            out.extend_from_slice(RELOCATABLE_SHEBANG.as_bytes());
            body = &content[first_end..];
        }
    }
    let mut rest = body;
    while let Some(i) = find(rest, build_path) {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(MOUNT_PATH.as_bytes());
        rest = &rest[i + build_path.len()..];
    }
    out.extend_from_slice(rest);
    Some(out)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || needle.len() > haystack.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Makes the tree at `root` read-only for everyone but its owner: directories 0755, files 0644
/// or, when any execute bit was set, 0755 (no set-id or sticky bits); owned by root:root when
/// `chown_root` (the server runs as root). Symbolic links are left as they are (not followed).
/// Anything that is not a file, directory or link (a socket, a device) fails the build.
pub(crate) fn seal(root: &Path, chown_root: bool) -> Result<()> {
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = fs::symlink_metadata(&path)
            .map_err(Error::io(format!("cannot read {}", path.display())))?;
        let ft = meta.file_type();
        if chown_root {
            std::os::unix::fs::lchown(&path, Some(0), Some(0))
                .map_err(Error::io(format!("cannot chown {}", path.display())))?;
        }
        let mode = if ft.is_symlink() {
            continue;
        } else if ft.is_dir() {
            for entry in
                fs::read_dir(&path).map_err(Error::io(format!("cannot list {}", path.display())))?
            {
                let entry = entry.map_err(Error::io(format!("cannot list {}", path.display())))?;
                stack.push(entry.path());
            }
            0o755
        } else if ft.is_file() {
            if meta.permissions().mode() & 0o111 != 0 {
                0o755
            } else {
                0o644
            }
        } else {
            return Err(Error::Io {
                what: format!(
                    "{} is neither a file, a directory nor a link; environments hold only those",
                    path.display()
                ),
                source: std::io::Error::from(std::io::ErrorKind::InvalidData),
            });
        };
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))
            .map_err(Error::io(format!("cannot chmod {}", path.display())))?;
    }
    Ok(())
}

/// Removes the tree at `path` if it exists.
pub(crate) fn remove_tree(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::Io {
            what: format!("cannot remove {}", path.display()),
            source: e,
        }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    const BUILD: &[u8] = b"/srv/envs/.build-ds-0123456789abcdef-42";

    #[test]
    fn shebangs_become_relocatable() {
        let script = b"#!/srv/envs/.build-ds-0123456789abcdef-42/bin/python3.11\n# -*- coding: utf-8 -*-\nimport sys\n";
        let out = relocate(script, BUILD).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with(RELOCATABLE_SHEBANG), "{text}");
        assert!(text.ends_with("# -*- coding: utf-8 -*-\nimport sys\n"));
        let plain = relocate(
            b"#!/srv/envs/.build-ds-0123456789abcdef-42/bin/python\nx\n",
            BUILD,
        )
        .unwrap();
        assert!(String::from_utf8(plain).unwrap().starts_with("#!/bin/sh\n"));
    }

    #[test]
    fn other_mentions_become_the_mount_path() {
        let activate = b"VIRTUAL_ENV=\"/srv/envs/.build-ds-0123456789abcdef-42\"\nexport PATH=\"$VIRTUAL_ENV/bin:$PATH\"\n";
        let out = String::from_utf8(relocate(activate, BUILD).unwrap()).unwrap();
        assert_eq!(
            out,
            "VIRTUAL_ENV=\"/opt/enclave/env\"\nexport PATH=\"$VIRTUAL_ENV/bin:$PATH\"\n"
        );
        // A shebang with arguments or another program is not a console script: only the path
        // is replaced.
        let odd = b"#!/srv/envs/.build-ds-0123456789abcdef-42/bin/python -E\n";
        assert_eq!(
            relocate(odd, BUILD).unwrap(),
            b"#!/opt/enclave/env/bin/python -E\n".to_vec()
        );
        assert!(relocate(b"#!/usr/bin/env python\n", BUILD).is_none());
        assert!(relocate(b"", BUILD).is_none());
    }

    #[test]
    fn relocates_files_in_a_tree() {
        let d = tempfile::tempdir().unwrap();
        let build = d.path().join(".build-x");
        std::fs::create_dir_all(build.join("bin")).unwrap();
        let tool = build.join("bin/tool");
        std::fs::write(
            &tool,
            format!("#!{}/bin/python\nprint(1)\n", build.display()),
        )
        .unwrap();
        std::fs::set_permissions(&tool, fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(build.join("pyvenv.cfg"), "home = /usr/bin\n").unwrap();
        std::os::unix::fs::symlink("/usr/bin/python3", build.join("bin/python")).unwrap();
        assert_eq!(relocate_scripts(&build, &build).unwrap(), 1);
        let text = std::fs::read_to_string(&tool).unwrap();
        assert!(text.starts_with("#!/bin/sh\n") && text.ends_with("print(1)\n"));
        assert_eq!(
            fs::metadata(&tool).unwrap().permissions().mode() & 0o777,
            0o755
        );
    }

    #[test]
    fn seal_sets_modes() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("env");
        std::fs::create_dir_all(root.join("lib/sub")).unwrap();
        let data = root.join("lib/sub/data.txt");
        let exe = root.join("lib/run");
        std::fs::write(&data, "x").unwrap();
        std::fs::write(&exe, "x").unwrap();
        std::fs::set_permissions(&data, fs::Permissions::from_mode(0o666)).unwrap();
        std::fs::set_permissions(&exe, fs::Permissions::from_mode(0o4777)).unwrap();
        std::fs::set_permissions(root.join("lib"), fs::Permissions::from_mode(0o777)).unwrap();
        std::os::unix::fs::symlink("/nonexistent", root.join("dangling")).unwrap();
        seal(&root, false).unwrap();
        let mode = |p: &Path| fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&root), 0o755);
        assert_eq!(mode(&root.join("lib")), 0o755);
        assert_eq!(mode(&data), 0o644);
        assert_eq!(mode(&exe), 0o755);
        remove_tree(&root).unwrap();
        assert!(!root.exists());
        remove_tree(&root).unwrap();
    }

    #[test]
    fn seal_refuses_sockets() {
        let d = tempfile::tempdir().unwrap();
        let _sock = std::os::unix::net::UnixListener::bind(d.path().join("s")).unwrap();
        let e = seal(d.path(), false).unwrap_err();
        assert!(e.to_string().contains("neither a file"), "{e}");
    }
}
