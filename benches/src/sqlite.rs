//! (f) SQLite.

use crate::prelude::*;

pub(crate) fn sqlite(report: &mut Report) -> Result<()> {
    report.section(
        "(f) SQLite store",
        "Gets per second on a SQLite file (WAL, synchronous=FULL). `ds` from N threads \
         against the same statement in a native rusqlite loop on N threads; `ads` with N tasks \
         against the same statement from N tokio tasks through `spawn_blocking` (SQLite blocks, \
         so async code must hand it to the blocking pool; `ads` does the same). The second \
         table: model gets (the same statement, plus the model's key encoding and entity \
         decoding: this row isolates the component's cost from the model's), puts (each writer \
         its own key; a put reads the old value, then one `BEGIN \
         IMMEDIATE` commit of the entity, its changed index rows and its version check) and \
         one-page queries (`name = \"Ada\"`, limit 20: an index scan and a get-many), with the \
         model compiled natively over the same store as the baseline: the very statements \
         `ds` issues, without the component. The variants of each row take turns, five \
         slices each, and each reports its median slice.",
    );
    let dir = tempfile::tempdir()?;
    let ops = report.iters(20_000) as usize;
    let mut rows = Vec::new();
    for concurrency in [1usize, 16, 64] {
        {
            let op = "get";
            let path = dir.path().join(format!("{op}-{concurrency}.db"));
            let store = Arc::new(SqliteStore::open(&path)?);
            Model::new(NativeTransport(store.as_ref()), NoLog).put(&entity())?;
            let per = (ops / TURNS).max(1);
            let native_op = sqlite_statement_get;
            let open = || {
                let conn = rusqlite::Connection::open(&path).expect("open");
                conn.busy_timeout(Duration::from_secs(30)).expect("timeout");
                conn.pragma_update(None, "synchronous", "FULL")
                    .expect("pragma");
                conn
            };
            let rt = multi_thread();
            let db = sync_db(store.clone(), Isolation::Warm)?;
            let adb = rt.block_on(async_db(
                Arc::new(host_core::store::Offload(store.clone())),
                Isolation::Warm,
            ))?;
            let [native, ds_rate, native_async, ads_rate] = take_turns(
                TURNS,
                [
                    &mut || {
                        Ok(threads_rate(concurrency, per, || {
                            let conn = open();
                            move || native_op(&conn)
                        }))
                    },
                    &mut || Ok(ds_gets_rate(&db, concurrency, per)),
                    // The async baseline: the same statements from tokio tasks, each on the
                    // blocking pool (a connection per task), as any async program must run SQLite.
                    &mut || {
                        Ok(tasks_rate(&rt, concurrency, per, || {
                            let conn = Arc::new(std::sync::Mutex::new(open()));
                            move || {
                                let conn = conn.clone();
                                async move {
                                    tokio::task::spawn_blocking(move || {
                                        native_op(&conn.lock().expect("lock"))
                                    })
                                    .await
                                    .expect("blocking op");
                                }
                            }
                        }))
                    },
                    &mut || {
                        let adb = adb.clone();
                        let (wall, _) = rt.block_on(concurrent_gets(
                            per * concurrency,
                            concurrency,
                            move || {
                                let adb = adb.clone();
                                async move {
                                    std::hint::black_box(adb.get(&key()).await.expect("get"));
                                }
                            },
                        ));
                        Ok((per * concurrency) as f64 / wall.as_secs_f64())
                    },
                ],
            )?;
            rows.push(vec![
                op.into(),
                concurrency.to_string(),
                format!("{native:.0}"),
                format!("{ds_rate:.0}"),
                format!("**{:.2}**", ds_rate / native),
                format!("{native_async:.0}"),
                format!("{ads_rate:.0}"),
                format!("**{:.2}**", ads_rate / native_async),
            ]);
        }
    }
    report.table(
        &[
            "op",
            "concurrency",
            "rusqlite threads ops/s",
            "ds ops/s",
            "ds / rusqlite",
            "rusqlite via spawn_blocking ops/s",
            "ads ops/s",
            "ads / spawn_blocking",
        ],
        &rows,
    );
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("model.db"))?);
    let rt = multi_thread();
    let adb = rt.block_on(async_db(
        Arc::new(host_core::store::Offload(store.clone())),
        Isolation::Warm,
    ))?;
    let rows = model_rows(store, adb, &rt, report.iters(2_000) as usize)?;
    report.model_table(&rows);
    Ok(())
}

/// The (f) SQLite baseline: the store's get statement from a native rusqlite connection,
/// and the entity decoded, as the model decodes it.
pub(crate) fn sqlite_statement_get(conn: &rusqlite::Connection) {
    let key = key().encode();
    let mut stmt = conn
        .prepare_cached("SELECT value, version FROM ds_kv WHERE key = ?1")
        .expect("prepare");
    let row: (Vec<u8>, i64) = stmt
        .query_row([&key], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("get");
    std::hint::black_box(Entity::decode(self::key(), &row.0).expect("decode"));
}
