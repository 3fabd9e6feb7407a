// Bakes an rpath to libtorch's lib/ folder into the backend library, so that loading it needs no
// LD_LIBRARY_PATH. LIBTORCH comes from the workspace's .cargo/config.toml or the environment.
fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    if let Ok(dir) = std::env::var("LIBTORCH") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}/lib");
    }
}
