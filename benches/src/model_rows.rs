//! (f) Puts and queries through the model, on either store.

use crate::prelude::*;

/// The one-page query of (f): 20 `Model` entities named Ada, served by the property index.
pub(crate) fn ada_query() -> ds_model::Query {
    ds_model::Query {
        kind: Some("Model".into()),
        filters: vec![ds_model::Filter::parse(r#"name = "Ada""#).expect("a filter")],
        limit: Some(20),
        ..ds_model::Query::default()
    }
}

/// Puts (each writer its own key) and one-page queries per second through the model: the
/// model compiled natively over the same store (so the very statements `ds` issues) on N
/// threads, against `ds` on N threads; the native model on N tokio blocking-pool tasks
/// against `ads` with N tasks.
pub(crate) fn model_rows(
    store: Arc<dyn Store>,
    adb: ads::Datastore,
    rt: &tokio::runtime::Runtime,
    ops: usize,
) -> Result<Vec<Vec<String>>> {
    seed_models(store.as_ref())?;
    let db = sync_db(store.clone(), Isolation::Warm)?;
    let mut rows = Vec::new();
    for concurrency in [1usize, 16, 64] {
        for op in ["get", "put", "query"] {
            let per = match op {
                "put" => ops / 4,
                "get" => ops * 4,
                _ => ops,
            };
            let per = (per / TURNS).max(1);
            let [native, ds_rate, native_async, ads_rate] = take_turns(
                TURNS,
                [
                    &mut || {
                        let ids = AtomicUsize::new(0);
                        Ok(threads_rate(concurrency, per, || {
                            let own = own_entity(&ids);
                            let store = store.clone();
                            move || native_model_op(store.as_ref(), op, &own)
                        }))
                    },
                    &mut || {
                        let ids = AtomicUsize::new(0);
                        Ok(threads_rate(concurrency, per, || {
                            let own = own_entity(&ids);
                            let db = db.clone();
                            move || match op {
                                "get" => {
                                    std::hint::black_box(db.get(&seed_key()).expect("get"));
                                }
                                "put" => {
                                    db.put(&own).expect("put");
                                }
                                _ => {
                                    std::hint::black_box(db.query(&ada_query()).expect("query"));
                                }
                            }
                        }))
                    },
                    &mut || {
                        let ids = AtomicUsize::new(0);
                        Ok(tasks_rate(rt, concurrency, per, || {
                            let own = Arc::new(own_entity(&ids));
                            let store = store.clone();
                            move || {
                                let (store, own) = (store.clone(), own.clone());
                                async move {
                                    tokio::task::spawn_blocking(move || {
                                        native_model_op(store.as_ref(), op, &own)
                                    })
                                    .await
                                    .expect("blocking op");
                                }
                            }
                        }))
                    },
                    &mut || {
                        let ids = AtomicUsize::new(0);
                        Ok(tasks_rate(rt, concurrency, per, || {
                            let own = Arc::new(own_entity(&ids));
                            let adb = adb.clone();
                            move || {
                                let (adb, own) = (adb.clone(), own.clone());
                                async move {
                                    match op {
                                        "get" => {
                                            std::hint::black_box(
                                                adb.get(&seed_key()).await.expect("get"),
                                            );
                                        }
                                        "put" => {
                                            adb.put(&own).await.expect("put");
                                        }
                                        _ => {
                                            std::hint::black_box(
                                                adb.query(&ada_query()).await.expect("query"),
                                            );
                                        }
                                    }
                                }
                            }
                        }))
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
    Ok(rows)
}

/// One put of `own` or one page of [`ada_query`], by the model compiled natively.
/// Writes the 100 entities the model-level gets and queries read (`ada_query` finds them).
pub(crate) fn seed_models(store: &dyn Store) -> Result<Vec<Entity>> {
    let seed: Vec<Entity> = (0..100)
        .map(|i| Entity {
            key: Key::name("Model", format!("ada-{i}")),
            ..entity()
        })
        .collect();
    Model::new(NativeTransport(store), NoLog).put_many(&seed)?;
    Ok(seed)
}

/// The key of a seeded entity that the model-level gets read.
pub(crate) fn seed_key() -> Key {
    Key::name("Model", "ada-0")
}

pub(crate) fn native_model_op(store: &dyn Store, op: &str, own: &Entity) {
    let mut model = Model::new(NativeTransport(store), NoLog);
    if op == "get" {
        std::hint::black_box(model.get(&seed_key()).expect("get"));
    } else if op == "put" {
        model.put(own).expect("put");
    } else {
        // Typed entities, as `ds::Datastore::query` returns them.
        let page = model.query(&ada_query()).expect("query");
        let entities: Vec<Entity> = page
            .hits
            .into_iter()
            .filter_map(|hit| Some(Entity::decode(hit.key, &hit.stored?.value).expect("decode")))
            .collect();
        std::hint::black_box(entities);
    }
}
