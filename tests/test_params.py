import pytest

from workbench.errors import ParamError
from workbench.params import Param, ParamGroup, route_assignments


def test_parse_and_validate_types():
    assert Param("n", int, 3, min=1, max=10).parse("7") == 7
    assert Param("n", int, 3).parse("1e3") == 1000
    assert Param("x", float, 0.1, min=0.0).parse("0.5") == 0.5
    assert Param("b", bool, False).parse("yes") is True
    assert Param("b", bool, False).parse("off") is False
    assert Param("c", str, "a", choices=("a", "b")).parse("b") == "b"


@pytest.mark.parametrize(
    ("param", "raw", "message"),
    [
        (Param("batch_size", int, 64, min=1, max=65536), "0", "batch_size must be an integer from 1 to 65536 (got 0)"),
        (Param("batch_size", int, 64, min=1, max=65536), "2.5", "batch_size must be an integer from 1 to 65536"),
        (Param("lr", float, 0.1, min=1e-8, max=10), "fast", "lr must be a number from 1e-08 to 10 (got 'fast')"),
        (Param("lr", float, 0.1, min=1e-8, max=10), "nan", "lr must be a number"),
        (Param("opt", str, "adam", choices=("adam", "sgd")), "rmsprop", "opt must be one of adam, sgd"),
        (Param("flag", bool, False), "maybe", "flag must be true or false"),
    ],
)
def test_bad_values_name_the_parameter_and_range(param, raw, message):
    with pytest.raises(ParamError) as info:
        param.parse(raw)
    assert message in str(info.value)


def test_default_must_satisfy_declaration():
    with pytest.raises(ParamError):
        Param("n", int, 0, min=1)


def test_typed_values_from_config_files():
    p = Param("n", int, 3, min=1)
    assert p.validate(4.0) == 4
    with pytest.raises(ParamError):
        p.validate(True)
    with pytest.raises(ParamError):
        Param("s", str, "a").validate(3)


def test_group_resolve_rejects_unknown_names():
    group = ParamGroup("model", [Param("hidden_size", int, 8, min=1)])
    assert group.resolve({"hidden_size": "16"}) == {"hidden_size": 16}
    with pytest.raises(ParamError, match="unknown model parameter 'hiden_size'"):
        group.resolve({"hiden_size": 3})


def test_route_assignments_qualified_bare_and_ambiguous():
    groups = {
        "train": ParamGroup("train", [Param("lr", float, 0.1), Param("dropout", float, 0.0)]),
        "model": ParamGroup("model", [Param("hidden_size", int, 8), Param("dropout", float, 0.0)]),
    }
    routed = route_assignments(["lr=0.5", "model.dropout=0.2", "hidden_size=4"], groups)
    assert routed == {"train": {"lr": "0.5"}, "model": {"dropout": "0.2", "hidden_size": "4"}}
    with pytest.raises(ParamError, match="ambiguous; write train.dropout or model.dropout"):
        route_assignments(["dropout=0.1"], groups)
    with pytest.raises(ParamError, match="key=value"):
        route_assignments(["lr"], groups)
    with pytest.raises(ParamError, match="unknown parameter namespace"):
        route_assignments(["optim.lr=1"], groups)
