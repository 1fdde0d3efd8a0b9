"""The rlinf plugin of rlinf-cli: adds subcommands to ``rlinf`` through ``rlinf_register_commands``."""

from rlinf_core import ComponentSpec, hookimpl


@hookimpl
def rlinf_register_commands() -> list[ComponentSpec]:
    return [
        ComponentSpec("command", "config", "rlinf_cli.config_cmd:config", "Show or validate an experiment config"),
        ComponentSpec("command", "run", "rlinf_cli.run_cmd:run", "Train with the flow of runner.task_type (--resume)"),
        ComponentSpec("command", "eval", "rlinf_cli.run_cmd:evaluate", "pass@1 / pass@k of a checkpoint on held-out data"),
        ComponentSpec("command", "new-plugin", "rlinf_cli.new_plugin:new_plugin",
                      "Create a plugin package (entry point, component, conformance tests) for a new component"),
    ]
