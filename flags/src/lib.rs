//! Flag value syntax shared by every Surge binary, so `--upstream-linger 2m` on the relay and
//! `--scrape-interval 2m` on the operator mean the same thing and fail the same way.
//! Used as clap `value_parser`s: clap names the flag (or environment variable) in the error
//! and this crate says what is wrong with the value.

mod duration;

pub use duration::{DurationError, duration, positive_duration};
