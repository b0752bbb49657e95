//! Every datastore operation, written once over [`Face`]: the two Python classes parse
//! their arguments into an [`Op`], run it (blocking: one poll with the GIL released;
//! asyncio: awaited on tokio) and convert the [`Output`]. Paging through queries and
//! listings ([`Pager`]) is written once too.

use std::collections::VecDeque;

use host_core::face::Face;
use host_core::{Error, Filter, Key, Op as FilterOp, Order, Query};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};
use serde_json::Value as Json;

use crate::convert;
use crate::errors::{self, InvalidQuery};
use crate::key::key_arg;
use crate::types;

/// One datastore call, its arguments converted from Python.
#[derive(Clone)]
pub enum Op {
    /// `get(key)`.
    Get(Key),
    /// `put(key, properties)`.
    Put(host_core::Entity),
    /// `delete(key)`.
    Delete(Key),
    /// `get_many(keys)`.
    GetMany(Vec<Key>),
    /// `put_many(entities)`.
    PutMany(Vec<host_core::Entity>),
    /// `delete_many(keys)`.
    DeleteMany(Vec<Key>),
    /// `entities(start, kind)`.
    Entities {
        /// Where the page starts (`None`: the first page).
        start: Option<Vec<u8>>,
        /// Only entities of this kind.
        kind: Option<String>,
    },
    /// `query(...)`.
    Query(Box<Query>),
    /// `allocate_ids(kind, count, namespace)`.
    AllocateIds {
        /// The namespace.
        namespace: String,
        /// The kind.
        kind: String,
        /// How many ids.
        count: u64,
    },
    /// `deposit(account, amount)`.
    Deposit(Key, i64),
    /// `transfer(source, destination, amount)`.
    Transfer(Key, Key, i64),
    /// `call(name, input)`.
    Call(String, Json),
    /// `check()`.
    Check,
    /// `count(...)`: the query's limit is the most to count.
    Count(Box<Query>),
    /// `schema()`.
    Schema,
}

/// What an [`Op`] returned, before conversion to Python.
pub enum Output {
    /// An entity or none (`get`).
    Entity(Option<host_core::Entity>),
    /// A key (`put`).
    Key(Key),
    /// Nothing (`delete`, `delete_many`).
    Unit,
    /// Entities or none, per key (`get_many`).
    Entities(Vec<Option<host_core::Entity>>),
    /// Keys (`put_many`).
    Keys(Vec<Key>),
    /// A listing page.
    EntityPage(host_core::EntityPage),
    /// A query page.
    QueryPage(host_core::QueryPage),
    /// A number (`allocate_ids`).
    Unsigned(u64),
    /// A balance (`deposit`).
    Signed(i64),
    /// A transfer's receipt.
    Receipt(host_core::Receipt),
    /// An operation's JSON output (`call`).
    Json(Json),
    /// A check report.
    Check(host_core::CheckReport),
}

/// Runs `op` on `db`.
pub async fn run<F: Face>(db: &F, op: Op) -> Result<Output, Error> {
    Ok(match op {
        Op::Get(key) => Output::Entity(db.get(&key).await?),
        Op::Put(entity) => Output::Key(db.put(&entity).await?),
        Op::Delete(key) => db.delete(&key).await.map(|()| Output::Unit)?,
        Op::GetMany(keys) => Output::Entities(db.get_many(&keys).await?),
        Op::PutMany(entities) => Output::Keys(db.put_many(&entities).await?),
        Op::DeleteMany(keys) => db.delete_many(&keys).await.map(|()| Output::Unit)?,
        Op::Entities { start, kind } => {
            Output::EntityPage(db.entities(start.as_deref(), kind.as_deref()).await?)
        }
        Op::Query(query) => Output::QueryPage(db.query(&query).await?),
        Op::AllocateIds {
            namespace,
            kind,
            count,
        } => Output::Unsigned(db.allocate_ids(&namespace, &kind, count).await?),
        Op::Deposit(account, amount) => Output::Signed(db.deposit(&account, amount).await?),
        Op::Transfer(source, destination, amount) => {
            Output::Receipt(db.transfer(&source, &destination, amount).await?)
        }
        Op::Call(name, input) => Output::Json(db.call(&name, &input).await?),
        Op::Check => Output::Check(db.check().await?),
        Op::Count(query) => Output::Unsigned(db.count(&query).await?),
        Op::Schema => Output::Json(db.schema().await?),
    })
}

