"""keras-asc: device-robust acoustic scene classification with PaSST, ICL and DIR augmentation."""

from setuptools import find_packages
from setuptools import setup

setup(
    name="keras-asc",
    version="0.1.0",
    description=(
        "TensorFlow/Keras 3 toolkit for device-robust acoustic scene classification "
        "(PaSST, inverse contrastive loss, device impulse response augmentation)"
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10,<3.13",
    packages=find_packages(
        include=["keras_asc", "keras_asc.*", "tfrecords_builder", "tfrecords_builder.*"]
    ),
    package_data={
        "keras_asc": ["presets/*.json", "data/*.csv"],
        "tfrecords_builder": ["data/*.csv", "data/*.tsv"],
    },
    install_requires=[
        "tensorflow>=2.21,<2.22",
        "keras>=3.10,<4",
        "numpy>=1.26,<3",
        "scipy>=1.11,<2",
        "soundfile>=0.12,<1",
        "soxr>=0.3.7,<2",
        "google-crc32c>=1.9,<2",
        "pyyaml>=6,<7",
        "wandb>=0.17,<1",
        "matplotlib>=3.8,<4",
        "tqdm>=4.66,<5",
        "h5py>=3.10,<4",
    ],
    extras_require={
        "dev": ["pytest>=8,<10", "ruff>=0.6,<1"],
        # PyTorch is only a test oracle (parity with the official PaSST and with torch.load;
        # the .pt reader needs no torch). torch==2.13.0 is the CPU wheel; hear21passt and
        # torchaudio are installed with --no-deps by `make install-oracle` (see Makefile).
        "oracle": ["torch==2.13.0", "timm>=0.9"],
    },
    entry_points={"console_scripts": ["keras-asc-build=tfrecords_builder.__main__:cli"]},
)
