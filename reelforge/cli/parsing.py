"""The parser every `reelforge` command is built from, and the sections of its `--help`.

Every `--help` reads the same way: what the command is for, its arguments, then `examples:`
and `environment:`, kept verbatim (argparse would reflow them into one paragraph). The
variables of `serve` and `worker` are generated from `reelforge.settings.Settings`, so the
help cannot drift from what is read. A mistyped flag is answered with the usage of the
command it was given to and the nearest flag that command knows.

Plain argparse rather than rich-argparse: the formatting needed is verbatim sections and a
suggestion, which argparse does with one formatter class and one override, and the help stays
plain text when piped, with no dependency to import before `--help` can answer.

Building the parser must stay cheap (`reelforge --help` answers in well under 0.1 s): help
that needs a heavy import (the `Settings` fields, which need pydantic) is filled in by a
`CommandParser.defer_help` callback, run only when that command's help is printed.
"""

from __future__ import annotations

import argparse
import difflib
import shutil
import textwrap
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reelforge.settings import Settings

__all__ = [
    "CommandParser",
    "LazyChoices",
    "add_command",
    "settings_environment",
]

HelpFill = Callable[["CommandParser"], None]

# Sections wider than this are hard to read even on a wide terminal.
_MAX_WIDTH = 100


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and epilogs verbatim; argument help wrapped, with room for long flags."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32, width=_width())

    def _split_lines(self, text: str, width: int) -> list[str]:
        # Model names such as ltx-video-0.9.7-distilled must not break at their hyphens.
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


