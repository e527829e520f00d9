//! Handing the registro giornaliero to conservation (by the next working day): a port with
//! two implementations — a folder (the default: files and a manifest written under
//! `<dir>/AAAA-MM-GG/`, for a conservation process that collects them) and an HTTP endpoint
//! (a multipart POST of the manifest and the files; the answer's body is the receipt). The
//! receipt is kept with the day's register.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use chrono::NaiveDate;

/// One file of a package.
#[derive(Debug, Clone)]
pub struct PackageFile {
    /// File name.
    pub name: String,
    /// Media type.
    pub media_type: String,
    /// Content.
    pub content: Vec<u8>,
    /// Hex SHA-256.
    pub sha256: String,
}

/// What is handed over for one day.
#[derive(Debug, Clone)]
pub struct Package {
    /// The day.
    pub day: NaiveDate,
    /// The files (CSV and HTML).
    pub files: Vec<PackageFile>,
    /// The manifest (JSON): the AOO, the day, each file's name and digest.
    pub manifest: String,
}

/// A conservation system.
#[async_trait]
pub trait Conservazione: Send + Sync + std::fmt::Debug {
    /// Hands a package over; returns the receipt, or why it failed.
    async fn deposit(&self, package: &Package) -> Result<String, String>;
    /// What it is.
    fn describe(&self) -> String;
}

/// A folder collected by the conservation process.
#[derive(Debug, Clone)]
pub struct FolderConservazione {
    dir: PathBuf,
}

impl FolderConservazione {
    /// Deposits under `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> FolderConservazione {
        FolderConservazione { dir: dir.into() }
    }
}

#[async_trait]
impl Conservazione for FolderConservazione {
    async fn deposit(&self, package: &Package) -> Result<String, String> {
        let folder = self.dir.join(package.day.format("%Y-%m-%d").to_string());
        tokio::fs::create_dir_all(&folder)
            .await
            .map_err(|e| format!("{}: {e}", folder.display()))?;
        for file in &package.files {
            let path = folder.join(&file.name);
            tokio::fs::write(&path, &file.content)
                .await
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
        let manifest = folder.join("manifest.json");
        tokio::fs::write(&manifest, package.manifest.as_bytes())
            .await
            .map_err(|e| format!("{}: {e}", manifest.display()))?;
        Ok(format!(
            "depositato in {} (manifest sha256 {})",
            folder.display(),
            crate::store::sha256_hex(package.manifest.as_bytes())
        ))
    }

    fn describe(&self) -> String {
        format!("cartella {}", self.dir.display())
    }
}

/// An HTTP endpoint of the conservation system.
#[derive(Debug, Clone)]
pub struct HttpConservazione {
    client: reqwest::Client,
    url: String,
    token: Option<String>,
}

impl HttpConservazione {
    /// Deposits by POST to `url`.
    pub fn new(
        url: &str,
        token: Option<String>,
        timeout: Duration,
    ) -> Result<HttpConservazione, String> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| format!("client HTTP della conservazione: {e}"))?;
        Ok(HttpConservazione {
            client,
            url: url.to_owned(),
            token,
        })
    }
}

#[async_trait]
impl Conservazione for HttpConservazione {
    async fn deposit(&self, package: &Package) -> Result<String, String> {
        let mut form = reqwest::multipart::Form::new().part(
            "manifest",
            reqwest::multipart::Part::text(package.manifest.clone())
                .file_name("manifest.json")
                .mime_str("application/json")
                .map_err(|e| e.to_string())?,
        );
        for file in &package.files {
            form = form.part(
                file.name.clone(),
                reqwest::multipart::Part::bytes(file.content.clone())
                    .file_name(file.name.clone())
                    .mime_str(&file.media_type)
                    .map_err(|e| e.to_string())?,
            );
        }
        receipt(
            self.client.post(&self.url).multipart(form),
            self.token.as_deref(),
        )
        .await
    }

    fn describe(&self) -> String {
        format!("servizio di conservazione {}", self.url)
    }
}

/// Sends a hand-over (with the bearer token, if any) and reads the receipt: the body of a
/// successful answer, or the status and the beginning of the body of a refusal.
pub(crate) async fn receipt(
    request: reqwest::RequestBuilder,
    token: Option<&str>,
) -> Result<String, String> {
    let request = match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    let response = request.send().await.map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if status.is_success() {
        Ok(body.chars().take(2_000).collect())
    } else {
        Err(format!(
            "HTTP {status}: {}",
            body.chars().take(300).collect::<String>()
        ))
    }
}
