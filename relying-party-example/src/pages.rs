//! The HTML pages. Plain strings with every dynamic value escaped: the
//! pages are tiny and a template engine would be more code than they are.
//! Text is Traditional Chinese first, then English.

use serde::Serialize;

use crate::oidc::SignedIn;

/// Escapes text for use in HTML element content and quoted attributes.
/// Claims, error descriptions and the like come from the IdP or the query
/// string and must never be interpreted as markup.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Wraps a body in the common page skeleton.
fn layout(title: &str, body: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="zh-Hant">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 52rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.5; }}
table {{ border-collapse: collapse; }}
th, td {{ text-align: left; vertical-align: top; padding: .25rem .75rem .25rem 0; }}
pre {{ background: #f4f4f4; padding: .75rem; overflow-x: auto; }}
.notice {{ background: #e8f4e8; padding: .5rem .75rem; }}
.error {{ background: #fbeaea; padding: .5rem .75rem; }}
a.button {{ display: inline-block; padding: .4rem 1rem; border: 1px solid #333; text-decoration: none; }}
</style>
</head>
<body>
{body}
</body>
</html>
"#,
        title = escape(title),
    )
}

/// Home page when nobody is signed in.
pub fn signed_out(notice: Option<&str>) -> String {
    let notice = notice.map(|n| format!(r#"<p class="notice">{}</p>"#, escape(n))).unwrap_or_default();
    layout(
        "依賴方範例 / Relying party example",
        &format!(
            r#"<h1>依賴方範例 / Relying party example</h1>
{notice}
<p>尚未登入。 / You are not signed in.</p>
<p><a class="button" href="login">登入 / Sign in</a></p>"#
        ),
    )
}

/// Home page for a signed-in user: the claims side by side as the ID token and the userinfo
/// response carry them — each row says which of the two gave a value, so a claim that only
/// userinfo answers (the `profile` and `email` claims, by the code flow's rules) is shown with
/// its source instead of a dash — then both documents exactly as received.
pub fn signed_in(session: &SignedIn) -> String {
    let claims = &session.claims;
    let id_token = serde_json::to_value(claims).unwrap_or_default();
    let userinfo = session.userinfo.as_ref().ok();
    let table: String = CLAIMS
        .iter()
        .map(|name| {
            let from_token = shown(id_token.get(*name));
            let from_userinfo = shown(userinfo.and_then(|u| u.get(*name)));
            let source = match (&from_token, &from_userinfo) {
                (Some(_), Some(_)) => "ID token + userinfo",
                (Some(_), None) => "ID token",
                (None, Some(_)) => "userinfo",
                (None, None) => "",
            };
            format!(
                "<tr><th>{}</th><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                escape(name),
                escape(from_token.as_deref().unwrap_or(NOT_GIVEN)),
                escape(from_userinfo.as_deref().unwrap_or(NOT_GIVEN)),
                escape(source),
            )
        })
        .collect();

    let additional = pretty(&claims.additional_claims().claims);
    let all_claims = pretty(claims);
    let userinfo_doc = match &session.userinfo {
        Ok(json) => format!("<pre>{}</pre>", escape(&pretty(json))),
        Err(err) => format!(r#"<p class="error">無法取得使用者資訊。 / Could not fetch userinfo: {}</p>"#, escape(err)),
    };

    layout(
        "依賴方範例 / Relying party example",
        &format!(
            r#"<h1>依賴方範例 / Relying party example</h1>
<p>已登入。 / You are signed in.</p>
<p><a class="button" href="logout">登出 / Sign out</a></p>
<h2>宣告 / Claims</h2>
<table>
<tr><th>宣告 / claim</th><th>ID token</th><th>使用者資訊 / userinfo</th><th>來源 / from</th></tr>
{table}</table>
<h3>其他宣告 / Additional claims</h3>
<pre>{additional}</pre>
<details><summary>全部 ID token 宣告 / All ID token claims</summary>
<pre>{all_claims}</pre>
</details>
<h2>使用者資訊 / Userinfo response</h2>
{userinfo_doc}"#,
            additional = escape(&additional),
            all_claims = escape(&all_claims),
        ),
    )
}

/// The claims the table shows, in the order people read them.
const CLAIMS: [&str; 13] = [
    "sub",
    "acr",
    "amr",
    "auth_time",
    "name",
    "preferred_username",
    "email",
    "email_verified",
    "agency_code",
    "agency_name",
    "unit",
    "roles",
    "national_id",
];

/// What a cell shows when its document does not carry the claim.
const NOT_GIVEN: &str = "—";

/// A claim's value as shown: strings as they are, anything else (numbers, lists) as JSON.
fn shown(value: Option<&serde_json::Value>) -> Option<String> {
    match value? {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// An error page. `detail` is shown verbatim (escaped) because this app
/// exists to help find problems in the IdP.
pub fn error(heading_zh: &str, heading_en: &str, detail: &str) -> String {
    layout(
        &format!("{heading_zh} / {heading_en}"),
        &format!(
            r#"<h1>{} / {}</h1>
<p class="error">{}</p>
<p><a href="./">回首頁 / Back to the home page</a> · <a href="login">重新登入 / Sign in again</a></p>"#,
            escape(heading_zh),
            escape(heading_en),
            escape(detail),
        ),
    )
}

/// Pretty JSON for display; serialising plain claim data cannot really fail,
/// but if it does the page says so instead of panicking.
fn pretty<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|err| format!("(無法顯示 / cannot display: {err})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape(r#"<script>"x" & 'y'</script>"#),
            "&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/script&gt;"
        );
    }

    #[test]
    fn error_page_escapes_detail() {
        let page = error("錯誤", "Error", "<b>bad</b>");
        assert!(page.contains("&lt;b&gt;bad&lt;/b&gt;"));
        assert!(!page.contains("<b>bad</b>"));
    }

    #[test]
    fn signed_out_links_to_login() {
        let page = signed_out(Some("您已登出。 / You have signed out."));
        assert!(page.contains(r#"href="login""#));
        assert!(page.contains("登入 / Sign in"));
        assert!(page.contains("You have signed out."));
    }
}
