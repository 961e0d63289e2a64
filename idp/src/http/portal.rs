//! 應用系統: the applications the signed-in person may use, grouped by portal category in the
//! order the seeds show them (A., B., D., …, then 非人事總處機關及系統).

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use super::errors::Failure;
use super::lang_of;
use super::pages::render_page;
use super::viewer::{require_signed_in, Nav};
use crate::accounts::Person;
use crate::oidc::clients::{self, Client};
use crate::state::AppState;

/// Where a category goes: lettered ones (`A.人事資料填報及考核`) by their letter, everything
/// else (`非人事總處機關及系統`: other agencies' systems) after them, by name.
fn category_order(category: &str) -> (u8, String) {
    let mut chars = category.trim().chars();
    match (chars.next(), chars.next()) {
        (Some(l), Some('.' | '．' | '、')) if l.is_ascii_alphabetic() => (0, category.trim().to_ascii_uppercase()),
        _ => (1, category.trim().to_string()),
    }
}

/// The applications `person` may use, by category in display order; within a category by name.
/// Disabled clients and clients without a category are not listed; the audience rule is the
/// same one `/authorize` enforces, so the portal never offers what sign-in would refuse.
pub fn applications(all: Vec<Client>, person: &Person) -> Vec<(String, Vec<Client>)> {
    let mut groups: BTreeMap<(u8, String), (String, Vec<Client>)> = BTreeMap::new();
    for c in all {
        if c.disabled || !c.audience.admits(person) {
            continue;
        }
        let Some(category) = c.portal.category.clone().filter(|c| !c.trim().is_empty()) else { continue };
        groups.entry(category_order(&category)).or_insert_with(|| (category.trim().to_string(), vec![])).1.push(c);
    }
    groups
        .into_values()
        .map(|(name, mut apps)| {
            apps.sort_by(|a, b| a.client_name.cmp(&b.client_name));
            (name, apps)
        })
        .collect()
}

/// The data of `apps.hbs` (應用系統).
#[derive(Debug, Serialize)]
struct AppsPage {
    nav: Nav,
    groups: Vec<Group>,
}

/// One category of applications.
#[derive(Debug, Serialize)]
struct Group {
    id: String,
    category: String,
    apps: Vec<App>,
}

/// One application as the portal lists it.
#[derive(Debug, Serialize)]
struct App {
    name: String,
    description: Option<String>,
    url: Option<String>,
}

/// `GET /apps`.
pub async fn apps(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, Failure> {
    let lang = lang_of(&req, None);
    let viewer = require_signed_in(&state, &req).await?;
    let all = state.db.run(clients::list).await?;
    let groups = applications(all, &viewer.person)
        .into_iter()
        .enumerate()
        .map(|(i, (category, apps))| {
            let apps = apps
                .into_iter()
                // Without a start page the application is still listed, unlinked.
                .map(|c| App { name: c.client_name, description: c.portal.description, url: c.portal.url })
                .collect();
            Group { id: format!("category-{i}"), category, apps }
        })
        .collect();
    let page = AppsPage { nav: viewer.navigation(), groups };
    render_page(&state, lang, StatusCode::OK, "apps", "apps_title", &page, vec![])
}

#[cfg(test)]
mod tests {
    use super::category_order;

    #[test]
    fn categories_sort_by_letter_then_the_others_last() {
        let mut c = vec!["非人事總處機關及系統", "D.其他人事總處業務", "A.人事資料填報及考核", "B.人事資料服務"];
        c.sort_by_key(|c| category_order(c));
        assert_eq!(c, ["A.人事資料填報及考核", "B.人事資料服務", "D.其他人事總處業務", "非人事總處機關及系統"]);
    }
}
