"""
MkDocs hook: generates the reference parts of the docs from the code at build time, so that they
cannot drift from it.

A page asks for generated content with a marker on a line of its own, ``<!-- gen:NAME -->`` or
``<!-- gen:NAME ARG -->``; an unknown marker fails the build. Generators:

- ``class PATH``: a class's own arguments: name, default (from the signature of the airflow-ecr
  classes in its MRO), whether templated (``template_fields``) and the ``:param:`` text;
- ``function PATH``: the same for a function;
- ``doc PATH``: a docstring's text without its ``:param:`` lines;
- ``template-fields PATH``: a class's full ``template_fields``;
- ``config``: the ``[ecr]`` options from ``provider_info.py`` with their ``AIRFLOW__ECR__*`` names;
- ``connection-types``: the connection types and their fields from ``provider_info.py``;
- ``exceptions``: the exception classes of ``airflow_ecr.exceptions`` and their docstrings;
- ``cli``: ``airflow-ecr --help`` and the ``--help`` of every subcommand;
- ``emulator-faults``: the ECR emulator's fault switches: each ``set_faults`` argument, its
  value when off (a fresh emulator's ``faults()``) and its ``:param:`` text;
- ``benchmarks``: ``benchmarks/results/latest.md`` (its image copied into the site), if present.
"""

from __future__ import annotations

import argparse
import atexit
import importlib
import inspect
import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

log = logging.getLogger("mkdocs.hooks.airflow_ecr")

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks" / "results"
BENCHMARK_IMAGE_URI = "assets/benchmarks/latest.png"
_MARKER = re.compile(r"^<!-- gen:(?P<name>[\w-]+)(?: (?P<arg>\S+))? -->$", re.MULTILINE)
_PARAM = re.compile(r"^:param (?P<name>\w+):(?P<text>.*)$")


def on_config(config: Any) -> Any:
    # Importing Airflow writes airflow.cfg into AIRFLOW_HOME: never into the builder's ~/airflow.
    if "AIRFLOW_HOME" not in os.environ:
        home = tempfile.mkdtemp(prefix="airflow-ecr-docs-")
        atexit.register(shutil.rmtree, home, ignore_errors=True)
        os.environ["AIRFLOW_HOME"] = home
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    return config


def on_files(files: Files, config: Any) -> Files:
    image = BENCHMARKS / "latest.png"
    if image.is_file():
        files.append(File.generated(config, BENCHMARK_IMAGE_URI, abs_src_path=str(image)))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    def replace(match: re.Match[str]) -> str:
        name, arg = match["name"], match["arg"]
        generator = GENERATORS.get(name)
        if generator is None:
            raise PluginError(f"{page.file.src_uri}: unknown generated section {name!r}")
        try:
            return generator(arg, page) if arg is not None else generator(page)
        except PluginError:
            raise
        except Exception as err:
            raise PluginError(f"{page.file.src_uri}: generating {name} {arg or ''}: {err!r}") from err

    return _MARKER.sub(replace, markdown)


# -- docstrings ---------------------------------------------------------------------------------
def rst_to_md(text: str) -> str:
    """The little reStructuredText our docstrings use, as Markdown."""
    text = re.sub(r":(?:class|func|meth|mod|attr|exc):`~?([\w.]+)`", lambda m: f"`{m[1].rsplit('.', 1)[-1]}`", text)
    return text.replace("``", "`")


def params(doc: str | None) -> dict[str, str]:
    """The ``:param name: text`` entries of a docstring (continuation lines joined)."""
    found: dict[str, str] = {}
    current = None
    for line in inspect.cleandoc(doc or "").splitlines():
        match = _PARAM.match(line.strip())
        if match:
            current = match["name"]
            found[current] = match["text"].strip()
        elif current and line.startswith((" ", "\t")) and line.strip():
            found[current] += " " + line.strip()
        else:
            current = None
    return {k: rst_to_md(v) for k, v in found.items()}


def summary(doc: str | None) -> str:
    """A docstring's first paragraph."""
    return rst_to_md(" ".join(inspect.cleandoc(doc or "").split("\n\n")[0].split()))


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def resolve(path: str) -> Any:
    """The object at a dotted path: a module's attribute, or an attribute of one (``mod.Class.method``)."""
    module, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except ModuleNotFoundError:
        return getattr(resolve(module), name)


