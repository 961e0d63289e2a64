//! Subject identifiers: the account's opaque id for public clients, and for pairwise clients a
//! keyed hash of the client's sector and the account, so two sectors cannot link a person.

use super::clients::Client;
use crate::crypto::DataProtector;

/// The `sub` a client sees for an account.
pub fn subject_for(protector: &DataProtector, client: &Client, account_id: &str) -> String {
    if client.subject_type == "pairwise" {
        let sector = client.sector().unwrap_or_else(|| client.client_id.clone());
        protector.index(&format!("pairwise\u{0}{sector}\u{0}{account_id}"))
    } else {
        account_id.to_string()
    }
}
