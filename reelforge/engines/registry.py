"""The model registry: which engine (and checkpoint) serves each public model id.

Entries come from a TOML file (the built-in `defaults.toml` unless one is configured) and
`--model ID=ENGINE[:CHECKPOINT]` overrides. Each entry also says what its model can do
(`capabilities`: tasks and native limits, see `engines.capabilities`). Engines are imported
only when a worker builds one, so the API process never imports torch.
"""

from __future__ import annotations

import difflib
import importlib
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from reelforge.engines.base import Engine
from reelforge.engines.capabilities import CAPABILITY_KEYS, Capabilities, engine_capabilities
from reelforge.errors import ConfigurationError
from reelforge.weights import catalog

__all__ = [
    "ENGINES",
    "Capabilities",
    "ModelEntry",
    "Registry",
    "RegistryError",
    "catalog_entry",
    "engine_class",
]

# Engine name -> "module:Class"; imported lazily.
ENGINES: dict[str, str] = {
    "hunyuan": "reelforge.engines.diffusers.hunyuan:HunyuanEngine",
    "ltx": "reelforge.engines.diffusers.ltx:LTXEngine",
    "micro": "reelforge.engines.micro:MicroEngine",
    "testsrc": "reelforge.engines.testsrc:TestSourceEngine",
    "wan": "reelforge.engines.diffusers.wan:WanEngine",
}


class RegistryError(ConfigurationError, ValueError):
    """The registry file or an override is malformed; raised at start-up, never per request."""


@dataclass(frozen=True)
class ModelEntry:
    """One served model: its public id, the engine that runs it and that engine's inputs."""

    id: str
    engine: str
    checkpoint: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    catalog: str | None = None
    """The catalog model this entry serves, when it names one (see `weights.catalog`)."""
    capabilities: Capabilities = None  # type: ignore[assignment]
    """What the model can do; left out, the engine's defaults for these options."""

    def __post_init__(self) -> None:
        if self.capabilities is None:
            object.__setattr__(self, "capabilities", engine_capabilities(self.engine, self.options))

    @property
    def needs_image(self) -> bool:
        return self.capabilities.needs_image


def engine_class(name: str) -> type[Engine]:
    """Import the engine registered under `name`, or named by a `package.module:Class` path
    (how a registry file plugs in an engine of one's own)."""
    path = ENGINES.get(name, name)
    module_name, sep, class_name = path.partition(":")
    if not sep:
        raise RegistryError(f"unknown engine {name!r}; known: {', '.join(sorted(ENGINES))}")
    try:
        engine = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise RegistryError(f"engine {name!r} cannot be imported: {exc}") from exc
    if not (isinstance(engine, type) and issubclass(engine, Engine)):
        raise RegistryError(f"engine {name!r} is not a reelforge Engine subclass")
    return engine


class Registry:
    """The served models, in a stable order, and the other names dialects may call them by.

    Names live in `[names.<namespace>]` tables of a registry file, each name = a served id;
    a namespace is a dialect's (`openai`, `kling.text2video`, `kling.image2video`, ...), and
    what it means is that dialect's business. A file without a namespace keeps the embedded
    defaults' table for it (the names whose id the file serves).
    """

    def __init__(
        self, entries: Iterable[ModelEntry], names: dict[str, dict[str, str]] | None = None
    ) -> None:
        self._entries = {entry.id: entry for entry in entries}
        self._names = names or {}

    def names(self, namespace: str) -> dict[str, str]:
        """Name -> served id, in `namespace`."""
        return dict(self._names.get(namespace, {}))

    def alias(self, namespace: str, name: str) -> str | None:
        """The served id `name` stands for in `namespace`, or None."""
        return self._names.get(namespace, {}).get(name)

    @classmethod
    def load(
        cls,
        path: Path | None = None,
        overrides: Iterable[str] = (),
        *,
        models_dir: Path | None = None,
    ) -> Registry:
        """Read `path` (or the built-in defaults) and apply `ID=ENGINE[:CHECKPOINT]` overrides.
        Catalog models' weights are looked for under `models_dir` (`REELFORGE_MODELS_DIR`;
        None: only in the Hugging Face cache)."""
        if path is None:
            text = resources.files("reelforge.engines").joinpath("defaults.toml").read_text()
            base_dir = None
        else:
            text = Path(path).read_text()
            base_dir = Path(path).resolve().parent
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise RegistryError(f"{path}: {exc}") from exc
        declared: set[str] = set()
        models = data.get("models", {})
        entries = {e.id: e for e in _parse_models(models, base_dir, path, declared, models_dir)}
        _serve_preferred_catalog_models(models, entries, path, models_dir)
        for override in overrides:
            entry = parse_override(override, models_dir)
            entries[entry.id] = entry
            declared.discard(entry.id)
        contract = _contract_tasks()
        for model_id, entry in entries.items():
            if model_id in contract and model_id not in declared:
                tasks = replace(entry.capabilities, tasks=contract[model_id])
                entries[model_id] = replace(entry, capabilities=tasks)
        return cls(entries.values(), _names(data.get("names", {}), entries, path))

    def get(self, model_id: str) -> ModelEntry | None:
        return self._entries.get(model_id)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def ids(self) -> list[str]:
        return list(self._entries)


