//! The example application: accounts that hold balances, and the business operations on
//! them, written once as transactions over [`ds_model`].
//!
//! This is what a guest author writes: the kinds (with types, defaults, validation and
//! indexes) and the operations. The component (`ds-guest`) exports them through WIT, so
//! both hosts run exactly these rules; natively, tests and benchmarks call them directly.
//!
//! Invariant: no operation creates or destroys money. `transfer` moves a balance between
//! two accounts in one transaction; `deposit` is the only way the total changes.
//!
//! (One file of about 700 lines, half of them tests, so that a guest author reads the whole
//! example in one place.)
#![cfg_attr(not(test), no_std)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

extern crate alloc;

use alloc::format;
use alloc::string::{String, ToString};

use serde_json::{Value as Json, json};

use ds_model::query::{self, Order, Query};
use ds_model::schema::{CompositeIndex, Default, Direction, Kind, Property, Schema};
use ds_model::value::{Type, Value};
use ds_model::{
    App, Args, Entity, Error, IdOrName, Key, Log, Model, PathElement, Transaction, Transport,
};

/// The kind of accounts.
pub const ACCOUNT: &str = "Account";
/// The kind of transfer records (children of the source account).
pub const TRANSFER: &str = "Transfer";

fn not_negative(value: &Value) -> Result<(), String> {
    match value {
        Value::Int(n) if *n < 0 => Err(format!("must not be negative, is {n}")),
        _ => Ok(()),
    }
}

fn positive(value: &Value) -> Result<(), String> {
    match value {
        Value::Int(n) if *n <= 0 => Err(format!("must be positive, is {n}")),
        _ => Ok(()),
    }
}

fn account_key(value: &Value) -> Result<(), String> {
    match value {
        Value::Key(key) if key.leaf().is_some_and(|leaf| leaf.kind != ACCOUNT) => {
            Err(format!("must be the key of an {ACCOUNT}, is {key}"))
        }
        _ => Ok(()),
    }
}

/// The application's declared kinds. Every other kind stays schemaless.
pub static SCHEMA: Schema = Schema::new(&[
    Kind::new(
        ACCOUNT,
        &[
            Property::new("owner", Type::String).required(),
            Property::new("balance", Type::Int)
                .required()
                .default_int(0)
                .validate(not_negative),
            Property::new("tags", Type::String)
                .repeated()
                .default(Default::Empty),
            Property::new("note", Type::String).unindexed(),
            // Transfers sent so far: the id of the next `Transfer` record under this account.
            Property::new("transfers_out", Type::Int)
                .required()
                .default_int(0)
                .validate(not_negative),
        ],
    )
    // An owner's accounts by balance, largest first: `owner = X`, order `-balance`.
    .indexes(&[CompositeIndex::new(&[
        ("owner", Direction::Ascending),
        ("balance", Direction::Descending),
    ])]),
    Kind::new(
        TRANSFER,
        &[
            Property::new("from", Type::Key)
                .required()
                .validate(account_key),
            Property::new("to", Type::Key)
                .required()
                .validate(account_key),
            Property::new("amount", Type::Int)
                .required()
                .validate(positive),
        ],
    ),
    // guide: kinds
]);

/// What [`transfer`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The `Transfer` entity recording it, a child of the source account.
    pub transfer: Key,
    /// The source account's balance after the transfer.
    pub from_balance: i64,
    /// The destination account's balance after the transfer.
    pub to_balance: i64,
}

fn check_account_key(key: &Key, role: &str) -> Result<(), Error> {
    key.validate()?;
    if key.leaf().is_none_or(|leaf| leaf.kind != ACCOUNT) {
        return Err(Error::InvalidKey(format!(
            "{role} {key} is not an {ACCOUNT} key"
        )));
    }
    Ok(())
}

fn balance(account: &Entity) -> Result<i64, Error> {
    match account.properties.get("balance") {
        Some(Value::Int(n)) => Ok(*n),
        _ => Err(Error::Corrupt(format!(
            "account {} has no integer balance",
            account.key
        ))),
    }
}

