"""The 32 x 32 datasets of the CIFAR family: CIFAR-10/100, SVHN, CIFAR-10-C and Carmon et al.'s TinyImages 500k.

Checksums: the CIFAR python tarballs and SVHN ``.mat`` files carry the md5s torchvision 0.29
verifies (``torchvision/datasets/cifar.py``, ``svhn.py``); CIFAR-10-C the md5 Zenodo lists for
record 2535967; the TinyImages pickle has none published (``--sha256`` required).
"""

from __future__ import annotations

from typing import Mapping

from .base import NO_SHA, ArchiveFile, DatasetInfo, add

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


def _cifar(k: int, title: str, mean: tuple[float, ...], std: tuple[float, ...], classes: tuple[str, ...],
           tar_md5: str, batch_md5: Mapping[str, str], tree: str) -> DatasetInfo:
    """CIFAR-``k`` from its python tarball (the md5s of the tar and of each pickle inside it)."""
    tar = f"cifar-{k}-python.tar.gz"
    return DatasetInfo(
        name=f"cifar{k}", title=title, num_classes=k, image_size=32, channels=3,
        splits=("train", "test"), split_sizes={"train": 50_000, "test": 10_000},
        mean=mean, std=std, classes=classes,
        licence="free for research use with citation (Krizhevsky, 2009)",
        homepage="https://www.cs.toronto.edu/~kriz/cifar.html", importer="cifar",
        archives=(ArchiveFile(tar, url=_TORONTO + tar, md5=tar_md5),),
        downloadable=True, import_hint=f"--from-archive {tar} | --from-folder DIR ({tree})",
        params={"batch_md5": dict(batch_md5)},
    )


add(_cifar(10, "CIFAR-10", CIFAR10_MEAN, CIFAR10_STD, CIFAR10_CLASSES, "c58f30108f718f92721af3b95e74349a", {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}, "image tree train/<class>/, test/<class>/"))

add(_cifar(100, "CIFAR-100 (fine labels)", (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), CIFAR100_CLASSES,
           "eb9058c3a382ffc7106e4002c42a8d85", {
               "train": "16019d7e3df5f24257cddd939b257f8d",
               "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
               "meta": "7973b15100ade9c7d40fb424638fde48",
           }, "image tree"))

add(DatasetInfo(
    name="svhn", title="SVHN (cropped digits, format 2)", num_classes=10, image_size=32, channels=3,
    splits=("train", "test", "extra"), split_sizes={"train": 73_257, "test": 26_032, "extra": 531_131},
    mean=(0.4377, 0.4438, 0.4728), std=(0.1980, 0.2010, 0.1970),
    # The .mat files label the digit 0 as 10; we store it as 0 (as torchvision).
    classes=tuple(str(d) for d in range(10)),
    licence="non-commercial use only (Netzer et al., 2011)", homepage=_SVHN, importer="svhn",
    archives=(
        ArchiveFile("train_32x32.mat", _SVHN + "train_32x32.mat", md5="e26dedcc434d2e4c54c9b2d4a06d8373"),
        ArchiveFile("test_32x32.mat", _SVHN + "test_32x32.mat", md5="eb5a983be6a315427106f1b164d9cef3"),
        ArchiveFile("extra_32x32.mat", _SVHN + "extra_32x32.mat", md5="a93ce644f1a588dc4d68dda5feec44a7",
                    note="optional: only needed for the `extra` split"),
    ),
    downloadable=True, import_hint="--from-archive DIR_WITH_MAT_FILES",
))

add(DatasetInfo(
    name="tinyimages-500k", title="500k pseudo-labelled TinyImages (Carmon et al., 2019)",
    num_classes=10, image_size=32, channels=3, splits=("train",), split_sizes={"train": 500_000},
    mean=CIFAR10_MEAN, std=CIFAR10_STD, classes=CIFAR10_CLASSES,
    licence="80M TinyImages was withdrawn by its authors (2020); use only for reproducing prior work",
    homepage="https://github.com/yaircarmon/semisup-adv", importer="tinyimages",
    archives=(ArchiveFile("ti_500K_pseudo_labeled.pickle",
                          url="https://drive.google.com/open?id=1LTw3Sb5QoiCCN-6Y5PEKkq9C9W60w-Hi",
                          gdrive_id="1LTw3Sb5QoiCCN-6Y5PEKkq9C9W60w-Hi", note=NO_SHA),),
    downloadable=True, import_hint="--from-archive ti_500K_pseudo_labeled.pickle --sha256 HEX",
    params={"pickle_layout": "dict with 'data' (N x 32 x 32 x 3 uint8) and 'extrapolated_targets'"},
))

_CIFAR10C_SPLITS = tuple(f"{c}-{s}" for c in CIFAR10C_CORRUPTIONS for s in CIFAR10C_SEVERITIES)
add(DatasetInfo(
    name="cifar10-c", title="CIFAR-10-C (Hendrycks & Dietterich, 2019)", num_classes=10, image_size=32, channels=3,
    splits=_CIFAR10C_SPLITS, split_sizes={s: 10_000 for s in _CIFAR10C_SPLITS},
    mean=CIFAR10_MEAN, std=CIFAR10_STD, classes=CIFAR10_CLASSES,
    licence="CC BY 4.0 (Zenodo record 2535967); images derived from CIFAR-10",
    homepage="https://zenodo.org/record/2535967", importer="cifar10c",
    archives=(ArchiveFile("CIFAR-10-C.tar", url="https://zenodo.org/record/2535967/files/CIFAR-10-C.tar",
                          md5="56bf5dcef84df0e2308c6dcbcbbd8499"),),
    downloadable=True,
    import_hint="--from-archive CIFAR-10-C.tar | --from-folder DIR_WITH_NPY_FILES | --from-robustbench DATA_DIR",
    params={"layout": "<corruption>.npy: 50000 images, severity 1..5 in blocks of 10000; labels.npy"},
))
