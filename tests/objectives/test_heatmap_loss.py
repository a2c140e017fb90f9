"""The TEA loss against a slow, literal implementation of its definition."""
import math

import pytest
import torch

from teakit import heatmap_loss
from teakit.objectives.heatmap_loss import pyramid_levels


def slow_loss(S, T, min_side=8):
    total = 0.0
    B = S.shape[0]
    for b in range(B):
        levels, k = [], 1
        while min(S.shape[-2:]) // k >= min_side or k == 1:
            Sk = torch.nn.functional.avg_pool2d(S[b:b + 1], k) if k > 1 else S[b:b + 1]
            Tk = torch.nn.functional.avg_pool2d(T[b:b + 1], k) if k > 1 else T[b:b + 1]
            n = Sk.numel()
            mS = sum(abs(v) for v in Sk.flatten().tolist()) / n
            mT = sum(abs(v) for v in Tk.flatten().tolist()) / n
            g = math.sqrt(mS) * math.sqrt(mT) + 1e-10
            levels.append(sum(abs(s / g - t / g) for s, t in zip(Sk.flatten().tolist(), Tk.flatten().tolist())) / n)
            k *= 2
        total += sum(levels) / len(levels)
    return total / B


def test_pyramid_levels():
    assert pyramid_levels(28) == 2     # 28, 14
    assert pyramid_levels(32) == 3     # 32, 16, 8
    assert pyramid_levels(64) == 4
    assert pyramid_levels(7) == 1
    assert pyramid_levels(32, min_side=1) == 6


@pytest.mark.parametrize("size", [28, 32, 30])
def test_matches_slow_implementation(size):
    g = torch.Generator().manual_seed(size)
    S = torch.randn(3, 2, size, size, generator=g, dtype=torch.float64)
    T = torch.randn(3, 2, size, size, generator=g, dtype=torch.float64) * 5
    assert heatmap_loss(S, T).item() == pytest.approx(slow_loss(S, T), rel=1e-10)
    assert heatmap_loss(S, T, pyramid=False).item() == pytest.approx(slow_loss(S, T, min_side=10 ** 6), rel=1e-10)


def test_properties():
    g = torch.Generator().manual_seed(0)
    T = torch.randn(4, 3, 16, 16, generator=g)
    assert heatmap_loss(T.clone(), T).item() == pytest.approx(0.0, abs=1e-6)
    # scale matters (minimum at the teacher's scale), sign matters
    assert heatmap_loss(2 * T, T) > heatmap_loss(1.1 * T, T) > 0
    assert heatmap_loss(-T, T) > heatmap_loss(2 * T, T)
    # the cosine variant is scale-free
    assert heatmap_loss(3 * T, T, kind="cosine").item() == pytest.approx(0.0, abs=1e-6)
    # per-sample reduction
    per = heatmap_loss(torch.randn(4, 3, 16, 16, generator=g), T, reduction="none")
    assert per.shape == (4,)
    with pytest.raises(ValueError, match="shape"):
        heatmap_loss(T, T[:, :1])
    with pytest.raises(ValueError, match="kind"):
        heatmap_loss(T, T, kind="huber")


def test_teacher_is_detached_and_zero_student_map_has_finite_gradient():
    T = torch.randn(2, 1, 8, 8, requires_grad=True)
    S = torch.zeros(2, 1, 8, 8, requires_grad=True)
    heatmap_loss(S, T).backward()
    assert T.grad is None
    assert torch.isfinite(S.grad).all()


