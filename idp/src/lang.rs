//! The two page languages: Traditional Chinese first, English second.

/// A page language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    ZhTw,
    En,
}

impl Lang {
    pub fn tag(self) -> &'static str {
        match self {
            Lang::ZhTw => "zh-TW",
            Lang::En => "en",
        }
    }

    /// The language the page's switch offers: the other of the two.
    pub fn other(self) -> Lang {
        match self {
            Lang::ZhTw => Lang::En,
            Lang::En => Lang::ZhTw,
        }
    }

    /// Picks from `ui_locales` (space-separated, in order of preference) if it names one we
    /// have, else from `Accept-Language` by quality, else Traditional Chinese.
    pub fn negotiate(ui_locales: Option<&str>, accept_language: Option<&str>) -> Lang {
        let pick = |tag: &str| {
            let tag = tag.trim().to_ascii_lowercase();
            if tag.starts_with("zh") {
                Some(Lang::ZhTw)
            } else if tag.starts_with("en") {
                Some(Lang::En)
            } else {
                None
            }
        };
        if let Some(l) = ui_locales.and_then(|u| u.split(' ').find_map(pick)) {
            return l;
        }
        if let Some(header) = accept_language {
            let mut tags: Vec<(f32, &str)> = header
                .split(',')
                .filter_map(|part| {
                    let mut it = part.split(';');
                    let tag = it.next()?.trim();
                    let q = it.find_map(|p| p.trim().strip_prefix("q=")).and_then(|q| q.parse().ok()).unwrap_or(1.0);
                    Some((q, tag))
                })
                .collect();
            tags.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap_or(std::cmp::Ordering::Equal));
            if let Some(l) = tags.iter().filter(|(q, _)| *q > 0.0).find_map(|(_, t)| pick(t)) {
                return l;
            }
        }
        Lang::ZhTw
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_negotiation() {
        assert_eq!(Lang::negotiate(None, None), Lang::ZhTw);
        assert_eq!(Lang::negotiate(Some("en-US"), Some("zh-TW")), Lang::En);
        assert_eq!(Lang::negotiate(None, Some("en-US,en;q=0.9,zh-TW;q=0.8")), Lang::En);
        assert_eq!(Lang::negotiate(None, Some("fr, zh-TW;q=0.5, en;q=0.4")), Lang::ZhTw);
        assert_eq!(Lang::negotiate(Some("fr"), Some("de")), Lang::ZhTw);
    }
}
