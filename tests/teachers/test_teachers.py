"""teakit.teachers: background fills, segmenter and debiased teachers, freezing."""
import pytest
import torch
import torch.nn as nn
from disk_fixtures import disk_images

import teakit
from teakit.models import (
    SmallCNN,
    UNet,
)
from teakit.teachers import (
    FILLS,
    DebiasedTeacher,
    SegmenterTeacher,
    Teacher,
    dice_bce_loss,
    fill_background,
)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


class FixedMaskSegmenter(nn.Module):
    """Returns logits +10 inside a fixed mask and -10 outside, for any batch size."""

    def __init__(self, mask):
        super().__init__()
        self.register_buffer("mask", mask)  # (1, 1, H, W) bool
        self.dummy = nn.Parameter(torch.zeros(()))  # so freeze() has something to freeze

    def forward(self, x):
        logits = torch.where(self.mask, 10.0, -10.0) + 0 * self.dummy
        return logits.expand(x.shape[0], 1, *x.shape[2:])


def _same_map(R, expected):
    """A frozen teacher's map against the plain classifier's: the teacher explains a copy with its
    BatchNorm folded into the convolutions (teakit.explain.fold), equal up to float32 rounding."""
    torch.testing.assert_close(R, expected, rtol=1e-3, atol=1e-4 * expected.abs().max().item())


def _square_mask(side=32):
    m = torch.zeros(1, 1, side, side, dtype=torch.bool)
    m[..., 8:20, 10:24] = True
    return m


def test_dice_bce_loss_values():
    _, mask = disk_images(n=4, side=16, seed=1)
    perfect = torch.where(mask, 30.0, -30.0)
    assert dice_bce_loss(perfect, mask).item() < 1e-4
    assert dice_bce_loss(perfect, mask.float()).item() < 1e-4
    inverted = dice_bce_loss(-perfect, mask).item()
    assert inverted > 5.0  # BCE alone is ~15 per pixel for confident wrong logits
    assert dice_bce_loss(torch.zeros_like(perfect), mask).item() > 0.3
    with pytest.raises(ValueError, match="shape"):
        dice_bce_loss(perfect[:, :, :8], mask)


