//! Parsing of protocol parameters: size limits, duplicates and encoding errors are caught here
//! once, so every endpoint answers them with a 400-class error instead of guessing.

/// The longest single parameter value accepted.
pub const MAX_VALUE: usize = 4096;
/// The most parameters accepted in one request.
pub const MAX_PARAMS: usize = 64;

/// Why the parameters could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    #[error("the parameters are not valid form encoding")]
    Encoding,
    #[error("too many parameters")]
    TooMany,
    #[error("parameter `{0}` is too long")]
    TooLong(String),
    #[error("parameter `{0}` is repeated")]
    Duplicate(String),
}

/// Decoded parameters, in order, with duplicates detectable.
#[derive(Debug, Clone, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Parses `application/x-www-form-urlencoded` text (a query string or a form body).
    pub fn parse(raw: &[u8]) -> Result<Self, ParamError> {
        Self::parse_limited(raw, None, MAX_VALUE)
    }

    /// Like [`Params::parse`], but the one field `file` (an uploaded file) may be up to
    /// `file_max` long.
    pub fn parse_with_file(raw: &[u8], file: &str, file_max: usize) -> Result<Self, ParamError> {
        Self::parse_limited(raw, Some(file), file_max)
    }

    fn parse_limited(raw: &[u8], file: Option<&str>, file_max: usize) -> Result<Self, ParamError> {
        // Percent-decoding into invalid UTF-8 is replaced by U+FFFD by the decoder; refuse it
        // instead of guessing what the client meant.
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(raw).into_owned().collect();
        if pairs.len() > MAX_PARAMS {
            return Err(ParamError::TooMany);
        }
        for (k, v) in &pairs {
            if k.contains('\u{FFFD}') || v.contains('\u{FFFD}') {
                return Err(ParamError::Encoding);
            }
            let max = if file == Some(k.as_str()) { file_max } else { MAX_VALUE };
            if k.len() > 128 || v.len() > max {
                return Err(ParamError::TooLong(k.chars().take(64).collect()));
            }
        }
        Ok(Self(pairs))
    }

    /// The single value of a parameter; an empty value counts as absent (RFC 6749 §3.1).
    pub fn get(&self, name: &str) -> Result<Option<&str>, ParamError> {
        let mut found = None;
        for (k, v) in &self.0 {
            if k == name {
                if found.is_some() {
                    return Err(ParamError::Duplicate(name.into()));
                }
                found = Some(v.as_str());
            }
        }
        Ok(found.filter(|v| !v.is_empty()))
    }

    /// The first repeated parameter name, if any.
    pub fn first_duplicate(&self) -> Option<&str> {
        let mut seen = std::collections::HashSet::new();
        self.0.iter().map(|(k, _)| k.as_str()).find(|k| !seen.insert(*k))
    }

    /// Every parameter, in the order sent.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Whether a parameter is present at all.
    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_named_file_field_may_exceed_the_value_limit() {
        let file_max = MAX_VALUE * 4;
        let big = "x".repeat(MAX_VALUE + 1);
        let p = Params::parse_with_file(format!("csv={big}&name=a").as_bytes(), "csv", file_max).unwrap();
        assert_eq!(p.get("csv").unwrap().map(str::len), Some(MAX_VALUE + 1));
        assert_eq!(p.get("name").unwrap(), Some("a"));
        let other = Params::parse_with_file(format!("csv=a&name={big}").as_bytes(), "csv", file_max);
        assert!(matches!(other, Err(ParamError::TooLong(_))), "another field keeps the limit");
        assert!(matches!(Params::parse(format!("csv={big}").as_bytes()), Err(ParamError::TooLong(_))));
        let huge = "x".repeat(file_max + 1);
        let over = Params::parse_with_file(format!("csv={huge}").as_bytes(), "csv", file_max);
        assert!(matches!(over, Err(ParamError::TooLong(_))), "the file has its own limit");
    }

    #[test]
    fn duplicates_encoding_and_sizes_are_caught() {
        let p = Params::parse(b"a=1&b=2&a=3").unwrap();
        assert_eq!(p.get("b").unwrap(), Some("2"));
        assert_eq!(p.get("a"), Err(ParamError::Duplicate("a".into())));
        assert_eq!(p.first_duplicate(), Some("a"));
        assert_eq!(Params::parse(b"a=%ff").unwrap_err(), ParamError::Encoding);
        let long = format!("a={}", "x".repeat(MAX_VALUE + 1));
        assert!(matches!(Params::parse(long.as_bytes()), Err(ParamError::TooLong(_))));
        assert_eq!(Params::parse(b"a=").unwrap().get("a").unwrap(), None);
    }

    #[test]
    fn the_limits_are_inclusive() {
        let many = |n: usize| (0..n).map(|i| format!("p{i}=v")).collect::<Vec<_>>().join("&");
        assert_eq!(Params::parse(many(MAX_PARAMS).as_bytes()).unwrap().get("p63").unwrap(), Some("v"));
        assert_eq!(Params::parse(many(MAX_PARAMS + 1).as_bytes()).unwrap_err(), ParamError::TooMany);

        let value = |n: usize| format!("v={}", "x".repeat(n));
        assert_eq!(
            Params::parse(value(MAX_VALUE).as_bytes()).unwrap().get("v").unwrap().map(str::len),
            Some(MAX_VALUE)
        );
        assert!(matches!(Params::parse(value(MAX_VALUE + 1).as_bytes()), Err(ParamError::TooLong(k)) if k == "v"));

        let name = |n: usize| format!("{}=1", "k".repeat(n));
        assert!(Params::parse(name(128).as_bytes()).unwrap().has(&"k".repeat(128)));
        // The error names the parameter, cut to 64 characters.
        assert_eq!(Params::parse(name(129).as_bytes()).unwrap_err(), ParamError::TooLong("k".repeat(64)));
    }

    #[test]
    fn invalid_utf8_in_a_name_is_an_encoding_error() {
        assert_eq!(Params::parse(b"%ff=1").unwrap_err(), ParamError::Encoding);
        assert_eq!(Params::parse(b"ok=1&%c3=2").unwrap_err(), ParamError::Encoding);
    }

    #[test]
    fn lookups_see_exactly_the_named_parameter() {
        let p = Params::parse(b"scope=openid&state=&nonce=n-1").unwrap();
        assert_eq!(p.get("scope").unwrap(), Some("openid"));
        assert_eq!(p.get("nonce").unwrap(), Some("n-1"));
        assert_eq!(p.get("prompt").unwrap(), None, "absent");
        assert_eq!(p.get("state").unwrap(), None, "empty counts as absent");
        assert!(p.has("state"), "but it was sent");
        assert!(!p.has("prompt"));
        assert_eq!(p.first_duplicate(), None);
        let p = Params::parse(b"a=1&b=2&b=3&a=4").unwrap();
        assert_eq!(p.first_duplicate(), Some("b"), "the first name seen twice");
    }
}
