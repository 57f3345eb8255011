"""The full-resolution JPEG datasets (Subset AT: ImageNet-200 and its transfer targets).

Checksums: the ILSVRC-2012 train/val tars and devkit, Caltech-256's ``256_ObjectCategories.tar`` and
Oxford Flowers-102's ``102flowers.tgz``/``imagelabels.mat``/``setid.mat`` carry the md5s torchvision
0.29.1 verifies (``imagenet.py`` ARCHIVE_META, ``caltech.py`` Caltech256.download, ``flowers102.py``
_file_dict); Caltech's md5 is also the one data.caltech.edu lists for record nyy15-4j048.
"""

from __future__ import annotations

from typing import Any

from .base import IMAGENET_MEAN, IMAGENET_STD, ArchiveFile, DatasetInfo, add

# The 200 ImageNet-A classes, verbatim and in order as `wnid_selection` in every ImageNet-200
# config of mlosch/SAT (commit b8aa564, config/imagenet200/*/template.yaml, train and val alike);
# the list is sorted, and a class's index is its position in it (lib/datasets.py SubsetImageNet).
IMAGENET200_WNIDS = tuple(
    """n01498041 n01531178 n01534433 n01558993 n01580077 n01614925 n01616318 n01631663 n01641577 n01669191
    n01677366 n01687978 n01694178 n01698640 n01735189 n01770081 n01770393 n01774750 n01784675 n01819313
    n01820546 n01833805 n01843383 n01847000 n01855672 n01882714 n01910747 n01914609 n01924916 n01944390
    n01985128 n01986214 n02007558 n02009912 n02037110 n02051845 n02077923 n02085620 n02099601 n02106550
    n02106662 n02110958 n02119022 n02123394 n02127052 n02129165 n02133161 n02137549 n02165456 n02174001
    n02177972 n02190166 n02206856 n02219486 n02226429 n02231487 n02233338 n02236044 n02259212 n02268443
    n02279972 n02280649 n02281787 n02317335 n02325366 n02346627 n02356798 n02361337 n02410509 n02445715
    n02454379 n02486410 n02492035 n02504458 n02655020 n02669723 n02672831 n02676566 n02690373 n02701002
    n02730930 n02777292 n02782093 n02787622 n02793495 n02797295 n02802426 n02814860 n02815834 n02837789
    n02879718 n02883205 n02895154 n02906734 n02948072 n02951358 n02980441 n02992211 n02999410 n03014705
    n03026506 n03124043 n03125729 n03187595 n03196217 n03223299 n03250847 n03255030 n03291819 n03325584
    n03355925 n03384352 n03388043 n03417042 n03443371 n03444034 n03445924 n03452741 n03483316 n03584829
    n03590841 n03594945 n03617480 n03666591 n03670208 n03717622 n03720891 n03721384 n03724870 n03775071
    n03788195 n03804744 n03837869 n03840681 n03854065 n03888257 n03891332 n03935335 n03982430 n04019541
    n04033901 n04039381 n04067472 n04086273 n04099969 n04118538 n04131690 n04133789 n04141076 n04146614
    n04147183 n04179913 n04208210 n04235860 n04252077 n04252225 n04254120 n04270147 n04275548 n04310018
    n04317175 n04344873 n04347754 n04355338 n04366367 n04376876 n04389033 n04399382 n04442312 n04456115
    n04482393 n04507155 n04509417 n04532670 n04540053 n04554684 n04562935 n04591713 n04606251 n07583066
    n07695742 n07697313 n07697537 n07714990 n07718472 n07720875 n07734744 n07749582 n07753592 n07760859
    n07768694 n07831146 n09229709 n09246464 n09472597 n09835506 n11879895 n12057211 n12144580 n12267677""".split()
)
assert len(IMAGENET200_WNIDS) == 200 and list(IMAGENET200_WNIDS) == sorted(set(IMAGENET200_WNIDS))

# What every full-resolution dataset stores beside its JPEGs, and how the loader reads them.
FULLRES_TRANSFORMS = {
    "train_transform": "RandomResizedCrop(224, scale=(0.08, 1), ratio=(3/4, 4/3)) -> RandomHorizontalFlip "
                       "(reproduce/data/feeding/stream.py; then data.color_jitter and data.rotate on the device)",
    "eval_transform": "PIL: convert('RGB') -> torchvision Resize(256) (bilinear) -> CenterCrop(224), "
                      "stored as <split>_images.npy at import (the SAT code's test transform)",
}
_ILSVRC = "https://image-net.org/challenges/LSVRC/2012/2012-downloads.php"
_FLOWERS = "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/"
# Caltech-256 has no official split; ours (importers/jpeg_files.py) is sized to the SAT code's
# 5,122 evaluation images (n_samples=5122 in its Caltech configs; notes subset_at.md §2.4, D7).
CALTECH256_TOTAL = 30_607
CALTECH256_VAL = 5_122


def _fullres(name: str, title: str, num_classes: int, split_sizes: dict[str, int], params: dict[str, Any],
             **kw: Any) -> DatasetInfo:
    """A full-resolution RGB dataset kept as its JPEG files, seen at 224 x 224 with ImageNet's statistics."""
    return DatasetInfo(name=name, title=title, num_classes=num_classes, image_size=224, channels=3,
                       splits=tuple(split_sizes), split_sizes=split_sizes, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                       storage="jpeg", params={**FULLRES_TRANSFORMS, **params}, **kw)


