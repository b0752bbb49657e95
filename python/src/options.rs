//! The options both classes' `open` take, applied to either host's builder.

use std::path::PathBuf;

use host_core::ComponentSource;

/// What `open` was given besides the store.
pub struct Options {
    component: Option<PathBuf>,
    transaction_retries: Option<u32>,
}

/// A host's builder, as far as `open`'s options need it.
pub trait Builder: Sized {
    /// Runs another build of the model component.
    fn component(self, source: ComponentSource) -> Self;
    /// Retries of a lost commit race.
    fn transaction_retries(self, retries: u32) -> Self;
}

impl Builder for ds::Builder {
    fn component(self, source: ComponentSource) -> Self {
        ds::Builder::component(self, source)
    }
    fn transaction_retries(self, retries: u32) -> Self {
        ds::Builder::transaction_retries(self, retries)
    }
}

impl Builder for ads::Builder {
    fn component(self, source: ComponentSource) -> Self {
        ads::Builder::component(self, source)
    }
    fn transaction_retries(self, retries: u32) -> Self {
        ads::Builder::transaction_retries(self, retries)
    }
}

impl Options {
    /// The options given.
    pub fn new(component: Option<PathBuf>, transaction_retries: Option<u32>) -> Options {
        Options {
            component,
            transaction_retries,
        }
    }

    /// `builder` with these options set.
    pub fn apply<B: Builder>(self, mut builder: B) -> B {
        if let Some(path) = self.component {
            builder = builder.component(ComponentSource::File(path));
        }
        if let Some(retries) = self.transaction_retries {
            builder = builder.transaction_retries(retries);
        }
        builder
    }
}