/// Adds `amount` (negative: a withdrawal) to the balance of `account` in a transaction and
/// returns the new balance.
pub fn deposit<T: Transport, L: Log>(
    model: &mut Model<T, L>,
    account: &Key,
    amount: i64,
) -> Result<i64, Error> {
    check_account_key(account, "account")?;
    model.transaction(|tx| {
        let Some(mut entity) = tx.get(account)? else {
            return Err(Error::NotFound(format!("no account {account}")));
        };
        let new = balance(&entity)?.checked_add(amount).ok_or_else(|| {
            Error::FailedPrecondition(format!("the balance of {account} would overflow"))
        })?;
        if new < 0 {
            return Err(Error::FailedPrecondition(format!(
                "insufficient funds: {account} cannot take {amount}"
            )));
        }
        entity.properties.insert("balance".into(), Value::Int(new));
        tx.put(entity)?;
        Ok(new)
    })
}

/// Moves `amount` from `from` to `to` in one transaction and records a `Transfer` under
/// `from`, numbered by the source account's `transfers_out` count: a refused or failed
/// transfer changes nothing at all, and the whole transfer is one get-many and one commit.
/// If the count was reset (the account put again without it, or deleted and opened again)
/// and its `Transfer` id is taken, the retry numbers the record past the highest id in use.
pub fn transfer<T: Transport, L: Log>(
    model: &mut Model<T, L>,
    from: &Key,
    to: &Key,
    amount: i64,
) -> Result<Receipt, Error> {
    check_account_key(from, "source")?;
    check_account_key(to, "destination")?;
    if from == to {
        return Err(Error::FailedPrecondition(format!(
            "cannot transfer from {from} to itself"
        )));
    }
    if amount <= 0 {
        return Err(Error::FailedPrecondition(format!(
            "the amount must be positive, is {amount}"
        )));
    }
    model.transaction(|tx| {
        let read = tx.get_many(&[from.clone(), to.clone()])?;
        let [source, destination] = <[Option<Entity>; 2]>::try_from(read)
            .map_err(|_| Error::Corrupt("get-many returned the wrong number of results".into()))?;
        let (Some(mut source), Some(mut destination)) = (source, destination) else {
            let missing = if tx.get(from)?.is_none() { from } else { to };
            return Err(Error::NotFound(format!("no account {missing}")));
        };
        let (from_balance, to_balance) = (balance(&source)?, balance(&destination)?);
        if from_balance < amount {
            return Err(Error::FailedPrecondition(format!(
                "insufficient funds: {from} has {from_balance}, the transfer needs {amount}"
            )));
        }
        let to_balance = to_balance.checked_add(amount).ok_or_else(|| {
            Error::FailedPrecondition(format!("the balance of {to} would overflow"))
        })?;
        let from_balance = from_balance - amount;
        let mut sequence = match source.properties.get("transfers_out") {
            Some(Value::Int(n)) => n.saturating_add(1),
            _ => 1,
        };
        // A new child key: an insert, which needs no read (a taken id conflicts at commit).
        let mut record = from
            .clone()
            .child(PathElement::id(TRANSFER, sequence as u64));
        // The last attempt found `Transfer:N` taken: the count no longer matches the records
        // (the account was put again without it, or deleted and opened again). Only then is
        // a free id looked up.
        if tx.lost_race_on(&record) {
            sequence = free_transfer_id(tx, from)?.max(sequence);
            record = from
                .clone()
                .child(PathElement::id(TRANSFER, sequence as u64));
        }
        source
            .properties
            .insert("balance".into(), Value::Int(from_balance));
        source
            .properties
            .insert("transfers_out".into(), Value::Int(sequence));
        destination
            .properties
            .insert("balance".into(), Value::Int(to_balance));
        tx.put(source)?;
        tx.put(destination)?;
        tx.insert(
            Entity::new(record.clone())
                .with("from", Value::Key(from.clone()))
                .with("to", Value::Key(to.clone()))
                .with("amount", Value::Int(amount)),
        )?;
        Ok(Receipt {
            transfer: record,
            from_balance,
            to_balance,
        })
    })
}

