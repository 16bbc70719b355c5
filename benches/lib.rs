//! Criterion benches of the ravi vault engine live in `benches/`; this
//! library is empty so the package has a target besides them.
