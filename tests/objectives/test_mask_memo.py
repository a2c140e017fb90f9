"""MaskMemo: a segmenter teacher's training masks computed once per image; every objective that runs
the live teacher gives the same loss with the memo as without it, and never uses it for validation or
augmented images."""
import pytest
import torch

from teakit.models import SmallCNN
from teakit.objectives.attention_transfer import AttentionTransfer
from teakit.objectives.feature_distill import FeatureDistillation
from teakit.objectives.kd import KD
from teakit.objectives.tea import TEA
from teakit.teachers import DebiasedTeacher, SegmenterTeacher
from teakit.teachers.segmenter import MaskMemo

K = 10
PLAIN = {"swap_backgrounds": 0.0, "recolour_backgrounds": 0.0}  # no new backgrounds (on by default)


class CountingSegmenter(torch.nn.Module):
    """Foreground where the red channel exceeds 0.5 (a mask that depends on the image); counts the images
    it has segmented."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 1, 1)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.weight[0, 0] = 20.0
            self.conv.bias.fill_(-10.0)
        self.seen = 0

    def forward(self, x):
        self.seen += x.shape[0]
        return self.conv(x)


def _teacher():
    torch.manual_seed(0)
    return SegmenterTeacher(CountingSegmenter(), SmallCNN(num_classes=K, width=4, depth=2)).freeze()


def _batch(index):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(40, 3, 16, 16, generator=g)
    index = torch.as_tensor(index)
    return {"x": x[index], "y": index % K, "index": index}


def test_memo_gives_the_teachers_masks_and_segments_each_image_once():
    teacher = _teacher()
    memo = MaskMemo.of(teacher)
    first = _batch([3, 1, 4, 1, 5])
    assert torch.equal(memo.keep(first), teacher.mask(first["x"]))
    seen = teacher.segmenter.seen
    second = _batch([5, 9, 2, 6, 3])  # 5 and 3 known, 9, 2, 6 new
    assert torch.equal(memo.keep(second), teacher.mask(second["x"]))
    assert teacher.segmenter.seen - seen == 3 + 5  # the memo's three new images, then the check's five
    assert sorted(memo.masks) == [1, 2, 3, 4, 5, 6, 9]
    assert MaskMemo.of(DebiasedTeacher(SmallCNN(num_classes=K, width=4, depth=2)).freeze()) is None
    with pytest.raises(ValueError, match="no segmenter"):
        DebiasedTeacher(SmallCNN(num_classes=K, width=4, depth=2)).freeze().classifier_input(
            first["x"], keep=memo.keep(first))


@pytest.mark.parametrize("make", [
    lambda t: TEA(t, K, feature_weight=1.0),
    lambda t: TEA(t, K, feature_weight=0.0, classes="pair"),
    lambda t: KD(t),
    lambda t: FeatureDistillation(t),
    lambda t: AttentionTransfer(t),
], ids=["tea", "tea-pair", "kd", "feature", "attention"])
def test_objectives_lose_nothing_by_the_memo(make):
    teacher = _teacher()
    torch.manual_seed(2)
    student = SmallCNN(num_classes=K, width=4, depth=2)
    batch = _batch(list(range(0, 40, 3)))
    with_memo, without = make(teacher), make(teacher)
    without.masks = None
    for _ in range(2):  # the second call reads the memo
        a, _ = with_memo(batch, student, torch.Generator().manual_seed(7))
        b, _ = without(batch, student, torch.Generator().manual_seed(7))
        assert torch.equal(a, b)
    seen = teacher.segmenter.seen
    with_memo(batch, student, torch.Generator().manual_seed(7))
    assert teacher.segmenter.seen == seen  # all known: no segmenter pass
    with_memo(batch, student, torch.Generator().manual_seed(7), train=False)
    assert teacher.segmenter.seen == seen + len(batch["x"])  # validation images are segmented anew
    assert len(with_memo.masks.masks) == len(batch["x"])  # and not memorised


@pytest.mark.parametrize("augment", [{"shift": 2}, {"permute_channels": True}])
def test_tea_does_not_use_the_memo_for_augmented_images(augment):
    teacher = _teacher()
    obj = TEA(teacher, K, feature_weight=0.0, **PLAIN, **augment)
    batch = _batch(list(range(8)))
    obj(batch, SmallCNN(num_classes=K, width=4, depth=2), torch.Generator().manual_seed(0))
    assert not obj.masks.masks


def _new_background_step(**options):
    """A segmenter teacher, a 12-image training batch, a student, and one TEA training step with
    ``options`` (generator seeded 3; no new backgrounds unless they say): ``(teacher, batch, student,
    objective, loss)``."""
    teacher = _teacher()
    batch = _batch(list(range(12)))
    torch.manual_seed(0)
    student = SmallCNN(num_classes=K, width=4, depth=2)
    obj = TEA(teacher, K, feature_weight=0.0, **{**PLAIN, **options})
    loss, _ = obj(batch, student, torch.Generator().manual_seed(3))
    return teacher, batch, student, obj, loss


def _plain_step_on(teacher, batch, x, keep, student, g):
    """The plain TEA loss on ``batch`` with images ``x``, the teacher's masks of them given as ``keep``."""
    plain = TEA(teacher, K, feature_weight=0.0, **PLAIN)
    plain.masks.masks.update(zip(batch["index"].tolist(), keep))
    return plain({**batch, "x": x}, student, g)[0]


