//! Adversarial: protocol.
