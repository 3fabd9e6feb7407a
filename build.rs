// Bakes an rpath to libtorch's lib/ folder into every binary, test and bench, so that they run
// without LD_LIBRARY_PATH. LIBTORCH comes from .cargo/config.toml or the environment.
fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    if let Ok(dir) = std::env::var("LIBTORCH") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}/lib");
    }
}