fn entity_or_none(py: Python<'_>, entity: Option<host_core::Entity>) -> PyResult<Bound<'_, PyAny>> {
    match entity {
        Some(entity) => Ok(Bound::new(py, types::Entity::from_model(py, entity)?)?.into_any()),
        None => Ok(py.None().into_bound(py)),
    }
}

fn key_list<'py>(py: Python<'py>, keys: Vec<Key>) -> PyResult<Bound<'py, PyList>> {
    PyList::new(py, keys.into_iter().map(crate::key::Key))
}

fn entity_list<'py>(
    py: Python<'py>,
    entities: Vec<host_core::Entity>,
) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for entity in entities {
        list.append(types::Entity::from_model(py, entity)?)?;
    }
    Ok(list)
}

impl<'py> IntoPyObject<'py> for Output {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(match self {
            Output::Entity(entity) => entity_or_none(py, entity)?,
            Output::Key(key) => Bound::new(py, crate::key::Key(key))?.into_any(),
            Output::Unit => py.None().into_bound(py),
            Output::Entities(entities) => {
                let list = PyList::empty(py);
                for entity in entities {
                    list.append(entity_or_none(py, entity)?)?;
                }
                list.into_any()
            }
            Output::Keys(keys) => key_list(py, keys)?.into_any(),
            Output::EntityPage(page) => Bound::new(
                py,
                types::EntityPage {
                    entities: entity_list(py, page.entities)?.unbind(),
                    next: page.next.map(|next| PyBytes::new(py, &next).unbind()),
                },
            )?
            .into_any(),
            Output::QueryPage(page) => Bound::new(
                py,
                types::QueryPage {
                    keys: key_list(py, page.keys)?.unbind(),
                    entities: entity_list(py, page.entities)?.unbind(),
                    next_cursor: page.next_cursor,
                },
            )?
            .into_any(),
            Output::Unsigned(n) => n.into_pyobject(py)?.into_any(),
            Output::Signed(n) => n.into_pyobject(py)?.into_any(),
            Output::Receipt(receipt) => Bound::new(
                py,
                types::Receipt {
                    transfer: Py::new(py, crate::key::Key(receipt.transfer))?,
                    source_balance: receipt.source_balance,
                    destination_balance: receipt.destination_balance,
                },
            )?
            .into_any(),
            Output::Json(json) => convert::json_to_py(py, &json)?,
            Output::Check(report) => Bound::new(
                py,
                types::CheckReport {
                    entities: report.entities,
                    index_rows: report.index_rows,
                    problems: report.problems,
                },
            )?
            .into_any(),
        })
    }
}

/// An entity to write: `(key, properties)` or an `Entity`.
pub fn entity_arg(
    key: &Bound<'_, PyAny>,
    properties: Option<&Bound<'_, PyAny>>,
) -> PyResult<host_core::Entity> {
    if let Ok(entity) = key.cast::<types::Entity>() {
        if properties.is_some_and(|p| !p.is_none()) {
            return Err(PyTypeError::new_err(
                "put(entity) takes no properties: they are the entity's",
            ));
        }
        return entity.get().to_model(key.py());
    }
    let mut entity = host_core::Entity::new(key_arg(key)?);
    entity.properties = convert::properties_arg(properties)?;
    Ok(entity)
}

/// Entities to write: an iterable of `Entity` objects or `(key, properties)` pairs.
pub fn entities_arg(items: &Bound<'_, PyAny>) -> PyResult<Vec<host_core::Entity>> {
    let mut out = Vec::new();
    for item in items.try_iter()? {
        let item = item?;
        if item.is_instance_of::<types::Entity>() {
            out.push(entity_arg(&item, None)?);
        } else if let Ok(pair) = item.cast::<PyTuple>()
            && pair.len() == 2
        {
            out.push(entity_arg(&pair.get_item(0)?, Some(&pair.get_item(1)?))?);
        } else {
            return Err(PyTypeError::new_err(
                "put_many takes Entity objects or (key, properties) pairs",
            ));
        }
    }
    Ok(out)
}

fn filter_op(text: &str) -> PyResult<FilterOp> {
    Ok(match text.trim() {
        "=" | "==" => FilterOp::Eq,
        "<" => FilterOp::Lt,
        "<=" => FilterOp::Le,
        ">" => FilterOp::Gt,
        ">=" => FilterOp::Ge,
        op if op.eq_ignore_ascii_case("in") => FilterOp::In,
        op => {
            return Err(InvalidQuery::new_err(format!(
                "invalid query: unknown operator {op:?} (use =, <, <=, >, >= or IN)"
            )));
        }
    })
}