def _names(
    table: Any, entries: dict[str, ModelEntry], path: Path | None
) -> dict[str, dict[str, str]]:
    """The file's `[names.*]` tables, checked, over the defaults' for namespaces it leaves
    out (keeping only names of ids the file serves)."""
    if not isinstance(table, dict):
        raise RegistryError(f"{path}: [names] must be a table of namespaces")
    names: dict[str, dict[str, str]] = {}
    for namespace, pairs in table.items():
        if not isinstance(pairs, dict) or not all(isinstance(v, str) for v in pairs.values()):
            raise RegistryError(f"{path}: [names.{namespace}] must map names to model ids")
        unknown = sorted(set(pairs.values()) - set(entries))
        if unknown:
            raise RegistryError(
                f"{path}: [names.{namespace}] names models this registry does not serve: "
                f"{', '.join(unknown)}"
            )
        names[namespace] = dict(pairs)
    for namespace, pairs in _default_names().items():
        if namespace not in names:
            names[namespace] = {name: id_ for name, id_ in pairs.items() if id_ in entries}
    return names


@cache
def _default_names() -> dict[str, dict[str, str]]:
    text = resources.files("reelforge.engines").joinpath("defaults.toml").read_text()
    names: dict[str, dict[str, str]] = tomllib.loads(text).get("names", {})
    return names


@cache
def _contract_tasks() -> dict[str, frozenset[str]]:
    """The tasks the embedded defaults declare per id: kept by any entry for that id that
    declares none of its own (see `engines.capabilities`)."""
    text = resources.files("reelforge.engines").joinpath("defaults.toml").read_text()
    models = tomllib.loads(text).get("models", {})
    return {
        model_id: frozenset(body["tasks"]) for model_id, body in models.items() if "tasks" in body
    }


def catalog_entry(
    model_id: str,
    name: str,
    checkpoint: str | None = None,
    options: dict[str, Any] | None = None,
    declared: dict[str, Any] | None = None,
    where: str | None = None,
    models_dir: Path | None = None,
) -> ModelEntry:
    """An entry serving catalog model `name`: its engine and native options (overridden by
    `options`), and its local weights (`checkpoint`, else the folder pulled under
    `models_dir` or the Hugging Face cache; where absent, the repository id, which the engine
    refuses at load with a hint to pull it). Its capabilities are the engine's with the
    model's tasks, then any the registry file `declared`."""
    try:
        model = catalog.catalog_model(name)
    except KeyError as exc:
        raise RegistryError(str(exc.args[0])) from None
    if checkpoint is None:
        local = catalog.local_checkpoint(model, models_dir)
        checkpoint = str(local) if local is not None else model.repo
    merged = {**model.engine_options(), **(options or {})}
    served = frozenset(model.tasks.split("+"))
    capabilities = replace(engine_capabilities(model.engine, merged), tasks=served)
    where = where or f"model {model_id!r}"
    capabilities = _declared(capabilities, declared or {}, where)
    if not capabilities.tasks <= served:
        raise RegistryError(
            f"{where} declares tasks {'+'.join(sorted(capabilities.tasks))}, but "
            f"catalog model {name!r} serves only {model.tasks}"
        )
    return ModelEntry(model_id, model.engine, checkpoint, merged, name, capabilities)


def _declared(capabilities: Capabilities, body: dict[str, Any], where: str) -> Capabilities:
    try:
        return capabilities.declared(body, where)
    except ValueError as exc:
        raise RegistryError(str(exc)) from None


def _serve_preferred_catalog_models(
    table: dict[str, Any],
    entries: dict[str, ModelEntry],
    path: Path | None,
    models_dir: Path | None,
) -> None:
    """An entry with `prefer_catalog = "MODEL"` serves that catalog model instead once its
    weights are on this machine (how the embedded defaults move both Kling ids from the micro
    model to Wan2.2-TI2V-5B after `reelforge models pull wan2.2-ti2v-5b`)."""
    for model_id, body in table.items():
        name = body.get("prefer_catalog") if isinstance(body, dict) else None
        if name is None:
            continue
        if not isinstance(name, str) or name not in catalog.CATALOG:
            raise RegistryError(
                f"{path}: prefer_catalog of {model_id!r} must name a catalog model; known: "
                f"{', '.join(catalog.CATALOG)}"
            )
        folder = catalog.local_checkpoint(catalog.CATALOG[name], models_dir)
        if folder is not None:
            entries[model_id] = catalog_entry(model_id, name, str(folder))


