//! The `conduit` binary: the command line of [`conduit::cli`], with the allocator.

use std::process::ExitCode;

/// mimalloc: measured faster than the system allocator on the request path (see the README's
/// Performance section), which allocates many small, short-lived values.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    conduit::cli::main()
}