def default_text(parameter: inspect.Parameter) -> str:
    if parameter.default is inspect.Parameter.empty:
        return "required"
    return f"`{parameter.default!r}`"


def arguments_table(entries: list[tuple[str, str, str, str]], templated: bool) -> str:
    head = "| argument | default | templated | meaning |\n|---|---|---|---|\n" if templated else ""
    if not templated:
        head = "| argument | default | meaning |\n|---|---|---|\n"
    rows = []
    for name, default, is_templated, text in entries:
        cells = [f"`{name}`", default] + ([is_templated] if templated else []) + [cell(text)]
        rows.append("| " + " | ".join(cells) + " |")
    return head + "\n".join(rows) + "\n"


def own_parameters(cls: type) -> list[tuple[inspect.Parameter, str]]:
    """The keyword arguments that airflow-ecr classes in ``cls``'s MRO add, with their docs."""
    found: dict[str, tuple[inspect.Parameter, str]] = {}
    docs = params(cls.__doc__)
    for klass in cls.__mro__:
        if not klass.__module__.startswith("airflow_ecr") or "__init__" not in vars(klass):
            continue
        klass_docs = {**params(klass.__doc__), **params(klass.__init__.__doc__)}
        for name, parameter in inspect.signature(klass.__init__).parameters.items():
            text = docs.get(name) or klass_docs.get(name, "")
            # **kwargs passes the base class's arguments on; a documented **name is an argument set.
            if name == "self" or parameter.kind is parameter.VAR_POSITIONAL:
                continue
            if parameter.kind is parameter.VAR_KEYWORD and not text:
                continue
            found.setdefault(name, (parameter, text))
    return list(found.values())


def gen_class(path: str, page: Any) -> str:
    cls = resolve(path)
    fields = set(getattr(cls, "template_fields", ()) or ())
    entries = []
    for parameter, text in own_parameters(cls):
        if not text:
            raise PluginError(f"{path}: argument {parameter.name!r} has no :param: text in a docstring")
        if parameter.kind is parameter.VAR_KEYWORD:
            entries.append((f"**{parameter.name}", "", "no", text))
            continue
        entries.append((parameter.name, default_text(parameter), "yes" if parameter.name in fields else "no", text))
    lead = f"`{path}`: {summary(cls.__doc__)}\n\n"
    return lead + arguments_table(entries, templated=hasattr(cls, "template_fields"))


def gen_function(path: str, page: Any) -> str:
    function = resolve(path)
    docs = params(function.__doc__)
    entries = []
    for name, parameter in inspect.signature(function).parameters.items():
        text = docs.get(name)
        if not text:
            raise PluginError(f"{path}: argument {name!r} has no :param: text in its docstring")
        shown = f"**{name}" if parameter.kind is parameter.VAR_KEYWORD else name
        entries.append((shown, "" if parameter.kind is parameter.VAR_KEYWORD else default_text(parameter), "", text))
    return f"`{path}`: {summary(function.__doc__)}\n\n" + arguments_table(entries, templated=False)


def gen_doc(path: str, page: Any) -> str:
    """A docstring's text without its ``:param:`` lines."""
    doc = inspect.cleandoc(resolve(path).__doc__ or "")
    body = [line for line in doc.split("\n\n") if not line.lstrip().startswith(":param")]
    return "\n\n".join(rst_to_md(" ".join(part.split())) for part in body) + "\n"


def gen_template_fields(path: str, page: Any) -> str:
    cls = resolve(path)
    return ", ".join(f"`{name}`" for name in cls.template_fields) + "\n"


# -- provider_info ------------------------------------------------------------------------------
def gen_config(page: Any) -> str:
    from airflow_ecr.provider_info import get_provider_info

    lines = ["| option | environment variable | type | default | meaning |", "|---|---|---|---|---|"]
    for section, spec in get_provider_info()["config"].items():
        for name, option in spec["options"].items():
            env = f"AIRFLOW__{section.upper()}__{name.upper()}"
            default = f"`{option['default']}`" if option["default"] not in ("", None) else "(empty)"
            text = option["description"]
            if option.get("example"):
                text += f" Example: `{option['example']}`."
            lines.append(f"| `[{section}] {name}` | `{env}` | {option['type']} | {default} | {cell(text)} |")
    return "\n".join(lines) + "\n"


