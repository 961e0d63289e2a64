//! Adversarial: gate.
