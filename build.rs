//! Generates the gRPC code from `proto/` with protox, a pure-Rust protobuf
//! compiler, so building needs no system `protoc`. The encoded descriptor set is
//! kept for gRPC server reflection.

use std::path::PathBuf;

use prost::Message;

const PROTOS: &[&str] = &[
    "proto/tekton/results/v1alpha3/log.proto",
    "proto/tekton/results/v1alpha2/logs.proto",
    "proto/tekton/resultslogs/v1/logs.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let descriptors = protox::compile(PROTOS, ["proto"])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("descriptors.bin"), descriptors.encode_to_vec())?;
    tonic_prost_build::configure()
        .bytes(".")
        .compile_fds(descriptors)?;
    Ok(())
}
