//! An application: the declared kinds and the business operations a model component
//! carries, run by name through the component's `call` export.
//!
//! An author implements [`App`] for a type of their own; the guest SDK's `export_model!`
//! turns that type into a component, and natively [`call`] runs the same operations over
//! any [`Transport`] (tests, benchmarks). Nothing here knows which one it is.

use crate::error::quote;
use alloc::format;
use alloc::string::String;

use serde_json::Value as Json;

use crate::{Error, Key, Log, Model, Schema, Transport};

/// A model application: its schema and its operations by name.
///
/// ```
/// use ds_model::app::{App, Args};
/// use ds_model::{Error, Log, Model, Schema, Transport};
/// use serde_json::{Value as Json, json};
///
/// struct Greeter;
///
/// impl App for Greeter {
///     const SCHEMA: &'static Schema = &Schema::EMPTY;
///     const OPERATIONS: &'static [&'static str] = &["greet"];
///
///     fn call<T: Transport, L: Log>(
///         _model: &mut Model<T, L>,
///         name: &str,
///         args: &Args<'_>,
///     ) -> Result<Json, Error> {
///         match name {
///             "greet" => Ok(json!({ "greeting": format!("hello, {}", args.string("who")?) })),
///             other => Err(ds_model::app::unknown_operation::<Self>(other)),
///         }
///     }
/// }
///
/// let mut model = Model::new(ds_model::transport::MemoryTransport::default(), ds_model::transport::NoLog);
/// let out = ds_model::app::call::<Greeter, _, _>(&mut model, "greet", r#"{"who":"Ada"}"#).unwrap();
/// assert_eq!(out, r#"{"greeting":"hello, Ada"}"#);
/// ```
pub trait App {
    /// The declared kinds: a put of one of them is checked against its properties, and its
    /// composite indexes serve queries. Kinds not declared stay schemaless
    /// ([`Schema::EMPTY`]: every kind).
    const SCHEMA: &'static Schema;

    /// The names [`App::call`] answers, in the order an error lists them. A name not here is
    /// refused with [`Error::NotFound`] before `call` sees it.
    const OPERATIONS: &'static [&'static str];

    /// Runs the operation `name` (one of [`App::OPERATIONS`]) with its arguments and returns
    /// its output. An operation that writes does so in a transaction
    /// ([`Model::transaction`]); a refusal by a business rule is
    /// [`Error::FailedPrecondition`], and it writes nothing.
    fn call<T: Transport, L: Log>(
        model: &mut Model<T, L>,
        name: &str,
        args: &Args<'_>,
    ) -> Result<Json, Error>;
}

/// Runs `A`'s operation `name` on `input` (JSON text) and returns its output as canonical
/// JSON text: what a component's `call` export does.
///
/// An unknown name is [`Error::NotFound`] listing the operations; input that is not JSON is
/// [`Error::InvalidArgument`].
pub fn call<A: App, T: Transport, L: Log>(
    model: &mut Model<T, L>,
    name: &str,
    input: &str,
) -> Result<String, Error> {
    if !A::OPERATIONS.contains(&name) {
        return Err(unknown_operation::<A>(name));
    }
    let input: Json = serde_json::from_str(input)
        .map_err(|err| Error::InvalidArgument(format!("the input of {name} is not JSON: {err}")))?;
    let output = A::call(
        model,
        name,
        &Args {
            name,
            input: &input,
        },
    )?;
    Ok(crate::json::to_string(&output))
}

/// The error for an operation `A` does not have: [`Error::NotFound`] listing those it has.
pub fn unknown_operation<A: App>(name: &str) -> Error {
    Error::NotFound(format!(
        "no operation {}; this component has: {}",
        quote(name),
        A::OPERATIONS.join(", ")
    ))
}

/// The input object of an operation, read with errors that name the operation and the
/// argument.
#[derive(Debug, Clone, Copy)]
pub struct Args<'a> {
    /// The operation, for messages.
    pub name: &'a str,
    /// Its input, as the caller sent it.
    pub input: &'a Json,
}