/// A filter: `'owner = "Alice"'`, or a `(property, operator, value)` tuple whose value is
/// a Python value.
fn filter_arg(obj: &Bound<'_, PyAny>) -> PyResult<Filter> {
    if let Ok(text) = obj.cast::<PyString>() {
        return Filter::parse(&text.to_cow()?).map_err(errors::model_to_py);
    }
    if let Ok(triple) = obj.cast::<PyTuple>()
        && triple.len() == 3
    {
        let property: String = triple.get_item(0)?.extract()?;
        let op = filter_op(&triple.get_item(1)?.extract::<String>()?)?;
        let value = convert::value(&triple.get_item(2)?, &property, 0)?;
        return Ok(Filter {
            property,
            op,
            value,
        });
    }
    Err(PyTypeError::new_err(
        "a filter is a str ('owner = \"Alice\"') or a (property, operator, value) tuple",
    ))
}

fn strings<'py>(obj: &Bound<'py, PyAny>, what: &str) -> PyResult<Vec<Bound<'py, PyAny>>> {
    if obj.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(format!(
            "{what} is a list, not a single str: [{}]",
            obj.repr()?
        )));
    }
    obj.try_iter()?.collect()
}

/// The arguments every query method takes, in one place.
#[allow(clippy::too_many_arguments)]
pub fn query_arg(
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
) -> PyResult<Query> {
    let mut query = Query {
        namespace,
        kind,
        ancestor: ancestor.map(key_arg).transpose()?,
        limit,
        offset,
        keys_only,
        start,
        end,
        ..Query::default()
    };
    if let Some(filters) = filters {
        for filter in strings(filters, "filters")? {
            query.filters.push(filter_arg(&filter)?);
        }
    }
    if let Some(orders) = orders {
        for order in strings(orders, "orders")? {
            let text: String = order.extract().map_err(|_| {
                PyTypeError::new_err("an order is a str: \"balance\" or \"-balance\"")
            })?;
            query
                .orders
                .push(Order::parse(&text).map_err(errors::model_to_py)?);
        }
    }
    if let Some(limit) = limit
        && !(1..=ds_model::query::MAX_PAGE).contains(&limit)
    {
        return Err(PyValueError::new_err(format!(
            "limit must be from 1 to {} (leave it out for a full page)",
            ds_model::query::MAX_PAGE
        )));
    }
    Ok(query)
}

/// Pages through a query or a listing: the op for the next page, until there is none.
pub struct Pager {
    next: Option<Op>,
    /// Entities read but not yet handed out, when iterating entity by entity.
    buffer: VecDeque<host_core::Entity>,
}

impl Pager {
    /// Pages of `op`, a [`Op::Query`] or an [`Op::Entities`].
    pub fn new(op: Op) -> Pager {
        Pager {
            next: Some(op),
            buffer: VecDeque::new(),
        }
    }

    /// The next page, or `None` after the last. A failed (or cancelled) page can be asked
    /// for again.
    pub async fn next_page<F: Face>(&mut self, db: &F) -> Result<Option<Output>, Error> {
        // Taken only once the page is read: a failed or cancelled read can be retried.
        let Some(op) = self.next.clone() else {
            return Ok(None);
        };
        let output = run(db, op.clone()).await?;
        self.next = match (op, &output) {
            (Op::Query(mut query), Output::QueryPage(page)) => {
                page.next_cursor.clone().map(|cursor| {
                    // The cursor lies past the skipped results: page on with no offset.
                    query.start = Some(cursor);
                    query.offset = 0;
                    Op::Query(query)
                })
            }
            (Op::Entities { kind, .. }, Output::EntityPage(page)) => {
                page.next.clone().map(|start| Op::Entities {
                    start: Some(start),
                    kind,
                })
            }
            _ => None,
        };
        Ok(Some(output))
    }

    /// The next entity of a listing or query, page by page, or `None` after the last.
    pub async fn next_entity<F: Face>(
        &mut self,
        db: &F,
    ) -> Result<Option<host_core::Entity>, Error> {
        loop {
            if let Some(entity) = self.buffer.pop_front() {
                return Ok(Some(entity));
            }
            match self.next_page(db).await? {
                None => return Ok(None),
                Some(Output::EntityPage(page)) => self.buffer.extend(page.entities),
                Some(Output::QueryPage(page)) => self.buffer.extend(page.entities),
                Some(_) => return Ok(None),
            }
        }
    }
}
