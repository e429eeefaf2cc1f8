"""Model weights on this machine: the catalog of open-weight models reelforge knows
(`catalog`: repositories, native formats, where their weights are found) and the one code path
that downloads them (`pull`, run only by `reelforge models pull`). Serving reads the catalog;
it never downloads."""
