"""The storage-key layout, in one place: where a job's input and outputs live.

    inputs/<job id>/image.png          the staged input image (image-to-video)
    jobs/<job id>/<file>               video.mp4, preview.gif, thumbnail.webp

Deleting a job removes both of its prefixes.
"""

from __future__ import annotations

__all__ = ["input_image", "job_prefixes", "output"]


def input_image(job_id: str) -> str:
    return f"inputs/{job_id}/image.png"


def output(job_id: str, file_name: str) -> str:
    return f"jobs/{job_id}/{file_name}"


def job_prefixes(job_id: str) -> tuple[str, str]:
    """Every prefix under which a job's files live."""
    return (f"inputs/{job_id}/", f"jobs/{job_id}/")
