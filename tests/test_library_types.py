"""The keyword forms of `Fleet.generate`, `Fleet.embed` and `Fleet.add` stay checked by a type checker.

Before the requests became objects (issue 24), each keyword was a typed parameter, so mypy refused
`add(url, weight="2")` or `generate(model, prompt, chatt=True)`; once they became `**fields: Any`
it accepted every misuse. They are typed again through a TypedDict per method (PEP 692), which
must stay alike the request's dataclass (GenerateRequest, EmbedRequest, registry.edits.NewInstance).
"""

from __future__ import annotations

import pathlib
import typing

import pytest
from mypy import api

from ollamactl import EmbedRequest, Fleet, GenerateRequest, InvalidValue
from ollamactl.core.proxy.embed import EmbedFields
from ollamactl.core.proxy.generate import GenerateFields
from ollamactl.core.registry.edits import NewInstance, NewInstanceFields

ROOT = pathlib.Path(__file__).resolve().parent.parent

MISUSES = {  # the line a program writes -> what mypy must say about it
    'fleet.generate("llama3.2", "hi", chat="yes")': 'Argument "chat" to "generate"',
    'fleet.generate("llama3.2", "hi", chatt=True)': 'Unexpected keyword argument "chatt" for "generate"',
    'fleet.generate("llama3.2", "hi", tries="3")': 'Argument "tries" to "generate"',
    'fleet.embed("nomic-embed-text", ["a"], per_instance="2")': 'Argument "per_instance" to "embed"',
    'fleet.embed("nomic-embed-text", ["a"], perinstance=2)': 'Unexpected keyword argument "perinstance" for "embed"',
    'fleet.add("http://gpu1:11434", weight="2")': 'Argument "weight" to "add"',
    'fleet.add("http://gpu1:11434", nam="gpu1")': 'Unexpected keyword argument "nam" for "add"',
}


def test_mypy_refuses_a_misused_keyword_of_generate_embed_and_add(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # mypy finds the package (and its cache) from the checkout, as .ci/run runs it
    lines = list(MISUSES)
    program = tmp_path / "program.py"
    program.write_text("from ollamactl import Fleet\n\nfleet = Fleet()\n" + "\n".join(lines) + "\n"
                       + 'fleet.generate("llama3.2", "hi", chat=True, tries=2, instance="gpu1")\n'
                       + 'fleet.embed("nomic-embed-text", ["a"], per_instance=2, strict=True)\n'
                       + 'fleet.add("http://gpu1:11434", name="gpu1", weight=2, priority="backup", check=False)\n',
                       encoding="utf-8")
    out, err, status = api.run(["--config-file", str(ROOT / "pyproject.toml"), "--no-error-summary", str(program)])
    assert status == 1, out + err
    said = {int(line.split(":")[1]): line for line in out.splitlines() if ": error: " in line}
    first = 4  # the first misuse's line number in program.py
    for number, line in enumerate(lines, first):
        assert MISUSES[line] in said.get(number, ""), (line, out)
    assert set(said) == set(range(first, first + len(lines))), out  # the right uses pass


@pytest.mark.parametrize(("keywords", "record", "positional"), [
    (GenerateFields, GenerateRequest, ("model", "prompt")),
    (EmbedFields, EmbedRequest, ("model",)),
    (NewInstanceFields, NewInstance, ()),
])
def test_each_methods_keywords_are_its_requests_fields_with_their_types(keywords, record, positional):
    fields = typing.get_type_hints(record)
    for name in positional:
        del fields[name]
    assert typing.get_type_hints(keywords) == fields


@pytest.mark.parametrize(("call", "hint"), [
    (lambda fleet: fleet.generate("llama3.2", "hi", chatt=True), "use chat, system, stream,"),
    (lambda fleet: fleet.embed("nomic-embed-text", ["a"], perinstance=1), "use instance, allow_mixed,"),
])
def test_an_unknown_keyword_lists_the_keywords_not_the_positional_arguments(tmp_path, call, hint):
    """`model` and `prompt` are not keywords to use here: passing one is a TypeError (given twice)."""
    with pytest.raises(InvalidValue) as caught:
        call(Fleet(tmp_path / "instances.toml", tmp_path / "state"))
    assert hint in str(caught.value)
    assert "model" not in str(caught.value).split("; ", 1)[1]
