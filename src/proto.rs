//! Generated protobuf and gRPC code (see `build.rs` and `proto/`), arranged in
//! the modules their proto packages name.

#![allow(missing_docs, clippy::all, clippy::pedantic)]

/// `google.api`: the `HttpBody` message the log RPCs stream.
pub mod google {
    pub mod api {
        tonic::include_proto!("google.api");
    }
}

/// `tekton.results.*`: the upstream-compatible Logs services.
pub mod tekton {
    pub mod results {
        pub mod v1alpha2 {
            tonic::include_proto!("tekton.results.v1alpha2");
        }
        pub mod v1alpha3 {
            tonic::include_proto!("tekton.results.v1alpha3");
        }
    }
}

/// The encoded `FileDescriptorSet` of every proto file above, for reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptors.bin"));
