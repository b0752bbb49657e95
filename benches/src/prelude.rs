//! What every module of the benchmark uses: the crates' items and each other's.
#![allow(unused_imports)]

pub(crate) use std::fmt::Write as _;
pub(crate) use std::path::{Path, PathBuf};
pub(crate) use std::process::Command;
pub(crate) use std::sync::Arc;
pub(crate) use std::sync::atomic::{AtomicUsize, Ordering};
pub(crate) use std::time::{Duration, Instant};

pub(crate) use anyhow::{Context as _, Result, bail};
pub(crate) use ds_model::transport::NoLog;
pub(crate) use ds_model::{Entity, Key, Model};
pub(crate) use host_core::runtime::SlotReset;
pub(crate) use host_core::store::{
    AsyncStore, BoxFuture, Check, Direction, Entry, KeyRange, MemoryStore, NativeTransport,
    SqliteStore, Store, StoreError, Versioned, Write,
};
pub(crate) use host_core::{ComponentSource, Isolation};

pub(crate) use crate::svg;
pub(crate) use crate::{
    callgrind::*, cold_start::*, fixtures::*, instantiation::*, memory::*, model_rows::*,
    overlap::*, per_call::*, pg::*, report::*, sqlite::*, throughput::*,
};
