"""`reelforge usage`'s text table (`format_usage`), from the answer `GET /v1/usage` gives."""

from __future__ import annotations

from typing import Any

from reelforge.cli.usage import format_usage

T2V = "klingai/v2-master-text-to-video"
LONG_MODEL = "an-organisation/a-model-whose-name-is-longer-than-the-column"


def answer(*rows: dict[str, Any], days: int = 7) -> dict[str, Any]:
    totals: dict[str, Any] = {"jobs": {}, "video_seconds": 0.0, "engine_seconds": 0.0}
    for row in rows:
        for status, n in row["jobs"].items():
            totals["jobs"][status] = totals["jobs"].get(status, 0) + n
        totals["video_seconds"] += row["video_seconds"]
        totals["engine_seconds"] += row["engine_seconds"]
    return {"tenant": "key-3f9c2a1b7d04", "days": days, "totals": totals, "data": list(rows)}


def row(date: str, model: str, jobs: dict[str, int], video_s: float, engine_s: float) -> Any:
    return {
        "date": date,
        "tenant": "key-3f9c2a1b7d04-and-then-some",
        "model": model,
        "jobs": jobs,
        "video_seconds": video_s,
        "engine_seconds": engine_s,
    }


def test_one_line_a_day_and_model_then_the_totals_in_aligned_columns() -> None:
    table = format_usage(
        answer(
            row("2026-03-01", T2V, {"succeeded": 3, "failed": 1}, 15.0, 42.25),
            row("2026-03-02", LONG_MODEL, {"queued": 2}, 10.0, 0.0),
        )
    )
    header, first, second, total = table.splitlines()
    assert header.split() == ["DATE", "TENANT", "MODEL", "JOBS", "VIDEO", "S", "ENGINE", "S"]
    assert first.split() == ["2026-03-01", "key-3f9c2a1b7d04-a", T2V, "4", "15.0", "42.2"]
    # Long names cut to their column, so the numbers stay under their headers.
    assert second.split()[1:3] == ["key-3f9c2a1b7d04-a", LONG_MODEL[:34]]
    for line in (first, second):
        assert len(line) == len(header)  # numbers right-aligned to the header's end
        for name in ("TENANT", "MODEL"):
            assert line[header.index(name) - 2 : header.index(name)] == "  "
    assert first[: header.index("JOBS") + 4].endswith("4")
    assert total == (
        "total over 7 day(s): 1 failed, 2 queued, 3 succeeded; 25.0 s of video, 42.2 s of engine"
    )


def test_no_use_is_one_line() -> None:
    assert format_usage(answer(days=30)) == (
        "total over 30 day(s): no jobs; 0.0 s of video, 0.0 s of engine"
    )
