//! Exit codes and the errors that choose them, as README documents: 0 ok, 1 not found,
//! 2 bad usage or input, 3 conflict, 4 store unavailable, 5 any other failure, 6 `check`
//! found problems (or `export --skip-corrupt` skipped some), 7 refused by a business rule.

use std::process::ExitCode;

use ds::Error;
use ds::store::StoreError;

use crate::import::ImportError;
use crate::output::Output;

/// A command this binary does not run, or arguments that do not fit together.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// `get` found nothing at the key.
#[derive(Debug, thiserror::Error)]
#[error("no entity at key {0}")]
pub struct NotFound(pub ds::Key);

/// `check` found problems in the store.
#[derive(Debug, thiserror::Error)]
#[error("check found {0} problem(s) in the store")]
pub struct CheckFailed(pub usize);

/// `export --skip-corrupt` left out entities that do not decode.
#[derive(Debug, thiserror::Error)]
#[error(
    "export skipped {0} entity row(s) that do not decode (listed above): the export is \
     incomplete; `check` reports them too"
)]
pub struct ExportIncomplete(pub usize);

/// Prints any table rows still held back, then ends the command: exit code 0, or the
/// error's message and code ([`fail`]). What both binaries' `main` returns.
pub fn finish(output: &mut Output, result: anyhow::Result<()>) -> ExitCode {
    output.flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => fail(&err),
    }
}

/// Exit codes, documented in README: 0 ok, 1 not found, 2 bad usage or input, 3 conflict,
/// 4 store unavailable, 5 any other failure, 6 `check` found problems, 7 refused by a
/// business rule.
pub fn status(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if cause.is::<NotFound>() {
            return 1;
        }
        if cause.is::<ImportError>() || cause.is::<UsageError>() {
            return 2;
        }
        if cause.is::<CheckFailed>() || cause.is::<ExportIncomplete>() {
            return 6;
        }
        if let Some(err) = cause.downcast_ref::<Error>() {
            return match err {
                Error::NotFound(_) => 1,
                Error::InvalidKey(_)
                | Error::InvalidEntity(_)
                | Error::InvalidQuery(_)
                | Error::InvalidArgument(_)
                | Error::StoreUrl(_)
                | Error::Store(StoreError::InvalidRequest(_)) => 2,
                Error::Store(StoreError::Conflict(_)) | Error::Conflict(_) => 3,
                Error::FailedPrecondition(_) => 7,
                Error::Store(StoreError::Unavailable(_)) => 4,
                _ => 5,
            };
        }
        if let Some(err) = cause.downcast_ref::<StoreError>() {
            return match err {
                StoreError::Conflict(_) => 3,
                StoreError::Unavailable(_) => 4,
                StoreError::InvalidRequest(_) => 2,
                StoreError::Internal(_) => 5,
            };
        }
    }
    5
}

/// [`status`] as the process's exit code.
pub fn exit_code(err: &anyhow::Error) -> ExitCode {
    ExitCode::from(status(err))
}

/// Reports a failed command on stderr and returns its exit code.
pub fn fail(err: &anyhow::Error) -> ExitCode {
    eprintln!("error: {err:#}");
    exit_code(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_readme() {
        let code = |err: anyhow::Error| exit_code(&err.context("a command"));
        let store = |err: StoreError| code(anyhow::Error::new(Error::Store(err)));
        assert_eq!(store(StoreError::Conflict(vec![1])), ExitCode::from(3));
        assert_eq!(
            store(StoreError::Unavailable("down".into())),
            ExitCode::from(4)
        );
        assert_eq!(
            store(StoreError::InvalidRequest("key too long".into())),
            ExitCode::from(2),
            "a request past a store's limits is bad input"
        );
        assert_eq!(
            store(StoreError::Internal("unknown".into())),
            ExitCode::from(5)
        );
        let bare = |err: StoreError| code(anyhow::Error::new(err));
        assert_eq!(
            bare(StoreError::InvalidRequest("x".into())),
            ExitCode::from(2)
        );
        assert_eq!(bare(StoreError::Internal("x".into())), ExitCode::from(5));
        assert_eq!(
            code(anyhow::Error::new(Error::NotFound("Note:a".into()))),
            ExitCode::from(1)
        );
    }
}
