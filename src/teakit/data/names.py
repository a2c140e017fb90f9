"""The names of the datasets, and the choices of how images on disk are read.

The one list of every dataset name: the command line offers these, and
:func:`teakit.data.load.load_data` dispatches on them.  Free of imports, so
that ``tea --help`` stays fast.

``BUILTIN``: the benchmarks built in memory (:func:`teakit.data.load_builtin`);
``HELD_OUT``: those of them that no recipe choice may look at.
``DISK_DATASETS``: the datasets read from a folder (``--data-root``,
:func:`teakit.data.load.read_disk_dataset`).
``COLOR_MODES`` (:mod:`teakit.data.decode`) and ``NORMALIZE_MODES``
(:mod:`teakit.data.normalize`): the values of ``--color`` and ``--normalize``.
"""
BUILTIN = ("colored-digits", "digits-on-scenes", "glyphs-on-places", "phantom-xrays", "letters-on-scenes")
# built-in benchmarks kept as held-out tests of the recipe (`tea study lobo --held-out`): no demo, no choice
HELD_OUT = ("letters-on-scenes",)
DISK_DATASETS = ("colored-mnist", "folder", "waterbirds", "xray", "coco-on-places")
DATASETS = BUILTIN + DISK_DATASETS
COLOR_MODES = ("rgb", "gray")
NORMALIZE_MODES = ("none", "imagenet", "dataset")
