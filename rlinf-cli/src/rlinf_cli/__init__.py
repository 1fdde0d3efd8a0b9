"""Subcommands of the rlinf command line (config show / validate), added through the rlinf_register_commands hook."""

__version__ = "0.1.0"
