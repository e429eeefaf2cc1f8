"""The diffusers wing: video models run through diffusers pipelines, one short family module
each over one shared core.

- `core.DiffusersVideoEngine`: options (`VideoOptions`), checkpoint resolution, loading,
  memory and speed settings (`acceleration`), the request's size and length mapped to the
  model's native ones, long clips chained in segments (`chaining`), progress and cancellation.
- `wan`, `ltx`, `hunyuan`: the families, each only what differs.

A new family is one module here, `<family>.py`, holding a `DiffusersVideoEngine` subclass,
plus its line in `engines.registry.ENGINES` (and `engines.capabilities.ENGINE_CAPABILITIES`,
and, for catalog models, their rows in `weights/catalog.py`). The subclass must provide:

- class attributes `name` (the registry's engine name), `family` (for messages),
  `pipeline_classes` (the `model_index.json` `_class_name`s it loads), `example_checkpoint`
  (a released repository in the diffusers layout, named in errors) and `default_native`
  (`NativeFormat`: landscape size, fps, longest clip, used when the options do not say);
- `_task_pipelines(pipeline) -> (text_to_video or None, image_to_video or None)`: the loaded
  pipeline and, where one set of weights serves both tasks, its sibling built on the same
  components (no copy, no dtype cast);
- `_encode(pipeline, prompt, negative_prompt, guidance) -> dict`: the call's prompt keyword
  arguments, exactly as the pipeline's own call would compute them (done once per clip).

and may override, where the family differs from the defaults in `core`:
`_load_pipeline` (dtypes per component), `_prepare_call` (per-call arguments: LTX's frame
rate and decode timestep, Hunyuan's guider and pinned size), `_progress_options` (how steps
are reported: the step callback, or Hunyuan's counted scheduler steps), `_takes_timesteps`,
`_size_multiple` / `_patch_size` / `_temporal_factor` (the VAE and patch geometry),
`_family_native` (a native format read from the loaded pipeline) and
`guidance_passes_apart` (whether `BatchedGuidance` may join the two guidance passes).

Nothing here reads the environment or a file beside the checkpoint: everything an engine is
told comes from its registry entry's `options`.
"""
