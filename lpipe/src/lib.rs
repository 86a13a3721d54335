pub use lpipe_core::*;
