"""Test-wide settings: one torch thread per process (the suite runs on 2 shared
cores; more threads than free cores makes small CPU kernels much slower)."""
import torch

torch.set_num_threads(1)
