# CPU image whose default command runs the main job (`make repro`: dvc repro on the default params).
#   docker build -t deceptionlab .
#   docker run --rm -v /path/to/shared/data:/work/shared/data:ro -v $PWD/out:/work/deceptionlab/reports deceptionlab
# CUDA variant: build with --build-arg BASE=nvidia/cuda:12.8.0-runtime-ubuntu24.04 --build-arg TORCH_INDEX=cu128
# and set finetune.dtype / evaluate.dtype and base_model.* in params.yaml (see README, "Paper scale").
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}

ARG TORCH_INDEX=cpu
ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 MPLBACKEND=Agg

# Debian's point releases replace these versions; the Python stack, which decides results, is pinned.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends git make python3-venv \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /work/deceptionlab
COPY pyproject.toml README.md ./
COPY src ./src
RUN python3 -m venv .venv \
    && .venv/bin/pip install --index-url "https://download.pytorch.org/whl/${TORCH_INDEX}" torch==2.13.0 \
    && .venv/bin/pip install -e '.[test]' \
    && touch .venv/.installed

COPY . .
# DVC needs a git repository; a build context without .git gets a fresh one.
RUN git config --global user.email "docker@deceptionlab.invalid" && git config --global user.name docker \
    && (git rev-parse --git-dir >/dev/null 2>&1 || (git init -q && git add -A && git commit -qm image))

CMD ["make", "repro"]
