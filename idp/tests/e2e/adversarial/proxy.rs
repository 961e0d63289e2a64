//! Adversarial: proxy.