class CommandParser(argparse.ArgumentParser):
    """An `ArgumentParser` whose unknown arguments are reported by the command they were
    given to (its usage, not the top level's), with the nearest flag it knows."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)
        self._help_fills: list[HelpFill] = []

    def defer_help(self, fill: HelpFill) -> None:
        """Run `fill(parser)` once, before this parser's help is first formatted: for help
        text (the epilog, a flag's help) that needs an import too heavy for every start."""
        self._help_fills.append(fill)

    def format_help(self) -> str:
        while self._help_fills:
            self._help_fills.pop(0)(self)
        return super().format_help()

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        # A subcommand's parser runs inside its parent's parse; rejecting leftovers here, in
        # the innermost parser that saw them, is what makes the error name that subcommand.
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(unrecognized_message(extras, self._option_strings()))
        return parsed, extras

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        try:
            super()._check_value(action, value)
        except argparse.ArgumentError as exc:
            close = _closest(str(value), [str(choice) for choice in action.choices or ()])
            if close is None:
                raise
            raise argparse.ArgumentError(
                action, f"{exc.message}; did you mean {close!r}?"
            ) from None

    def _option_strings(self) -> list[str]:
        return [option for action in self._actions for option in action.option_strings]


def unrecognized_message(extras: Sequence[str], known: Sequence[str]) -> str:
    """'unrecognized arguments: ...', with a 'did you mean' for each mistyped flag."""
    message = f"unrecognized arguments: {' '.join(extras)}"
    hints = []
    for extra in extras:
        flag = extra.partition("=")[0]
        close = _closest(flag, known) if flag.startswith("-") else None
        if close is not None:
            hints.append((flag, close))
    if not hints:
        return message
    if len(hints) == 1:
        return f"{message}; did you mean {hints[0][1]}?"
    return (
        f"{message}; did you mean "
        + ", ".join(f"{close} (for {flag})" for flag, close in hints)
        + "?"
    )


def add_command(
    commands: Any,
    name: str,
    *,
    summary: str,
    description: str,
    examples: Sequence[str] = (),
    environment: Iterable[tuple[str, str]] | Callable[[], Iterable[tuple[str, str]]] = (),
    notes: str = "",
) -> CommandParser:
    """Register one subcommand whose `--help` shows its purpose, examples and variables.

    `description` and `notes` are printed as written (dedented); `examples` one per line;
    `environment` as (variable, what it does) pairs, wrapped to the terminal, or a function
    returning them, called only when the help is printed.
    """
    parser: CommandParser = commands.add_parser(
        name, help=summary, description=textwrap.dedent(description).strip()
    )
    if callable(environment):
        load = environment

        def fill(parser: CommandParser) -> None:
            parser.epilog = _epilog(examples, list(load()), notes)

        parser.defer_help(fill)
    else:
        parser.epilog = _epilog(examples, list(environment), notes)
    return parser


def _epilog(examples: Sequence[str], variables: Sequence[tuple[str, str]], notes: str) -> str:
    sections = []
    if examples:
        sections.append("examples:\n" + "\n".join(f"  {line}" for line in examples))
    if variables:
        sections.append("environment:\n" + format_pairs(variables))
    else:
        sections.append("environment:\n  (reads no variables)")
    if notes:
        sections.append(textwrap.dedent(notes).strip())
    return "\n\n".join(sections)


def format_pairs(pairs: Sequence[tuple[str, str]], *, indent: int = 2) -> str:
    """(name, text) rows as two columns, the text wrapped under itself."""
    name_width = min(max(len(name) for name, _ in pairs), 36)
    text_start = indent + name_width + 2
    text_width = max(_width() - text_start, 30)
    lines = []
    for name, text in pairs:
        wrapped = textwrap.wrap(text, text_width, break_on_hyphens=False) or [""]
        if len(name) > name_width:  # a long name gets its own line
            lines.append(" " * indent + name)
            lines += [" " * text_start + line for line in wrapped]
            continue
        lines.append(" " * indent + f"{name:<{name_width}}  {wrapped[0]}")
        lines += [" " * text_start + line for line in wrapped[1:]]
    return "\n".join(lines)


def settings_environment(settings_class: type[Settings]) -> list[tuple[str, str]]:
    """One (REELFORGE_NAME, description and default) pair per `Settings` field."""
    pairs = []
    for name, field in settings_class.model_fields.items():
        default = field.get_default(call_default_factory=True)
        pairs.append((setting_variable(name, field), f"{field.description} [{_shown(default)}]"))
    return pairs


def setting_variable(name: str, field: Any) -> str:
    """The environment variable of a `Settings` field: REELFORGE_<NAME>, unless the field
    reads another program's variable (CUDA_VISIBLE_DEVICES) through its alias."""
    alias = field.validation_alias
    choices = [c for c in getattr(alias, "choices", ()) if isinstance(c, str) and c.isupper()]
    if choices and not any(c.startswith("REELFORGE_") for c in choices):
        return choices[0]
    return f"REELFORGE_{name.upper()}"


def setting_help(settings_class: type[Settings], name: str) -> str:
    """A flag's help: the description of the `Settings` field it overrides, and its variable."""
    field = settings_class.model_fields[name]
    default = _shown(field.get_default(call_default_factory=True))
    return f"{field.description} [${setting_variable(name, field)}; {default}]"


class LazyChoices(Sequence[str]):
    """Choices loaded on first use, so building the parser imports nothing heavy.

    The catalog of models lives beside the engines, whose package imports numpy and PIL;
    `reelforge --help` must not pay for that.
    """

    def __init__(self, load: Callable[[], Iterable[str]]) -> None:
        self._load = load
        self._names: list[str] | None = None

    def _loaded(self) -> list[str]:
        if self._names is None:
            self._names = list(self._load())
        return self._names

    def __getitem__(self, index: Any) -> Any:
        return self._loaded()[index]

    def __len__(self) -> int:
        return len(self._loaded())

    def __iter__(self) -> Iterator[str]:
        return iter(self._loaded())

    def __contains__(self, value: object) -> bool:
        return value in self._loaded()


def _closest(word: str, candidates: Sequence[str]) -> str | None:
    matches = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return matches[0] if matches else None


def _shown(default: object) -> str:
    if default is None or default == "" or default == []:
        return "default: none"
    if isinstance(default, list):
        return "default: " + ",".join(str(item) for item in default)
    if isinstance(default, Path):
        home = str(Path.home())
        text = str(default)
        return "default: " + ("~" + text[len(home) :] if text.startswith(home + "/") else text)
    if isinstance(default, bool):
        return f"default: {'true' if default else 'false'}"
    return f"default: {default}"


def _width() -> int:
    return min(shutil.get_terminal_size().columns - 2, _MAX_WIDTH)
