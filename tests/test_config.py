"""meshrelease.toml: the shipped example, custom variants, and config mistakes."""

from __future__ import annotations

import pytest

from meshrelease.cli import main
from meshrelease.config import load_config, parse_config
from meshrelease.errors import ConfigError
from meshrelease.model.meshnet import MeshNet, count_parameters

from .conftest import CHECKPOINT, REPO


def test_shipped_config_describes_the_three_variants():
    cfg = load_config(REPO / "meshrelease.toml")
    for name, channels, params in (("meshnet_5", 5, 5_682), ("meshnet_16", 16, 56_194), ("meshnet_26", 26, 147_474)):
        v = cfg.variant(name)
        assert v.spec.channels == channels and v.expected_params == params
        assert count_parameters(MeshNet(v.spec)) == params
    v26 = cfg.variant("meshnet_26")
    assert v26.checkpoint == str(CHECKPOINT.resolve())
    import hashlib

    assert v26.sha256 == hashlib.sha256(CHECKPOINT.read_bytes()).hexdigest()
    assert cfg.int8_method == "weight-only" and cfg.crop == 96


def test_custom_variant_from_config(tmp_path):
    cfg = parse_config({"variants": {"tiny": {"channels": 4, "classes": 3, "dilations": [1, 2, 1],
                                              "labels": ["bg", "gm", "wm"]}}}, tmp_path / "x.toml")
    v = cfg.variant("tiny")
    assert v.spec.dilations == (1, 2, 1) and v.labels == ("bg", "gm", "wm") and v.expected_params is None


@pytest.mark.parametrize("data,message", [
    ({"variants": {"x": {"classes": 2}}}, "config: [variants.x] needs 'channels' (it is not a built-in variant)"),
    ({"variants": {"meshnet_26": {"chanels": 26}}}, "config: [variants.meshnet_26] unknown key(s) chanels"),
    ({"release": {"int8_method": "int4"}}, "config: int8_method 'int4' is not one of weight-only, dynamic, static, none"),
    ({"release": {"crops": 48}}, "config: [release] unknown key(s) crops"),
    ({"release": {"crop": "abc"}}, "config: [release] crop must be an integer, got 'abc'"),
    ({"variants": {"meshnet_26": {"channels": "many"}}},
     "config: [variants.meshnet_26] bad value (invalid literal for int() with base 10: 'many')"),
    ({"variants": {"y": {"channels": 3, "classes": 3, "labels": ["a", "b"]}}}, "config: [variants.y] has 2 labels for 3 classes"),
    ({"parity": {"fp32": {"max_diff": 1}}}, "config: [parity.fp32] unknown key(s) max_diff"),
])
def test_config_mistakes_are_named(data, message):
    with pytest.raises(ConfigError) as exc:
        parse_config(data)
    assert str(exc.value) == message


def test_variant_without_checkpoint_says_how_to_give_one(tmp_path, capsys):
    code = main(["build", "meshnet_5", "--tag", "v1", "--out", str(tmp_path), "--config", str(REPO / "meshrelease.toml")])
    assert code == 2
    assert capsys.readouterr().err.strip() == (
        "meshrelease: error: no checkpoint for meshnet_5: pass --checkpoint or set it in meshrelease.toml")


def test_help_explains_every_command(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for command in ("build", "publish", "pull", "verify", "releases", "card", "import-brainchop", "hub"):
        assert command in text
    with pytest.raises(SystemExit):
        main(["build", "--help"])
    text = capsys.readouterr().out
    assert "--checkpoint SRC" in text and "--int8-method" in text and "--json" in text


def test_crop_zero_is_refused_not_replaced_by_the_default(tmp_path, capsys):
    code = main(["build", "meshnet_26", "--tag", "v1", "--crop", "0", "--out", str(tmp_path), "--config", str(REPO / "meshrelease.toml")])
    assert code == 2
    assert capsys.readouterr().err.strip() == "meshrelease: error: crop 0 must be between 4 and 256 voxels"


def test_malformed_sha256_is_bad_input_and_json_mode_reports_errors_on_stdout(tmp_path, capsys):
    import json

    code = main(["build", "meshnet_26", "--tag", "v1", "--sha256", "xyz", "--out", str(tmp_path), "--json",
                 "--config", str(REPO / "meshrelease.toml")])
    captured = capsys.readouterr()
    assert code == 2
    assert json.loads(captured.out) == {"status": "error", "exit_code": 2, "error": "sha256 pin 'xyz' is not 64 hex digits"}
    assert captured.err.strip() == "meshrelease: error: sha256 pin 'xyz' is not 64 hex digits"
    assert not any(tmp_path.iterdir())