@pytest.mark.parametrize("fill", FILLS)
def test_fill_background_keeps_foreground_bit_identical(fill):
    x, keep = disk_images(n=3, side=32, seed=2)
    out = fill_background(x, keep, fill, generator=_gen(0))
    k = keep.expand_as(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.equal(out[k], x[k])
    assert not torch.equal(out[~k], x[~k])


def test_fill_background_values():
    x, keep = disk_images(n=3, side=32, seed=3)
    bg = ~keep.expand_as(x)

    noise = fill_background(x, keep, "noise", generator=_gen(5))
    assert (noise[bg] >= 0).all() and (noise[bg] < 1).all()
    assert torch.equal(noise, fill_background(x, keep, "noise", generator=_gen(5)))
    assert not torch.equal(noise, fill_background(x, keep, "noise", generator=_gen(6)))
    assert torch.equal(noise, fill_background(x, keep, generator=_gen(5)))  # noise is the default

    zero = fill_background(x, keep, "zero")
    assert (zero[bg] == 0).all()

    mean = fill_background(x, keep, "mean")
    expected = x.mean(dim=(2, 3), keepdim=True).expand_as(x)
    torch.testing.assert_close(mean[bg], expected[bg], rtol=0, atol=0)

    # blur: a constant image stays constant; a checkerboard blurs to its mean (0.5)
    const = torch.full((1, 3, 32, 32), 0.3)
    keep1 = keep[:1]
    torch.testing.assert_close(fill_background(const, keep1, "blur"), const)
    checker = ((torch.arange(32).view(-1, 1) + torch.arange(32)) % 2).float()
    checker = checker.expand(1, 3, 32, 32)
    blurred = fill_background(checker, keep1, "blur")
    assert (blurred[~keep1.expand_as(checker)] - 0.5).abs().max() < 0.02


def test_fill_background_errors():
    x, keep = disk_images(n=2, side=16, seed=4)
    with pytest.raises(ValueError, match="fill"):
        fill_background(x, keep, "gray")
    with pytest.raises(ValueError, match="keep"):
        fill_background(x, keep.float(), "zero")
    with pytest.raises(ValueError, match="keep"):
        fill_background(x, keep.expand(-1, 3, -1, -1), "zero")


@pytest.mark.parametrize("fill", ["noise", "zero"])
def test_segmenter_teacher_classifies_and_explains_filled_image(fill):
    torch.manual_seed(0)
    known = _square_mask(32)
    classifier = SmallCNN(num_classes=5, width=4, depth=2)
    teacher = SegmenterTeacher(FixedMaskSegmenter(known), classifier, fill=fill, heatmap_of="masked").freeze()
    x = torch.rand(3, 3, 32, 32)
    target = torch.tensor([0, 3, 4])

    assert torch.equal(teacher.mask(x), known.expand(3, 1, 32, 32))
    filled = fill_background(x, known.expand(3, 1, 32, 32), fill, generator=_gen(7))
    assert torch.equal(teacher.masked(x, generator=_gen(7)), filled)
    assert torch.equal(teacher(x, generator=_gen(7), fills=1), classifier(filled))

    expected = teakit.explain(classifier, filled, target, "lrp", eps=0.05)
    heatmap = teacher.heatmap(x, target, eps=0.05, generator=_gen(7))
    _same_map(heatmap, expected)
    assert not heatmap.requires_grad
    h2, logits = teacher.heatmap_and_logits(x, target, eps=0.05, generator=_gen(7))
    _same_map(h2, expected)
    torch.testing.assert_close(logits, classifier(filled))


def test_segmenter_teacher_averages_its_logits_over_draws_of_the_noise_fill():
    torch.manual_seed(0)
    known = _square_mask(16)
    classifier = SmallCNN(num_classes=5, width=4, depth=2).eval()
    teacher = SegmenterTeacher(FixedMaskSegmenter(known), classifier, fills=3).freeze()
    assert teacher.decision_config() == {"fills": 3}
    x = torch.rand(4, 3, 16, 16)
    keep = known.expand(1, 1, 16, 16)

    def by_hand(i):  # image i alone: its three draws from its own generator, one after the other
        g = _gen(100 + i)
        fills = [torch.where(keep, x[i:i + 1], torch.rand(1, 3, 16, 16, generator=g)) for _ in range(3)]
        return torch.stack([classifier(f)[0] for f in fills]).mean(0)

    with torch.no_grad():
        expected = torch.stack([by_hand(i) for i in range(4)])
        got = teacher(x, generator=[_gen(100 + i) for i in range(4)])
        torch.testing.assert_close(got, expected)
        # an image's logits do not depend on the batch it is in
        torch.testing.assert_close(teacher(x[2:], generator=[_gen(102), _gen(103)]), expected[2:])
        # fills=1 is the first draw alone, which the heatmap's logits are
        first = teacher(x, generator=[_gen(100 + i) for i in range(4)], fills=1)
        assert not torch.allclose(first, expected)
        _, logits = teacher.heatmap_and_logits(x, torch.zeros(4, dtype=torch.long), generator=[_gen(100 + i)
                                                                                              for i in range(4)])
        torch.testing.assert_close(logits, first)
    # a deterministic fill draws once, whatever is asked; a count that is not a positive integer is refused
    assert SegmenterTeacher(FixedMaskSegmenter(known), classifier, fill="zero", fills=8).fills == 1
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="fills"):
            SegmenterTeacher(FixedMaskSegmenter(known), classifier, fills=bad)


