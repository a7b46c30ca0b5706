"""Session-wide test set-up: the ``openeb`` marker, for tests that run OpenEB itself beside focalrig.

Where OpenEB is not installed those tests skip with a reason that says where it was looked for, so the
README's test command needs nothing beyond pip. CI installs OpenEB and sets ``FOCALRIG_REQUIRE_OPENEB=1``:
then a missing install stops the run at once instead of quietly skipping the checks against OpenEB.
"""

from __future__ import annotations

import os

import pytest

from drivers.openeb import find_openeb, where_looked

REQUIRE_VAR = "FOCALRIG_REQUIRE_OPENEB"


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get(REQUIRE_VAR) and find_openeb() is None:
        raise pytest.UsageError(f"{REQUIRE_VAR} is set, but OpenEB is not installed (looked in {where_looked()}); "
                                "install it with ../shared/tools/openeb/openeb-install.sh /opt/openeb")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if find_openeb() is not None:
        return
    skip = pytest.mark.skip(reason=f"OpenEB is not installed (looked in {where_looked()}); README, Development, "
                                   "says how to install it")
    for item in items:
        if "openeb" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def oracle():
    """OpenEB's tools and Python API, run beside focalrig (:class:`capture.formats.openeb.Oracle`)."""
    from capture.formats.openeb import Oracle

    return Oracle()
