"""One source of defaults (teakit.config): the Python classes, `tea distill`, `tea study` and the demo
train the same thing unless told otherwise, and config files take the long option names."""
from dataclasses import asdict, fields

import pytest

from teakit import cli, demo
from teakit.config import (
    HEATMAP_HEAD_LR_SCALE,
    SEGMENTER_BACKGROUNDS,
    SEGMENTER_UNET,
    TEACHER_CLASSIFIER,
    TEACHER_FILL,
    TEACHER_FILLS,
    TEA_LR,
    TEAConfig,
    TrainConfig,
    command_train_config,
    distill_config,
)
from teakit.objectives.tea import TEA


def _parse(*argv):
    return cli.build_parser().parse_args(list(argv))


def test_tea_defaults_equal_tea_distills():
    a = _parse("distill", "--dataset", "colored-digits", "--teacher", "T", "--out", "O")
    assert TEAConfig(**cli._tea_options(a)) == TEAConfig()
    # no segmenter: no mask to cut new backgrounds with
    assert TEA(None, 10).cfg == TEAConfig().replace(swap_backgrounds=0.0, recolour_backgrounds=0.0)
    assert set(cli._tea_options(a)) == {f.name for f in fields(TEAConfig)}  # every option has a flag
    assert cli._train_cfg(a, "distill", "tea") == distill_config() == distill_config("tea")
    assert distill_config().head_lr_scale == HEATMAP_HEAD_LR_SCALE != distill_config("kd").head_lr_scale
    assert (distill_config().epochs, distill_config().lr, distill_config().warmup_steps) == (80, TEA_LR, 100)
    assert TEA_LR == 8 * distill_config("kd").lr == 8 * distill_config("gradxinput").lr == 1.6e-2
    # chosen by the leave-one-benchmark-out study
    assert TEAConfig().bias_prior == "teacher-decisions"
    assert TEAConfig().swap_backgrounds == TEAConfig().recolour_backgrounds == 0.5


def test_every_commands_training_defaults_come_from_the_config():
    for command, argv in (("train", ["train", "--dataset", "colored-digits", "--out", "O"]),
                          ("train-teacher", ["train-teacher", "--dataset", "colored-digits", "--out", "O"]),
                          ("study", ["study", "convergence"])):
        a = _parse(*argv)
        assert cli._train_cfg(a, command, "tea") == command_train_config(command, "tea"), command
    assert command_train_config("train") == TrainConfig()
    a = _parse("study", "convergence")
    assert TEAConfig(**cli._tea_options(a)) == TEAConfig()  # the study's baseline is `tea distill`'s TEA
    with pytest.raises(ValueError, match="command"):
        command_train_config("fly")


def test_options_and_config_files_change_one_field(tmp_path):
    a = _parse("distill", "--dataset", "colored-digits", "--teacher", "T", "--out", "O", "--eps-range", "-3", "0",
               "--no-pyramid", "--feature-weight", "0", "--lr", "1e-3", "--head-lr-scale", "2")
    assert TEAConfig(**cli._tea_options(a)) == TEAConfig(eps_log_range=(-3.0, 0.0), pyramid=False, feature_weight=0.0)
    assert cli._train_cfg(a, "distill", "tea") == distill_config(lr=1e-3, head_lr_scale=2.0)
    path = tmp_path / "c.yaml"
    path.write_text("eps-range: [-3, 0]\nno-pyramid: true\nfeature_weight: 0\nepochs: 5\n")
    argv = ["distill", "--config", str(path), "--dataset", "colored-digits", "--teacher", "T", "--out", "O"]
    parser = cli.build_parser()
    a = parser.parse_args(cli._apply_config(parser, argv))
    assert TEAConfig(**cli._tea_options(a)) == TEAConfig(eps_log_range=(-3.0, 0.0), pyramid=False, feature_weight=0.0)
    assert a.epochs == 5


