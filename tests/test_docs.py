"""The documentation names only commands, options and keywords that exist.

Every README and model card is read for code (fenced blocks and `inline` spans); each
`colorgan SUBCOMMAND ... --flag`, `python train/train.py ... --flag` and
`colorize(..., keyword=...)` / `suggest_hints(..., keyword=...)` found there is checked
against the parsers and signatures themselves, so renaming an option without its docs fails.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import inspect
import io
import re
from pathlib import Path

import pytest

import colorgan_hf
from colorgan_hf.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted(
    [ROOT / "README.md", ROOT / "model_card.md", ROOT / "space" / "README.md"]
    + list((ROOT / "colorgan_hf" / "weights").glob("*/README.md"))
    + list((ROOT / "docs").rglob("*.md"))
)
FLAG = re.compile(r"(?<![\w-])(--[a-z0-9][a-z0-9_-]*)")
# A shell line ends a command at these; a pipe into another program starts a new one.
COMMAND_END = re.compile(r"&&|;|\|\s|#")


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {flag for action in parser._actions for flag in action.option_strings}


def _cli_options() -> tuple[set[str], dict[str, set[str]]]:
    parser = build_parser()
    subcommands = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            subcommands = {name: _options(sub) for name, sub in action.choices.items()}
    return _options(parser), subcommands


def _train_options() -> set[str]:
    spec = importlib.util.spec_from_file_location("colorgan_train_script", ROOT / "train" / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    help_text = io.StringIO()
    with contextlib.redirect_stdout(help_text), pytest.raises(SystemExit):
        module.parse_args(["--help"])
    return set(FLAG.findall(help_text.getvalue()))


def _code(text: str) -> list[str]:
    """The code of a markdown text: each line of its fenced blocks and each inline span,
    with shell line continuations joined."""
    text = re.sub(r"\\\n\s*", " ", text)
    pieces = [line for block in re.findall(r"```[^\n]*\n(.*?)```", text, re.DOTALL) for line in block.splitlines()]
    prose = re.sub(r"```.*?```", "", text, flags=re.DOTALL).replace("\n", " ")
    return pieces + re.findall(r"`([^`]+)`", prose)


def _keywords(code: str, function: str) -> list[str]:
    """The keyword arguments of each call of `function` in `code` (nested calls skipped)."""
    found = []
    for match in re.finditer(rf"\b{function}\(", code):
        depth, start = 1, match.end()
        for end in range(start, len(code)):
            depth += {"(": 1, ")": -1}.get(code[end], 0)
            if depth == 0:
                break
        inner = code[start:end]
        flat = re.sub(r"\([^()]*\)|\[[^\[\]]*\]", "", inner)
        found += re.findall(r"(?<![\w.])(\w+)=(?!=)", flat)
    return found


def _problems(paths: list[Path]) -> list[str]:
    top, subcommands = _cli_options()
    train = _train_options()
    signatures = {name: set(inspect.signature(getattr(colorgan_hf, name)).parameters)
                  for name in ("colorize", "suggest_hints")}
    problems = []
    for path in paths:
        text = path.read_text(encoding="utf-8")
        code = _code(text)
        for span in code:
            for command in COMMAND_END.split(span):
                match = re.search(r"(?<![\w/.-])colorgan\s+(?:-q\s+)?([a-z][a-z-]*)(.*)", command)
                if match:
                    name, rest = match.groups()
                    if name not in subcommands:
                        problems.append(f"{path.name}: `colorgan {name}` is no subcommand")
                    else:
                        problems += [f"{path.name}: `colorgan {name}` has no {flag}"
                                     for flag in FLAG.findall(rest) if flag not in subcommands[name] | top]
                match = re.search(r"train/train\.py(.*)", command)
                if match:
                    problems += [f"{path.name}: train/train.py has no {flag}"
                                 for flag in FLAG.findall(match.group(1)) if flag not in train]
        for name, parameters in signatures.items():
            for span in code:
                problems += [f"{path.name}: {name}() has no keyword {keyword}"
                             for keyword in _keywords(span, name) if keyword not in parameters]
    return sorted(set(problems))


def test_every_doc_names_only_commands_options_and_keywords_that_exist():
    assert len(DOCS) >= 8, DOCS  # the package README, the Space's, five cards, docs/
    assert _problems(DOCS) == []


def test_the_doc_check_catches_a_renamed_option(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text(
        "Run `colorgan colorize a.jpg -o out/ --saturaton 1.2` or `colorgan colourise a.jpg`.\n\n"
        "```bash\ncolorgan suggest-hints a.jpg \\\n    --spots 5 | head\n"
        "python train/train.py --preset default --learnin_rate 1e-4\n```\n\n"
        "`colorize(photo, size=320, hint=[(1, 2)])`, `suggest_hints(photo, n=3)`, "
        "`colorize(photo, saturation=float('1'))` and `colorgan --version`.\n",
        encoding="utf-8",
    )
    assert _problems([doc]) == sorted([
        "doc.md: `colorgan colorize` has no --saturaton",
        "doc.md: `colorgan colourise` is no subcommand",
        "doc.md: `colorgan suggest-hints` has no --spots",
        "doc.md: colorize() has no keyword hint",
        "doc.md: suggest_hints() has no keyword n",
        "doc.md: train/train.py has no --learnin_rate",
    ])


def test_every_test_the_docs_name_exists():
    """The README's reliability table (and any doc) proves each row with a named test: it must be there."""
    named = {(module, test) for path in DOCS
             for module, test in re.findall(r"`(test_\w+)\.py::(test_\w+\*?)", path.read_text(encoding="utf-8"))}
    assert len(named) >= 40, len(named)
    # `test_fuzz_*` names a family: at least one test of that prefix.
    missing = [f"{module}.py::{test}" for module, test in sorted(named)
               if not re.search(rf"^def {test.rstrip('*')}" + ("" if test.endswith("*") else r"\("),
                                (ROOT / "tests" / f"{module}.py").read_text(encoding="utf-8"), re.MULTILINE)]
    assert missing == []
