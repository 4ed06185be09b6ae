"""The import graph points one way (docs/ARCHITECTURE.md): domain -> pipeline/inference ->
store -> sinks -> server/cli, and the serving code never imports training. The contracts are
in .importlinter; import-linter checks them on the real source."""

from __future__ import annotations

from importlinter.cli import lint_imports

from gateway.config import REPO_ROOT


def test_imports_follow_the_layers() -> None:
    config = REPO_ROOT / ".importlinter"
    assert lint_imports(config_filename=str(config), no_cache=True, no_logo=True) == 0, (
        "an import goes against docs/ARCHITECTURE.md's layers: run `lint-imports` to see it")
