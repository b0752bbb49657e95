//! A model written in Python (`examples/python-model/app.py`, built with componentize-py
//! and `--stub-wasi`) runs unchanged in both hosts, over SQLite and memory, with the same
//! results for the same calls: the WIT contract, not Rust, is what a model must meet.
//!
//! Needs componentize-py 0.25.1 (`pip install componentize-py==0.25.1`, as .ci/run does).

use std::path::PathBuf;
use std::process::Command;

use ds::{ComponentSource, Entity, Error, Key};
use ds_tests::workspace_root;
use serde_json::json;

/// Builds the Python model into `target/python-model/model.wasm` and returns its path.
fn build_python_model() -> PathBuf {
    let root = workspace_root();
    let out_dir = root.join("target/python-model");
    std::fs::create_dir_all(&out_dir).unwrap();
    let component = out_dir.join("model.wasm");
    let tool = std::env::var("DS_COMPONENTIZE_PY").unwrap_or_else(|_| "componentize-py".into());
    let out = Command::new(&tool)
        .arg("-d")
        .arg(root.join("wit"))
        .args(["-w", "model", "componentize", "-p"])
        .arg(root.join("examples/python-model"))
        .arg("app")
        .arg("-o")
        .arg(&component)
        .arg("--stub-wasi")
        .output()
        .unwrap_or_else(|err| {
            panic!(
                "cannot run {tool}: {err}\nInstall it: pip install componentize-py==0.25.1 \
                 (.ci/run does)"
            )
        });
    assert!(
        out.status.success(),
        "componentize-py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    component
}

/// The calls, as their results print: the same for every host and store.
fn script(db: &impl Calls) -> Vec<String> {
    let a = Key::name("Counter", "a");
    let b = Key::id("Counter", 7);
    let child = Key::name("Counter", "a").child(ds::PathElement::name("Note", "n"));
    let entity = |key: &Key, properties: serde_json::Value| {
        Entity::from_json(key.clone(), &properties.to_string()).unwrap()
    };
    let mut out = Vec::new();
    let mut record = |what: &str, result: String| out.push(format!("{what}: {result}"));
    record("get absent", format!("{:?}", db.get(&a)));
    record(
        "put",
        format!(
            "{:?}",
            db.put(&entity(&a, json!({"count": 1, "tags": ["x", "y"]})))
        ),
    );
    record("get", format!("{:?}", db.get(&a)));
    record(
        "increment",
        format!(
            "{:?}",
            db.call("increment", json!({"key": "Counter:a", "by": 5}))
        ),
    );
    record(
        "increment new",
        format!("{:?}", db.call("increment", json!({"key": "Counter:7"}))),
    );
    record(
        "put many",
        format!(
            "{:?}",
            db.put_many(&[
                entity(&child, json!({"text": "first"})),
                entity(&child, json!({"text": "last wins"})),
            ])
        ),
    );
    record(
        "get many",
        format!(
            "{:?}",
            db.get_many(&[
                a.clone(),
                b.clone(),
                child.clone(),
                Key::name("Counter", "z")
            ])
        ),
    );
    record("delete", format!("{:?}", db.delete(&b)));
    record(
        "delete many",
        format!(
            "{:?}",
            db.delete_many(&[child.clone(), Key::name("Counter", "never")])
        ),
    );
    record(
        "get many after",
        format!("{:?}", db.get_many(&[a.clone(), b.clone(), child.clone()])),
    );
    record(
        "unknown operation",
        format!("{:?}", db.call("mint", json!({}))),
    );
    record(
        "bad argument",
        format!(
            "{:?}",
            db.call("increment", json!({"key": "Counter:a", "by": "x"}))
        ),
    );
    record("unsupported", format!("{:?}", db.query_kind("Counter")));
    out
}

fn kind_query(kind: &str) -> ds::Query {
    ds::Query {
        kind: Some(kind.into()),
        ..ds::Query::default()
    }
}

/// What the script calls, on both hosts' datastores.
trait Calls {
    fn get(&self, key: &Key) -> Result<Option<Entity>, Error>;
    fn put(&self, entity: &Entity) -> Result<Key, Error>;
    fn delete(&self, key: &Key) -> Result<(), Error>;
    fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Entity>>, Error>;
    fn put_many(&self, entities: &[Entity]) -> Result<Vec<Key>, Error>;
    fn delete_many(&self, keys: &[Key]) -> Result<(), Error>;
    fn call(&self, name: &str, input: serde_json::Value) -> Result<serde_json::Value, Error>;
    fn query_kind(&self, kind: &str) -> Result<usize, Error>;
}

impl Calls for ds::Datastore {
    fn get(&self, key: &Key) -> Result<Option<Entity>, Error> {
        ds::Datastore::get(self, key)
    }
    fn put(&self, entity: &Entity) -> Result<Key, Error> {
        ds::Datastore::put(self, entity)
    }
    fn delete(&self, key: &Key) -> Result<(), Error> {
        ds::Datastore::delete(self, key)
    }
    fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Entity>>, Error> {
        ds::Datastore::get_many(self, keys)
    }
    fn put_many(&self, entities: &[Entity]) -> Result<Vec<Key>, Error> {
        ds::Datastore::put_many(self, entities)
    }
    fn delete_many(&self, keys: &[Key]) -> Result<(), Error> {
        ds::Datastore::delete_many(self, keys)
    }
    fn call(&self, name: &str, input: serde_json::Value) -> Result<serde_json::Value, Error> {
        ds::Datastore::call(self, name, &input)
    }
    fn query_kind(&self, kind: &str) -> Result<usize, Error> {
        ds::Datastore::query(self, &kind_query(kind)).map(|page| page.keys.len())
    }
}

/// The async host, each call run to completion on a runtime of its own thread.
struct Async(ads::Datastore, tokio::runtime::Runtime);

impl Calls for Async {
    fn get(&self, key: &Key) -> Result<Option<Entity>, Error> {
        self.1.block_on(self.0.get(key))
    }
    fn put(&self, entity: &Entity) -> Result<Key, Error> {
        self.1.block_on(self.0.put(entity))
    }
    fn delete(&self, key: &Key) -> Result<(), Error> {
        self.1.block_on(self.0.delete(key))
    }
    fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Entity>>, Error> {
        self.1.block_on(self.0.get_many(keys))
    }
    fn put_many(&self, entities: &[Entity]) -> Result<Vec<Key>, Error> {
        self.1.block_on(self.0.put_many(entities))
    }
    fn delete_many(&self, keys: &[Key]) -> Result<(), Error> {
        self.1.block_on(self.0.delete_many(keys))
    }
    fn call(&self, name: &str, input: serde_json::Value) -> Result<serde_json::Value, Error> {
        self.1.block_on(self.0.call(name, &input))
    }
    fn query_kind(&self, kind: &str) -> Result<usize, Error> {
        self.1
            .block_on(self.0.query(&kind_query(kind)))
            .map(|page| page.keys.len())
    }
}

#[test]
fn a_python_model_runs_in_both_hosts_over_every_embedded_store() {
    let component = build_python_model();
    let size = std::fs::metadata(&component).unwrap().len();
    println!("python model: {size} bytes");
    let dir = tempfile::tempdir().unwrap();
    let source = || ComponentSource::File(component.clone());
    let mut runs = Vec::new();
    for store in ["memory:", "sqlite"] {
        let url = |host: &str| match store {
            "sqlite" => format!("sqlite:{}", dir.path().join(format!("{host}.db")).display()),
            other => other.to_string(),
        };
        let blocking = ds::Datastore::builder()
            .store_url(&url("ds"))
            .component(source())
            .build()
            .unwrap();
        runs.push((format!("ds over {store}"), script(&blocking)));
        // Its interpreter's image is tens of MiB, far past the 8 MiB of growth after which
        // a warm instance is recycled: the instance is still kept warm (otherwise every
        // call instantiates anew, about 100 times the cost of a warm call).
        assert_eq!(blocking.idle_instances(), 1, "the warm instance was kept");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let awaited = runtime
            .block_on(
                ads::Datastore::builder()
                    .store_url(&url("ads"))
                    .component(source())
                    .build(),
            )
            .unwrap();
        let awaited = Async(awaited, runtime);
        runs.push((format!("ads over {store}"), script(&awaited)));
        assert_eq!(awaited.0.idle_instances(), 1, "the warm instance was kept");
    }
    let (first, expected) = &runs[0];
    for (name, results) in &runs[1..] {
        assert_eq!(results, expected, "{name} differs from {first}");
    }
    // And the results are the model's, not merely equal.
    let line = |what: &str| {
        expected
            .iter()
            .find(|l| l.starts_with(&format!("{what}: ")))
            .unwrap()
            .clone()
    };
    assert_eq!(line("get absent"), "get absent: Ok(None)");
    assert!(line("get").contains("Some(Entity"), "{}", line("get"));
    assert_eq!(
        line("increment"),
        r#"increment: Ok(Object {"count": Number(6), "key": String("Counter:a")})"#
    );
    assert_eq!(
        line("increment new"),
        r#"increment new: Ok(Object {"count": Number(1), "key": String("Counter:7")})"#
    );
    assert!(
        line("get many").contains("last wins") && !line("get many").contains("first"),
        "{}",
        line("get many")
    );
    assert!(
        line("get many after").ends_with("None, None])"),
        "{}",
        line("get many after")
    );
    assert!(
        line("unknown operation").contains("NotFound"),
        "{}",
        line("unknown operation")
    );
    assert!(
        line("bad argument").contains("InvalidArgument"),
        "{}",
        line("bad argument")
    );
    assert!(
        line("unsupported").contains("not supported by the Python example model"),
        "{}",
        line("unsupported")
    );
}
