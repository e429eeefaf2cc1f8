"""What `serve` and `worker` check before they start, so a configuration mistake is one line
naming the fix, before any port is bound or worker spawned, instead of a traceback, a worker
crash loop, or jobs queued for a model nobody can load."""

from __future__ import annotations

from pathlib import Path

from reelforge.engines import Registry
from reelforge.errors import ConfigurationError
from reelforge.settings import Settings
from reelforge.storage import S3Options, S3Storage, Storage, open_storage
from reelforge.weights import catalog

__all__ = ["check_weights_present", "load_registry", "open_configured_storage"]


def load_registry(settings: Settings) -> Registry:
    """The registry from `REELFORGE_MODELS_FILE` and `--model`; a `ConfigurationError` (a
    `RegistryError` among them) names what is wrong."""
    path = settings.models_file
    if path is not None and not Path(path).is_file():
        raise ConfigurationError(
            f"the model registry file {path} does not exist (REELFORGE_MODELS_FILE or "
            "--models-file); leave it unset for the built-in defaults"
        )
    return Registry.load(path, settings.models, models_dir=settings.models_dir)


def check_weights_present(registry: Registry, models_dir: Path) -> None:
    """Refuse to start workers for a model whose weights are not on this machine (nothing
    is downloaded at serve time); the message names the command that fetches them."""
    for entry in registry:
        if entry.catalog is not None:
            model = catalog.catalog_model(entry.catalog)
            if (
                entry.checkpoint == model.repo
                and catalog.local_checkpoint(model, models_dir) is None
            ):
                raise ConfigurationError(
                    f"model {entry.id} is served by {entry.catalog}, whose weights are not on "
                    f"this machine; run: reelforge models pull {entry.catalog}"
                )
        elif entry.checkpoint is not None and _missing_folder(entry.checkpoint):
            raise ConfigurationError(
                f"model {entry.id}: checkpoint folder {entry.checkpoint} does not exist"
            )


def open_configured_storage(settings: Settings) -> Storage:
    """The artifact store of `storage_url`; a `ConfigurationError` names what is wrong with
    it, or with `public_links` for it (presigned links need an S3 store to sign them)."""
    s3 = S3Options(
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region,
        allow_http=settings.s3_allow_http,
        access_key_id=settings.s3_access_key_id,
        secret_access_key=settings.s3_secret_access_key,
    )
    try:
        storage = open_storage(settings.resolved_storage_url, s3)
    except ValueError as exc:
        raise ConfigurationError(
            f"REELFORGE_STORAGE_URL / --storage-url: {exc}; use a local path, file:///path "
            "or s3://bucket/prefix"
        ) from None
    if settings.public_links == "presigned" and not isinstance(storage, S3Storage):
        raise ConfigurationError(
            "REELFORGE_PUBLIC_LINKS=presigned needs an S3 store to sign links "
            "(REELFORGE_STORAGE_URL=s3://bucket/prefix); with local storage use signed"
        )
    return storage


def _missing_folder(checkpoint: str) -> bool:
    # A hub id ("org/name") is resolved by the engine from the Hugging Face cache; a path
    # is ours to check.
    is_path = checkpoint.startswith(("/", ".", "~"))
    return is_path and not Path(checkpoint).expanduser().exists()
