#!/bin/sh
# Model 4 (2019 paper) with a 10-D code, end to end with the caffe-cae commands.
# Usage: sh examples/model4_walkthrough.sh [FOLDER] [ITERATIONS]
set -eu
DIR=${1:-model4-walkthrough}
ITERS=${2:-2000}
mkdir -p "$DIR"
cd "$DIR"

# 1. MNIST as HDF5 (train 60000, test 10000; data in [0, 1]); the net's default sources are
#    mnist/mnist_train.txt and mnist/mnist_test.txt, relative to this folder.
caffe-cae data mnist --out mnist

# 2. The net and its solver.
caffe-cae gen model4 --dim 10 -o model4.prototxt
caffe-cae gen model4 --dim 10 --solver --net model4.prototxt --snapshot-prefix model4 -o model4_solver.prototxt

# 3. Train (the paper: 50000 iterations); writes model4_iter_$ITERS.caffemodel.
caffe-cae train model4_solver.prototxt --iterations "$ITERS"

# 4. The 10-D code of the 10000 test digits, with their labels.
caffe-cae encode model4.prototxt "model4_iter_$ITERS.caffemodel" mnist/mnist_test.h5 --out codes.h5

# 5. The paper's measures (Table 4): per-class error of LDA and the MLP, sparsity, compression.
caffe-cae evaluate codes.h5
