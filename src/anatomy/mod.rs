//! Anatomical priors: where a named structure should be in a given volume, before any model runs.
//! Each submodule serves one body region and may use `volume`, `ops` and `io` only; `brain` registers an
//! MNI template to a brain MR and carries atlas labels onto the subject grid through world coordinates.

pub mod brain;
