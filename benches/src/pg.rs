//! (f) PostgreSQL.

use crate::prelude::*;

pub(crate) const PG_GET: &str = "SELECT value, version FROM ds_kv WHERE key = $1";

pub(crate) fn postgres(report: &mut Report) -> Result<()> {
    report.section(
        "(f) PostgreSQL store",
        "Gets per second against the local PostgreSQL 15 server. `ds` from N threads against \
         the same statement from the `postgres` crate on N threads (a connection each); `ads` \
         with N tasks against the same statement from `tokio-postgres` in N tasks (a \
         connection each). The second table: model gets (statement plus the model's own work), \
         puts (a get-many of the old value, then one \
         `SERIALIZABLE` commit: checks, `nextval`, upserts) and one-page queries, with the \
         model compiled natively over the same store as the baseline (threads; for `ads`, \
         the native model on the blocking pool). `ds` drives each pooled connection on the \
         calling thread, as `postgres` does. In the first table `ds` and `ads` get a store of \
         their own per turn with `max_connections` = N, a connection per thread or task as \
         the native loops have. The variants of each row take turns, five slices \
         each, and each reports its median slice.",
    );
    let server = std::env::var("DS_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    if postgres::Client::connect(&server, postgres::NoTls).is_err() {
        let _ = writeln!(
            report.out,
            "No PostgreSQL server at `{server}`: skipped (set DS_TEST_POSTGRES).\n"
        );
        return Ok(());
    }
    let schema = format!("ds_bench_{}", std::process::id());
    // Plain TCP, as the native clients' `NoTls` (ds's default, libpq's `prefer`, would
    // encrypt to a server that offers TLS).
    let url = format!(
        "{server}{}sslmode=disable&schema={schema}",
        if server.contains('?') { '&' } else { '?' }
    );
    let ops = report.iters(4_000) as usize;
    let mut rows = Vec::new();
    let store = open_store(&url)?;
    Model::new(NativeTransport(store.as_ref()), NoLog).put(&entity())?;
    for concurrency in [1usize, 16, 64] {
        let per = (ops / TURNS).max(1);
        let rt = multi_thread();
        let [native, ds_rate, native_async, ads_rate] = take_turns(
            TURNS,
            [
                &mut || Ok(postgres_gets_rate(&server, &schema, concurrency, per)),
                // A connection per thread, as the native loop has: a store of its own per
                // turn with `max_connections` = N, warmed up first, then closed (the server's
                // 100 connections do not hold 64 native ones beside 64 idle ones).
                &mut || {
                    let own = open_store(&format!("{url}&max_connections={concurrency}"))?;
                    let db = sync_db(own, Isolation::Warm)?;
                    ds_gets_rate(&db, concurrency, 1);
                    Ok(ds_gets_rate(&db, concurrency, per))
                },
                &mut || tokio_postgres_gets_rate(&rt, &server, &schema, concurrency, per),
                // Likewise a store of its own per turn, with a connection per task.
                &mut || ads_pg_gets_rate(&rt, &url, concurrency, per),
            ],
        )?;
        rows.push(vec![
            "get".into(),
            concurrency.to_string(),
            format!("{native:.0}"),
            format!("{ds_rate:.0}"),
            format!("**{:.2}**", ds_rate / native),
            format!("{native_async:.0}"),
            format!("{ads_rate:.0}"),
            format!("**{:.2}**", ads_rate / native_async),
        ]);
    }
    report.table(
        &[
            "op",
            "concurrency",
            "postgres ops/s",
            "ds ops/s",
            "ds / postgres",
            "tokio-postgres ops/s",
            "ads ops/s",
            "ads / tokio-postgres",
        ],
        &rows,
    );
    let rt = multi_thread();
    let adb = rt.block_on(async {
        ads::Datastore::builder()
            .store_url(&url)
            .isolation(Isolation::Warm)
            .build()
            .await
    })?;
    let rows = model_rows(store.clone(), adb, &rt, ops)?;
    report.model_table(&rows);
    let mut client = postgres::Client::connect(&server, postgres::NoTls)?;
    client.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))?;
    Ok(())
}

/// Gets of the (f) key per second from `concurrency` threads, each with a `postgres` client
/// of its own running the statement `per_thread` times.
pub(crate) fn postgres_gets_rate(
    server: &str,
    schema: &str,
    concurrency: usize,
    per_thread: usize,
) -> f64 {
    threads_rate(concurrency, per_thread, || {
        let read_key = key().encode();
        let mut client = postgres::Client::connect(server, postgres::NoTls).expect("connect");
        client
            .batch_execute(&format!("SET search_path TO {schema}"))
            .expect("schema");
        let get = client.prepare(PG_GET).expect("prepare");
        move || {
            let row = client.query_opt(&get, &[&read_key]).expect("get");
            std::hint::black_box(
                row.map(|row| Entity::decode(key(), row.get::<_, &[u8]>(0)).expect("decode")),
            );
        }
    })
}