def _parse_models(
    table: Any,
    base_dir: Path | None,
    path: Path | None,
    declared_tasks: set[str],
    models_dir: Path | None,
) -> list[ModelEntry]:
    """The entries of a registry file's `[models]` table; adds to `declared_tasks` the ids
    whose entry declares its tasks."""
    if not isinstance(table, dict):
        raise RegistryError(f"{path}: [models] must be a table of model ids")
    entries = []
    for model_id, body in table.items():
        if isinstance(body, dict) and isinstance(body.get("catalog"), str):
            if "engine" in body:
                raise RegistryError(
                    f"{path}: model {model_id!r} names both a catalog model and an engine; "
                    f"the catalog model brings its engine, so drop one"
                )
            options = body.get("options", {})
            if not isinstance(options, dict):
                raise RegistryError(f"{path}: options of {model_id!r} must be a table")
            checkpoint = _relative_to(body.get("checkpoint"), base_dir)
            declared = {key: body[key] for key in CAPABILITY_KEYS if key in body}
            entries.append(
                catalog_entry(
                    model_id,
                    body["catalog"],
                    checkpoint,
                    options,
                    declared,
                    where=f"{path}: model {model_id!r}",
                    models_dir=models_dir,
                )
            )
            if "tasks" in body:
                declared_tasks.add(model_id)
            continue
        if not isinstance(body, dict) or not isinstance(body.get("engine"), str):
            raise RegistryError(
                f'{path}: model {model_id!r} needs engine = "NAME" or catalog = "MODEL"'
            )
        _check_engine_name(body["engine"], f"{path}: model {model_id!r}")
        checkpoint = _relative_to(body.get("checkpoint"), base_dir)
        options = body.get("options", {})
        if not isinstance(options, dict):
            raise RegistryError(f"{path}: options of {model_id!r} must be a table")
        capabilities = _declared(
            engine_capabilities(body["engine"], options), body, f"{path}: model {model_id!r}"
        )
        entries.append(
            ModelEntry(model_id, body["engine"], checkpoint, options, capabilities=capabilities)
        )
        if "tasks" in body:
            declared_tasks.add(model_id)
    return entries


def _relative_to(checkpoint: str | None, base_dir: Path | None) -> str | None:
    """A relative checkpoint path in a registry file is relative to that file, if it exists."""
    if checkpoint is not None and base_dir is not None and not Path(checkpoint).is_absolute():
        candidate = base_dir / checkpoint
        if candidate.exists():
            return str(candidate)
    return checkpoint


def _check_engine_name(name: str, where: str, *, catalog_too: bool = False) -> None:
    """Fail at start-up on an unknown engine, without importing it (the API process never
    imports engines: they pull in torch); a near name (`catalog_too`: of a catalog model as
    well, where one may be given) is suggested."""
    if name in ENGINES or ":" in name:
        return
    known = [*ENGINES, *catalog.CATALOG] if catalog_too else list(ENGINES)
    near = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    kind = "engine or catalog model" if catalog_too else "engine"
    hint = f"; did you mean {near[0]!r}?" if near else ""
    models = "; catalog models: `reelforge models list`" if catalog_too else ""
    raise RegistryError(
        f"{where}: unknown {kind} {name!r}{hint} (engines: {', '.join(sorted(ENGINES))}{models})"
    )


def parse_override(text: str, models_dir: Path | None = None) -> ModelEntry:
    """Parse `ID=ENGINE[:CHECKPOINT]`, e.g. `klingai/v2-master-text-to-video=wan:/models/wan`,
    or `ID=CATALOG_MODEL[:CHECKPOINT]`, e.g. `klingai/v2-master-text-to-video=wan2.2-ti2v-5b`.

    ENGINE is a registered name here; engines given by import path go in a registry file.
    """
    model_id, sep, rest = text.partition("=")
    if not sep or not model_id or not rest:
        raise RegistryError(f"--model {text!r}: expected ID=ENGINE[:CHECKPOINT]")
    engine, _, checkpoint = (part.strip() for part in rest.partition(":"))
    if engine in catalog.CATALOG:
        return catalog_entry(model_id.strip(), engine, checkpoint or None, models_dir=models_dir)
    if engine not in ENGINES:  # import paths contain ':' and so belong in a registry file
        _check_engine_name(engine, f"--model {text!r}", catalog_too=True)
    return ModelEntry(model_id.strip(), engine, checkpoint or None)
