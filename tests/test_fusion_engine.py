"""The single way into fusion: method names, the auto default."""

import pytest

from fusion.engine import AUTO, cuda_available, fuse, resolve_method
from tests.fusion_stacks import region_stack


def test_auto_is_the_network_on_cuda_and_classical_otherwise():
    assert resolve_method("net") == "net" and resolve_method("classical", "cuda") == "classical"
    assert resolve_method(AUTO, "cpu") == "classical"
    assert resolve_method(AUTO) == ("net" if cuda_available() else "classical")
    stack, _, _ = region_stack([0, 2], 3)
    assert fuse(stack, AUTO, "cpu").method == "classical"


def test_gui_settings_saved_with_the_old_method_name_read_as_auto(tmp_path):
    from app.gui.settings import GuiSettings

    path = tmp_path / "s.json"
    path.write_text('{"fusion_method": "best"}')
    settings, warnings = GuiSettings.load(path)
    assert settings.fusion_method == "auto" and not warnings


@pytest.mark.parametrize("name", ["nope", ""])
def test_unknown_methods_are_named(name):
    from fusion.engine import FusionError

    stack, _, _ = region_stack([0, 1], 2)
    with pytest.raises(FusionError, match="unknown fusion method"):
        fuse(stack, name)
