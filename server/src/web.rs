//! The browser pages (`--web-root DIR`): the relay serves the built widget and console from its
//! own origin, so a page's WebSocket goes back to where the page came from.
//!
//! The directory is read **once, at start**, into memory (every regular file under it, up to
//! [`MAX_FILES`] files and [`MAX_TOTAL_BYTES`] in all): a request is a lookup in that map, never
//! a path on disk, so no request can reach a file outside the directory (no `..`, no
//! percent-encoding, no symlink is ever followed: symlinks and dot-files are skipped when
//! loading). Rebuilding the pages needs a relay restart.
//!
//! Every answer carries a strict Content-Security-Policy ([`CSP`]: scripts and styles only from
//! this origin, no inline script, connections only back to this origin over `ws:`/`wss:`),
//! `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`,
//! `Cross-Origin-Resource-Policy: same-origin` (but `cross-origin` for [`EMBED_PATH`], which
//! other sites load) and a content type chosen from the file's extension. `/` and any path
//! ending in `/` serve that directory's `index.html`. Files under `assets/` (named by content
//! hash by the build) are cacheable for a year; everything else must be revalidated.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Response, StatusCode};

use crate::error::{Error, Result};

/// Most files loaded from a web root.
pub const MAX_FILES: usize = 1024;
/// Most bytes loaded from a web root, all files together.
pub const MAX_TOTAL_BYTES: u64 = 32 * 1024 * 1024;
/// The script a business's own site loads (`<script src=".../embed.js">`): the one file served
/// with `Cross-Origin-Resource-Policy: cross-origin`.
pub const EMBED_PATH: &str = "/embed.js";
/// Deepest directory nesting loaded.
const MAX_DEPTH: usize = 8;

/// The Content-Security-Policy of every page and file served. `connect-src 'self'` covers the
/// same origin's `ws:`/`wss:` in CSP Level 3 browsers; [`csp_for`] adds the explicit
/// `ws://HOST`/`wss://HOST` for older ones when the request's `Host` is a plain host name.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     font-src 'self'; connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; \
     object-src 'none'";

/// One file held in memory.
#[derive(Debug, Clone)]
struct File {
    body: Bytes,
    content_type: &'static str,
    immutable: bool,
}

/// The files of a web root, by URL path (`/index.html`, `/assets/widget-1a2b.js`).
#[derive(Debug, Clone, Default)]
pub struct WebRoot {
    files: HashMap<String, File>,
    root: PathBuf,
}

impl WebRoot {
    /// Loads every regular file under `dir` (dot-files, dot-directories and symlinks skipped).
    ///
    /// # Errors
    ///
    /// [`Error::File`] if `dir` is not a readable directory, a file cannot be read, or the
    /// directory holds more than [`MAX_FILES`] files or [`MAX_TOTAL_BYTES`] bytes.
    pub fn load(dir: &Path) -> Result<Self> {
        let meta = std::fs::metadata(dir).map_err(|e| Error::file(dir, e))?;
        if !meta.is_dir() {
            return Err(Error::file(dir, "not a directory"));
        }
        let mut root = Self {
            files: HashMap::new(),
            root: dir.to_owned(),
        };
        let mut total = 0u64;
        root.walk(dir, "", 0, &mut total)?;
        Ok(root)
    }

