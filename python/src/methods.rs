//! The methods both Python classes share, written once: each parses its arguments into an
//! [`Op`](crate::ops::Op) and hands it to the class's own `run` (blocking or awaitable).
//! The classes add what differs: `open`, and their iterators.

/// Implements the shared methods for a class with a `fn run<'py>(&self, py, op) ->
/// PyResult<Bound<'py, PyAny>>`, followed by the class's own `$extra` methods (one
/// `#[pymethods]` block per class).
macro_rules! datastore_methods {
    ($class:ty, { $($extra:tt)* }) => {
        #[pymethods]
        impl $class {
            /// The entity at `key` (a `Key` or its string form), or `None`.
            fn get<'py>(&self, py: Python<'py>, key: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
                let op = Op::Get(key_arg(key)?);
                self.run(py, op)
            }

            /// Validates and writes an entity, replacing any at its key; returns the key.
            /// `put(key, properties)` or `put(entity)`.
            #[pyo3(signature = (key, properties = None))]
            fn put<'py>(
                &self,
                py: Python<'py>,
                key: &Bound<'py, PyAny>,
                properties: Option<&Bound<'py, PyAny>>,
            ) -> PyResult<Bound<'py, PyAny>> {
                let op = Op::Put(ops::entity_arg(key, properties)?);
                self.run(py, op)
            }

            /// Deletes the entity at `key`; deleting an absent entity is not an error.
            fn delete<'py>(&self, py: Python<'py>, key: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
                let op = Op::Delete(key_arg(key)?);
                self.run(py, op)
            }

            /// Reads several entities in one round trip: a list with an entity or `None`
            /// per key, in order.
            fn get_many<'py>(&self, py: Python<'py>, keys: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
                let op = Op::GetMany(keys_arg(keys)?);
                self.run(py, op)
            }

            /// Validates every entity (`Entity` objects or `(key, properties)` pairs),
            /// then writes them in one atomic commit; returns their keys.
            fn put_many<'py>(&self, py: Python<'py>, entities: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
                let op = Op::PutMany(ops::entities_arg(entities)?);
                self.run(py, op)
            }

            /// Deletes several entities in one atomic commit.
            fn delete_many<'py>(&self, py: Python<'py>, keys: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
                let op = Op::DeleteMany(keys_arg(keys)?);
                self.run(py, op)
            }

            /// One page of entities in key order (an `EntityPage`), of every kind or only
            /// of `kind`, from `start` (a page's `next`; `None`: the first page).
            #[pyo3(signature = (start = None, kind = None))]
            fn entities<'py>(
                &self,
                py: Python<'py>,
                start: Option<Vec<u8>>,
                kind: Option<String>,
            ) -> PyResult<Bound<'py, PyAny>> {
                self.run(py, Op::Entities { start, kind })
            }

            /// One page of a query (a `QueryPage`), served from the model's indexes.
            /// Filters are strings (`'owner = "Alice"'`) or `(property, op, value)`
            /// tuples; orders are `"balance"` or `"-balance"`. Pass a page's
            /// `next_cursor` as `start` to page on (with `offset` 0), or iterate
            /// `query_pages` with the same arguments.
            #[pyo3(signature = (kind = None, *, ancestor = None, filters = None, orders = None, limit = None, offset = 0, start = None, end = None, keys_only = false, namespace = String::new()))]
            #[allow(clippy::too_many_arguments)]
            fn query<'py>(
                &self,
                py: Python<'py>,
                kind: Option<String>,
                ancestor: Option<&Bound<'py, PyAny>>,
                filters: Option<&Bound<'py, PyAny>>,
                orders: Option<&Bound<'py, PyAny>>,
                limit: Option<u32>,
                offset: u32,
                start: Option<String>,
                end: Option<String>,
                keys_only: bool,
                namespace: String,
            ) -> PyResult<Bound<'py, PyAny>> {
                let query = ops::query_arg(kind, ancestor, filters, orders, limit, offset, start, end, keys_only, namespace)?;
                self.run(py, Op::Query(Box::new(query)))
            }

            /// Reserves `count` consecutive ids of `kind` (in `namespace`) and returns the
            /// first. Ids are never issued twice, however many callers race.
            #[pyo3(signature = (kind, count = 1, namespace = String::new()))]
            fn allocate_ids<'py>(
                &self,
                py: Python<'py>,
                kind: String,
                count: u64,
                namespace: String,
            ) -> PyResult<Bound<'py, PyAny>> {
                self.run(py, Op::AllocateIds { namespace, kind, count })
            }

            /// The example application: adds `amount` to `account`'s balance in a
            /// transaction; returns the new balance.
            fn deposit<'py>(&self, py: Python<'py>, account: &Bound<'py, PyAny>, amount: i64) -> PyResult<Bound<'py, PyAny>> {
                let op = Op::Deposit(key_arg(account)?, amount);
                self.run(py, op)
            }

            /// The example application: moves `amount` from `source` to `destination` in
            /// one transaction; returns a `Receipt`.
            fn transfer<'py>(
                &self,
                py: Python<'py>,
                source: &Bound<'py, PyAny>,
                destination: &Bound<'py, PyAny>,
                amount: i64,
            ) -> PyResult<Bound<'py, PyAny>> {
                let op = Op::Transfer(key_arg(source)?, key_arg(destination)?, amount);
                self.run(py, op)
            }

            /// Runs the component's application operation `name` on `input` (JSON-like:
            /// None, bool, int, float, str, list, dict) and returns its output.
            #[pyo3(signature = (name, input = None))]
            fn call<'py>(
                &self,
                py: Python<'py>,
                name: String,
                input: Option<&Bound<'py, PyAny>>,
            ) -> PyResult<Bound<'py, PyAny>> {
                let input = match input {
                    Some(input) => convert::json(input, 0)?,
                    None => serde_json::Value::Object(Default::default()),
                };
                self.run(py, Op::Call(name, input))
            }

            /// Checks the whole store: every entity readable, with exactly its index rows.
            /// Returns a `CheckReport`.
            fn check<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
                self.run(py, Op::Check)
            }

            /// Counts the entities a query selects, from the model's indexes (no entity
            /// is read): the arguments of `query`'s selection; `limit` is the most to
            /// count (`None`: all).
            #[pyo3(signature = (kind, *, ancestor = None, filters = None, limit = None, namespace = String::new()))]
            fn count<'py>(
                &self,
                py: Python<'py>,
                kind: String,
                ancestor: Option<&Bound<'py, PyAny>>,
                filters: Option<&Bound<'py, PyAny>>,
                limit: Option<u32>,
                namespace: String,
            ) -> PyResult<Bound<'py, PyAny>> {
                if limit == Some(0) {
                    return Err(pyo3::exceptions::PyValueError::new_err(
                        "limit is the most to count: at least 1 (leave it out to count all)",
                    ));
                }
                let mut query = ops::query_arg(Some(kind), ancestor, filters, None, None, 0, None, None, true, namespace)?;
                query.limit = limit;
                self.run(py, Op::Count(Box::new(query)))
            }

            /// The kinds the component declares, as a dict: each kind's properties (type,
            /// required, repeated, indexed, default) and composite indexes.
            fn schema<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
                self.run(py, Op::Schema)
            }

            /// Iterates over the pages of a query (the arguments of `query`; `limit` is
            /// the page size), following each page's cursor.
            #[pyo3(signature = (kind = None, *, ancestor = None, filters = None, orders = None, limit = None, offset = 0, start = None, end = None, keys_only = false, namespace = String::new()))]
            #[allow(clippy::too_many_arguments)]
            fn query_pages(
                &self,
                kind: Option<String>,
                ancestor: Option<&Bound<'_, PyAny>>,
                filters: Option<&Bound<'_, PyAny>>,
                orders: Option<&Bound<'_, PyAny>>,
                limit: Option<u32>,
                offset: u32,
                start: Option<String>,
                end: Option<String>,
                keys_only: bool,
                namespace: String,
            ) -> PyResult<Pages> {
                let query = ops::query_arg(kind, ancestor, filters, orders, limit, offset, start, end, keys_only, namespace)?;
                Ok(self.pages(Op::Query(Box::new(query)), false))
            }

            /// Iterates over every entity (or every entity of `kind`) in key order, a page
            /// at a time: what `ds export` prints.
            #[pyo3(signature = (kind = None))]
            fn export(&self, kind: Option<String>) -> Pages {
                self.pages(Op::Entities { start: None, kind }, true)
            }

            $($extra)*
        }
    };
}

pub(crate) use datastore_methods;