def test_the_demos_tea_is_tea_distills_at_the_demos_epochs():
    stages = {s.name: s for s in demo.plan(quick=False, seed=0)}
    tea = stages["colored-digits-tea"]
    assert TEAConfig(**tea.params["tea"]) == TEAConfig()
    # with a segmenter teacher the stage names the background swap (its key changes with the default)
    for name in ("swap_backgrounds", "recolour_backgrounds"):
        assert stages["digits-on-scenes-tea"].params["tea"][name] == getattr(TEAConfig(), name)
        assert name not in tea.params["tea"]
    # the segmenter teacher's stage names its U-Net's new backgrounds (`tea train-teacher`'s defaults); the
    # debiased teacher's has none
    assert stages["digits-on-scenes-teacher"].params["seg_backgrounds"] == SEGMENTER_BACKGROUNDS
    assert stages["digits-on-scenes-teacher"].params["seg_unet"] == SEGMENTER_UNET
    assert "seg_backgrounds" not in stages["colored-digits-teacher"].params
    a = cli.build_parser().parse_args(["train-teacher", "--dataset", "digits-on-scenes", "--kind", "segmenter",
                                   "--out", "O"])
    assert {"paste": a.seg_paste, "swap": a.seg_swap, "synthetic": a.seg_synthetic,
            "recolour": a.seg_recolour} == SEGMENTER_BACKGROUNDS
    assert {"base": a.seg_base, "depth": a.seg_depth} == SEGMENTER_UNET
    assert {"masks": a.cls_masks, "swap": a.cls_swap, "recolour": a.cls_recolour} == TEACHER_CLASSIFIER
    # and its fill and the draws its decision averages (config's, as `tea train-teacher`'s)
    assert (a.fill, a.fills) == (TEACHER_FILL, TEACHER_FILLS)
    teacher_stage = stages["digits-on-scenes-teacher"].params
    assert (teacher_stage["fill"], teacher_stage["fills"]) == (TEACHER_FILL, TEACHER_FILLS)
    scale = demo.LR_SCALES.get(tea.name, 1.0)
    expected = asdict(distill_config(epochs=demo.EPOCHS, lr=distill_config().lr * scale))
    assert tea.params["cfg"] == expected
    assert TEAConfig(**stages["colored-digits-tea-input"].params["tea"]) == TEAConfig(feature_weight=0.0)


def test_bad_values_are_refused_naming_the_field():
    for bad, match in (({"classes": "some"}, "classes"), ({"shift": -1}, "shift"), ({"feature_weight": -1}, "feature"),
                       ({"eps_log_range": (-1, -2)}, "eps_log_range"), ({"joint_norm": True}, "joint_norm"),
                       ({"bias_prior": (1, 0)}, "bias_prior"), ({"student_bn": "frozen"}, "student_bn")):
        with pytest.raises(ValueError, match=match):
            TEAConfig(**bad)
    with pytest.raises(ValueError, match="ema"):
        TrainConfig(ema=1.0)
    for bad in ((-2, -2), (), "a,-2", 1.5, True, [-2, 0.5]):
        with pytest.raises(ValueError, match="feature_layer"):
            TEAConfig(feature_layer=bad)


def test_several_feature_layers_from_python_text_and_a_runs_json():
    assert TEAConfig(feature_layer=-3).feature_layer == -3
    assert TEAConfig(feature_layer=[-2]).feature_layer == -2
    assert TEAConfig(feature_layer=[-2, -4]).feature_layer == (-2, -4)  # as a run's config.json holds it
    assert TEAConfig(feature_layer="-2,-4").feature_layer == (-2, -4)
    from teakit.cli import build_parser
    a = build_parser().parse_args(["distill", "--teacher", "T", "--dataset", "colored-digits", "--out", "o",
                                    "--feature-layer=-1,-2,-3"])
    assert a.feature_layer == (-1, -2, -3)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["distill", "--teacher", "T", "--dataset", "colored-digits", "--out", "o",
                                    "--feature-layer=-1,x"])