/// Gets of the (f) key per second from `concurrency` tasks on `rt`, each with a
/// `tokio-postgres` client of its own running the statement `per_task` times.
pub(crate) fn tokio_postgres_gets_rate(
    rt: &tokio::runtime::Runtime,
    server: &str,
    schema: &str,
    concurrency: usize,
    per_task: usize,
) -> Result<f64> {
    let mut clients = rt
        .block_on(async {
            let mut clients = Vec::new();
            for _ in 0..concurrency {
                let (client, connection) =
                    tokio_postgres::connect(server, tokio_postgres::NoTls).await?;
                tokio::spawn(connection);
                client
                    .batch_execute(&format!("SET search_path TO {schema}"))
                    .await?;
                let get = client.prepare(PG_GET).await?;
                clients.push(Arc::new((client, get, key().encode())));
            }
            anyhow::Ok(clients)
        })?
        .into_iter();
    Ok(tasks_rate(rt, concurrency, per_task, || {
        let client = clients.next().expect("a client per task");
        move || {
            let client = client.clone();
            async move {
                let (client, get, read_key) = &*client;
                let row = client.query_opt(get, &[read_key]).await.expect("get");
                std::hint::black_box(
                    row.map(|row| Entity::decode(key(), row.get::<_, &[u8]>(0)).expect("decode")),
                );
            }
        }
    }))
}

/// `ads` gets of the (f) key per second from `concurrency` tasks on `rt`, `per_task` each,
/// through a datastore of its own over `url` with a connection per task, warmed up first.
pub(crate) fn ads_pg_gets_rate(
    rt: &tokio::runtime::Runtime,
    url: &str,
    concurrency: usize,
    per_task: usize,
) -> Result<f64> {
    let adb = rt.block_on(async {
        ads::Datastore::builder()
            .store_url(&format!("{url}&max_connections={concurrency}"))
            .isolation(Isolation::Warm)
            .build()
            .await
    })?;
    let gets = |count: usize| {
        tasks_rate(rt, concurrency, count, || {
            let adb = adb.clone();
            move || {
                let adb = adb.clone();
                async move {
                    std::hint::black_box(adb.get(&key()).await.expect("get"));
                }
            }
        })
    };
    gets(1);
    Ok(gets(per_task))
}

/// The entity the next writer puts: its own key, one per thread or task.
pub(crate) fn own_entity(ids: &AtomicUsize) -> Entity {
    Entity {
        key: Key::name(
            "Model",
            format!("writer-{}", ids.fetch_add(1, Ordering::Relaxed)),
        ),
        ..entity()
    }
}

pub(crate) fn open_store(url: &str) -> Result<Arc<dyn Store>> {
    let url: host_core::store::StoreUrl = url.parse()?;
    Ok(host_core::store::open_blocking(&url)?)
}

/// Ops per second of `concurrency` threads each running `per_thread` calls of the closure
/// that `make` builds on that thread.
///
/// The clock runs from the first thread's start to the last one's end, as the threads read
/// it: with more threads than cores, a coordinating thread may wait many time slices to be
/// scheduled after releasing them, and its clock would miss the work done meanwhile.
pub(crate) fn threads_rate<M, F>(concurrency: usize, per_thread: usize, make: M) -> f64
where
    M: Fn() -> F + Sync,
    F: FnMut(),
{
    use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
    let barrier = std::sync::Barrier::new(concurrency);
    let spans = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..concurrency)
            .map(|_| {
                scope.spawn(|| {
                    // Every thread reaches the barrier even if it panics, so a failure is
                    // reported instead of leaving the others waiting forever.
                    let op = catch_unwind(AssertUnwindSafe(&make));
                    barrier.wait();
                    let start = Instant::now();
                    let done = op.and_then(|mut op| {
                        catch_unwind(AssertUnwindSafe(|| {
                            for _ in 0..per_thread {
                                op();
                            }
                        }))
                    });
                    done.map(|()| (start, Instant::now()))
                })
            })
            .collect();
        let mut spans = Vec::with_capacity(concurrency);
        for handle in handles {
            match handle.join().expect("joined") {
                Ok(span) => spans.push(span),
                Err(panic) => resume_unwind(panic),
            }
        }
        spans
    });
    let start = spans
        .iter()
        .map(|(start, _)| *start)
        .min()
        .expect("a thread");
    let end = spans.iter().map(|(_, end)| *end).max().expect("a thread");
    (concurrency * per_thread) as f64 / (end - start).as_secs_f64()
}

/// `ds` gets of the (f) key per second from `concurrency` threads, `per_thread` each.
pub(crate) fn ds_gets_rate(db: &ds::Datastore, concurrency: usize, per_thread: usize) -> f64 {
    threads_rate(concurrency, per_thread, || {
        let db = db.clone();
        move || {
            std::hint::black_box(db.get(&key()).expect("get"));
        }
    })
}

/// Ops per second of `concurrency` tokio tasks on `rt`, each awaiting `per_task` calls of
/// the async closure that `make` builds for it: the async twin of [`threads_rate`].
pub(crate) fn tasks_rate<M, F, Fut>(
    rt: &tokio::runtime::Runtime,
    concurrency: usize,
    per_task: usize,
    make: M,
) -> f64
where
    M: FnMut() -> F,
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let ops: Vec<F> = std::iter::repeat_with(make).take(concurrency).collect();
    let start = Instant::now();
    rt.block_on(async {
        let tasks: Vec<_> = ops
            .into_iter()
            .map(|mut op| {
                tokio::spawn(async move {
                    for _ in 0..per_task {
                        op().await;
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("task");
        }
    });
    (concurrency * per_task) as f64 / start.elapsed().as_secs_f64()
}
