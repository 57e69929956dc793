//! Generates the C header from the crate's extern "C" items into OUT_DIR; a test compares it with
//! the checked-in include/logitdiv.h (set LOGITDIV_UPDATE_HEADER=1 to rewrite that file).

use std::path::PathBuf;

fn main() {
    let crate_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("logitdiv.h");
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-env-changed=LOGITDIV_UPDATE_HEADER");
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen could not generate the header");
    bindings.write_to_file(&out);
    if std::env::var_os("LOGITDIV_UPDATE_HEADER").is_some() {
        bindings.write_to_file(crate_dir.join("include/logitdiv.h"));
    }
}