add(_fullres(
    "imagenet200", "ImageNet-200: the 200 ImageNet-A classes of ILSVRC-2012, full resolution (Subset AT)", 200,
    {"train": 259_906, "val": 10_000},
    {
        "classes": "the 200 wnids of mlosch/SAT's wnid_selection (sorted); label = position in that list",
        "sample_order": "torchvision ImageNet (ImageFolder) order filtered to the 200 classes: class-major by "
                        "wnid, file names sorted (SubsetImageNet); instance ids index the published rankings",
        "val_labels": "devkit ground truth (ILSVRC2012_ID -> WNID via meta.mat), as torchvision's "
                      "parse_val_archive assigns them to the sorted val file names",
        "eval_arrays": ["val"],
    },
    classes=IMAGENET200_WNIDS,
    licence="ImageNet terms of access (non-commercial research and education; login required)",
    homepage=_ILSVRC + " (login required)", importer="imagenet200",
    archives=(
        ArchiveFile("ILSVRC2012_img_train.tar", md5="1d675b47d978889d74fa0da5fadfb00e"),
        ArchiveFile("ILSVRC2012_img_val.tar", md5="29b22e2961454d5413ddabcf34fc5622"),
        ArchiveFile("ILSVRC2012_devkit_t12.tar.gz", md5="fa75699e90414af021442c21a62c3abf",
                    note="val labels: data/meta.mat + data/ILSVRC2012_validation_ground_truth.txt"),
    ),
    import_hint="--from-archive DIR_WITH_ILSVRC2012_TARS | --from-folder DIR (a torchvision ImageNet root: "
                "train/<wnid>/, val/<wnid>/)",
    notes="image-net.org requires a login, so --download is not supported; the training split is "
          "streamed from its 259,906 JPEGs (no train_images.npy).",
))

add(_fullres(
    "caltech256", "Caltech-256 (257 classes incl. clutter), full resolution", 257,
    {"train": CALTECH256_TOTAL - CALTECH256_VAL, "val": CALTECH256_VAL},
    {
        "classes": "sorted category folder names (001.ak47 .. 257.clutter); label = position (torchvision "
                   "Caltech256 order); images = the *.jpg files directly in each folder",
        "split": "OURS (the SAT authors' train.txt/val.txt are unpublished): per class, the images ranked by "
                 "sha256('caltech256-split:<seed>:<category>/<file>') ascending; the first q_c go to val, "
                 "the rest to train; q_c = largest-remainder share of round(N * 5122 / 30607) in proportion "
                 "to the class sizes (ties: lower class index), i.e. 5,122 val images on the official 30,607",
        "split_seed": 0,
        "split_lists": "written as train.txt / val.txt ('<path> <label>', the SAT list format) beside the manifest",
        "total_images": CALTECH256_TOTAL,
        "eval_arrays": ["val"],
        "note": "the SAT code's LR milestones (191 it/epoch at batch 128) imply ~24.4k training images; "
                "ours keeps all 25,485 non-val images",
    },
    licence="Caltech-256 terms (research use; Griffin, Holub & Perona 2007)",
    homepage="https://data.caltech.edu/records/nyy15-4j048", importer="caltech256",
    archives=(ArchiveFile("256_ObjectCategories.tar",
                          url="https://data.caltech.edu/records/nyy15-4j048/files/256_ObjectCategories.tar",
                          md5="67b4f42ca05d46448c6bb8ecd2220f6d"),),
    downloadable=True,
    import_hint="--from-archive 256_ObjectCategories.tar | --from-folder DIR (holding 256_ObjectCategories/)",
))

add(_fullres(
    "flowers102", "Oxford Flowers-102, full resolution", 102, {"train": 1_020, "val": 1_020, "test": 6_149},
    {
        "splits": "train = setid.mat trnid, val = valid, test = tstid, each in setid order",
        "labels": "label of jpg/image_<id:05d>.jpg = imagelabels.mat labels[id - 1] - 1 (1-based ids and "
                  "labels, as torchvision Flowers102). NOT replicated: the SAT code's labels[id] after its "
                  "'-= 1' (notes C9), which gives each image the next image's label; the manifest's "
                  "sat_label_offset counts, per split, the images whose label that would change",
        "eval_arrays": ["val", "test"],
    },
    # the official labels are the numbers 1..102 (imagelabels.mat); class k is label k + 1
    classes=tuple(str(k) for k in range(1, 103)),
    licence="research use (Nilsback & Zisserman 2008); images from the web", homepage=_FLOWERS,
    importer="flowers102",
    archives=tuple(ArchiveFile(f, url=_FLOWERS + f, md5=md5) for f, md5 in (
        ("102flowers.tgz", "52808999861908f626f3c1f4e79d11fa"),
        ("imagelabels.mat", "e0620be6f572b9609742df49c70aed4d"),
        ("setid.mat", "a5357ecc9cb78c4bef273ce3793fc85c"),
    )),
    downloadable=True,
    import_hint="--from-archive DIR_WITH_102flowers.tgz_imagelabels.mat_setid.mat | --from-folder DIR "
                "(jpg/ + the two .mat files)",
))
