//! Generated protobuf and gRPC code (see `build.rs` and `proto/`), arranged in
//! the modules their proto packages name.

#![allow(missing_docs, clippy::all, clippy::pedantic)]

/// `google.api`: the `HttpBody` message the log RPCs stream.
pub mod google {
    pub mod api {
        tonic::include_proto!("google.api");
    }
}

/// `tekton.results.*`: the upstream-compatible Logs services;
/// `tekton.resultslogs.v1`: the product's own.
pub mod tekton {
    pub mod resultslogs {
        pub mod v1 {
            tonic::include_proto!("tekton.resultslogs.v1");
        }
    }
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
