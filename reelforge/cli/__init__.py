"""The `reelforge` command line (`reelforge.cli.main:main`): serve, worker, generate, models."""