    fn walk(&mut self, dir: &Path, prefix: &str, depth: usize, total: &mut u64) -> Result<()> {
        if depth > MAX_DEPTH {
            return Ok(());
        }
        let entries = std::fs::read_dir(dir).map_err(|e| Error::file(dir, e))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::file(dir, e))?;
            names.push(entry);
        }
        names.sort_by_key(std::fs::DirEntry::file_name);
        for entry in names {
            let path = entry.path();
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if !is_clean_segment(&name) {
                continue;
            }
            // `file_type` does not follow symlinks: a symlink is neither a file nor a dir here.
            let kind = entry.file_type().map_err(|e| Error::file(&path, e))?;
            let url = format!("{prefix}/{name}");
            if kind.is_dir() {
                self.walk(&path, &url, depth + 1, total)?;
            } else if kind.is_file() {
                if self.files.len() >= MAX_FILES {
                    return Err(Error::file(
                        &self.root,
                        format!("more than {MAX_FILES} files"),
                    ));
                }
                let body = std::fs::read(&path).map_err(|e| Error::file(&path, e))?;
                *total += body.len() as u64;
                if *total > MAX_TOTAL_BYTES {
                    return Err(Error::file(
                        &self.root,
                        format!("more than {MAX_TOTAL_BYTES} bytes"),
                    ));
                }
                let file = File {
                    body: Bytes::from(body),
                    content_type: content_type(&name),
                    immutable: url.starts_with("/assets/"),
                };
                self.files.insert(url, file);
            }
        }
        Ok(())
    }

    /// How many files are served.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether no file is served.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The URL paths served, sorted.
    pub fn paths(&self) -> Vec<String> {
        let mut v: Vec<String> = self.files.keys().cloned().collect();
        v.sort();
        v
    }

    /// Answers a request for `path` (the URI's path, query excluded), or `None` when no file
    /// matches (the caller answers 404 as for any unknown path). `host` is the request's `Host`
    /// header, used only for [`csp_for`].
    pub fn respond(
        &self,
        method: &Method,
        path: &str,
        host: Option<&str>,
    ) -> Option<Response<Full<Bytes>>> {
        let key = if path.ends_with('/') {
            format!("{path}index.html")
        } else {
            path.to_owned()
        };
        let file = self.files.get(&key)?;
        if method != Method::GET && method != Method::HEAD {
            let mut r = with_headers(Response::new(Full::new(Bytes::new())), host);
            *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return Some(r);
        }
        let body = if method == Method::HEAD {
            Bytes::new()
        } else {
            file.body.clone()
        };
        let mut r = with_headers(Response::new(Full::new(body)), host);
        let h = r.headers_mut();
        // `embed.js` is the one file other sites load (their `<script src>`); everything else
        // is for this origin's pages only.
        h.insert(
            "cross-origin-resource-policy",
            HeaderValue::from_static(if key == EMBED_PATH {
                "cross-origin"
            } else {
                "same-origin"
            }),
        );
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(file.content_type),
        );
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(file.body.len()));
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(if file.immutable {
                "public, max-age=31536000, immutable"
            } else {
                "no-cache"
            }),
        );
        Some(r)
    }
}

/// A path segment the loader accepts: not empty, not starting with `.`, only ASCII letters,
/// digits, `-`, `_`, `.` (what a Vite build names its files).
fn is_clean_segment(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The CSP for a request whose `Host` header is `host`: [`CSP`], with `ws://HOST wss://HOST`
/// added to `connect-src` when `host` is a plain `name[:port]` (anything else is ignored, so a
/// forged header cannot inject a directive).
pub fn csp_for(host: Option<&str>) -> String {
    let clean = host.filter(|h| {
        !h.is_empty()
            && h.len() <= 255
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':' | b'[' | b']'))
    });
    match clean {
        Some(h) => CSP.replace(
            "connect-src 'self'",
            &format!("connect-src 'self' ws://{h} wss://{h}"),
        ),
        None => CSP.to_owned(),
    }
}

fn with_headers(mut r: Response<Full<Bytes>>, host: Option<&str>) -> Response<Full<Bytes>> {
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&csp_for(host)) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

/// The content type of a file named `name`, by extension.
pub fn content_type(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    match ext.to_ascii_lowercase().as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "webmanifest" => "application/manifest+json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        "wasm" => "application/wasm",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> (tempfile::TempDir, WebRoot) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("index.html"), "<!doctype html>").unwrap();
        std::fs::create_dir(dir.path().join("assets")).unwrap();
        std::fs::write(dir.path().join("assets/app-1.js"), "x()").unwrap();
        std::fs::write(dir.path().join(".secret"), "no").unwrap();
        let web = WebRoot::load(dir.path()).unwrap();
        (dir, web)
    }

    #[test]
    fn loads_files_but_not_dot_files() {
        let (_d, web) = root();
        assert_eq!(web.paths(), vec!["/assets/app-1.js", "/index.html"]);
    }

    #[test]
    fn traversal_and_odd_paths_find_nothing() {
        let (_d, web) = root();
        for p in [
            "/../index.html",
            "/assets/../index.html",
            "/%2e%2e/index.html",
            "/.secret",
            "/assets",
            "//index.html",
            "/index.html/",
            "/ASSETS/app-1.js",
        ] {
            assert!(web.respond(&Method::GET, p, None).is_none(), "{p}");
        }
        assert!(web.respond(&Method::GET, "/", None).is_some());
    }

    #[test]
    fn csp_ignores_a_forged_host() {
        assert!(csp_for(Some("127.0.0.1:7800")).contains("ws://127.0.0.1:7800 wss://"));
        assert_eq!(csp_for(Some("evil; script-src *")), CSP);
        assert_eq!(csp_for(None), CSP);
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type("a.JS"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("x"), "application/octet-stream");
    }
}
