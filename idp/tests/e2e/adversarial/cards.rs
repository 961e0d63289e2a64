//! Adversarial: cards.
