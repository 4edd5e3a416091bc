"""Model 4 (2019 paper) with a 10-D code, end to end through the library API.

    python examples/model4_walkthrough.py [FOLDER] [ITERATIONS]

Writes the data, net, solver, snapshots, the code of the test set, the t-SNE map and the
per-layer picture of one digit into FOLDER, and prints the paper's measures next to Table 4.
"""
import pathlib
import sys

import h5py

from caffe_cae import generate
from caffe_cae.experiments import encode, evaluate, figures, mnist, paper_results
from caffe_cae.parallel import limit_threads
from caffe_cae.solver import get_solver


def main(folder: str = "model4-walkthrough", iters: int = 2000) -> None:
    out = pathlib.Path(folder).resolve()
    out.mkdir(parents=True, exist_ok=True)

    # 1. MNIST as HDF5 for HDF5Data (checksums verified; cached under out/mnist/cache).
    files = mnist.prepare_mnist(out / "mnist")

    # 2. The net (data layers read our list files) and the paper's SGD solver.
    net_path = out / "model4.prototxt"
    net_path.write_text(generate.net_text("model4", dim=10, train_source=str(files.train_list),
                                          test_source=str(files.test_list)))
    solver_param = generate.solver_param("model4", net=str(net_path), dim=10,
                                         snapshot_prefix=str(out / "model4"), random_seed=1)
    solver_param.max_iter = iters

    # 3. Train; Caffe's log lines report the loss (cross_entropy_loss, l2_error).
    solver = get_solver(solver_param)
    solver.solve()
    weights = f"{out / 'model4'}_iter_{iters}.caffemodel"

    # 4. The internal code ip2encode of the 10000 test digits.
    codes, labels, switches = encode.encode_h5(str(net_path), weights, files.test_h5, ["ip2encode"])
    encode.write_codes(out / "codes.h5", codes, labels, switches=switches)

    # 5. Table 4's measures, next to the paper's (50000 iterations, mean of 3 runs).
    result = evaluate.evaluate_codes(codes["ip2encode"], labels, switches)
    paper = paper_results.paper_row("model4", 10)
    print(f"linear error {result.linear_error:.2f} % (paper {paper['linear']})")
    print(f"MLP error    {result.mlp_error:.2f} % (paper {paper['mlp']})")
    print(f"sparsity     {result.sparsity:.1f} % (paper {paper['sparsity']})")
    print(f"compression  {result.compression:.1f} % (paper {paper_results.COMPRESSION[10]})")

    # 6. Figures: t-SNE of the code (Fig. 9, right) and one digit through the net (Fig. 11).
    figures.tsne_map(codes["ip2encode"], labels, out / "tsne.png", max_points=5000)
    with h5py.File(files.test_h5, "r") as h5:
        encoder = encode.Encoder(str(net_path), weights, encode.data_shapes(h5))
        five = int((h5["label"][:] == 5).argmax())
        panels = encoder.trace({"data": h5["data"][five:five + 1]})
    figures.layer_panels(panels, out / "layers.png", title="digit 5 through Model 4 (10-D)")
    print(f"figures: {out / 'tsne.png'}, {out / 'layers.png'}")


if __name__ == "__main__":
    # One thread, as caffe-cae's experiment commands default to: these GEMMs are small.
    with limit_threads(1):
        main(sys.argv[1] if len(sys.argv) > 1 else "model4-walkthrough",
             int(sys.argv[2]) if len(sys.argv) > 2 else 2000)
