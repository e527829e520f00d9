//! Files kept content-addressed: a file is stored once under its SHA-256
//! (`<root>/ab/abcdef…`), written to a temporary name and renamed, so a crash never leaves a
//! half-written file under a digest. Registrations and daily registers name files by digest;
//! `check` tells whether the file on disk still has it.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Environment variable naming the folder of the file store.
pub const FILES_VARIABLE: &str = "PROCEDO_FILES_DIR";
/// The folder when `PROCEDO_FILES_DIR` is not set.
pub const DEFAULT_FILES_DIR: &str = "data/files";

/// What `check` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileCheck {
    /// Present with the expected digest.
    Intact,
    /// Not in the store.
    Missing,
    /// Present, but its content has another digest.
    Changed {
        /// The digest it has now.
        actual: String,
    },
}

/// The content-addressed file store.
#[derive(Debug, Clone)]
pub struct FileStore {
    root: PathBuf,
}

impl FileStore {
    /// A store in `root` (created when the first file is written).
    pub fn new(root: impl Into<PathBuf>) -> FileStore {
        FileStore { root: root.into() }
    }

    /// The store named by `PROCEDO_FILES_DIR`, or `data/files`.
    pub fn from_env() -> FileStore {
        FileStore::new(
            std::env::var_os(FILES_VARIABLE)
                .map_or_else(|| PathBuf::from(DEFAULT_FILES_DIR), PathBuf::from),
        )
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the file with this digest lives.
    pub fn path(&self, sha256: &str) -> PathBuf {
        let sha256 = sha256.to_ascii_lowercase();
        let prefix = sha256.get(..2).unwrap_or("xx");
        self.root.join(prefix).join(&sha256)
    }

    /// Stores `content`; returns its hex SHA-256. Storing the same content again is a no-op.
    pub async fn put(&self, content: &[u8]) -> std::io::Result<String> {
        let sha256 = hex::encode(Sha256::digest(content));
        let path = self.path(&sha256);
        if tokio::fs::try_exists(&path).await.unwrap_or(false) {
            return Ok(sha256);
        }
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        let temporary = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
        tokio::fs::write(&temporary, content).await?;
        if let Err(error) = tokio::fs::rename(&temporary, &path).await {
            let _ = tokio::fs::remove_file(&temporary).await;
            return Err(error);
        }
        Ok(sha256)
    }

    /// The content with this digest, if stored.
    pub async fn get(&self, sha256: &str) -> std::io::Result<Option<Vec<u8>>> {
        match tokio::fs::read(self.path(sha256)).await {
            Ok(content) => Ok(Some(content)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Whether the file with this digest is there and still has it.
    pub async fn check(&self, sha256: &str) -> std::io::Result<FileCheck> {
        Ok(match self.get(sha256).await? {
            None => FileCheck::Missing,
            Some(content) => {
                let actual = hex::encode(Sha256::digest(&content));
                if actual.eq_ignore_ascii_case(sha256) {
                    FileCheck::Intact
                } else {
                    FileCheck::Changed { actual }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_file_is_stored_once_under_its_digest_and_a_change_on_disk_is_seen() {
        let dir = tempfile::tempdir().expect("temp dir");
        let files = FileStore::new(dir.path());
        let sha = files.put(b"123").await.expect("put");
        assert_eq!(
            sha,
            "a665a45920422f9d417e4867efdc4fb8a04a1f3fff1fa07e998e86f7f7a27ae3"
        );
        assert_eq!(files.put(b"123").await.expect("again"), sha);
        assert_eq!(files.get(&sha).await.expect("get"), Some(b"123".to_vec()));
        assert_eq!(files.check(&sha).await.expect("check"), FileCheck::Intact);
        std::fs::write(files.path(&sha), b"124").expect("tamper");
        assert!(matches!(
            files.check(&sha).await.expect("check"),
            FileCheck::Changed { .. }
        ));
        assert_eq!(
            files.check(&"0".repeat(64)).await.expect("check"),
            FileCheck::Missing
        );
    }
}
