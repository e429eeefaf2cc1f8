"""The storage-key layout, in one place: where a job's input and outputs live.

    inputs/<job id>/image.png          the staged input image (image-to-video)
    jobs/<job id>/<run>/<file>         video.mp4, preview.gif, thumbnail.webp of one run
    jobs/<job id>/<file>               files the API derives (OpenAI's spritesheet)

Each run of a job (each claim) stores under its own random `<run>` folder, so a stale run (a
worker frozen past its lease, then resumed) can never overwrite the files of the run that
took over: the job references only the run whose result was accepted. Deleting a job
removes both of its prefixes; every key belongs to the job its second part names (`job_of`).
"""

from __future__ import annotations

__all__ = ["input_image", "job_of", "job_prefixes", "output", "run_prefix"]

_JOB_FOLDERS = ("inputs", "jobs")


def input_image(job_id: str) -> str:
    return f"inputs/{job_id}/image.png"


def output(job_id: str, file_name: str, run: str | None = None) -> str:
    """The key of one output file: of one run (a worker's), or of the job (the API's)."""
    return f"jobs/{job_id}/{file_name}" if run is None else f"jobs/{job_id}/{run}/{file_name}"


def run_prefix(job_id: str, run: str) -> str:
    """The prefix of every file one run of the job stored."""
    return f"jobs/{job_id}/{run}/"


def job_prefixes(job_id: str) -> tuple[str, str]:
    """Every prefix under which a job's files live."""
    return (f"inputs/{job_id}/", f"jobs/{job_id}/")


def job_of(key: str) -> str | None:
    """The id of the job whose file `key` is, or None for a key outside the layout."""
    folder, _, rest = key.partition("/")
    job_id, sep, _ = rest.partition("/")
    return job_id if folder in _JOB_FOLDERS and job_id and sep else None
