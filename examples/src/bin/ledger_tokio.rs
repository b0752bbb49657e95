//! A tokio application that embeds `ads`, the async host: a hundred tasks move money
//! between five accounts at once on two worker threads; while a transfer waits on the
//! store, its task yields and the others run. The same model component as `ds` runs the
//! same transactions, so the books balance.
//!
//! `cargo run -p ds-examples --bin ledger-tokio [STORE_URL]` (default `memory:`).

use ads::{Datastore, Entity, Error, Filter, Key, Order, Query, Value};

const TASKS: usize = 100;
const ACCOUNTS: usize = 5;
const START: i64 = 100;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let url = std::env::args().nth(1).unwrap_or_else(|| "memory:".into());
    let db = Datastore::builder()
        .store_url(&url)
        .transaction_retries(50)
        .build()
        .await?;
    let accounts: Vec<Key> = (0..ACCOUNTS)
        .map(|i| Key::name("Account", format!("acct-{i}")))
        .collect();
    let opened: Vec<Entity> = accounts
        .iter()
        .map(|key| {
            Entity::new(key.clone())
                .with("owner", Value::String("tasks".into()))
                .with("balance", Value::Int(START))
        })
        .collect();
    db.put_many(&opened).await?;

    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let (db, accounts) = (db.clone(), accounts.clone());
            tokio::spawn(async move {
                let from = &accounts[task % ACCOUNTS];
                let to = &accounts[(task * 7 + 1) % ACCOUNTS];
                if from == to {
                    return Ok(false);
                }
                match db.transfer(from, to, (task % 9) as i64 + 1).await {
                    Ok(_) => Ok(true),
                    Err(Error::FailedPrecondition(_)) => Ok(false), // insufficient funds
                    Err(err) => Err(err),
                }
            })
        })
        .collect();
    let mut moved = 0;
    for task in tasks {
        if task.await?? {
            moved += 1;
        }
    }

    let page = db
        .query(&Query {
            kind: Some("Account".into()),
            filters: vec![Filter::parse(r#"owner = "tasks""#)?],
            orders: vec![Order::parse("-balance")?],
            ..Query::default()
        })
        .await?;
    let mut total = 0;
    for account in &page.entities {
        if let Some(Value::Int(balance)) = account.properties.get("balance") {
            println!("{} {balance}", account.key);
            total += balance;
        }
    }
    println!("{moved} transfers by {TASKS} tasks; total {total}");
    anyhow::ensure!(total == START * ACCOUNTS as i64, "the books do not balance");
    Ok(())
}
