//! Stream stages between a backend's pages and the encoders. Each stage takes
//! and returns a stream and holds a bounded window of the log; nothing here
//! names a provider.

mod chunk;

pub use chunk::{live_text_chunks, text_chunks, text_chunks_with, TextOptions};