def test_joint_normalisation_matches_a_per_image_loop():
    """joint=R: maps r*B + b of image b share g = sqrt(mean_r mean|S|) * sqrt(mean_r mean|T|)."""
    import torch

    from teakit.objectives.heatmap_loss import heatmap_loss

    g = torch.Generator().manual_seed(0)
    R, B = 3, 4
    S = torch.randn(R * B, 2, 8, 8, generator=g, dtype=torch.float64)
    T = torch.randn(R * B, 2, 8, 8, generator=g, dtype=torch.float64) * torch.rand(R * B, 1, 1, 1, generator=g,
                                                                                     dtype=torch.float64)
    expected = torch.zeros(R * B, dtype=torch.float64)
    for b in range(B):
        rows = [r * B + b for r in range(R)]
        s_level, t_level = S[rows], T[rows]
        for level in range(2):  # 8x8 and 4x4 with min_side=4
            if level:
                s_level, t_level = torch.nn.functional.avg_pool2d(s_level, 2), torch.nn.functional.avg_pool2d(t_level, 2)
            gb = s_level.abs().mean().sqrt() * t_level.abs().mean().sqrt() + 1e-10
            for i, row in enumerate(rows):
                expected[row] += (s_level[i] - t_level[i]).abs().mean() / gb / 2
    got = heatmap_loss(S, T, min_side=4, joint=R, reduction="none")
    assert torch.allclose(got, expected, rtol=1e-12)
    assert not torch.allclose(heatmap_loss(S, T, min_side=4, reduction="none"), expected)
    # scaling student and teacher maps of one image by one common factor changes nothing
    scale = torch.rand(B, dtype=torch.float64).repeat(R).view(-1, 1, 1, 1) + 0.5
    assert torch.allclose(heatmap_loss(S * scale, T * scale, min_side=4, joint=R, reduction="none"), got)
    import pytest
    with pytest.raises(ValueError, match="joint=5"):
        heatmap_loss(S, T, joint=5)
    with pytest.raises(ValueError, match="joint=3"):
        heatmap_loss(S, T, joint=3, kind="cosine")


@pytest.mark.parametrize("kind", ["l1", "mse", "cosine"])
def test_all_zero_teacher_maps_are_left_out(kind):
    """A teacher map with no relevance has no scale: that sample adds nothing, not ~1e10·|S|."""
    g = torch.Generator().manual_seed(1)
    S = torch.randn(4, 2, 16, 16, generator=g, dtype=torch.float64, requires_grad=True)
    T = torch.randn(4, 2, 16, 16, generator=g, dtype=torch.float64)
    T[2] = 0
    loss = heatmap_loss(S, T, kind=kind)
    rows = [0, 1, 3]
    expected = heatmap_loss(S[rows], T[rows], kind=kind)  # the mean over the other samples only
    assert loss.item() == pytest.approx(expected.item(), rel=1e-12)
    loss.backward()
    assert torch.isfinite(S.grad).all() and S.grad[2].abs().max() == 0 and S.grad[0].abs().max() > 0
    per = heatmap_loss(S, T, kind=kind, reduction="none")
    assert per[2] == 0 and (per[rows] > 0).all()
    # nothing to match at all: zero loss, a usable (zero) gradient
    S.grad = None
    empty = heatmap_loss(S, torch.zeros_like(T), kind=kind)
    empty.backward()
    assert empty.item() == 0 and S.grad.abs().max() == 0


def test_joint_leaves_out_only_images_whose_maps_are_all_zero():
    g = torch.Generator().manual_seed(2)
    R, B = 2, 3
    S = torch.randn(R * B, 1, 8, 8, generator=g, dtype=torch.float64)
    T = torch.randn(R * B, 1, 8, 8, generator=g, dtype=torch.float64)
    T[1] = 0            # image 1, first map only: the image's joint scale is still positive
    T[2] = T[B + 2] = 0  # image 2: both maps empty
    per = heatmap_loss(S, T, joint=R, reduction="none")
    assert per[1] > 0 and per[2] == 0 and per[B + 2] == 0 and per[B + 1] > 0
    assert per.max() < 10  # no 1e10 blow-up anywhere


@pytest.mark.parametrize("kind", ["l1", "mse"])
def test_gradient_matches_finite_differences_and_keeps_a_channels_last_layout(kind):
    g = torch.Generator().manual_seed(7)
    T = torch.randn(2, 3, 8, 8, generator=g, dtype=torch.float64)
    S = torch.randn(2, 3, 8, 8, generator=g, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda S: heatmap_loss(S, T, kind=kind, min_side=4),
                                    (S.clone().requires_grad_(True),))
    S_c = S.clone().requires_grad_(True)
    (grad_c,) = torch.autograd.grad(heatmap_loss(S_c, T, kind=kind, min_side=4), S_c)
    for pyramid in (False, True):
        # the gradient as it reaches the node that made a channels-last student map (not a leaf, whose
        # gradient autograd would lay out by itself): channels-last too, since a contiguous one slows
        # the rest of the student's backward on CPU
        S_cl = S.contiguous(memory_format=torch.channels_last).requires_grad_(True)
        seen = []
        made = S_cl * 1.0
        made.register_hook(seen.append)
        heatmap_loss(made, T, kind=kind, pyramid=pyramid, min_side=4).backward()
        assert seen[0].is_contiguous(memory_format=torch.channels_last) and not seen[0].is_contiguous()
        if pyramid:
            assert torch.allclose(S_cl.grad, grad_c, rtol=1e-12, atol=0)
