"""The papers' model catalog: every net ``caffe-cae gen`` can write, as data for the templates.

Sources: Turchenko, Chalmers & Luczak (2019) Tables 1-3 (Models 1-5, the deep auto-encoder and
the modified Siamese baseline), Turchenko & Luczak (2017) Tables II-III (its small Model 1), the
authors' original prototxt (CAFFE_FACTS §5.1) and Caffe's own examples (§5.2, §5.3).

A model is a :class:`CAESpec`, :class:`DeepAESpec` or :class:`SiameseSpec` (architecture numbers
only); :func:`net_context` turns one into the plain dict a net template renders, and
:func:`solver_context` the dict of the solver template.  No prototxt text is built here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

from caffe_cae.errors import CaffeCaeError

INPUT_SHAPE = (1, 28, 28)        # MNIST: one channel, 28 x 28 pixels
TRAIN_SIZE, TEST_SIZE = 60000, 10000
DIMS = (2, 10, 30)               # the code sizes of the papers' experiments
SYNTAXES = ("new", "legacy")
DEFAULT_BATCH = 100              # training/testing batch of every experiment
DEFAULT_DEPLOY_BATCH = 1
# HDF5 list files written by ``caffe-cae data mnist --out mnist`` (datasets ``data``, ``label``;
# see caffe_cae.experiments.mnist); relative paths, as Caffe resolves them, from the working folder.
DEFAULT_TRAIN_SOURCE = "mnist/mnist_train.txt"
DEFAULT_TEST_SOURCE = "mnist/mnist_test.txt"
# The Siamese net reads image pairs: datasets ``pair_data`` (N, 2, 28, 28) and ``sim`` (N,).
DEFAULT_SIAMESE_TRAIN_SOURCE = "mnist/mnist_siamese_train.txt"
DEFAULT_SIAMESE_TEST_SOURCE = "mnist/mnist_siamese_test.txt"

# Fillers of the CAE papers (2019 Sec. 4.2); Caffe's gaussian filler needs sparse <= num_output.
IP_SPARSE = 25
DEEP_AE_SPARSE = 15              # Caffe's mnist_autoencoder example


@dataclass(frozen=True)
class Solver:
    """The solver settings of one model (printed by ``templates/solver.prototxt.j2``)."""

    base_lr: float
    lr_policy: str
    max_iter: int
    weight_decay: float
    momentum: float | None = None
    gamma: float | None = None
    power: float | None = None
    stepsize: int | None = None
    test_interval: int = 1000
    display: int = 1000
    snapshot: int = 10000
    test_compute_loss: bool = True


# The papers' SGD: 2019 Sec. 4.2 / 2017 Table V, the authors' solver file (test_interval 1000,
# display 1000, test_compute_loss); momentum unset = plain SGD.  Snapshots every 10000
# iterations (the authors' 1000 writes 50 snapshot pairs per run).
PAPER_SOLVER = Solver(base_lr=0.006, lr_policy="fixed", max_iter=50000, weight_decay=0.0005)
# Caffe's examples/mnist/mnist_autoencoder_solver.prototxt.
DEEP_AE_SOLVER = Solver(base_lr=0.01, lr_policy="step", gamma=0.1, stepsize=10000, momentum=0.9,
                        max_iter=65000, weight_decay=0.0005, test_interval=500, display=100,
                        snapshot=10000)
# Caffe's examples/siamese/mnist_siamese_solver.prototxt.
SIAMESE_SOLVER = Solver(base_lr=0.01, lr_policy="inv", gamma=0.0001, power=0.75, momentum=0.9,
                        max_iter=50000, weight_decay=0.0, test_interval=500, display=100,
                        snapshot=5000, test_compute_loss=False)


@dataclass(frozen=True)
class CAESpec:
    """A convolutional auto-encoder of the papers.

    ``encoder``: (maps, kernel) of conv1, conv2, ...; ``decoder``: (maps, kernel) of the
    deconvolutions from the innermost (deconv2) outwards (deconv1); ``unpooling``: None, "switches"
    (Noh's MAX unpooling fed the pooling mask) or "fixed" (no mask: value to the window's top-left
    cell); ``out_kernel``: kernel of ``deconv1neur`` (1 output map, 28x28).
    """

    name: str
    description: str
    encoder: tuple[tuple[int, int], ...]
    pooling: bool
    hidden: int
    decoder: tuple[tuple[int, int], ...]
    unpooling: str | None
    out_kernel: int
    activation: str = "Sigmoid"
    solver: Solver = PAPER_SOLVER
    template: str = "cae.prototxt.j2"
    code_blob: str = "ip2encode"


@dataclass(frozen=True)
class DeepAESpec:
    """Hinton's deep auto-encoder as Caffe's mnist_autoencoder example builds it."""

    name: str
    description: str
    widths: tuple[int, ...] = (1000, 500, 250)
    solver: Solver = DEEP_AE_SOLVER
    template: str = "deep_ae.prototxt.j2"
    code_blob: str = "encode4"


@dataclass(frozen=True)
class SiameseSpec:
    """The papers' modified Siamese baseline: Caffe's mnist_siamese with the CAE encoder sizes."""

    name: str
    description: str
    encoder: tuple[tuple[int, int], ...] = ((26, 5), (36, 5))
    hidden: int = 250
    solver: Solver = SIAMESE_SOLVER
    template: str = "siamese.prototxt.j2"
    code_blob: str = "ip2encode"


_MODEL4 = CAESpec(
    name="model4",
    description="2019 Model 4 (conv, pool <-> deconv, unpool): unpooling WITHOUT switches",
    encoder=((26, 5), (36, 5)), pooling=True, hidden=250,
    decoder=((36, 4), (26, 5)), unpooling="fixed", out_kernel=5,
)

MODELS = {
    spec.name: spec
    for spec in (
        CAESpec(
            name="model1",
            description="2019 Model 1 (conv <-> deconv) = 2017 Model 2: conv 8@9, 4@9; deconv 4@12, 4@17",
            encoder=((8, 9), (4, 9)), pooling=False, hidden=250,
            decoder=((4, 12), (4, 17)), unpooling=None, out_kernel=1,
        ),
        CAESpec(
            name="model2",
            description="2019 Model 2 (conv, pool <-> deconv): conv 26@5, 36@5 with max pooling",
            encoder=((26, 5), (36, 5)), pooling=True, hidden=250,
            decoder=((4, 12), (4, 17)), unpooling=None, out_kernel=1,
        ),
        replace(
            _MODEL4, name="model3", unpooling="switches",
            description="2019 Model 3 (conv, pool, sw <-> deconv, sw, unpool): unpooling WITH switches",
        ),
        _MODEL4,
        replace(
            _MODEL4, name="model5", activation="TanH",
            description="2019 Model 5: Model 4 with TanH instead of Sigmoid in the hidden layers",
        ),
        CAESpec(
            name="cae2017-model1",
            description="2017 Model 1 (small conv <-> deconv): conv 4@9, 2@9; ip 125; deconv 2@12, 2@17",
            encoder=((4, 9), (2, 9)), pooling=False, hidden=125,
            decoder=((2, 12), (2, 17)), unpooling=None, out_kernel=1,
            solver=replace(PAPER_SOLVER, max_iter=20000),   # 2017 paper: 20000 iterations
        ),
        DeepAESpec(
            name="deep-ae",
            description="Hinton's deep auto-encoder 784-1000-500-250-N-250-500-1000-784 (Caffe's mnist_autoencoder)",
        ),
        SiameseSpec(
            name="siamese",
            description="modified Siamese baseline: two LeNet branches conv 26@5, 36@5, ip 250, N; ContrastiveLoss",
        ),
    )
}


def get_model(name: str):
    """The catalog entry named ``name`` (a CaffeCaeError listing the known names otherwise)."""
    try:
        return MODELS[name]
    except KeyError:
        raise CaffeCaeError(f"unknown model {name!r}; known models: {', '.join(MODELS)}") from None


@dataclass
class Options:
    """What ``caffe-cae gen`` was asked for (everything but the model)."""

    dim: int = 2
    syntax: str = "new"
    batch: int | None = None           # None: 100 for train/test nets, 1 for deploy nets
    train_source: str | None = None    # None: the model's default list file
    test_source: str | None = None
    deploy: bool = False

    def check(self) -> None:
        if self.dim < 1:
            raise CaffeCaeError(f"--dim must be at least 1, got {self.dim}")
        if self.syntax not in SYNTAXES:
            raise CaffeCaeError(f"--syntax must be one of {', '.join(SYNTAXES)}, got {self.syntax!r}")
        if self.batch is not None and self.batch < 1:
            raise CaffeCaeError(f"--batch must be at least 1, got {self.batch}")

    @property
    def batch_size(self) -> int:
        if self.batch is not None:
            return self.batch
        return DEFAULT_DEPLOY_BATCH if self.deploy else DEFAULT_BATCH


# ------------------------------------------------------------------------------------------
# Geometry (Caffe's formulas, kernel stride 1 / pooling 2x2 stride 2 with ceil)

def conv_out(size: int, kernel: int) -> int:
    return size - kernel + 1


def deconv_out(size: int, kernel: int) -> int:
    return size + kernel - 1


def pool_out(size: int, kernel: int = 2, stride: int = 2) -> int:
    return int(math.ceil((size - kernel) / stride)) + 1


def _sparse(num_output: int, sparse: int) -> int:
    return min(sparse, num_output)


def _sources(spec, opts: Options) -> dict:
    siamese = isinstance(spec, SiameseSpec)
    return {
        "train_source": opts.train_source or (DEFAULT_SIAMESE_TRAIN_SOURCE if siamese else DEFAULT_TRAIN_SOURCE),
        "test_source": opts.test_source or (DEFAULT_SIAMESE_TEST_SOURCE if siamese else DEFAULT_TEST_SOURCE),
    }


def _common(spec, opts: Options) -> dict:
    return {
        "model": spec.name,
        "description": spec.description,
        "net_name": spec.name,
        "dim": opts.dim,
        "syntax": opts.syntax,
        "legacy": opts.syntax == "legacy",
        "deploy": opts.deploy,
        "batch": opts.batch_size,
        "input_shape": INPUT_SHAPE,
        **_sources(spec, opts),
    }


def _cae_context(spec: CAESpec, opts: Options) -> dict:
    if len(spec.encoder) != len(spec.decoder):
        raise CaffeCaeError(f"model {spec.name!r}: encoder and decoder depths differ")
    n = len(spec.encoder)
    size = INPUT_SHAPE[1]
    bottom = "data"
    encoder, pool_inputs = [], {}
    for i, (maps, kernel) in enumerate(spec.encoder, start=1):
        size = conv_out(size, kernel)
        stage = {"conv": f"conv{i}", "act": f"sig{i}en", "bottom": bottom, "maps": maps, "kernel": kernel,
                 "pool": None, "mask": None}
        bottom = f"conv{i}"
        if spec.pooling:
            pool_inputs[i] = size
            stage["pool"] = f"pool{i}"
            if spec.unpooling == "switches":
                stage["mask"] = f"pool{i}_mask"
            bottom = f"pool{i}"
            size = pool_out(size)
        encoder.append(stage)
    encoded = bottom
    # Decoder: deconv{n} .. deconv1, fed by the 1x1 "image" of ip1decode (reshaped in new syntax).
    reshape = opts.syntax == "new"
    bottom = "ip1decodesh" if reshape else "ip1decode"
    decoder, size = [], 1
    for j, (maps, kernel) in zip(range(n, 0, -1), spec.decoder):
        size = deconv_out(size, kernel)
        stage = {"deconv": f"deconv{j}", "act": f"sig{j}de", "bottom": bottom, "maps": maps, "kernel": kernel,
                 "unpool": None, "unpool_size": None, "mask": None}
        bottom = f"deconv{j}"
        if spec.unpooling:
            if j not in pool_inputs or pool_out(pool_inputs[j]) != size:
                raise CaffeCaeError(f"model {spec.name!r}: deconv{j} output {size} does not match pool{j}")
            stage.update(unpool=f"unpool{j}", unpool_size=pool_inputs[j],
                         mask=f"pool{j}_mask" if spec.unpooling == "switches" else None)
            bottom = f"unpool{j}"
            size = pool_inputs[j]
        decoder.append(stage)
    if deconv_out(size, spec.out_kernel) != INPUT_SHAPE[1]:
        raise CaffeCaeError(f"model {spec.name!r}: the decoder does not restore {INPUT_SHAPE[1]}x{INPUT_SHAPE[1]}")
    return {
        **_common(spec, opts),
        "activation": spec.activation,
        "encoder": encoder,
        "encoded": encoded,
        "hidden": spec.hidden,
        "hidden_act": f"sig{n + 1}en",
        "hidden_act_de": f"sig{n + 1}de",
        "hidden_sparse": _sparse(spec.hidden, IP_SPARSE),
        "code_sparse": _sparse(opts.dim, IP_SPARSE),
        "reshape": reshape,
        "decoder": decoder,
        "out_bottom": bottom,
        "out_kernel": spec.out_kernel,
        # The authors' solver file: weights lr 1, biases lr 3; SCE trains, Euclidean monitors.
        "lr_mults": (1, 3),
        "euclidean_loss_weight": 0,
    }


def _deep_ae_context(spec: DeepAESpec, opts: Options) -> dict:
    widths = list(spec.widths) + [opts.dim]
    encode = [{"name": f"encode{i}", "num_output": w, "sparse": _sparse(w, DEEP_AE_SPARSE),
               "neuron": f"encode{i}neuron" if i < len(widths) else None}
              for i, w in enumerate(widths, start=1)]
    outputs = list(reversed(spec.widths)) + [INPUT_SHAPE[0] * INPUT_SHAPE[1] * INPUT_SHAPE[2]]
    decode = [{"name": f"decode{i}", "num_output": w, "sparse": _sparse(w, DEEP_AE_SPARSE),
               "neuron": f"decode{i}neuron"}
              for i, w in zip(range(len(outputs), 0, -1), outputs)]
    return {**_common(spec, opts), "encode": encode, "decode": decode}


def _siamese_context(spec: SiameseSpec, opts: Options) -> dict:
    return {
        **_common(spec, opts),
        "branches": ("", ) if opts.deploy else ("", "_p"),
        "encoder": [{"index": i, "maps": maps, "kernel": kernel}
                    for i, (maps, kernel) in enumerate(spec.encoder, start=1)],
        "hidden": spec.hidden,
    }


def net_context(name: str, opts: Options) -> dict:
    """Everything the net template of model ``name`` needs, for these options."""
    opts.check()
    spec = get_model(name)
    if isinstance(spec, CAESpec):
        context = _cae_context(spec, opts)
    elif isinstance(spec, DeepAESpec):
        context = _deep_ae_context(spec, opts)
    else:
        context = _siamese_context(spec, opts)
    context["template"] = spec.template
    return context


def solver_context(name: str, opts: Options, net: str, snapshot_prefix: str,
                   solver_mode: str = "CPU", random_seed: int | None = None) -> dict:
    """The solver template's context: the model's settings, its net file and test iterations.

    ``test_iter`` covers the MNIST test set (10000 images) with the chosen batch; the deep
    auto-encoder also tests on 50000 training images (stage "test-on-train"), as Caffe's example.
    """
    opts.check()
    spec = get_model(name)
    batch = opts.batch if opts.batch is not None else DEFAULT_BATCH
    tests = [{"stage": None, "iter": math.ceil(TEST_SIZE / batch)}]
    if isinstance(spec, DeepAESpec):
        tests = [{"stage": "test-on-train", "iter": math.ceil(50000 / batch)},
                 {"stage": "test-on-test", "iter": math.ceil(TEST_SIZE / batch)}]
    return {
        "model": spec.name,
        "description": spec.description,
        "dim": opts.dim,
        "syntax": opts.syntax,
        "legacy": opts.syntax == "legacy",
        "solver": spec.solver,
        "tests": tests,
        "net": net,
        "snapshot_prefix": snapshot_prefix,
        "solver_mode": solver_mode,
        "random_seed": random_seed,
        "template": "solver.prototxt.j2",
    }
