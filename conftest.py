"""Doctests of the package (``python -m pytest`` collects them with --doctest-modules).

Every docstring example runs in a fresh directory holding ``data/sample_input.json``
and ``lineage.db`` (one run of the default pipeline over it), with ``lk`` (the
package) and ``store`` (that store, open) in its namespace, as the README's
examples assume.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent

# The notebooks' jupytext twins are notebooks, not modules (nbval runs the .ipynb);
# the fixture script needs a v1 checkout.
collect_ignore_glob = ["notebooks/*.py", "tests/fixtures/*.py"]


@pytest.fixture(scope="session")
def _doctest_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import lineage_kit as lk

    home = tmp_path_factory.mktemp("doctest_home")
    (home / "data").mkdir()
    shutil.copyfile(ROOT / "data" / "sample_input.json", home / "data" / "sample_input.json")
    lk.run_pipeline(home / "data" / "sample_input.json", db=home / "lineage.db", progress=False)
    return home


@pytest.fixture(autouse=True)
def _doctest_store(request: pytest.FixtureRequest):
    if not isinstance(request.node, pytest.DoctestItem):
        yield
        return
    import lineage_kit as lk

    home = request.getfixturevalue("_doctest_home")
    here = request.getfixturevalue("tmp_path") / "home"
    shutil.copytree(home, here)
    request.getfixturevalue("monkeypatch").chdir(here)
    namespace = request.getfixturevalue("doctest_namespace")
    store = lk.connect("lineage.db")
    namespace.update(lk=lk, store=store)
    import matplotlib

    matplotlib.use("Agg")  # the plot examples draw off screen
    try:
        yield
    finally:
        store.close()
        import matplotlib.pyplot as plt

        plt.close("all")