def test_segmenter_teacher_input_heatmap_drops_fill_relevance():
    torch.manual_seed(0)
    known = _square_mask(32)
    classifier = SmallCNN(num_classes=5, width=4, depth=2)
    x = torch.rand(3, 3, 32, 32)
    target = torch.tensor([0, 3, 4])
    masked = SegmenterTeacher(FixedMaskSegmenter(known), classifier, heatmap_of="masked").freeze()
    to_input = SegmenterTeacher(FixedMaskSegmenter(known), classifier).freeze()  # the default
    R = masked.heatmap(x, target, eps=0.05, generator=_gen(7))
    R_in, logits = to_input.heatmap_and_logits(x, target, eps=0.05, generator=_gen(7))
    keep = known.expand_as(R)
    assert R[~keep].abs().sum() > 0  # the noise fill does carry relevance in the classifier's map
    assert torch.equal(R_in[keep], R[keep]) and R_in[~keep].abs().max() == 0
    torch.testing.assert_close(logits, masked(x, generator=_gen(7), fills=1))
    # a map repeated over several classes (TEA's pair/all modes) gets the mask of its own image
    gate = to_input.explained_input(x, generator=_gen(7))[1]
    torch.testing.assert_close(to_input.input_relevance(R.repeat(2, 1, 1, 1), gate), R_in.repeat(2, 1, 1, 1))
    assert masked.explained_input(x, generator=_gen(7))[1] is None
    # independent check: LRP gives a zero pixel no relevance, so with a zero fill both maps agree
    zero = SegmenterTeacher(FixedMaskSegmenter(known), classifier, fill="zero", heatmap_of="masked").freeze()
    zero_in = SegmenterTeacher(FixedMaskSegmenter(known), classifier, fill="zero", heatmap_of="input").freeze()
    torch.testing.assert_close(zero.heatmap(x, target, 0.05), zero_in.heatmap(x, target, 0.05), rtol=0, atol=0)
    assert masked.map_config()["heatmap_of"] == "masked" and to_input.map_config()["heatmap_of"] == "input"
    with pytest.raises(ValueError, match="heatmap_of"):
        SegmenterTeacher(FixedMaskSegmenter(known), classifier, heatmap_of="outside")


@pytest.mark.parametrize("heatmap_of", ["masked", "input"])
def test_heatmaps_all_equals_heatmap_per_class_and_eps(heatmap_of):
    torch.manual_seed(0)
    classifier = SmallCNN(num_classes=4, width=4, depth=2)
    teacher = SegmenterTeacher(FixedMaskSegmenter(_square_mask(32)), classifier, heatmap_of=heatmap_of).freeze()
    x = torch.rand(2, 3, 32, 32)
    eps_values = [0.01, 0.1]
    maps = teacher.heatmaps_all(x, 4, eps_values, generator=_gen(3))
    assert maps.shape == (2, 4, 2, 3, 32, 32)
    for k in range(4):
        for e, eps in enumerate(eps_values):  # the same generator state: the same noise fill
            ref = teacher.heatmap(x, torch.full((2,), k), eps, generator=_gen(3))
            torch.testing.assert_close(maps[:, k, e], ref, rtol=1e-5, atol=1e-7)
    assert not torch.allclose(maps[:, 0, 0], maps[:, 1, 0])


def test_cache_of_another_teacher_heatmap_kind_is_refused(tmp_path):
    import teakit.commands as C
    from teakit.teachers.cache import eps_grid

    data = C.load_data("digits-on-scenes", limit=16)["train"]
    side = data.x.shape[-1]
    classifier = SmallCNN(num_classes=10, width=4, depth=2)
    masked = SegmenterTeacher(FixedMaskSegmenter(_square_mask(side)), classifier, heatmap_of="masked").freeze()
    to_input = SegmenterTeacher(FixedMaskSegmenter(_square_mask(side)), classifier, heatmap_of="input").freeze()
    C.teacher_cache(masked, data, tmp_path / "cache", eps_grid(2), progress=False)
    with pytest.raises(ValueError, match="teacher_maps"):
        C.teacher_cache(to_input, data, tmp_path / "cache", eps_grid(2), progress=False)
    cache, _ = C.teacher_cache(to_input, data, tmp_path / "cache_input", eps_grid(2), progress=False)
    maps = cache.get(torch.arange(4), torch.zeros(4, dtype=torch.long), torch.zeros(4, dtype=torch.long))
    assert maps[~_square_mask(side).expand_as(maps)].abs().max() == 0 and maps.abs().sum() > 0


