//! Adversarial tests: each plays a way around a security rule, as an attacker would, against the
//! real binary on whichever storage setup the run uses. `SECURITY.md` maps each invariant to the
//! test here that tries to break it.

mod cards;
mod gate;
mod protocol;
mod proxy;
mod reset;
