"""The documentation's snippets run, so the docs cannot rot.

Every shell command and Python snippet of Getting started and the tutorials runs here, page by
page, in a fresh temporary folder, in the order of the page (``tests/docs_snippets.py`` reads the
blocks and says what each one means). A block whose fence names a file (``title="exp.yaml"``)
is written to that file for the blocks after it. This needs no MkDocs: the test suite runs where
only the ``test`` extra is installed. The generated reference pages are checked here too: their
generators (``docs/hooks.py``) must cover every setting, command and metric the code has.
"""

from __future__ import annotations

import importlib.util
import re

import pytest
import yaml

from tests.docs_snippets import ROOT, Block, blocks, run_page

DOCS = ROOT / "docs"
# the pages whose snippets run (relative to the repository): each trains and measures models, so
# each takes from about 20 s to a few minutes on 2 cores and is in the slow tier
PAGES = [
    "README.md",
    "docs/getting-started.md",
    *sorted(p.relative_to(ROOT).as_posix() for p in (DOCS / "tutorials").glob("*.md")),
]


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES)
def test_the_pages_snippets_run_as_written(page, tmp_path):
    ran = run_page(ROOT / page, tmp_path)
    assert ran, f"{page}: no snippet ran"


# --- the runner itself: a broken snippet must fail the test, and nothing may be left unread


PAGE = """\
# A page

```yaml title="conf/exp.yaml"
name: x
```

<!-- docs-test: skip (shows output only) -->
```bash
this-command-does-not-exist
```

```console
$ cat conf/exp.yaml
name: x
```

```bash
test -f conf/exp.yaml  # a comment
echo one \\
  two > said.txt
```

- a list item with a nested block:

    ```python
    from pathlib import Path

    assert Path("said.txt").read_text() == "one two\\n"
    ```

```text
$ not run: text is output
```
"""


def test_the_blocks_of_a_page_are_read_with_their_directives():
    found = blocks(PAGE)
    assert [(b.lang, b.title, b.directives) for b in found] == [
        ("yaml", "conf/exp.yaml", []),
        ("bash", None, ["skip (shows output only)"]),
        ("console", None, []),
        ("bash", None, []),
        ("python", None, []),
        ("text", None, []),
    ]
    assert found[2].commands() == ["cat conf/exp.yaml"]
    assert found[3].commands() == ["test -f conf/exp.yaml  # a comment", "echo one two > said.txt"]
    assert found[4].body.startswith("from pathlib import Path\n")  # the list's indent is gone


def test_a_page_runs_in_order_and_files_come_from_titled_blocks(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(PAGE)
    work = tmp_path / "work"
    work.mkdir()
    ran = run_page(page, work)
    assert [b.lang for b in ran] == ["yaml", "console", "bash", "python"]
    assert (work / "said.txt").read_text() == "one two\n"


@pytest.mark.parametrize(
    "broken",
    [
        ("echo one \\\n  two > said.txt", "echo one \\\n  two > sad.txt"),  # a command's output
        ("test -f conf/exp.yaml", "test -f conf/exp.yml"),  # a command that fails
        ('== "one two\\n"', '== "one, two\\n"'),  # a Python snippet that raises
        ("```python\n", "```python\n    import nothing_of_this_name\n"),  # a bad import
        ('title="conf/exp.yaml"', 'title="conf/other.yaml"'),  # a file the page needs
    ],
)
def test_a_broken_snippet_fails_with_where_it_is(broken, tmp_path):
    before, after = broken
    assert before in PAGE
    page = tmp_path / "page.md"
    page.write_text(PAGE.replace(before, after, 1))
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(AssertionError, match=r"page\.md:\d+"):
        run_page(page, work)


def test_an_unknown_directive_or_an_unclosed_block_is_an_error():
    with pytest.raises(ValueError, match="unknown directive"):
        blocks("<!-- docs-test: skipp -->\n```bash\nls\n```\n")
    with pytest.raises(ValueError, match="not closed"):
        blocks("```bash\nls\n")


def test_every_snippet_page_has_something_to_run():
    for page in PAGES:
        runnable = [b for b in blocks((ROOT / page).read_text()) if b.runs]
        assert runnable, page


# --- the site: its pages exist, the README points into them, the generators cover the code


def hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def nav_pages(nav) -> list[str]:
    pages = []
    for entry in nav:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        pages += nav_pages(value) if isinstance(value, list) else [value]
    return pages


def test_every_page_of_the_nav_exists_and_every_page_is_in_the_nav():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    listed = nav_pages(config["nav"])
    missing = [p for p in listed if not (DOCS / p).is_file()]
    assert not missing, missing
    present = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert present <= set(listed), present - set(listed)


def test_the_readme_is_short_and_its_links_into_the_docs_resolve():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    links = re.findall(r"\]\((docs/[^)#]+)", readme)
    assert links
    for link in links:
        assert (ROOT / link).is_file(), link


def test_included_files_exist():
    for page in DOCS.rglob("*.md"):
        for included in re.findall(r'--8<-- "([^"]+)"', page.read_text()):
            assert (ROOT / included).is_file(), (page, included)


def test_the_yaml_reference_has_every_setting_step_preset_and_profile():
    from edgeslim import config
    from edgeslim.boards import BoardConfig
    from edgeslim.compress.presets import PRESETS
    from edgeslim.compress.registry import TECHNIQUES
    from edgeslim.devices import DEVICES

    text = hooks().yaml_schema()
    models = [
        config.ExperimentConfig,
        config.TrainConfig,
        config.CandidateConfig,
        config.MeasureConfig,
        config.SearchConfig,
        config.SpaceConfig,
        BoardConfig,
        *(t.settings for t in TECHNIQUES.values()),
    ]
    for model in models:
        for name in model.model_fields:
            assert f"| `{name}` |" in text, (model.__name__, name)
    for name in [*PRESETS, *DEVICES]:
        assert f"| `{name}` |" in text, name


def test_the_cli_reference_has_every_command_and_option():
    import typer

    from edgeslim.cli import app

    text = hooks().cli_reference()

    def visit(command, path):
        if path:
            assert f"## `edgeslim {' '.join(path)}`" in text, path
            for param in command.params:
                if param.param_type_name == "option" and param.name != "help":
                    assert f"`{param.opts[0]}`" in text, (path, param.opts)
        for name, child in (getattr(command, "commands", None) or {}).items():
            visit(child, [*path, name])

    visit(typer.main.get_command(app), [])


def test_the_metrics_and_api_references_cover_the_code():
    import edgeslim
    from edgeslim.measure import METRICS

    module = hooks()
    metrics = module.metrics_table()
    for name, metric in METRICS.items():
        assert f"| `{name}` | {metric.unit} |" in metrics, name
    api = module.api_reference()
    for name, where in edgeslim._EXPORTS.items():
        assert f"::: {where}.{name}" in api, name
    assert module.fill("<!-- generated: metrics -->") == metrics
    with pytest.raises(ValueError, match="unknown generated section"):
        module.fill("<!-- generated: nothing -->")


def test_block_commands_join_continuations():
    block = Block("bash", None, "a \\\n  b\n# note\n\nc\n", [], 1)
    assert block.commands() == ["a b", "c"]
