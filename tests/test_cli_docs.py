"""docs/cli.md is what the argument parsers say: regenerate it when a command changes.

    python -m minipar.clidoc --write
"""

import difflib

from minipar import clidoc


def test_cli_reference_matches_the_parsers():
    want = clidoc.render()
    have = clidoc.DOC.read_text() if clidoc.DOC.exists() else ""
    if have != want:
        diff = "".join(list(difflib.unified_diff(have.splitlines(True), want.splitlines(True),
                                                 "docs/cli.md", "the parsers"))[:60])
        raise AssertionError("docs/cli.md is out of date: run python -m minipar.clidoc --write"
                             "\n" + diff)


def test_every_command_is_documented():
    text = clidoc.DOC.read_text()
    for module in clidoc.commands():
        assert f"## python -m {module}\n" in text, module
    for title in ("python -m minipar.train", "python -m minipar.check",
                  "python -m minipar.bench collectives", "python -m minipar.ngram fit"):
        assert f"## {title}\n" in text


def test_finding_a_parser_runs_nothing(capsys):
    parser = clidoc.catch_parser("minipar.check", ["allreduce", "x:y"])
    assert parser is not None and parser.prog == "python -m minipar.check"
    assert capsys.readouterr().out == ""


def test_links_between_pages_resolve():
    import re
    root = clidoc.DOC.parent.parent
    pages = sorted((root / "docs").glob("*.md")) + sorted((root / "tutorials").glob("*.md"))
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target:
                continue
            assert (page.parent / target).exists(), f"{page.relative_to(root)}: {target}"


def test_check_says_when_the_page_is_out_of_date(tmp_path, monkeypatch, capsys):
    stale = tmp_path / "cli.md"
    stale.write_text("# an old page\n")
    monkeypatch.setattr(clidoc, "DOC", stale)
    monkeypatch.setattr(clidoc, "HERE", tmp_path / "minipar")
    assert clidoc.main(["--check"]) == 1
    assert "out of date" in capsys.readouterr().out
