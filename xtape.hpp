#pragma once
/// @file xtape.hpp
/// Everything a user of xtape needs: tensors and ops, layers, optimizers, datasets.
#include "autodiff/ops.hpp"
#include "autodiff/profiler.hpp"
#include "autodiff/random.hpp"
#include "autodiff/tensor.hpp"
#include "datasets/mnist.hpp"
#include "layers/activations.hpp"
#include "layers/callbacks.hpp"
#include "layers/conv.hpp"
#include "layers/core.hpp"
#include "layers/initializers.hpp"
#include "layers/layer.hpp"
#include "layers/losses.hpp"
#include "layers/pooling.hpp"
#include "layers/saving.hpp"
#include "layers/sequential.hpp"
#include "optim/optimizers.hpp"
