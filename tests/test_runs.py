"""Building and loading models from run folders (teakit.runs): students' initial weights, the default CNN."""

import pytest
import torch

from teakit.config import CNN_DEPTH
from teakit.runs import build_from_spec, load_model


def test_a_students_initial_weights_are_its_own_unless_shared():
    """init="own": not the weights a teacher built from the same seed starts with, the same for the same
    seed, other for another, and the global random state is left alone; init="shared" draws from it."""
    from teakit.runs import build_student, default_spec
    spec = default_spec(10)

    def teacher_like(seed):  # how the loop builds a model: seed everything, then build
        torch.manual_seed(seed)
        return build_from_spec(spec).head.weight

    torch.manual_seed(0)
    state = torch.get_rng_state()
    own = build_student(spec, 0).head.weight
    assert torch.equal(torch.get_rng_state(), state)
    assert not torch.allclose(own, teacher_like(0))
    assert torch.equal(own, build_student(spec, 0).head.weight)
    assert not torch.allclose(own, build_student(spec, 1).head.weight)
    torch.manual_seed(0)
    assert torch.equal(build_student(spec, 0, init="shared").head.weight, teacher_like(0))
    with pytest.raises(ValueError, match="student init 'mine'"):
        build_student(spec, 0, init="mine")


def test_default_cnn_has_the_recipes_depth_and_old_configs_keep_theirs(teacher_dir):
    # the Python API (here the teacher fixture, built without a spec) writes the depth into the config
    model, config = load_model(teacher_dir / "classifier")
    assert config["model"]["kwargs"] == {"depth": CNN_DEPTH}
    assert sum(isinstance(m, torch.nn.Conv2d) for m in model.modules()) == CNN_DEPTH
    # a config saved before the depth was recorded still builds the depth-4 network it was trained as
    old = build_from_spec({"name": "cnn", "num_classes": 10, "kwargs": {}})
    assert CNN_DEPTH != 4 and sum(isinstance(m, torch.nn.Conv2d) for m in old.modules()) == 4
