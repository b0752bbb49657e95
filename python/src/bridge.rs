//! The bridge between tokio and one asyncio event loop, with no GIL on tokio's side.
//!
//! Every call of `ads.Datastore` runs as a tokio task; the Python objects it touches (the
//! asyncio future its caller awaits, a Python store's methods) are only touched on the
//! event loop's own thread, which holds the GIL anyway. Tokio threads queue that work here
//! and wake the loop through a socket it watches (`loop.add_reader`); the loop runs every
//! queued job in one batch. So a tokio thread never waits for the GIL (which the busy loop
//! would hand over only every switch interval, 5 ms), and a thousand calls cost the loop a
//! few batches, not a thousand GIL handoffs.

use std::future::Future;
use std::io::{ErrorKind, Read as _, Write as _};
use std::os::fd::AsRawFd as _;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use pyo3::BoundObject as _;
use pyo3::exceptions::{PyRuntimeError, PyStopAsyncIteration};
use pyo3::prelude::*;

/// Work for the loop's thread.
pub type Job = Box<dyn for<'py> FnOnce(Python<'py>) + Send>;

/// Set when the interpreter begins to exit (an `atexit` hook): from then on no thread
/// without the GIL takes it, since a thread attaching during finalization is ended by
/// CPython in the middle of Rust frames.
pub static EXITING: AtomicBool = AtomicBool::new(false);

/// Whether the interpreter is exiting (see [`EXITING`]).
pub fn exiting() -> bool {
    EXITING.load(Ordering::Acquire)
}

/// The `atexit` hook that sets [`EXITING`].
#[pyfunction]
pub fn _mark_exiting() {
    EXITING.store(true, Ordering::Release);
}

/// The tokio runtime every `ads.Datastore` of this process runs on. A child process after
/// `fork` has none of its parent's threads, so it gets a runtime of its own (the parent's
/// is left alone: it is not this process's to stop).
pub fn runtime() -> PyResult<&'static tokio::runtime::Runtime> {
    static RUNTIME: Mutex<Option<(u32, &'static tokio::runtime::Runtime)>> = Mutex::new(None);
    let mut current = RUNTIME.lock().unwrap_or_else(|e| e.into_inner());
    let pid = std::process::id();
    if let Some((owner, runtime)) = *current
        && owner == pid
    {
        return Ok(runtime);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_name("ads")
        .enable_all()
        .build()
        .map_err(|err| PyRuntimeError::new_err(format!("cannot start tokio: {err}")))?;
    let runtime: &'static tokio::runtime::Runtime = Box::leak(Box::new(runtime));
    *current = Some((pid, runtime));
    Ok(runtime)
}

/// The jobs queued for the loop, and the socket pair that wakes it.
struct Queue {
    jobs: Mutex<Vec<Job>>,
    wake: UnixStream,
    /// The end the loop watches.
    watched: UnixStream,
}

impl Queue {
    /// Queues `job`, waking the loop if the queue was empty.
    fn push(&self, job: Job) {
        let was_empty = {
            let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
            jobs.push(job);
            jobs.len() == 1
        };
        if was_empty {
            // A full socket buffer means a wake-up is already pending: nothing to add.
            let _ = (&self.wake).write(&[1]);
        }
    }
}

/// One event loop's end of the bridge. Its reader is removed from the loop when the last
/// reference goes, which queued jobs hold until they have run on the loop's thread.
pub struct Bridge {
    queue: Arc<Queue>,
    event_loop: Py<PyAny>,
    /// The loop's `create_future` and `create_task`, bound once: every call uses them.
    create_future: Py<PyAny>,
    create_task: Py<PyAny>,
}

impl Bridge {
    /// A bridge to the running event loop (call from a coroutine or loop callback).
    pub fn to_running_loop(py: Python<'_>) -> PyResult<Arc<Bridge>> {
        let event_loop = py.import("asyncio")?.call_method0("get_running_loop")?;
        let (wake, watched) = UnixStream::pair().map_err(|err| {
            PyRuntimeError::new_err(format!("cannot create a socket pair: {err}"))
        })?;
        for end in [&wake, &watched] {
            end.set_nonblocking(true)
                .map_err(|err| PyRuntimeError::new_err(format!("socket pair: {err}")))?;
        }
        let queue = Arc::new(Queue {
            jobs: Mutex::new(Vec::new()),
            wake,
            watched,
        });
        event_loop.call_method1(
            "add_reader",
            (queue.watched.as_raw_fd(), Drain(Arc::clone(&queue))),
        )?;
        Ok(Arc::new(Bridge {
            queue,
            create_future: event_loop.getattr("create_future")?.unbind(),
            create_task: event_loop.getattr("create_task")?.unbind(),
            event_loop: event_loop.unbind(),
        }))
    }

    /// Queues `job` for the loop's thread. The job holds this reference until it has run,
    /// so if it is the last the bridge is dropped there, on the loop's thread.
    pub fn push_owned(self: Arc<Self>, job: Job) {
        let queue = Arc::clone(&self.queue);
        queue.push(Box::new(move |py| {
            job(py);
            drop(self);
        }));
    }

    /// Runs `awaitable` (a coroutine, or any awaitable) as a task of the loop; call on the
    /// loop's thread.
    pub fn create_task<'py>(&self, awaitable: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let py = awaitable.py();
        match self.create_task.bind(py).call1((&awaitable,)) {
            Ok(task) => Ok(task),
            // Not a coroutine: an awaitable object, which `ensure_future` wraps.
            Err(_) => py
                .import("asyncio")?
                .call_method1("ensure_future", (awaitable,)),
        }
    }

    /// [`push_owned`](Bridge::push_owned) with a new reference.
    pub fn push(self: &Arc<Self>, job: Job) {
        Arc::clone(self).push_owned(job);
    }

    /// Refuses a call from any thread but that of a running loop that is this bridge's: the
    /// loop a datastore was opened on is the one its results are delivered to.
    pub fn check_loop(&self, py: Python<'_>) -> PyResult<()> {
        static GET_RUNNING_LOOP: pyo3::sync::PyOnceLock<Py<PyAny>> = pyo3::sync::PyOnceLock::new();
        let get = GET_RUNNING_LOOP.get_or_try_init(py, || {
            py.import("asyncio")?
                .getattr("get_running_loop")
                .map(Bound::unbind)
        })?;
        let running = get.bind(py).call0().map_err(|_| {
            PyRuntimeError::new_err(
                "ads.Datastore calls are made from a coroutine on its event loop",
            )
        })?;
        if running.is(self.event_loop.bind(py)) {
            Ok(())
        } else {
            Err(PyRuntimeError::new_err(
                "this ads.Datastore was opened on another event loop: open one on each loop that uses it",
            ))
        }
    }

    /// Runs `call` as a tokio task and returns an asyncio future (of this loop) for its
    /// result. Cancelling the future aborts the task: the call is dropped, as a dropped
    /// future is in Rust.
    pub fn spawn<'py, T, F>(
        self: &Arc<Self>,
        py: Python<'py>,
        call: F,
    ) -> PyResult<Bound<'py, PyAny>>
    where
        F: Future<Output = PyResult<T>> + Send + 'static,
        T: for<'a> IntoPyObject<'a> + Send + 'static,
    {
        let future = self.create_future.bind(py).call0()?;
        let target = future.clone().unbind();
        let bridge = Arc::clone(self);
        let task = runtime()?.spawn(async move {
            let result = call.await;
            bridge.push_owned(Box::new(move |py| resolve(py, target.bind(py), result)));
        });
        let abort = task.abort_handle();
        future.call_method1(
            "add_done_callback",
            (Callback::once(move |_py, future| {
                if future
                    .call_method0("cancelled")
                    .and_then(|c| c.is_truthy())
                    .unwrap_or(false)
                {
                    abort.abort();
                }
            }),),
        )?;
        Ok(future)
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let fd = self.queue.watched.as_raw_fd();
        // Not after the interpreter has gone (a process exiting with calls in flight).
        Python::try_attach(|py| {
            let loop_ = self.event_loop.bind(py);
            if !loop_
                .call_method0("is_closed")
                .and_then(|c| c.is_truthy())
                .unwrap_or(true)
            {
                let _ = loop_.call_method1("remove_reader", (fd,));
            }
        });
    }
}