impl<'a> Args<'a> {
    /// The argument `field`, or an [`Error::InvalidArgument`] saying it is missing.
    pub fn field(&self, field: &str) -> Result<&'a Json, Error> {
        self.input.get(field).ok_or_else(|| {
            Error::InvalidArgument(format!("{} needs the argument {field:?}", self.name))
        })
    }

    /// The argument `field` if it is present and not `null`.
    pub fn optional(&self, field: &str) -> Option<&'a Json> {
        self.input.get(field).filter(|value| !value.is_null())
    }

    /// A key argument, written as a key string (`"Account:alice"`) or its URL-safe form.
    pub fn key(&self, field: &str) -> Result<Key, Error> {
        let text = self.field(field)?.as_str().ok_or_else(|| {
            Error::InvalidArgument(format!("{}: {field} must be a key string", self.name))
        })?;
        Key::parse_any(text)
            .map_err(|err| Error::InvalidArgument(format!("{}: {field}: {err}", self.name)))
    }

    /// An integer argument (int64).
    pub fn int(&self, field: &str) -> Result<i64, Error> {
        self.field(field)?.as_i64().ok_or_else(|| {
            Error::InvalidArgument(format!("{}: {field} must be an int64", self.name))
        })
    }

    /// A string argument.
    pub fn string(&self, field: &str) -> Result<String, Error> {
        self.field(field)?
            .as_str()
            .map(String::from)
            .ok_or_else(|| {
                Error::InvalidArgument(format!("{}: {field} must be a string", self.name))
            })
    }

    /// A boolean argument.
    pub fn bool(&self, field: &str) -> Result<bool, Error> {
        self.field(field)?.as_bool().ok_or_else(|| {
            Error::InvalidArgument(format!("{}: {field} must be true or false", self.name))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::{MemoryTransport, NoLog};
    use serde_json::json;

    struct Echo;

    impl App for Echo {
        const SCHEMA: &'static Schema = &Schema::EMPTY;
        const OPERATIONS: &'static [&'static str] = &["echo", "flag"];

        fn call<T: Transport, L: Log>(
            _model: &mut Model<T, L>,
            name: &str,
            args: &Args<'_>,
        ) -> Result<Json, Error> {
            match name {
                "echo" => Ok(json!({ "key": args.key("key")?.to_string(), "n": args.int("n")? })),
                "flag" => Ok(json!(args.bool("on")?)),
                other => Err(unknown_operation::<Self>(other)),
            }
        }
    }

    fn model() -> Model<MemoryTransport, NoLog> {
        Model::new(MemoryTransport::default(), NoLog)
    }

    #[test]
    fn runs_by_name_and_answers_canonical_json() {
        let out = call::<Echo, _, _>(&mut model(), "echo", r#"{"n": 2, "key": "K:a"}"#).unwrap();
        assert_eq!(out, r#"{"key":"K:a","n":2}"#);
        assert_eq!(
            call::<Echo, _, _>(&mut model(), "flag", r#"{"on":true}"#).unwrap(),
            "true"
        );
    }

    #[test]
    fn unknown_names_and_bad_input_are_refused_with_the_reason() {
        let err = call::<Echo, _, _>(&mut model(), "mint", "{}").unwrap_err();
        assert!(
            matches!(&err, Error::NotFound(m) if m.contains("\"mint\"") && m.contains("echo, flag")),
            "{err}"
        );
        for (input, want) in [
            ("[", "not JSON"),
            ("{}", "needs the argument \"key\""),
            (r#"{"key": 1, "n": 1}"#, "key must be a key string"),
            (r#"{"key": "K:", "n": 1}"#, "echo: key:"),
            (r#"{"key": "K:a", "n": 1.5}"#, "n must be an int64"),
        ] {
            let err = call::<Echo, _, _>(&mut model(), "echo", input).unwrap_err();
            assert!(
                matches!(&err, Error::InvalidArgument(m) if m.contains(want)),
                "{input}: {err}"
            );
        }
    }
}
