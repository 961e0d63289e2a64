//! Site identity: the agency that runs the site, its logo and favicon, and the helpdesk's
//! contact, from `site.*`. Every page gets the same facts from here (header, footer, the pages
//! that send people to the helpdesk), so one setting changes them everywhere.

use std::path::Path;
use std::sync::Arc;

use serde_json::{json, Map, Value};

use crate::config::{image_type, SiteConfig, FAVICON_TYPES, LOGO_TYPES};
use crate::error::InfraError;
use crate::lang::Lang;

/// The built-in emblem, used when `site.logo_file` / `site.favicon_file` are empty.
const DEFAULT_LOGO: &[u8] = include_bytes!("../../templates/static/logo.svg");

/// An image served as it was read, with what a cache needs to keep it.
#[derive(Clone)]
pub struct Image {
    pub bytes: Arc<[u8]>,
    pub content_type: &'static str,
    /// A strong validator from the contents, so a changed file is fetched again.
    pub etag: String,
}

impl Image {
    fn new(bytes: Vec<u8>, content_type: &'static str) -> Self {
        let digest = crate::crypto::sha256_b64(&bytes);
        let etag = format!("\"{}\"", digest.chars().filter(char::is_ascii_alphanumeric).take(16).collect::<String>());
        Self { bytes: bytes.into(), content_type, etag }
    }

    /// The configured file, or the built-in emblem when none is set.
    fn load(key: &str, file: &Path, allowed: &[(&str, &'static str)]) -> Result<Self, InfraError> {
        if file.as_os_str().is_empty() {
            return Ok(Self::new(DEFAULT_LOGO.to_vec(), "image/svg+xml"));
        }
        let setting = |why: String| InfraError::Internal(format!("{key}: {}: {why}", file.display()));
        let content_type = image_type(file, allowed).ok_or_else(|| setting("unsupported file type".into()))?;
        let bytes = std::fs::read(file).map_err(|e| setting(e.to_string()))?;
        if bytes.is_empty() {
            return Err(setting("the file is empty".into()));
        }
        Ok(Self::new(bytes, content_type))
    }

    /// The short version string put in the page's URL for it, so browsers may keep it long.
    fn version(&self) -> &str {
        self.etag.trim_matches('"')
    }
}

/// Who runs the site, as the pages show it.
#[derive(Clone)]
pub struct Site {
    agency_name: String,
    agency_name_en: String,
    helpdesk: [(&'static str, String); 3],
    pub logo: Image,
    pub favicon: Image,
}

impl Site {
    /// Reads `site.*`, the image files included; a file that cannot be read stops the start.
    pub fn load(config: &SiteConfig) -> Result<Self, InfraError> {
        Ok(Self {
            agency_name: config.agency_name.trim().to_string(),
            agency_name_en: config.agency_name_en.trim().to_string(),
            helpdesk: [
                ("helpdesk_phone", config.helpdesk_phone.trim().to_string()),
                ("helpdesk_hours", config.helpdesk_hours.trim().to_string()),
                ("helpdesk_email", config.helpdesk_email.trim().to_string()),
            ],
            logo: Image::load("site.logo_file", &config.logo_file, LOGO_TYPES)?,
            favicon: Image::load("site.favicon_file", &config.favicon_file, FAVICON_TYPES)?,
        })
    }

    /// The identity for a page in `lang`: `agency_name`, the helpdesk's contact (each left out
    /// when not set, `helpdesk` true when any is), and the image versions for their URLs.
    pub fn context(&self, lang: Lang) -> Value {
        let mut ctx = Map::new();
        let name = if lang == Lang::En { &self.agency_name_en } else { &self.agency_name };
        ctx.insert("agency_name".into(), json!(name));
        let mut any = false;
        for (key, value) in &self.helpdesk {
            if !value.is_empty() {
                ctx.insert((*key).into(), json!(value));
                any = true;
            }
        }
        ctx.insert("helpdesk".into(), json!(any));
        ctx.insert("logo_version".into(), json!(self.logo.version()));
        ctx.insert("favicon_version".into(), json!(self.favicon.version()));
        Value::Object(ctx)
    }
}

impl Default for Site {
    /// The built-in identity (`site.*` defaults), for renderings without a configuration.
    fn default() -> Self {
        // The defaults name no file, so nothing here can fail.
        Self::load(&SiteConfig::default()).unwrap_or_else(|_| Self {
            agency_name: String::new(),
            agency_name_en: String::new(),
            helpdesk: Default::default(),
            logo: Image::new(DEFAULT_LOGO.to_vec(), "image/svg+xml"),
            favicon: Image::new(DEFAULT_LOGO.to_vec(), "image/svg+xml"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_types_follow_the_extension_in_any_case() {
        assert_eq!(image_type(Path::new("a/logo.PNG"), LOGO_TYPES), Some("image/png"));
        assert_eq!(image_type(Path::new("logo.svg"), LOGO_TYPES), Some("image/svg+xml"));
        assert_eq!(image_type(Path::new("favicon.ico"), FAVICON_TYPES), Some("image/x-icon"));
        assert_eq!(image_type(Path::new("favicon.ico"), LOGO_TYPES), None);
        assert_eq!(image_type(Path::new("logo"), LOGO_TYPES), None);
        assert_eq!(image_type(Path::new("logo.html"), LOGO_TYPES), None);
    }

    #[test]
    fn empty_helpdesk_fields_are_left_out_and_the_name_follows_the_language() {
        let config = SiteConfig { helpdesk_phone: " 02-1234-5678 ".into(), ..SiteConfig::default() };
        let site = Site::load(&config).unwrap();
        let zh = site.context(Lang::ZhTw);
        assert_eq!(zh["agency_name"], "行政院人事行政總處");
        assert_eq!(zh["helpdesk_phone"], "02-1234-5678");
        assert_eq!(zh["helpdesk"], true);
        assert!(zh.get("helpdesk_hours").is_none());
        assert!(site.context(Lang::En)["agency_name"].as_str().unwrap().starts_with("Directorate-General"));
        assert_eq!(Site::default().context(Lang::ZhTw)["helpdesk"], false);
    }

    #[test]
    fn a_changed_file_gets_a_new_validator() {
        let a = Image::new(b"one".to_vec(), "image/png");
        let b = Image::new(b"two".to_vec(), "image/png");
        assert_ne!(a.etag, b.etag);
        assert!(a.etag.starts_with('"') && a.etag.ends_with('"') && a.version().len() == 16);
    }
}
