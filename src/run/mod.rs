//! Runs and their log names: what a request names, before it becomes a
//! backend query. Run resolution (the Results database) will live here too.

mod name;

pub use name::{LogName, NameError};
