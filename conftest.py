"""How ``pytest -n N --dist load`` shares the work: test by test, but each notebook whole.

nbval runs a notebook's cells in order in one kernel, so its cells must stay on one worker;
``--dist loadfile`` guarantees that, but it also keeps every test file whole, and a long test
file scheduled last then runs alone while the other worker idles. With ``--dist load`` and this
scheduler, each test under ``tests/`` is a unit of its own and each notebook is one unit.
xdist hands out the largest units first, so the notebooks start early and the short tests fill
in around them. Any other ``--dist`` keeps xdist's own scheduler.
"""


def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") != "load":
        return None
    # xdist ships only as a test dependency: import it when it is the one asking.
    from xdist.scheduler import LoadScopeScheduling

    class NotebooksStayWhole(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            path = nodeid.split("::", 1)[0]
            return path if path.endswith(".ipynb") else nodeid

    return NotebooksStayWhole(config, log)
