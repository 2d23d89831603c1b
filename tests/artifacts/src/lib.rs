//! The plugins the host's tests and benchmarks run, compiled once for `wasm32-wasip2`
//! by this crate's build script (as wasmtime builds its test programs): every test
//! binary reads the same files instead of building them while tests run.

include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));

/// The path of plugin `name` (`weather`, `echo`, `notes` or `fixture`).
pub fn plugin(name: &str) -> &'static str {
    PLUGINS
        .iter()
        .find(|(plugin, _)| *plugin == name)
        .map(|(_, path)| *path)
        .unwrap_or_else(|| panic!("no test plugin `{name}`; there are {PLUGINS:?}"))
}
