//! Builds the eBPF object with the pinned nightly (named once, in ebpf-toolchain.txt).
fn main() -> anyhow::Result<()> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let pin = format!("{root}/ebpf-toolchain.txt");
    println!("cargo::rerun-if-changed={pin}");
    let toolchain = std::fs::read_to_string(&pin)?.trim().to_string();
    let ebpf_dir = format!("{root}/ebpf");
    println!("cargo::rerun-if-changed={root}/common/src");
    // The tail API (protoc is installed by scripts/bootstrap.sh).
    tonic_prost_build::compile_protos(concat!(env!("CARGO_MANIFEST_DIR"), "/proto/tail.proto"))?;
    aya_build::build_ebpf(
        [aya_build::Package { name: "podtrail-ebpf", root_dir: &ebpf_dir, ..Default::default() }],
        aya_build::Toolchain::Custom(&toolchain),
    )
}