def gen_connection_types(page: Any) -> str:
    from airflow_ecr.provider_info import get_provider_info

    out = []
    for conn in get_provider_info()["connection-types"]:
        out.append(
            f"**`{conn['connection-type']}`** ({conn['hook-name']}, hook `{conn['hook-class-name']}`), "
            "fields in the connection's extra:\n"
        )
        out.append("| field | label |\n|---|---|")
        out += [f"| `{name}` | {cell(spec['label'])} |" for name, spec in conn["conn-fields"].items()]
        out.append("")
    return "\n".join(out) + "\n"


def gen_exceptions(page: Any) -> str:
    module = importlib.import_module("airflow_ecr.exceptions")
    lines = ["| exception | base | raised when |", "|---|---|---|"]
    for name, cls in vars(module).items():
        public = not name.startswith("_")
        if public and isinstance(cls, type) and issubclass(cls, Exception) and cls.__module__ == module.__name__:
            base = ", ".join(f"`{b.__name__}`" for b in cls.__bases__)
            lines.append(f"| `{name}` | {base} | {cell(summary(cls.__doc__))} |")
    return "\n".join(lines) + "\n"


# -- the command line ---------------------------------------------------------------------------
def gen_cli(page: Any) -> str:
    from airflow_ecr.cli import build_parser

    os.environ["COLUMNS"] = "100"  # argparse wraps help at the terminal width: make it stable
    parser = build_parser()
    out = ["```text", f"$ {parser.prog} --help", parser.format_help().rstrip(), "```", ""]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out += [f"### `{parser.prog} {name}`", "", "```text", f"$ {parser.prog} {name} --help"]
                out += [sub.format_help().rstrip(), "```", ""]
    return "\n".join(out)


# -- the ECR emulator ---------------------------------------------------------------------------
def gen_emulator_faults(page: Any) -> str:
    from airflow_ecr.testing.emulator import EmulatedAccount
    from airflow_ecr.testing.emulator.state import EmulatorState

    switches = [name for name in inspect.signature(EmulatorState.set_faults).parameters if name != "self"]
    # A fresh emulator's switches are all off: their values are the "off" column.
    off = EmulatorState([EmulatedAccount("123456789012", "eu-west-1")]).faults()
    if set(switches) != set(off):
        raise PluginError(f"set_faults takes {sorted(switches)} but faults() reports {sorted(off)}")
    docs = params(EmulatorState.set_faults.__doc__)
    lines = ["| switch | off | what it does when set |", "|---|---|---|"]
    for name in switches:
        if not docs.get(name):
            raise PluginError(f"EmulatorState.set_faults: argument {name!r} has no :param: text")
        lines.append(f"| `{name}` | `{json.dumps(off[name])}` | {cell(docs[name])} |")
    return "\n".join(lines) + "\n"


# -- benchmarks ---------------------------------------------------------------------------------
def gen_benchmarks(page: Any) -> str:
    report = BENCHMARKS / "latest.md"
    if not report.is_file():
        return "!!! note\n    No benchmark report yet: run the benchmarks to write `benchmarks/results/latest.md`.\n"
    text = report.read_text()
    # Headings one level down (the page has its own title); the image from where the hook put it.
    text = re.sub(r"^(#+) ", r"#\1 ", text, flags=re.MULTILINE)
    image = "../" * page.file.src_uri.count("/") + BENCHMARK_IMAGE_URI
    text = re.sub(r"\]\((?:\./)?latest\.png\)", f"]({image})", text)
    if (BENCHMARKS / "latest.png").is_file() and image not in text:
        text += f"\n\n![Benchmark results]({image})\n"
    return text


GENERATORS: dict[str, Any] = {
    "class": gen_class,
    "function": gen_function,
    "doc": gen_doc,
    "template-fields": gen_template_fields,
    "config": gen_config,
    "connection-types": gen_connection_types,
    "exceptions": gen_exceptions,
    "cli": gen_cli,
    "emulator-faults": gen_emulator_faults,
    "benchmarks": gen_benchmarks,
}
