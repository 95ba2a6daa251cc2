//! A temporary directory for the configuration tests, whose keys name files.

use std::path::{Path, PathBuf};

/// A directory under the system temporary directory, removed on drop.
pub(crate) struct TempDirectory {
    path: PathBuf,
}

impl TempDirectory {
    pub(crate) fn new() -> TempDirectory {
        let path = std::env::temp_dir().join(format!("mpic-config-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&path).expect("temporary directory is created");
        TempDirectory { path }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `contents` to `name` in the directory and returns the file's path as text.
    pub(crate) fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> String {
        let path = self.path.join(name);
        std::fs::write(&path, contents).expect("test file is written");
        path.display().to_string()
    }
}

impl Drop for TempDirectory {
    fn drop(&mut self) {
        // A directory left behind in the temporary directory harms nothing.
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
