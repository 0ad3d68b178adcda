"""The ``wayline`` command's implementation; `wayline.cli.main` is its entry point."""