def test_segmenter_teacher_validation():
    seg = FixedMaskSegmenter(_square_mask(32))
    clf = SmallCNN(num_classes=2, width=4, depth=2)
    with pytest.raises(ValueError, match="threshold"):
        SegmenterTeacher(seg, clf, threshold=1.5)
    with pytest.raises(ValueError, match="fill"):
        SegmenterTeacher(seg, clf, fill="gray")
    bad = SegmenterTeacher(UNet(out_channels=2, base=4), clf)
    with pytest.raises(ValueError, match="segmenter"):
        bad.mask(torch.rand(1, 3, 32, 32))


def test_debiased_teacher_matches_classifier():
    torch.manual_seed(0)
    classifier = SmallCNN(num_classes=4, width=4, depth=2)
    teacher = DebiasedTeacher(classifier).freeze()
    x = torch.rand(2, 3, 16, 16)
    target = torch.tensor([1, 2])
    assert torch.equal(teacher(x), classifier(x))
    expected = teakit.explain(classifier, x, target, "lrp", eps=0.01)
    _same_map(teacher.heatmap(x, target, 0.01), expected)
    h, logits = teacher.heatmap_and_logits(x, target, 0.01, generator=_gen(0))
    _same_map(h, expected)
    torch.testing.assert_close(logits, classifier(x))


def test_teachers_freeze():
    seg = FixedMaskSegmenter(_square_mask(16))
    teachers = [SegmenterTeacher(seg, SmallCNN(num_classes=2, width=4, depth=2)),
                DebiasedTeacher(SmallCNN(num_classes=2, width=4, depth=2))]
    for teacher in teachers:
        assert isinstance(teacher, Teacher)
        assert teacher.training and not teacher.frozen  # construction alone does not freeze
        assert all(p.requires_grad for p in teacher.parameters())
        assert teacher.freeze() is teacher
        assert teacher.frozen and not teacher.training
        assert all(not m.training for m in teacher.modules())
        assert all(not p.requires_grad for p in teacher.parameters())
        teacher.train()  # a frozen teacher stays in eval mode
        assert all(not m.training for m in teacher.modules())
    assert not any(p.requires_grad for p in seg.parameters())


def test_paste_onto_others_by_hand():
    from teakit.objectives.segmentation import paste_onto_others
    x = torch.arange(3, dtype=torch.float32).view(3, 1, 1, 1).expand(3, 2, 2, 2).clone()   # image i is all i
    mask = torch.zeros(3, 1, 2, 2, dtype=torch.bool)
    mask[0, 0, 0, 0] = mask[1, 0, 1, 1] = mask[2, 0, 0, 1] = True
    px, pm = paste_onto_others(x, mask, torch.tensor([True, False, True]))
    # image 0 over image 2 (the previous, cyclically): its foreground pixel kept, the rest image 2's
    assert px[0, :, 0, 0].tolist() == [0, 0] and (px[0].flatten()[1:4] == 2).all()
    assert pm[0, 0].tolist() == [[True, True], [False, False]]          # union with image 2's mask
    assert torch.equal(px[1], x[1]) and torch.equal(pm[1], mask[1])      # not chosen: unchanged
    assert px[2, 0].tolist() == [[1, 2], [1, 1]] and pm[2, 0].tolist() == [[False, True], [False, True]]


