//! A threaded application that embeds `ds`, the blocking host: four teller threads move
//! money between five accounts at once; every transfer is a transaction in the model
//! component, so the books balance however the threads interleave.
//!
//! `cargo run -p ds-examples --bin ledger-threads [STORE_URL]` (default `memory:`; try
//! `sqlite:ledger.db`).

use std::thread;

use ds::{Datastore, Entity, Error, Filter, Key, Order, Query, Value};

const TELLERS: usize = 4;
const ACCOUNTS: usize = 5;
const START: i64 = 100;

fn main() -> anyhow::Result<()> {
    let url = std::env::args().nth(1).unwrap_or_else(|| "memory:".into());
    // One Datastore for the whole program: cheap to clone, safe to share between threads.
    let db = Datastore::builder()
        .store_url(&url)
        .transaction_retries(50)
        .build()?;
    let accounts: Vec<Key> = (0..ACCOUNTS)
        .map(|i| Key::name("Account", format!("acct-{i}")))
        .collect();
    let opened: Vec<Entity> = accounts
        .iter()
        .map(|key| {
            Entity::new(key.clone())
                .with("owner", Value::String("tellers".into()))
                .with("balance", Value::Int(START))
        })
        .collect();
    db.put_many(&opened)?;

    let tellers: Vec<_> = (0..TELLERS)
        .map(|teller| {
            let (db, accounts) = (db.clone(), accounts.clone());
            thread::spawn(move || -> Result<u32, Error> {
                let mut moved = 0;
                for i in 0..50 {
                    let from = &accounts[(teller + i) % ACCOUNTS];
                    let to = &accounts[(teller * 3 + i * 7 + 1) % ACCOUNTS];
                    if from == to {
                        continue;
                    }
                    match db.transfer(from, to, (i % 9) as i64 + 1) {
                        Ok(_) => moved += 1,
                        Err(Error::FailedPrecondition(_)) => {} // insufficient funds: refused
                        Err(err) => return Err(err),
                    }
                }
                Ok(moved)
            })
        })
        .collect();
    let mut moved = 0;
    for teller in tellers {
        moved += teller.join().expect("a teller thread panicked")?;
    }

    // Richest first, served by the composite index the model declares (owner, -balance).
    let page = db.query(&Query {
        kind: Some("Account".into()),
        filters: vec![Filter::parse(r#"owner = "tellers""#)?],
        orders: vec![Order::parse("-balance")?],
        ..Query::default()
    })?;
    let mut total = 0;
    for account in &page.entities {
        if let Some(Value::Int(balance)) = account.properties.get("balance") {
            println!("{} {balance}", account.key);
            total += balance;
        }
    }
    println!("{moved} transfers by {TELLERS} threads; total {total}");
    anyhow::ensure!(total == START * ACCOUNTS as i64, "the books do not balance");
    Ok(())
}
