"""Model registry: registration rules, lookup errors, config validation."""

import numpy as np
import pytest
import torch

from geo_neuralop.models import UNet, get_model, get_model_class, list_models, model_name
from geo_neuralop.models.registry import check_plain, register_model, unregister_model


class _Tiny(torch.nn.Module):
    def __init__(self, width: int, scale: float = 1.0) -> None:
        super().__init__()
        self.config = {"width": width, "scale": scale}
        self.linear = torch.nn.Linear(width, width)


class _Other(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.config = {}


@pytest.fixture
def tiny_registered():
    register_model("test_tiny")(_Tiny)
    yield "test_tiny"
    unregister_model("test_tiny")


def test_builtin_models_are_listed_sorted():
    names = list_models()
    assert {"unet", "mesh_graph_net"} <= set(names)
    assert names == sorted(names)
    assert all(name == name.lower() for name in names)


def test_register_and_build(tiny_registered):
    model = get_model(tiny_registered, width=3, scale=2.0)
    assert isinstance(model, _Tiny)
    assert model.config == {"width": 3, "scale": 2.0}
    assert model_name(model) == "test_tiny"
    assert model_name(_Tiny) == "test_tiny"
    assert get_model_class("test_tiny") is _Tiny
    # a rebuilt model from its own config has the same architecture
    again = get_model(tiny_registered, **model.config)
    assert again.linear.weight.shape == model.linear.weight.shape


def test_registering_the_same_class_twice_is_harmless(tiny_registered):
    assert register_model(tiny_registered)(_Tiny) is _Tiny
    assert list_models().count(tiny_registered) == 1


def test_duplicate_name_with_another_class_raises(tiny_registered):
    with pytest.raises(ValueError, match="already registered"):
        register_model(tiny_registered)(_Other)
    with pytest.raises(ValueError, match="'unet' is already registered"):
        register_model("unet")(_Other)
    assert get_model_class("unet") is UNet


@pytest.mark.parametrize("bad", ["UNet", "1net", "", "my-net", "a b"])
def test_invalid_names_raise(bad):
    with pytest.raises(ValueError, match="lower-case"):
        register_model(bad)


def test_non_string_name_and_non_module_class_raise():
    with pytest.raises(TypeError, match="must be a str"):
        register_model(3)
    with pytest.raises(TypeError, match="nn.Module subclasses"):
        register_model("not_a_module")(int)
    assert "not_a_module" not in list_models()


def test_unknown_model_lists_available_names():
    with pytest.raises(ValueError, match="unknown model 'no_such_net'") as info:
        get_model("no_such_net")
    for name in list_models():
        assert name in str(info.value)


def test_lookup_tolerates_case_and_dashes():
    assert get_model_class("UNet") is UNet
    assert get_model_class("Mesh-Graph-Net").__name__ == "MeshGraphNet"


def test_unknown_config_key_names_key_and_model():
    with pytest.raises(TypeError, match=r"'unet'.*'hiden_channels'"):
        get_model("unet", in_channels=1, out_channels=1, hiden_channels=4)


def test_missing_required_key_is_named():
    with pytest.raises(TypeError, match=r"'unet'.*missing.*'out_channels'"):
        get_model("unet", in_channels=1)


def test_invalid_config_value_raises_value_error():
    with pytest.raises(ValueError, match="norm must be one of"):
        get_model("unet", in_channels=1, out_channels=1, norm="layer")
    with pytest.raises(ValueError, match="depth must be an integer >= 0, got -1"):
        get_model("unet", in_channels=1, out_channels=1, depth=-1)
    with pytest.raises(ValueError, match="n_layers must be an integer >= 0, got 1.5"):
        get_model("mesh_graph_net", in_channels=1, out_channels=1, n_layers=1.5)


def test_unregistered_class_has_no_name():
    with pytest.raises(TypeError, match="not a registered model"):
        model_name(_Other())


def test_unregister_unknown_raises():
    with pytest.raises(ValueError, match="unknown model"):
        unregister_model("no_such_net")


@pytest.mark.parametrize(
    "config",
    [
        {"a": 1, "b": [1.0, "x", None, True], "c": {"d": (1, 2)}},
        {},
    ],
)
def test_check_plain_accepts_plain_values(config):
    check_plain(config)


@pytest.mark.parametrize(
    ("config", "where"),
    [
        ({"a": np.zeros(2)}, r"config\['a'\]"),
        ({"a": [1, torch.ones(1)]}, r"config\['a'\]\[1\]"),
        ({"a": {1: 2}}, r"non-string key 1"),
        ({"f": torch.float32}, r"config\['f'\]"),
    ],
)
def test_check_plain_names_offending_entry(config, where):
    with pytest.raises(TypeError, match=where):
        check_plain(config)


def test_every_registered_model_stores_plain_config_of_its_arguments():
    """Built with its test config, each model's config holds every constructor argument."""
    import inspect

    from tests.models.test_checkpoint import TEST_CASES

    for name in list_models():
        if name not in TEST_CASES:
            continue  # test_checkpoint reports the missing case
        config, _ = TEST_CASES[name]()
        model = get_model(name, **config)
        check_plain(model.config)
        params = list(inspect.signature(type(model).__init__).parameters.values())[1:]
        named = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        assert set(named) <= set(model.config), (name, set(named) - set(model.config))
        for key, value in config.items():
            assert model.config[key] == value, (name, key)


def test_register_model_records_every_constructor_argument():
    """``model.config`` holds the arguments a model was built with, defaults filled in, tuples as
    lists, ints given to float arguments as floats; a registered subclass records its own."""
    import torch

    @register_model("test_recording", family="grid")
    class Base(torch.nn.Module):
        def __init__(self, width: int, shape=(2, 3), scale: float = 1.0) -> None:
            super().__init__()
            self.width = width

    @register_model("test_recording_sub")
    class Sub(Base):
        def __init__(self, width: int, extra: str = "x") -> None:
            super().__init__(width, shape=(4,), scale=2)

    try:
        base = get_model("test_recording", width=3, scale=2)
        assert base.config == {"width": 3, "shape": [2, 3], "scale": 2.0}
        assert isinstance(base.config["scale"], float) and Base.family == "grid"
        rebuilt = get_model("test_recording", **base.config)
        assert rebuilt.config == base.config
        sub = Sub(5)
        assert sub.config == {"width": 5, "extra": "x"} and Sub.family is None
        with pytest.raises(TypeError, match=r"shape\[0\] = .* is not a plain value"):
            Base(1, shape=(object(),))
        with pytest.raises(ValueError, match="family must be one of"):
            register_model("test_bad_family", family="volume")
    finally:
        unregister_model("test_recording")
        unregister_model("test_recording_sub")
