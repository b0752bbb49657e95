//! `ds`: the datastore command line over the blocking host.

use std::process::ExitCode;

use anyhow::Context as _;
use ds_cli::args::{Cli, Command};
use ds_cli::output::Output;
use host_core::mode::complete;

fn main() -> ExitCode {
    let cli: Cli<Command> = Cli::parse_for(
        "ds",
        "ds: the datastore model, run by the blocking host",
        &[(
            "serve",
            "`serve` is the async host's: run `ads serve --listen ADDR`",
        )],
    );
    ds_cli::init_tracing(cli.trace);
    let mut output = Output::new(cli.output_format());
    let result = run(cli, &mut output);
    ds_cli::exit::finish(&mut output, result)
}

fn run(cli: Cli<Command>, output: &mut Output) -> anyhow::Result<()> {
    ds_cli::configure_engine()?;
    let db = ds::Datastore::builder()
        .store_url(&cli.store)
        // Commands that only read refuse a store that does not exist instead of making one.
        .create_store(!cli.command.reads_only())
        .component(cli.component_source())
        .instance_options(cli.instance_options())
        .transaction_retries(cli.retries)
        .build()
        .with_context(|| ds_cli::cannot_open(&cli.store))?;
    let invocation = ds_cli::dispatch::Invocation {
        store: &cli.store,
        component: cli.component.as_deref(),
        binary: "ds",
    };
    // Every future of the blocking host is ready when made: one poll runs the command.
    complete(ds_cli::dispatch::run(&db, cli.command, output, invocation))
}
