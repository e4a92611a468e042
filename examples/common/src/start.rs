//! What an example app's `main` returns when it cannot start.

use std::error::Error;
use std::fmt;

/// Why an app did not start, printed as its message and causes on one line (`main` prints the
/// `Debug` of its error: this makes it the message a person can act on, not a struct dump).
///
/// ```
/// let err = example_common::StartError::from("REDIS_URL is not a Redis URL");
/// assert_eq!(format!("{err:?}"), "REDIS_URL is not a Redis URL");
/// ```
pub struct StartError(Box<dyn Error>);

impl<E: Into<Box<dyn Error>>> From<E> for StartError {
    fn from(err: E) -> Self {
        Self(err.into())
    }
}

impl fmt::Debug for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}
