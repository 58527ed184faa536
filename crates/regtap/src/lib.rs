//! Nothing to see: the `regtap` command is `main.rs`. This library target
//! exists so that the package's tests can depend on the package itself with
//! the `lab` feature on (see `Cargo.toml`).
