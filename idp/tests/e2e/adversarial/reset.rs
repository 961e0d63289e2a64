//! Adversarial: reset.
