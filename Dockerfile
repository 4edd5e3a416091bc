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
# The gpu extra adds onnxruntime-gpu; both it and the CPU build provide the module
# `onnxruntime`, so the CPU build goes and the GPU build is reinstalled over the shared files.
RUN pip install --no-cache-dir ".[gpu]" \
 && pip uninstall -y onnxruntime \
 && pip install --no-cache-dir --force-reinstall --no-deps "onnxruntime-gpu==$(pip show onnxruntime-gpu | sed -n "s/^Version: //p")" \
 && python -c "import onnxruntime as o; assert 'CUDAExecutionProvider' in o.get_available_providers()" \
 && caffe-cae --version

WORKDIR /work
ENTRYPOINT ["caffe-cae"]
CMD ["--help"]