/// One past the highest id of a `Transfer` under `from`, found by one query of the records,
/// newest first; it joins the transaction, so a rival record makes it retry.
fn free_transfer_id<T: Transport, L: Log>(
    tx: &mut Transaction<'_, T, L>,
    from: &Key,
) -> Result<i64, Error> {
    // Newest first: ids sort before names, so named records come first and are skipped.
    let records = tx.query(&Query {
        namespace: from.namespace.clone(),
        kind: Some(TRANSFER.into()),
        ancestor: Some(from.clone()),
        orders: alloc::vec![Order::parse("-__key__")?],
        keys_only: true,
        ..Query::default()
    })?;
    let newest_id = records
        .iter()
        .find_map(|record| match record.key.path.get(from.path.len()) {
            Some(PathElement {
                id: IdOrName::Id(id),
                ..
            }) => Some(*id),
            _ => None,
        });
    match newest_id {
        Some(id) => i64::try_from(id)
            .ok()
            .and_then(|id| id.checked_add(1))
            .ok_or_else(|| Error::FailedPrecondition(format!("{from} has no transfer ids left"))),
        // The record a moment ago was a rival's, since deleted; or a page of named records
        // hides the ids, which this application never writes.
        None if records.len() < query::MAX_PAGE as usize => Ok(1),
        None => Err(Error::FailedPrecondition(format!(
            "{from} has over {} named Transfer records; transfers need numbered ones",
            query::MAX_PAGE
        ))),
    }
}

// guide: functions

// ---- Operations by name (the `call` export) ----

/// The example application, as the component runs it: [`SCHEMA`] and the operations by
/// name. `ds_guest_sdk::export_model!(ds_app::Bank)` makes it a component.
pub struct Bank;

impl App for Bank {
    const SCHEMA: &'static Schema = &SCHEMA;

    /// To add an operation: write it as a function over the model (as [`deposit`] and
    /// [`transfer`] are), then give it a name here and an arm in `call`.
    const OPERATIONS: &'static [&'static str] = &[
        "deposit", "transfer",
        // guide: names
    ];

    fn call<T: Transport, L: Log>(
        model: &mut Model<T, L>,
        name: &str,
        args: &Args<'_>,
    ) -> Result<Json, Error> {
        Ok(match name {
            "deposit" => {
                let account = args.key("account")?;
                let balance = deposit(model, &account, args.int("amount")?)?;
                json!({ "account": account.to_string(), "balance": balance })
            }
            "transfer" => {
                let receipt = transfer(
                    model,
                    &args.key("source")?,
                    &args.key("destination")?,
                    args.int("amount")?,
                )?;
                json!({
                    "transfer": receipt.transfer.to_string(),
                    "source_balance": receipt.from_balance,
                    "destination_balance": receipt.to_balance,
                })
            }
            // guide: calls
            other => return Err(ds_model::app::unknown_operation::<Self>(other)),
        })
    }
}

