"""The manual's reference tables, generated from the code they describe.

Routes come from the OpenAPI document, error codes from the one code table, limits from
`Limits`, commands from the `repowire` argument parser. Each table sits in a page of `docs/`
between `<!-- generated: NAME -->` and `<!-- end generated -->`; `python -m hub.cli.reference`
rewrites them, and a test fails when a checked-in table differs from what the code says.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path

from hub.cli.main import build_parser
from hub.core.settings import LIMIT_MEANINGS, Limits
from hub.server.openapi import openapi_document
from schemas.errors import ERROR_TABLE

DOCS = Path(__file__).resolve().parents[2] / "docs"
_BLOCK = re.compile(r"(<!-- generated: (?P<name>[a-z-]+) -->\n)(?P<body>.*?)(<!-- end generated -->)", re.DOTALL)
_HTTP_METHODS = ("get", "post", "put", "delete", "patch")


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def routes_table() -> str:
    rows = ["| route | does | who may call it |", "|---|---|---|"]
    document = openapi_document()
    for path, operations in document["paths"].items():
        for method in _HTTP_METHODS:
            operation = operations.get(method)
            if operation is None:
                continue
            rows.append(f"| `{method.upper()} {path}` | {_cell(operation.get('summary', ''))} | "
                        f"{operation['x-access']} |")
    return "\n".join(rows)


def errors_table() -> str:
    rows = ["| code | HTTP | close | means |", "|---|---|---|---|"]
    for code, info in ERROR_TABLE.items():
        close = str(info.close_code) if info.close_code else ""
        rows.append(f"| `{code.value}` | {info.http_status} | {close} | {_cell(info.meaning)} |")
    return "\n".join(rows)


def limits_table() -> str:
    defaults = Limits()
    rows = ["| limit | default | beyond it |", "|---|---:|---|"]
    for name in Limits.__slots__:
        rows.append(f"| `{name}` | {getattr(defaults, name)} | {_cell(LIMIT_MEANINGS[name])} |")
    return "\n".join(rows)


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _helps(parser: argparse.ArgumentParser) -> dict[str, str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return {choice.dest: choice.help or "" for choice in action._choices_actions}
    return {}


def _subcommands_required(parser: argparse.ArgumentParser) -> bool:
    return any(isinstance(action, argparse._SubParsersAction) and action.required for action in parser._actions)


def _usage(parser: argparse.ArgumentParser) -> str:
    usage = " ".join(parser.format_usage().split())
    return usage.removeprefix("usage: ").replace(" [-h]", "")


def commands_table() -> str:
    rows = ["| command | does |", "|---|---|"]
    top = build_parser()
    helps = _helps(top)
    for name, command in _subcommands(top).items():
        nested = _subcommands(command)
        if not nested:
            rows.append(f"| `{_cell(_usage(command))}` | {_cell(helps.get(name, ''))} |")
            continue
        if not _subcommands_required(command):
            rows.append(f"| `{_cell(_usage(command))}` | {_cell(helps.get(name, ''))} |")
        nested_helps = _helps(command)
        for action_name, action in nested.items():
            rows.append(f"| `{_cell(_usage(action))}` | {_cell(nested_helps.get(action_name, ''))} |")
    return "\n".join(rows)


TABLES: dict[str, Callable[[], str]] = {
    "routes": routes_table, "errors": errors_table, "limits": limits_table, "commands": commands_table,
}


def regenerated(text: str) -> str:
    """`text` with every generated block replaced by what the code says now."""
    def replace(match: re.Match) -> str:
        return f"{match.group(1)}{TABLES[match.group('name')]()}\n{match.group(4)}"
    return _BLOCK.sub(replace, text)


def pages_with_tables(docs: Path = DOCS) -> list[Path]:
    return sorted(page for page in docs.glob("*.md") if _BLOCK.search(page.read_text(encoding="utf-8")))


def main() -> int:
    for page in pages_with_tables():
        text = page.read_text(encoding="utf-8")
        fresh = regenerated(text)
        if fresh != text:
            page.write_text(fresh, encoding="utf-8")
            print(f"rewrote the tables in {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
