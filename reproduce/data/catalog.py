"""The datasets the papers use: where they come from and how they are checked.

Every checksum here was taken from an authoritative listing, never computed by
us from a copy of unknown origin:

* CIFAR-10/100 python tarballs and SVHN ``.mat`` files: the md5s torchvision
  0.29 verifies (``torchvision/datasets/cifar.py``, ``svhn.py``).
* Places365 file lists and small-image tars: torchvision's ``places365.py``.
* CIFAR-10-C: the md5 Zenodo lists for record 2535967.
* ILSVRC-2012 train/val tars and devkit, Caltech-256's ``256_ObjectCategories.tar`` and
  Oxford Flowers-102's ``102flowers.tgz``/``imagelabels.mat``/``setid.mat``: the md5s
  torchvision 0.29.1 verifies (``torchvision/datasets/imagenet.py`` ARCHIVE_META,
  ``caltech.py`` Caltech256.download, ``flowers102.py`` _file_dict); Caltech's md5 is also
  the one data.caltech.edu lists for record nyy15-4j048.
* Downsampled ImageNet (Chrabaszcz et al. 2017), Carmon et al.'s TinyImages
  500k pickle and the cs231n Tiny ImageNet-200 zip: no checksum is published, so importing them requires the user to
  pass ``--sha256`` (the value of a copy they trust); it is then recorded in
  the manifest. Pickles are only unpickled after that check.

``mean``/``std`` are the per-channel statistics commonly used for each dataset;
whether a model normalizes its inputs is a method/model setting, not ours.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from ..registry import Registry


@dataclass(frozen=True)
class ArchiveFile:
    """One official file a dataset is imported from."""

    filename: str
    url: str | None = None
    md5: str | None = None
    sha256: str | None = None
    # Files that are only needed for some splits or are optional say so here.
    note: str = ""
    # Google Drive id when the official copy lives there (download needs gdown).
    gdrive_id: str | None = None

    @property
    def has_checksum(self) -> bool:
        return bool(self.md5 or self.sha256)


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    title: str
    num_classes: int
    image_size: int
    channels: int
    splits: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    licence: str
    homepage: str
    importer: str
    archives: tuple[ArchiveFile, ...] = ()
    classes: tuple[str, ...] | None = None
    # Expected number of images per split; the importer refuses other counts.
    split_sizes: Mapping[str, int] = field(default_factory=dict)
    # Whether `--download` can fetch the archives without a login.
    downloadable: bool = False
    # How the archives are handed to `data import` (shown in error messages).
    import_hint: str = "--from-archive PATH"
    derived_from: str | None = None
    # Parameters of the importer that are part of the dataset's definition
    # (class split seed, resize method, ...); copied into the manifest.
    params: Mapping[str, object] = field(default_factory=dict)
    notes: str = ""
    # Made by its importer from ``params`` alone (no files, no download), at every scale.
    generated: bool = False
    # "array": uint8 .npy splits batched on the device (reproduce/data/loader.py); "jpeg":
    # full-resolution JPEG files streamed by workers (reproduce/data/fullres.py, stream.py)
    storage: str = "array"

    @property
    def eval_split(self) -> str | None:
        """The labelled held-out split evaluations use: ``test``, else ``val``.

        ImageNet-derived sets and Places365 publish no labelled test images, so
        their ``val`` split plays that role; a run naming ``test`` for them is an error.
        """
        return next((s for s in ("test", "val") if s in self.splits), None)

    def archive(self, filename: str) -> ArchiveFile:
        for a in self.archives:
            if a.filename == filename:
                return a
        raise KeyError(filename)

    def source_text(self) -> str:
        files = ", ".join(a.filename for a in self.archives)
        return f"{self.homepage}" + (f" (files: {files})" if files else "")


DATASETS: Registry[DatasetInfo] = Registry("dataset")


def _add(info: DatasetInfo) -> DatasetInfo:
    assert len(info.mean) == len(info.std) == info.channels, info.name
    assert info.classes is None or len(info.classes) == info.num_classes, info.name
    return DATASETS.add(info.name, info)


CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip

# The order of `fine_label_names` in the official meta file (alphabetical).
CIFAR100_CLASSES = tuple(
    """apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy
    bridge bus butterfly camel can castle caterpillar cattle chair chimpanzee clock
    cloud cockroach couch crab crocodile cup dinosaur dolphin elephant flatfish
    forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion
    lizard lobster man maple_tree motorcycle mountain mouse mushroom oak_tree orange
    orchid otter palm_tree pear pickup_truck pine_tree plain plate poppy porcupine
    possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk skyscraper
    snail snake spider squirrel streetcar sunflower sweet_pepper table tank
    telephone television tiger tractor train trout tulip turtle wardrobe whale
    willow_tree wolf woman worm""".split()
)

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2471, 0.2435, 0.2616)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# The 15 benchmark corruptions plus the 4 held-out ones shipped in the tar.
CIFAR10C_CORRUPTIONS = (
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur",
    "glass_blur", "motion_blur", "zoom_blur", "snow", "frost", "fog",
    "brightness", "contrast", "elastic_transform", "pixelate",
    "jpeg_compression", "speckle_noise", "gaussian_blur", "spatter", "saturate",
)  # fmt: skip
CIFAR10C_SEVERITIES = (1, 2, 3, 4, 5)

_TORONTO = "https://www.cs.toronto.edu/~kriz/"
_SVHN = "http://ufldl.stanford.edu/housenumbers/"
_PLACES = "http://data.csail.mit.edu/places/places365/"
_DOWNSAMPLE = "https://image-net.org/data/downsample/"
_NO_SHA = (
    "no checksum is published for this file; pass --sha256 with the value of a "
    "copy you trust (`sha256sum FILE`)"
)

_add(
    DatasetInfo(
        name="cifar10",
        title="CIFAR-10",
        num_classes=10,
        image_size=32,
        channels=3,
        splits=("train", "test"),
        split_sizes={"train": 50_000, "test": 10_000},
        mean=CIFAR10_MEAN,
        std=CIFAR10_STD,
        classes=CIFAR10_CLASSES,
        licence="free for research use with citation (Krizhevsky, 2009)",
        homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
        importer="cifar",
        archives=(
            ArchiveFile(
                "cifar-10-python.tar.gz",
                url=_TORONTO + "cifar-10-python.tar.gz",
                md5="c58f30108f718f92721af3b95e74349a",
            ),
        ),
        downloadable=True,
        import_hint="--from-archive cifar-10-python.tar.gz | --from-folder DIR (image tree train/<class>/, test/<class>/)",
        params={
            "batch_md5": {
                "data_batch_1": "c99cafc152244af753f735de768cd75f",
                "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
                "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
                "data_batch_4": "634d18415352ddfa80567beed471001a",
                "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
                "test_batch": "40351d587109b95175f43aff81a1287e",
                "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
            }
        },
    )
)

_add(
    DatasetInfo(
        name="cifar100",
        title="CIFAR-100 (fine labels)",
        num_classes=100,
        image_size=32,
        channels=3,
        splits=("train", "test"),
        split_sizes={"train": 50_000, "test": 10_000},
        mean=(0.5071, 0.4865, 0.4409),
        std=(0.2673, 0.2564, 0.2762),
        classes=CIFAR100_CLASSES,
        licence="free for research use with citation (Krizhevsky, 2009)",
        homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
        importer="cifar",
        archives=(
            ArchiveFile(
                "cifar-100-python.tar.gz",
                url=_TORONTO + "cifar-100-python.tar.gz",
                md5="eb9058c3a382ffc7106e4002c42a8d85",
            ),
        ),
        downloadable=True,
        import_hint="--from-archive cifar-100-python.tar.gz | --from-folder DIR (image tree)",
        params={
            "batch_md5": {
                "train": "16019d7e3df5f24257cddd939b257f8d",
                "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
                "meta": "7973b15100ade9c7d40fb424638fde48",
            }
        },
    )
)

_add(
    DatasetInfo(
        name="svhn",
        title="SVHN (cropped digits, format 2)",
        num_classes=10,
        image_size=32,
        channels=3,
        splits=("train", "test", "extra"),
        split_sizes={"train": 73_257, "test": 26_032, "extra": 531_131},
        mean=(0.4377, 0.4438, 0.4728),
        std=(0.1980, 0.2010, 0.1970),
        # The .mat files label the digit 0 as 10; we store it as 0 (as torchvision).
        classes=tuple(str(d) for d in range(10)),
        licence="non-commercial use only (Netzer et al., 2011)",
        homepage="http://ufldl.stanford.edu/housenumbers/",
        importer="svhn",
        archives=(
            ArchiveFile("train_32x32.mat", _SVHN + "train_32x32.mat", md5="e26dedcc434d2e4c54c9b2d4a06d8373"),
            ArchiveFile("test_32x32.mat", _SVHN + "test_32x32.mat", md5="eb5a983be6a315427106f1b164d9cef3"),
            ArchiveFile(
                "extra_32x32.mat",
                _SVHN + "extra_32x32.mat",
                md5="a93ce644f1a588dc4d68dda5feec44a7",
                note="optional: only needed for the `extra` split",
            ),
        ),
        downloadable=True,
        import_hint="--from-archive DIR_WITH_MAT_FILES",
    )
)


def _downsampled(size: int) -> DatasetInfo:
    if size == 32:
        files = ("Imagenet32_train.zip", "Imagenet32_val.zip")
    else:
        files = ("Imagenet64_train_part1.zip", "Imagenet64_train_part2.zip", "Imagenet64_val.zip")
    return DatasetInfo(
        name=f"imagenet{size}",
        title=f"Downsampled ImageNet {size}x{size} (Chrabaszcz et al., 2017)",
        num_classes=1000,
        image_size=size,
        channels=3,
        splits=("train", "val"),
        split_sizes={"train": 1_281_167, "val": 50_000},
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        licence="ImageNet terms of access (non-commercial research; login required)",
        homepage="https://patrykchrabaszcz.github.io/Imagenet32/ (files from https://image-net.org/download-images)",
        importer="downsampled_imagenet",
        archives=tuple(ArchiveFile(f, url=_DOWNSAMPLE + f, note=_NO_SHA) for f in files),
        import_hint="--from-archive DIR_WITH_ZIPS --sha256 HEX (once per zip)",
        params={
            "label_order": "the pickles' 1-indexed labels minus 1 (map_clsloc.txt order of Imagenet32_Scripts)",
            "pickle_layout": "dict with 'data' (N x 3*S*S uint8, CHW-flattened rows), 'labels' (1..1000), 'mean'",
        },
        notes="image-net.org requires a login, so --download is not supported.",
    )


_add(_downsampled(32))
_add(_downsampled(64))

# The papers split ImageNet64 "randomly" into 100 and 900 classes without
# publishing the split; ours is fixed by this seed (see importers_extra.py).
IMGNET_SPLIT_SEED = 20220126


def _imgnet_subset(k: int) -> DatasetInfo:
    return DatasetInfo(
        name=f"imgnet{k}",
        title=f"ImgNet{k}: {k} classes of ImageNet64 (BiaMAT)",
        num_classes=k,
        image_size=64,
        channels=3,
        splits=("train", "val"),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        licence="as imagenet64",
        homepage="derived from imagenet64 (https://patrykchrabaszcz.github.io/Imagenet32/)",
        importer="imgnet_subset",
        derived_from="imagenet64",
        import_hint="(no files: prepare imagenet64 first, then `reproduce data import " + f"imgnet{k}`)",
        params={
            "split_seed": IMGNET_SPLIT_SEED,
            "subset": "first" if k == 100 else "rest",
            "n_first": 100,
            "method": "classes ranked by sha256(f'{seed}:{class_index}'); the first 100 form "
            "imgnet100, the other 900 imgnet900; labels remapped to 0..k-1 in increasing "
            "original class index",
        },
    )


_add(_imgnet_subset(100))
_add(_imgnet_subset(900))


def _places(size: int) -> DatasetInfo:
    return DatasetInfo(
        name=f"places365-{size}",
        title=f"Places365-Standard resized to {size}x{size}",
        num_classes=365,
        image_size=size,
        channels=3,
        splits=("train", "val"),
        split_sizes={"train": 1_803_460, "val": 36_500},
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        licence="Places365 terms of use (non-commercial research and education)",
        homepage="http://places2.csail.mit.edu/download.html",
        importer="places365",
        archives=(
            ArchiveFile(
                "filelist_places365-standard.tar",
                _PLACES + "filelist_places365-standard.tar",
                md5="35a0585fee1fa656440f3ab298f8479c",
            ),
            ArchiveFile(
                "train_256_places365standard.tar",
                _PLACES + "train_256_places365standard.tar",
                md5="53ca1c756c3d1e7809517cc47c5561c5",
            ),
            ArchiveFile("val_256.tar", _PLACES + "val_256.tar", md5="e27b17d8d44f4af9a78502beb927f808"),
        ),
        downloadable=True,
        import_hint="--from-archive DIR_WITH_TARS | --from-folder DIR (extracted tars + file lists)",
        params={
            "resize": f"PIL Image.resize(({size}, {size}), BOX) from the official 256x256 small "
            "images, after convert('RGB')",
            "file_list_md5": {
                "categories_places365.txt": "06c963b85866bd0649f97cb43dd16673",
                "places365_train_standard.txt": "30f37515461640559006b8329efbed1a",
                "places365_val.txt": "e9f2fd57bfd9d07630173f4e8708e4b1",
            },
        },
        notes="box (area-average) filtering is how Chrabaszcz et al. downsampled ImageNet.",
    )


_add(_places(32))
_add(_places(64))

_add(
    DatasetInfo(
        name="tinyimages-500k",
        title="500k pseudo-labelled TinyImages (Carmon et al., 2019)",
        num_classes=10,
        image_size=32,
        channels=3,
        splits=("train",),
        split_sizes={"train": 500_000},
        mean=CIFAR10_MEAN,
        std=CIFAR10_STD,
        classes=CIFAR10_CLASSES,
        licence="80M TinyImages was withdrawn by its authors (2020); use only for reproducing prior work",
        homepage="https://github.com/yaircarmon/semisup-adv",
        importer="tinyimages",
        archives=(
            ArchiveFile(
                "ti_500K_pseudo_labeled.pickle",
                url="https://drive.google.com/open?id=1LTw3Sb5QoiCCN-6Y5PEKkq9C9W60w-Hi",
                gdrive_id="1LTw3Sb5QoiCCN-6Y5PEKkq9C9W60w-Hi",
                note=_NO_SHA,
            ),
        ),
        downloadable=True,
        import_hint="--from-archive ti_500K_pseudo_labeled.pickle --sha256 HEX",
        params={"pickle_layout": "dict with 'data' (N x 32 x 32 x 3 uint8) and 'extrapolated_targets'"},
    )
)

# HAT's toy (paper 003, App. A [155]); reproduce/data/toy.py explains the [0, 1] encoding.
_add(
    DatasetInfo(
        name="toy3d",
        title="HAT toy: two noisy concentric circles in x1-x2, separable along x3 (3-d, 2 classes)",
        num_classes=2,
        image_size=1,
        channels=3,
        splits=("train", "test"),
        split_sizes={"train": 2_000, "test": 2_000},
        mean=(0.5, 0.5, 0.5),  # toy.OFFSET: the model sees x = (u - 0.5) / 0.1
        std=(0.1, 0.1, 0.1),  # toy.SCALE
        classes=("class1", "class2"),
        licence="generated (no licence needed)",
        homepage="paper 003 (Rade & Moosavi-Dezfooli 2021), Appendix A",
        importer="toy3d",
        generated=True,
        import_hint="(no files: generated; `reproduce data import toy3d`)",
        params={
            "sigma": 0.2, "rho": [0.35, 1.0], "x3_range": [[0.65, 0.70], [0.80, 0.85]],  # [155]
            "n_per_class": 1000,  # UNSTATED in the paper: our choice (notes/hat.md §10)
            "seed": 0,
            "encoding": "u = 0.5 + 0.1 * x (float32); Linf eps in x = 10 * eps in u",
        },
    )
)

_add(
    DatasetInfo(
        name="cifar10-c",
        title="CIFAR-10-C (Hendrycks & Dietterich, 2019)",
        num_classes=10,
        image_size=32,
        channels=3,
        splits=tuple(f"{c}-{s}" for c in CIFAR10C_CORRUPTIONS for s in CIFAR10C_SEVERITIES),
        split_sizes={f"{c}-{s}": 10_000 for c in CIFAR10C_CORRUPTIONS for s in CIFAR10C_SEVERITIES},
        mean=CIFAR10_MEAN,
        std=CIFAR10_STD,
        classes=CIFAR10_CLASSES,
        licence="CC BY 4.0 (Zenodo record 2535967); images derived from CIFAR-10",
        homepage="https://zenodo.org/record/2535967",
        importer="cifar10c",
        archives=(
            ArchiveFile(
                "CIFAR-10-C.tar",
                url="https://zenodo.org/record/2535967/files/CIFAR-10-C.tar",
                md5="56bf5dcef84df0e2308c6dcbcbbd8499",
            ),
        ),
        downloadable=True,
        import_hint="--from-archive CIFAR-10-C.tar | --from-folder DIR_WITH_NPY_FILES | --from-robustbench DATA_DIR",
        params={"layout": "<corruption>.npy: 50000 images, severity 1..5 in blocks of 10000; labels.npy"},
    )
)

_add(
    DatasetInfo(
        name="tiny-imagenet-200",
        title="Tiny ImageNet-200 (Stanford cs231n)",
        num_classes=200,
        image_size=64,
        channels=3,
        # test = the official labelled val/ (10k), as the HAT code evaluates on it
        splits=("train", "test"),
        split_sizes={"train": 100_000, "test": 10_000},
        mean=(0.4802, 0.4481, 0.3975),
        std=(0.2302, 0.2265, 0.2262),
        licence="for non-commercial research and education; images from ImageNet",
        homepage="http://cs231n.stanford.edu/tiny-imagenet-200.zip",
        importer="tiny_imagenet",
        archives=(ArchiveFile("tiny-imagenet-200.zip", url="http://cs231n.stanford.edu/tiny-imagenet-200.zip",
                              note=_NO_SHA),),
        downloadable=True,
        import_hint="--from-archive tiny-imagenet-200.zip --sha256 HEX | --from-folder DIR (extracted)",
        params={"classes": "sorted(wnids.txt) (ImageFolder order)", "test": "val/ relabelled from val_annotations.txt",
                "mode": "RGB (greyscale images converted)"},
    )
)


# the full-resolution JPEG datasets register themselves (their lists and archives are long)
from .catalog_fullres import (  # noqa: E402,F401
    CALTECH256_TOTAL, CALTECH256_VAL, FULLRES_TRANSFORMS, IMAGENET200_WNIDS,
)