def test_segmentation_paste_trains_on_composites_and_validation_logs_pasted_iou():
    from teakit.objectives.segmentation import Segmentation
    x, mask = torch.rand(4, 3, 8, 8), torch.rand(4, 1, 8, 8) > 0.7
    seen = []

    def model(inp):
        seen.append(inp.clone())
        return torch.zeros(inp.shape[0], 1, *inp.shape[2:])
    g = torch.Generator().manual_seed(0)
    Segmentation(paste=1.0)({"x": x, "mask": mask}, model, g, train=True)
    assert not torch.equal(seen[-1], x)                                   # every image composited
    _, logs = Segmentation(paste=0.0)({"x": x, "mask": mask}, model, g, train=True)
    assert torch.equal(seen[-1], x) and "iou_pasted" not in logs
    _, logs = Segmentation()({"x": x, "mask": mask}, model, g, train=False)
    assert "iou_pasted" in logs and torch.equal(seen[-1], x)              # the plain loss on the plain images
    with pytest.raises(ValueError, match="paste"):
        Segmentation(paste=1.5)


def _segmentation_inputs(n: int):
    """n random 8x8 images, their masks, and a U-Net stand-in that records what it sees (a list)."""
    gx = torch.Generator().manual_seed(1)
    x, mask = torch.rand(n, 3, 8, 8, generator=gx), torch.rand(n, 1, 8, 8, generator=gx) > 0.6
    seen = []

    def model(inp):
        seen.append(inp.clone())
        return torch.zeros(inp.shape[0], 1, *inp.shape[2:])
    return x, mask, seen, model


def test_segmentation_swap_and_recolour_train_on_new_backgrounds_with_the_true_masks():
    from teakit.data.augment import background_partners, recolour_backgrounds, swap_backgrounds
    from teakit.objectives.segmentation import Segmentation
    x, mask, seen, model = _segmentation_inputs(5)
    Segmentation(swap=1.0, recolour=0.5)({"x": x, "mask": mask}, model, torch.Generator().manual_seed(2), train=True)
    g = torch.Generator().manual_seed(2)     # the same draws, in the documented order
    want = swap_backgrounds(x, mask, background_partners(5, 1.0, g))
    want = recolour_backgrounds(want, mask, 0.5, g)
    assert torch.equal(seen[-1], want) and not torch.equal(want, x)
    # the loss's target stays the true mask: a model that predicts it exactly has the lowest loss
    exact = Segmentation(swap=1.0, recolour=0.5)(
        {"x": x, "mask": mask}, lambda inp: (mask.float() * 40 - 20), torch.Generator().manual_seed(2))[0]
    assert exact.item() < 1e-3
    for name in ("swap", "recolour"):
        with pytest.raises(ValueError, match=f"--seg-{name}"):
            Segmentation(**{name: -0.1})


def test_segmentation_synthetic_backgrounds_paint_dead_leaves_after_the_swap():
    from teakit.data.augment import background_partners, colour_layouts, dead_leaves, paste, swap_backgrounds
    from teakit.objectives.segmentation import Segmentation
    x, mask, seen, model = _segmentation_inputs(6)
    seg = Segmentation(swap=0.5, synthetic=0.5)
    assert seg.config()["synthetic"] == 0.5
    seg({"x": x, "mask": mask}, model, torch.Generator().manual_seed(2), train=True)
    g = torch.Generator().manual_seed(2)     # written out: the swap's draws, then the rows, layouts and colours
    want = swap_backgrounds(x, mask, background_partners(6, 0.5, g))
    rows = torch.rand(6, generator=g) < 0.5
    bank = dead_leaves(256, 8, 8, generator=torch.Generator().manual_seed(0))
    pick = torch.randint(256, (int(rows.sum()),), generator=g)
    want = paste(want, mask, rows, colour_layouts(bank[pick], want, g))
    assert torch.equal(seen[-1], want) and 0 < int(rows.sum()) < 6
    assert torch.equal(seen[-1][~mask.expand_as(x)], want[~mask.expand_as(x)])
    assert torch.equal(seen[-1][mask.expand_as(x)], x[mask.expand_as(x)])  # foregrounds untouched
    with pytest.raises(ValueError, match="--seg-synthetic"):
        Segmentation(synthetic=1.5)


