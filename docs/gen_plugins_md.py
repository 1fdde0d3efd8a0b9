"""Regenerate the generated parts of ``docs/plugins.md`` from the code they describe.

The guide has blocks between ``<!-- BEGIN GENERATED: key -->`` and ``<!-- END GENERATED: key -->``:
``hooks`` (every hook of ``rlinf_core.hookspecs``, its signature and docstring), ``interfaces``
(every Protocol of ``rlinf_core.interfaces``: constructor, methods, call order) and ``kit`` (every
conformance class of ``rlinf_core.testing``: attributes and checks). Everything else is written by
hand. ``tests/authoring/test_docs.py`` fails when the committed file differs from what this makes.

    python docs/gen_plugins_md.py          # rewrite docs/plugins.md
    python docs/gen_plugins_md.py --check  # exit 1 if it is out of date
"""

from __future__ import annotations

import inspect
import re
import sys
import textwrap
from pathlib import Path

DOC = Path(__file__).resolve().parent / "plugins.md"
_BLOCK = re.compile(r"(<!-- BEGIN GENERATED: (?P<key>[a-z]+) -->\n)(?P<body>.*?)(<!-- END GENERATED: (?P=key) -->)", re.S)


def _doc(obj: object) -> str:
    return textwrap.dedent(inspect.getdoc(obj) or "").strip()


def _rst_to_md(text: str) -> str:
    """The few reStructuredText forms our docstrings use, as Markdown."""
    text = re.sub(r":(?:class|func|meth|data|mod|attr):`~?([^`]+)`", lambda m: f"`{m.group(1).split('.')[-1]}`"
                  if m.group(0).find("~") >= 0 else f"`{m.group(1)}`", text)
    text = re.sub(r":math:`([^`]+)`", r"$\1$", text)
    text = text.replace("``", "`")
    return re.sub(r"::\n", ":\n", text)


def _signature(fn: object, drop_self: bool = False) -> str:
    sig = inspect.signature(fn)
    if drop_self:
        params = list(sig.parameters.values())[1:]
        sig = sig.replace(parameters=params)
    return str(sig).replace("'", "")


def hooks_section() -> str:
    from rlinf_core import hookspecs

    lines = ["| hook | returns components of kind |", "|---|---|"]
    for name in hookspecs.hook_names():
        kinds = hookspecs.REGISTRATION_HOOKS.get(name)
        lines.append(f"| `{name}` | {', '.join(f'`{k}`' for k in kinds) if kinds else '(lifecycle hook)'} |")
    lines.append("")
    for name in hookspecs.hook_names():
        fn = getattr(hookspecs, name)
        lines += [f"#### `{name}{_signature(fn)}`", "", _rst_to_md(_doc(fn)), ""]
    return "\n".join(lines)


def interfaces_section() -> str:
    from rlinf_core import interfaces

    module_doc = _doc(interfaces)
    call_order = module_doc[module_doc.index("Call order"):] if "Call order" in module_doc else ""
    lines = [_code_blocks(_rst_to_md(call_order)), ""]  # its indented call sequences become code blocks
    kinds = {proto: kind for kind, proto in interfaces.INTERFACES.items()}
    for proto in (interfaces.RolloutEngine, interfaces.TrainingBackend, interfaces.VectorEnv, interfaces.Policy,
                  interfaces.Flow):
        kind = kinds.get(proto, "model")
        lines += [f"### `{proto.__name__}` (kind `{kind}`)", "", _rst_to_md(_doc(proto)), ""]
        methods, attrs = interfaces._protocol_members(proto)
        for attr in attrs:
            lines.append(f"- attribute `{attr}`")
        for name in methods:
            member = inspect.getattr_static(proto, name)
            if isinstance(member, property):
                lines.append(f"- property `{name}`: {_first_line(_rst_to_md(_doc(member.fget)))}")
            else:
                lines.append(f"- `{name}{_signature(member, drop_self=True)}`: {_first_line(_rst_to_md(_doc(member)))}")
        lines.append("")
    for name in ("SamplingParams", "GenerationOutput", "ActionSample"):
        cls = getattr(interfaces, name)
        lines += [f"### `{name}`", "", _rst_to_md(_doc(cls)), ""]
        for field in cls.__dataclass_fields__.values():
            lines.append(f"- `{field.name}: {field.type}`")
        lines.append("")
    lines += ["Function kinds (`" + "`, `".join(interfaces.CALLABLE_KINDS) + "`) are plain callables; their calling "
              "conventions are in the conformance classes below and in `rlinf_algos`.", ""]
    return "\n".join(lines)


def kit_section() -> str:
    import rlinf_core.testing as testing

    lines = []
    for name in sorted(testing.__all__):
        if name == "PluginTests":
            continue
        cls = getattr(testing, name)
        module = sys.modules[cls.__module__]
        lines += [f"### `{name}` (kind `{cls.kind or 'advantage / policy_loss / kl / loss_agg'}`)", "",
                  _rst_to_md(_doc(module)), "", _rst_to_md(_doc(cls)), "", "Checks:", ""]
        tests = [n for n in dir(cls) if n.startswith("test_") and callable(getattr(cls, n))]
        lines += [f"- `{n}`" + (f": {_first_line(_rst_to_md(_doc(getattr(cls, n))))}" if _doc(getattr(cls, n)) else "")
                  for n in tests]
        lines.append("")
    return "\n".join(lines)


def _first_line(text: str) -> str:
    return " ".join(text.split("\n\n")[0].split())


def _code_blocks(text: str) -> str:
    """Indented blocks after a line ending in ':' become fenced code blocks."""
    out, in_block = [], False
    for line in text.splitlines():
        if line.startswith("    ") and not in_block and out and (out[-1] == "" and len(out) > 1 and out[-2].endswith(":")):
            out.append("```text")
            in_block = True
        if in_block and line and not line.startswith("    "):
            while out and out[-1] == "":
                out.pop()
            out += ["```", ""]
            in_block = False
        out.append(line[4:] if in_block else line)
    if in_block:
        while out and out[-1] == "":
            out.pop()
        out.append("```")
    return "\n".join(out)


SECTIONS = {"hooks": hooks_section, "interfaces": interfaces_section, "kit": kit_section}


def render(text: str) -> str:
    """``text`` with every generated block replaced by what the code says now."""
    def fill(match: re.Match) -> str:
        key = match.group("key")
        if key not in SECTIONS:
            raise KeyError(f"docs/plugins.md: unknown generated block {key!r}; known: {', '.join(SECTIONS)}")
        return f"{match.group(1)}\n{SECTIONS[key]().strip()}\n\n{match.group(4)}"

    return _BLOCK.sub(fill, text)


def main(argv: list[str]) -> int:
    current = DOC.read_text(encoding="utf-8")
    fresh = render(current)
    if "--check" in argv:
        if fresh != current:
            print("docs/plugins.md is out of date: run `python docs/gen_plugins_md.py`", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(fresh, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
