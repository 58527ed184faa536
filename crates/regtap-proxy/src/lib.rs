//! placeholder: see its issue
