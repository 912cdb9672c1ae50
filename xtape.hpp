#pragma once
/// @file xtape.hpp
/// Everything a user of xtape needs: tensors and ops, layers, optimizers, datasets.
#include "autodiff/ops.hpp"
#include "autodiff/ops_activations.hpp"
#include "autodiff/ops_normalization.hpp"
#include "autodiff/profiler.hpp"
#include "autodiff/random.hpp"
#include "autodiff/tensor.hpp"
#include "datasets/mnist.hpp"
#include "kernels/threads.hpp"
#include "layers/activation_layers.hpp"
#include "distributed/data_parallel.hpp"
#include "layers/activations.hpp"
#include "layers/conv.hpp"
#include "layers/core.hpp"
#include "layers/initializers.hpp"
#include "layers/layer.hpp"
#include "layers/merging.hpp"
#include "layers/noise.hpp"
#include "layers/parametrize.hpp"
#include "layers/normalization.hpp"
#include "layers/pooling.hpp"
#include "layers/regularizers.hpp"
#include "layers/reshaping.hpp"
#include "layers/einsum_dense.hpp"
#include "losses/losses.hpp"
#include "metrics/metrics.hpp"
#include "layers/saving.hpp"
#include "models/model.hpp"
#include "models/sequential.hpp"
#include "saving/model_file.hpp"
#include "saving/registry.hpp"
#include "training/callbacks.hpp"
#include "training/tensorboard.hpp"
#include "optim/optimizers.hpp"

namespace xtape {
using kernels::num_threads;      // the kernels' thread count (XTAPE_NUM_THREADS, OpenMP)
using kernels::set_num_threads;  // as torch::set_num_threads
}  // namespace xtape
