"""Test-wide settings and shared fixtures.  One torch thread per process (the
suite runs on 2 shared cores; more threads than free cores makes small CPU
kernels much slower)."""
import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def teacher_dir(tmp_path_factory):
    """A debiased colored-digits teacher, 2 epochs on 256 images (read-only for tests)."""
    from teakit import commands as C
    from teakit.train import TrainConfig

    out = tmp_path_factory.mktemp("teacher")
    C.train_teacher("colored-digits", "debiased", out, cfg=TrainConfig(epochs=2, lr=3e-3),
                    data_options={"limit": 256}, progress=False)
    return out


@pytest.fixture
def make_tiny_student():
    """A factory of 4-channel one-conv ReLU classifiers for 3-channel images and 10 classes."""
    def make():
        return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
                                   torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 10))
    return make


@pytest.fixture
def tea_cli(capsys):
    """Run the `tea` command line in-process: ``tea_cli(["distill", ...])`` -> (exit code, stdout + stderr)."""
    from teakit.cli import main

    def run(args):
        try:
            rc = main(list(args))
        except SystemExit as e:
            rc = e.code
        out = capsys.readouterr()
        return rc, out.out + out.err
    return run
