# caffe-cae on a GPU: onnxruntime-gpu 1.31 is built against CUDA 13 and cuDNN 9.
FROM nvidia/cuda:13.0.1-cudnn-runtime-ubuntu24.04

ENV DEBIAN_FRONTEND=noninteractive PYTHONUNBUFFERED=1 VIRTUAL_ENV=/opt/caffe-cae
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv "$VIRTUAL_ENV"
ENV PATH="$VIRTUAL_ENV/bin:$PATH"

WORKDIR /src
COPY pyproject.toml README.md ./
COPY proto ./proto
COPY caffe_cae ./caffe_cae
COPY templates ./templates
RUN pip install --no-cache-dir . && caffe-cae --version

WORKDIR /work
ENTRYPOINT ["caffe-cae"]
CMD ["--help"]
