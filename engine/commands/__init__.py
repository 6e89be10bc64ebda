"""CLI commands, one module per area; see `engine.cli`."""
