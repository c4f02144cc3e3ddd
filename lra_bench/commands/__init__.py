"""Sub-commands of `lra-bench`. Each module exposes `register(subparsers)`, which adds its parser
and sets `handler`; `lra_bench.cli.COMMANDS` lists the modules. `data` sub-commands register
under the `data` parser (`register_data(data_subparsers)`)."""
