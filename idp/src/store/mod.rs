//! Storage: the relational database for everything durable, and the ephemeral store for
//! short-lived, single-use state shared between nodes.

pub mod db;
pub mod ephemeral;