/// Runs [`Bank`]'s operation `name` on `input` (JSON text) and returns its output as JSON
/// text, as the component's `call` export does.
pub fn call<T: Transport, L: Log>(
    model: &mut Model<T, L>,
    name: &str,
    input: &str,
) -> Result<String, Error> {
    ds_model::app::call::<Bank, T, L>(model, name, input)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ds_model::query::{Filter, Order, Query};
    use ds_model::transport::{MemoryTransport, NoLog};
    use proptest::prelude::*;

    fn bank() -> Model<MemoryTransport, NoLog> {
        Model::new(MemoryTransport::new(), NoLog).with_schema(&SCHEMA)
    }

    fn open(
        model: &mut Model<MemoryTransport, NoLog>,
        name: &str,
        owner: &str,
        balance: i64,
    ) -> Key {
        let key = Key::name(ACCOUNT, name);
        model
            .put(
                &Entity::new(key.clone())
                    .with("owner", Value::String(owner.into()))
                    .with("balance", Value::Int(balance)),
            )
            .unwrap();
        key
    }

    #[test]
    fn declared_kinds_validate_and_default() {
        let mut model = bank();
        let key = Key::name(ACCOUNT, "a");
        let err = model.put(&Entity::new(key.clone())).unwrap_err();
        assert!(err.to_string().contains("owner is required"), "{err}");
        let err = model
            .put(
                &Entity::new(key.clone())
                    .with("owner", Value::String("x".into()))
                    .with("balance", Value::Int(-1)),
            )
            .unwrap_err();
        assert!(
            err.to_string().contains("balance: must not be negative"),
            "{err}"
        );
        model
            .put(&Entity::new(key.clone()).with("owner", Value::String("x".into())))
            .unwrap();
        let stored = model.get(&key).unwrap().unwrap();
        assert_eq!(stored.properties["balance"], Value::Int(0));
        assert_eq!(stored.properties["tags"], Value::Array(alloc::vec![]));
    }

    #[test]
    fn transfers_move_money_and_refuse_what_they_must() {
        let mut model = bank();
        let alice = open(&mut model, "alice", "Alice", 100);
        let bob = open(&mut model, "bob", "Bob", 5);
        let receipt = transfer(&mut model, &alice, &bob, 30).unwrap();
        assert_eq!((receipt.from_balance, receipt.to_balance), (70, 35));
        let record = model.get(&receipt.transfer).unwrap().unwrap();
        assert_eq!(record.properties["amount"], Value::Int(30));
        for (from, to, amount, want) in [
            (&alice, &bob, 71, "insufficient funds"),
            (&alice, &alice, 1, "itself"),
            (&alice, &bob, 0, "positive"),
        ] {
            let err = transfer(&mut model, from, to, amount).unwrap_err();
            assert!(
                matches!(&err, Error::FailedPrecondition(m) if m.contains(want)),
                "{err}"
            );
        }
        let ghost = Key::name(ACCOUNT, "ghost");
        assert!(
            matches!(transfer(&mut model, &alice, &ghost, 1), Err(Error::NotFound(m)) if m.contains("ghost"))
        );
        assert!(matches!(
            deposit(&mut model, &ghost, 1),
            Err(Error::NotFound(_))
        ));
        assert!(matches!(
            deposit(&mut model, &bob, -36),
            Err(Error::FailedPrecondition(_))
        ));
        assert_eq!(deposit(&mut model, &bob, -35).unwrap(), 0);
        assert!(matches!(
            deposit(&mut model, &Key::name("Other", "x"), 1),
            Err(Error::InvalidKey(_))
        ));
        // The transfer history is an ancestor query.
        let history = model
            .query(&Query {
                kind: Some(TRANSFER.into()),
                ancestor: Some(alice.clone()),
                ..Query::default()
            })
            .unwrap();
        assert_eq!(history.hits.len(), 1);
        // The composite index serves "an owner's accounts by balance".
        open(&mut model, "alice-savings", "Alice", 500);
        let page = model
            .query(&Query {
                kind: Some(ACCOUNT.into()),
                filters: alloc::vec![Filter::parse(r#"owner = "Alice""#).unwrap()],
                orders: alloc::vec![Order::parse("-balance").unwrap()],
                ..Query::default()
            })
            .unwrap();
        let names: alloc::vec::Vec<_> = page.hits.iter().map(|h| h.key.to_string()).collect();
        assert_eq!(names, ["Account:alice-savings", "Account:alice"]);
    }

    /// `transfers_out` is an ordinary property: putting the account again without it, or
    /// deleting and opening it again, resets it while its `Transfer` records stay. The next
    /// transfer must find a free id rather than conflict with an old record forever.
    #[test]
    fn transfers_go_on_after_the_count_is_reset() {
        let mut model = bank();
        let alice = open(&mut model, "alice", "Alice", 100);
        let bob = open(&mut model, "bob", "Bob", 0);
        for _ in 0..3 {
            transfer(&mut model, &alice, &bob, 1).unwrap();
        }
        // A named record sorts after every numbered one; it must not hide them.
        model
            .put(
                &Entity::new(alice.clone().child(PathElement::name(TRANSFER, "gift")))
                    .with("from", Value::Key(alice.clone()))
                    .with("to", Value::Key(bob.clone()))
                    .with("amount", Value::Int(1)),
            )
            .unwrap();
        open(&mut model, "alice", "Alice", 97);
        let receipt = transfer(&mut model, &alice, &bob, 1).unwrap();
        assert_eq!(receipt.transfer.to_string(), "Account:alice/Transfer:4");
        let account = model.get(&alice).unwrap().unwrap();
        assert_eq!(account.properties["transfers_out"], Value::Int(4));
        // The count is right again: the next transfer inserts blind, as usual.
        let receipt = transfer(&mut model, &alice, &bob, 1).unwrap();
        assert_eq!(receipt.transfer.to_string(), "Account:alice/Transfer:5");

        model.delete(&alice).unwrap();
        open(&mut model, "alice", "Alice", 10);
        let receipt = transfer(&mut model, &alice, &bob, 1).unwrap();
        assert_eq!(receipt.transfer.to_string(), "Account:alice/Transfer:6");
        assert_eq!(
            (receipt.from_balance, receipt.to_balance),
            (9, 6),
            "the retried transfer moved the money once"
        );
    }

    #[test]
    fn operations_run_by_name_with_clear_argument_errors() {
        let mut model = bank();
        open(&mut model, "a", "A", 10);
        open(&mut model, "b", "B", 0);
        let out = call(
            &mut model,
            "transfer",
            r#"{"source":"Account:a","destination":"Account:b","amount":4}"#,
        )
        .unwrap();
        assert_eq!(
            out,
            r#"{"destination_balance":4,"source_balance":6,"transfer":"Account:a/Transfer:1"}"#
        );
        assert_eq!(
            call(
                &mut model,
                "deposit",
                r#"{"account":"Account:b","amount":1}"#
            )
            .unwrap(),
            r#"{"account":"Account:b","balance":5}"#
        );
        // A key argument may be in the URL-safe form, as everywhere else.
        let urlsafe = Key::name(ACCOUNT, "b").to_urlsafe();
        assert_eq!(
            call(
                &mut model,
                "deposit",
                &format!(r#"{{"account":"{urlsafe}","amount":1}}"#)
            )
            .unwrap(),
            r#"{"account":"Account:b","balance":6}"#
        );
        for (name, input, want) in [
            ("deposit", "{}", "needs the argument \"account\""),
            (
                "deposit",
                r#"{"account":"Account:b","amount":"1"}"#,
                "amount must be an int64",
            ),
            ("deposit", r#"{"account":"nope","amount":1}"#, "account"),
            ("deposit", "[", "not JSON"),
        ] {
            let err = call(&mut model, name, input).unwrap_err();
            assert!(
                matches!(&err, Error::InvalidArgument(m) if m.contains(want)),
                "{input}: {err}"
            );
        }
        let err = call(&mut model, "mint", "{}").unwrap_err();
        assert!(
            matches!(&err, Error::NotFound(m) if m.contains("deposit, transfer")),
            "{err}"
        );
    }

    proptest! {
        /// Any sequence of transfers and deposits keeps the books: the total equals the
        /// deposits, no balance is negative, and every failed operation changed nothing.
        #[test]
        fn the_books_always_balance(ops in prop::collection::vec((0usize..3, 0usize..3, -50i64..100, any::<bool>()), 1..40)) {
            let mut model = bank();
            let accounts = [open(&mut model, "a", "A", 50), open(&mut model, "b", "B", 50), open(&mut model, "c", "C", 50)];
            let mut expected_total = 150;
            for (i, j, amount, is_deposit) in ops {
                if is_deposit {
                    if deposit(&mut model, &accounts[i], amount).is_ok() {
                        expected_total += amount;
                    }
                } else {
                    let _ = transfer(&mut model, &accounts[i], &accounts[j], amount);
                }
                let balances: alloc::vec::Vec<i64> = model
                    .get_many(&accounts)
                    .unwrap()
                    .into_iter()
                    .map(|e| balance(&e.unwrap()).unwrap())
                    .collect();
                prop_assert!(balances.iter().all(|b| *b >= 0));
                prop_assert_eq!(balances.iter().sum::<i64>(), expected_total);
            }
        }
    }
}

/// Transport round trips per operation: the figures the README quotes, checked.
#[cfg(test)]
mod round_trips {
    use super::*;
    use ds_model::query::{Filter, Order, Query};
    use ds_model::transport::{
        Check, Direction as ScanDirection, Entry, KeyRange, MemoryTransport, NoLog, StoreError,
        Versioned, Write,
    };

    /// Counts every transport call.
    #[derive(Default)]
    struct Counting {
        inner: MemoryTransport,
        calls: alloc::vec::Vec<&'static str>,
    }

    impl Transport for Counting {
        fn get(&mut self, key: &[u8]) -> Result<Option<Versioned>, StoreError> {
            self.calls.push("get");
            self.inner.get(key)
        }
        fn get_many(
            &mut self,
            keys: &[alloc::vec::Vec<u8>],
        ) -> Result<alloc::vec::Vec<Option<Versioned>>, StoreError> {
            self.calls.push("get-many");
            self.inner.get_many(keys)
        }
        fn scan(
            &mut self,
            range: &KeyRange,
            limit: u32,
            direction: ScanDirection,
        ) -> Result<alloc::vec::Vec<Entry>, StoreError> {
            self.calls.push("scan");
            self.inner.scan(range, limit, direction)
        }
        fn commit(&mut self, checks: &[Check], writes: &[Write]) -> Result<u64, StoreError> {
            self.calls.push("commit");
            self.inner.commit(checks, writes)
        }
    }

    fn calls(
        model: &mut Model<Counting, NoLog>,
        run: impl FnOnce(&mut Model<Counting, NoLog>),
    ) -> alloc::vec::Vec<&'static str> {
        model.transport_mut().calls.clear();
        run(model);
        core::mem::take(&mut model.transport_mut().calls)
    }

    #[test]
    fn each_operation_takes_the_documented_round_trips() {
        let mut model = Model::new(Counting::default(), NoLog).with_schema(&SCHEMA);
        let (alice, bob) = (Key::name(ACCOUNT, "alice"), Key::name(ACCOUNT, "bob"));
        let account = |key: &Key| Entity::new(key.clone()).with("owner", Value::String("A".into()));
        assert_eq!(
            calls(&mut model, |m| {
                m.put(&account(&alice)).unwrap();
            }),
            ["get-many", "commit"]
        );
        assert_eq!(
            calls(&mut model, |m| {
                m.put_many(&[account(&bob), account(&alice)]).unwrap();
            }),
            ["get-many", "commit"]
        );
        assert_eq!(
            calls(&mut model, |m| {
                m.get(&alice).unwrap();
            }),
            ["get"]
        );
        assert_eq!(
            calls(&mut model, |m| {
                deposit(m, &alice, 100).unwrap();
            }),
            ["get-many", "commit"]
        );
        assert_eq!(
            calls(&mut model, |m| {
                transfer(m, &alice, &bob, 10).unwrap();
            }),
            ["get-many", "commit"],
            "read both accounts, commit"
        );
        let query = Query {
            kind: Some(ACCOUNT.into()),
            filters: alloc::vec![Filter::parse(r#"owner = "A""#).unwrap()],
            orders: alloc::vec![Order::parse("-balance").unwrap()],
            limit: Some(10),
            ..Query::default()
        };
        assert_eq!(
            calls(&mut model, |m| {
                m.query(&query).unwrap();
            }),
            ["scan", "get-many"]
        );
        let keys_only = Query {
            keys_only: true,
            ..query
        };
        assert_eq!(
            calls(&mut model, |m| {
                m.query(&keys_only).unwrap();
            }),
            ["scan"]
        );
    }
}
