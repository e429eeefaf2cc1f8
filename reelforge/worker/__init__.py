"""Workers: claim jobs, run engines, encode media, store artifacts, report progress."""