def test_foreign_iou_against_a_loop_over_scenes_and_images():
    from teakit.data.foreign_scenes import FOREIGN_SCENES, foreign_composites
    from teakit.objectives.segmentation import foreign_iou
    g = torch.Generator().manual_seed(3)
    x, mask = torch.rand(5, 3, 8, 8, generator=g), torch.rand(5, 1, 8, 8, generator=g) > 0.5

    def segment(inp):             # a segmenter that marks bright pixels
        return inp.mean(1, keepdim=True) > 0.5
    composites = foreign_composites(x, mask)
    ious = []
    for k in range(len(FOREIGN_SCENES)):
        for b in range(5):
            pred, true = segment(composites[k * 5 + b:k * 5 + b + 1])[0, 0], mask[b, 0]
            inter = sum(bool(pred[i, j] and true[i, j]) for i in range(8) for j in range(8))
            union = sum(bool(pred[i, j] or true[i, j]) for i in range(8) for j in range(8))
            ious.append(inter / max(union, 1))
    got = foreign_iou(segment, x, mask, batch_size=3)
    assert got == pytest.approx(sum(ious) / len(ious), abs=1e-6) and 0 < got < 1
    # a segmenter that finds every true mask (one batch of all 4 x 5 composites) scores 1
    assert foreign_iou(lambda inp: mask.repeat(len(FOREIGN_SCENES), 1, 1, 1), x, mask, batch_size=20) == 1.0


class _HalfSegmenter(torch.nn.Module):
    """A U-Net stand-in that finds the left half of every image (logits ±20)."""

    def forward(self, x):
        logits = torch.full((x.shape[0], 1, *x.shape[2:]), -20.0)
        logits[..., : x.shape[-1] // 2] = 20.0
        return logits


def test_erm_classifier_on_the_segmenters_own_masks_after_new_backgrounds():
    from teakit.data.augment import background_partners, recolour_backgrounds, swap_backgrounds
    from teakit.objectives.erm import ERM
    gx = torch.Generator().manual_seed(4)
    x, mask = torch.rand(5, 3, 8, 8, generator=gx), torch.rand(5, 1, 8, 8, generator=gx) > 0.6
    y, left = torch.arange(5) % 2, torch.zeros(5, 1, 8, 8, dtype=torch.bool)
    left[..., :4] = True
    seen = []

    def student(inp):
        seen.append(inp.clone())
        return torch.zeros(inp.shape[0], 2, requires_grad=True)
    batch = {"x": x, "mask": mask, "y": y}
    obj = ERM(fill="zero", segmenter=_HalfSegmenter(), swap=1.0, recolour=0.5)
    obj(batch, student, torch.Generator().manual_seed(2), train=True)
    g = torch.Generator().manual_seed(2)     # the same draws: swap, then recolour, cut by the true mask
    composite = recolour_backgrounds(swap_backgrounds(x, mask, background_partners(5, 1.0, g)), mask, 0.5, g)
    assert not torch.equal(composite, x)
    # then the segmenter's mask (the left half), not the true one, says what is filled
    assert torch.equal(seen[-1], torch.where(left, composite, torch.zeros(())))
    # validation: the images as they are, still cut by the segmenter's mask
    obj(batch, student, torch.Generator().manual_seed(2), train=False)
    assert torch.equal(seen[-1], torch.where(left, x, torch.zeros(())))
    # without a segmenter: the true mask
    ERM(fill="zero")(batch, student, torch.Generator().manual_seed(2))
    assert torch.equal(seen[-1], torch.where(mask, x, torch.zeros(())))
    assert ERM(fill="zero", segmenter=_HalfSegmenter()).config() == {
        "name": "erm", "fill": "zero", "masks": "segmenter", "threshold": 0.5, "swap": 0.0, "recolour": 0.0}
    assert ERM(fill="noise").config() == {"name": "erm", "fill": "noise"}
    with pytest.raises(ValueError, match="need a segmenter"):
        ERM(fill="zero", swap=0.5)
    with pytest.raises(ValueError, match="give fill"):
        ERM(segmenter=_HalfSegmenter())
    with pytest.raises(ValueError, match="recolour=2"):
        ERM(fill="zero", segmenter=_HalfSegmenter(), recolour=2)