/// Sets `future`'s result (or exception), unless its caller cancelled it meanwhile.
fn resolve<T: for<'a> IntoPyObject<'a>>(
    py: Python<'_>,
    future: &Bound<'_, PyAny>,
    result: PyResult<T>,
) {
    if future
        .call_method0("done")
        .and_then(|d| d.is_truthy())
        .unwrap_or(true)
    {
        return;
    }
    let outcome = result.and_then(|value| {
        value
            .into_pyobject(py)
            .map(|v| v.into_any().into_bound().unbind())
            .map_err(Into::into)
    });
    let set = match outcome {
        Ok(value) => future.call_method1("set_result", (value,)),
        Err(err) => future.call_method1("set_exception", (err.into_value(py),)),
    };
    if let Err(err) = set {
        err.print(py);
    }
}

/// The loop's reader callback: empties the socket, then runs every queued job.
#[pyclass(frozen)]
struct Drain(Arc<Queue>);

#[pymethods]
impl Drain {
    fn __call__(&self, py: Python<'_>) {
        let mut buffer = [0u8; 256];
        loop {
            match (&self.0.watched).read(&mut buffer) {
                Ok(0) => break,
                Ok(_) => continue,
                Err(err) if err.kind() == ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        let jobs = std::mem::take(&mut *self.0.jobs.lock().unwrap_or_else(|e| e.into_inner()));
        for job in jobs {
            job(py);
        }
    }
}

/// What a [`Callback`] runs: once, with the GIL and its argument.
type OnceFn = Box<dyn for<'py> FnOnce(Python<'py>, &Bound<'py, PyAny>) + Send>;

/// A Python callable that runs a Rust closure once: a done-callback.
#[pyclass(frozen)]
pub struct Callback(Mutex<Option<OnceFn>>);

impl Callback {
    /// A callback running `f` with its argument, the first time it is called.
    pub fn once(
        f: impl for<'py> FnOnce(Python<'py>, &Bound<'py, PyAny>) + Send + 'static,
    ) -> Callback {
        Callback(Mutex::new(Some(Box::new(f))))
    }
}

#[pymethods]
impl Callback {
    fn __call__(&self, py: Python<'_>, arg: &Bound<'_, PyAny>) {
        let f = self.0.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(f) = f {
            f(py, arg);
        }
    }
}

/// The end of an async iteration, as the awaitable of `__anext__` raises it.
pub fn stop_iteration() -> PyErr {
    PyStopAsyncIteration::new_err(())
}
