"""Writes docs/cli.md, the CLI reference, from the Typer app in cli/main.py.

Walks the click command tree that ``typer.main.get_command(app)`` builds and writes each
command's help, usage, arguments and options (every spelling, type, default, help) as Markdown.

    python scripts/gen_cli_reference.py           # regenerate docs/cli.md
    python scripts/gen_cli_reference.py --check   # exit 1 if docs/cli.md is stale
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OUTPUT = REPO / "docs" / "cli.md"
REGENERATE = "python scripts/gen_cli_reference.py"
PROG = "polyamp"


def render_cli_reference() -> str:
    """The Markdown CLI reference of the installed ``polyamp`` Typer app."""
    import typer.main

    from polyamp.cli.main import app

    root = typer.main.get_command(app)
    root_ctx = root.context_class(root, info_name=PROG, **root.context_settings)
    commands = list(_walk(root, root_ctx))
    help_names = " / ".join(f"`{name}`" for name in root_ctx.help_option_names)
    lines = [
        "# CLI reference",
        "",
        f"<!-- Generated from the Typer app in cli/main.py by scripts/gen_cli_reference.py: do not edit by hand. "
        f"Regenerate with `{REGENERATE}`. -->",
        "",
        _paragraphs(root.help or ""),
        "",
        f"Every command takes {help_names} (its help) and the options below. The 2020 command lines run "
        "unchanged through `polyamp-runner --mode=train|eval|predict ...` (see the README).",
        "",
        "| command | what it does |",
        "|---|---|",
    ]
    for path, command, _ in commands:
        if path == PROG:
            continue
        lines.append(f"| [`{path}`](#{_anchor(path)}) | {_escape(_summary(command.help or ''))} |")
    for path, command, ctx in commands:
        lines += _command_section(path, command, ctx)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).rstrip() + "\n"


def _walk(command: Any, ctx: Any, path: str = PROG) -> Any:
    """Yields ``(path, command, context)`` for ``command`` and every visible subcommand, in app order."""
    yield path, command, ctx
    if not hasattr(command, "list_commands"):
        return
    for name in command.list_commands(ctx):
        sub = command.get_command(ctx, name)
        if sub is None or sub.hidden:
            continue
        sub_ctx = sub.context_class(sub, info_name=name, parent=ctx, **sub.context_settings)
        yield from _walk(sub, sub_ctx, f"{path} {name}")


def _command_section(path: str, command: Any, ctx: Any) -> list[str]:
    params = [param for param in command.get_params(ctx) if not getattr(param, "hidden", False)]
    help_option = command.get_help_option(ctx)
    params = [param for param in params if param is not help_option]
    arguments = [param for param in params if param.param_type_name == "argument"]
    options = [param for param in params if param.param_type_name == "option"]
    if path == PROG and not params:
        return []  # the root group: its help heads the page
    lines = ["", f"## {path}", "", _paragraphs(command.help or ""), ""]
    usage = " ".join([path, *command.collect_usage_pieces(ctx)])
    lines += ["```text", usage, "```", ""]
    if arguments:
        lines += ["| argument | type | help |", "|---|---|---|"]
        for param in arguments:
            name = param.name + ("..." if param.nargs != 1 else "")
            required = "required" if param.required else "optional"
            lines.append(f"| `{name}` | {_type_label(param, ctx)} | {_escape(param.help or '')} ({required}) |")
        lines.append("")
    if options:
        lines += ["| option | type | default | help |", "|---|---|---|---|"]
        for param in options:
            names = ", ".join(f"`{opt}`" for opt in param.opts)
            if param.secondary_opts:
                names += " / " + ", ".join(f"`{opt}`" for opt in param.secondary_opts)
            cells = [names, _type_label(param, ctx), _default_label(param), _escape(param.help or "")]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def _type_label(param: Any, ctx: Any) -> str:
    if getattr(param, "is_flag", False):
        return "flag"
    if hasattr(param, "display_type"):  # Typer's own parameter classes
        label = str(param.display_type(ctx) or "").strip("<>")
    else:  # plain click
        label = param.type.name
    repeatable = param.multiple or param.nargs != 1
    if repeatable and label.startswith("list[") and label.endswith("]"):
        label = label[5:-1]
    return f"{label}, repeatable" if repeatable else label


def _default_label(param: Any) -> str:
    if param.required:
        return "required"
    show = getattr(param, "show_default", True)
    if isinstance(show, str):
        return _escape(show)
    default = param.default
    if default is None or show is False or callable(default):
        return "-"
    if getattr(param, "is_flag", False) and param.secondary_opts:
        return f"`{param.opts[0] if default else param.secondary_opts[0]}`"
    if getattr(param, "is_flag", False):
        return "on" if default else "off"
    if isinstance(default, (list, tuple)):
        return ", ".join(f"`{value}`" for value in default) or "-"
    return f"`{default}`"


def _paragraphs(text: str) -> str:
    """A docstring as Markdown paragraphs: lines of one paragraph joined, special characters escaped."""
    blocks = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(_escape(" ".join(line.strip() for line in block.splitlines())) for block in blocks)


def _summary(text: str) -> str:
    """The first sentence of a docstring on one line."""
    paragraph = " ".join(inspect.cleandoc(text).split("\n\n")[0].split())
    return re.split(r"(?<=\.) (?=[A-Z])", paragraph, maxsplit=1)[0]


def _escape(text: str) -> str:
    """Escapes what Markdown would read as markup (emphasis, HTML tags, table cells)."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    for char in "\\`*_[]|":
        text = text.replace(char, "\\" + char)
    return text


def _anchor(heading: str) -> str:
    """The id MkDocs' default ``toc`` slugify gives a heading such as ``polyamp synthetic-tones``."""
    return heading.lower().replace(" ", "-")


def main(argv: list[str] | None = None) -> int:
    """Writes (or with ``--check`` compares) docs/cli.md; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with docs/cli.md instead of writing it")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="where to write (default: docs/cli.md)")
    options = parser.parse_args(argv)
    text = render_cli_reference()
    if options.check:
        current = options.output.read_text(encoding="utf-8") if options.output.exists() else ""
        if current != text:
            print(f"{options.output} is stale; regenerate it with: {REGENERATE}", file=sys.stderr)
            return 1
        return 0
    options.output.write_text(text, encoding="utf-8")
    print(f"wrote {options.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
