"""Tiny random-weight checkpoints of every catalog architecture, built offline from the real
diffusers and transformers classes (`tiny`, `tiny_ltx`, `tiny_hunyuan`).

Imported only by the tests, the benchmarks and `reelforge models make-tiny`, never by a
server or worker: a tiny checkpoint is served like any other, through a registry entry whose
options (`tiny.tiny_options`) give its small native size.
"""