def test_swap_backgrounds_cuts_with_the_memos_masks_and_trains_on_the_composites():
    from teakit.data.augment import background_partners, swap_backgrounds

    teacher, batch, student, obj, loss = _new_background_step(swap_backgrounds=1.0)
    assert teacher.segmenter.seen == 12  # the originals, once; the composites are never segmented
    # the same step written out: partners first from the step's generator, the composites cut by the
    # original images' masks, and the teacher keeps those masks for the composites
    g = torch.Generator().manual_seed(3)
    keep = teacher.mask(batch["x"])
    swapped = swap_backgrounds(batch["x"], keep, background_partners(12, 1.0, g))
    assert torch.allclose(loss, _plain_step_on(teacher, batch, swapped, keep, student, g))
    unchanged, _ = TEA(teacher, K, feature_weight=0.0, **PLAIN)(batch, student,
                                                                           torch.Generator().manual_seed(3))
    assert not torch.allclose(loss, unchanged)
    # validation never swaps
    val, _ = obj(batch, student, torch.Generator().manual_seed(3), train=False)
    val0, _ = TEA(teacher, K, feature_weight=0.0, **PLAIN)(batch, student,
                                                                      torch.Generator().manual_seed(3), train=False)
    assert torch.equal(val, val0)
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        TEA(teacher, K, swap_backgrounds=2.0)


def test_synthetic_backgrounds_paint_dead_leaves_behind_the_memos_masks():
    from teakit.data.augment import colour_layouts, dead_leaves, paste

    teacher, batch, student, obj, loss = _new_background_step(synthetic_backgrounds=0.5)
    assert teacher.segmenter.seen == 12
    # written out: the rows, then the layouts picked from the fixed bank, then their colours
    g = torch.Generator().manual_seed(3)
    keep = teacher.mask(batch["x"])
    rows = torch.rand(12, generator=g) < 0.5
    bank = dead_leaves(256, 16, 16, generator=torch.Generator().manual_seed(0))
    assert torch.equal(obj.backgrounds.bank(16, 16), bank)
    pick = torch.randint(256, (int(rows.sum()),), generator=g)
    x = paste(batch["x"], keep, rows, colour_layouts(bank[pick], batch["x"], g))
    assert torch.allclose(loss, _plain_step_on(teacher, batch, x, keep, student, g))
    with pytest.raises(ValueError, match="needs a segmenter teacher"):
        TEA(DebiasedTeacher(SmallCNN(num_classes=K, width=4, depth=2)).freeze(), K, synthetic_backgrounds=0.5)


def test_new_backgrounds_are_the_default_where_they_apply_and_off_where_they_cannot():
    """By default half the training images of a live segmenter teacher get another image's background, and
    half get their background recoloured; a teacher without a segmenter (no mask to cut with) and a heatmap
    cache (maps of the unchanged images) train as without them, and the objective's config records them
    off."""
    from teakit.config import TEAConfig

    assert TEAConfig().swap_backgrounds == TEAConfig().recolour_backgrounds == 0.5
    _, batch, student, obj, loss = _new_background_step(swap_backgrounds=0.5, recolour_backgrounds=0.5)
    default = TEA(_teacher(), K, feature_weight=0.0)
    assert default.config()["swap_backgrounds"] == default.config()["recolour_backgrounds"] == 0.5
    assert torch.equal(default(batch, student, torch.Generator().manual_seed(3))[0], loss)

    torch.manual_seed(1)
    plain = DebiasedTeacher(SmallCNN(num_classes=K, width=4, depth=2)).freeze()
    off, on = TEA(plain, K, feature_weight=0.0, **PLAIN), TEA(plain, K, feature_weight=0.0)
    assert on.config()["swap_backgrounds"] == on.config()["recolour_backgrounds"] == 0.0
    assert torch.equal(on(batch, student, torch.Generator().manual_seed(3))[0],
                       off(batch, student, torch.Generator().manual_seed(3))[0])
    cached = TEA(_teacher(), K, feature_weight=0.0, cache=object(), cache_logits=object())
    assert cached.config()["swap_backgrounds"] == cached.config()["recolour_backgrounds"] == 0.0
    assert cached.config()["cache"]


def test_recolour_backgrounds_mirrors_and_reorders_behind_the_memos_masks():
    from teakit.data.augment import random_channel_orders, recolour

    teacher, batch, student, obj, loss = _new_background_step(recolour_backgrounds=0.5)
    assert teacher.segmenter.seen == 12  # the composites are never segmented
    # written out: the rows, each row's channel order, then its inversion flag
    g = torch.Generator().manual_seed(3)
    keep = teacher.mask(batch["x"])
    rows = torch.rand(12, generator=g) < 0.5
    n = int(rows.sum())
    orders, invert = random_channel_orders(n, 3, g), torch.rand(n, generator=g) < 0.5
    assert 0 < n < 12 and bool(invert.any())
    x = torch.where(keep, batch["x"], batch["x"])
    x[rows] = torch.where(keep[rows], batch["x"][rows], recolour(batch["x"], rows, orders, invert))
    assert not torch.equal(x, batch["x"])
    assert torch.allclose(loss, _plain_step_on(teacher, batch, x, keep, student, g))


def test_kd_takes_one_draw_of_the_teachers_fill_a_step():
    """The teacher's decision averages many draws of its noise fill; KD's per-step targets are one draw's,
    as TEA's maps are (the default's cost, not 16 teacher passes a step)."""
    teacher = _teacher()
    assert teacher.fills > 1
    torch.manual_seed(2)
    student = SmallCNN(num_classes=K, width=4, depth=2)
    batch = _batch(list(range(8)))
    many, _ = KD(teacher)(batch, student, torch.Generator().manual_seed(7))
    teacher.fills = 1
    one, _ = KD(teacher)(batch, student, torch.Generator().manual_seed(7))
    assert torch.equal(many, one)
