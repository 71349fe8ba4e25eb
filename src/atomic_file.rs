//! Whole-file replacement that readers never see half-written: write a sibling temporary file,
//! then rename it over the target (atomic within a filesystem). Used for the stats file (tmpfs,
//! every few seconds) and the state file (flash on routers: written rarely).

use std::io::{self, Write};
use std::path::Path;

pub fn write(path: &Path, contents: &[u8], durable: bool) -> io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(contents)?;
        if durable {
            // On flash, the rename must not land before the data it points to.
            f.sync_all()?;
        }
    }
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_file_and_creates_parent() {
        let dir = std::env::temp_dir().join(format!("scanban-atomic-{}", std::process::id()));
        let path = dir.join("sub/stats");
        write(&path, b"first\n", false).unwrap();
        write(&path, b"second\n", true).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second\n");
        assert!(!dir.join("sub/stats.tmp").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
