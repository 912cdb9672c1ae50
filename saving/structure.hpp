#pragma once
/// @file structure.hpp
/// Addresses of weights and layers by their place in a model's structure, as Keras 3's
/// saving does: each tracked layer is named "<class in snake_case>" numbered within its parent
/// ("conv2d", "conv2d_1", "block/dense"), independent of the process-wide layer names.
#include <string>
#include <vector>

#include "layers/layer.hpp"
#include "layers/saving.hpp"

namespace xtape::layers {

/// A weight with its structural key ("conv2d_1/kernel") and its name path ("conv2d_7/kernel",
/// as Layer::weights() names it).
struct StructuredWeight {
  std::string key;
  std::string path;
  Weight weight;
};

/// Every weight of `root`'s sub-layers (and its own), in Layer::weights() order.
std::vector<StructuredWeight> structured_weights(const Layer& root);

/// A layer with its structural key.
struct StructuredLayer {
  std::string key;
  Layer* layer;
};

/// Every layer below `root` (depth first, tracking order), each once.
std::vector<StructuredLayer> structured_layers(const Layer& root);

/// The values of `weights` read from `f` by key, after checking that every weight is there,
/// that no tensor is unknown (tensors under "optimizer/" are allowed when `allow_optimizer`),
/// and each one's dtype (F32), shape and finiteness. Throws std::runtime_error
/// "<who>: '<path>': ..." naming the key, the weight and both shapes.
std::vector<Tensor> read_structured_weights(const std::string& who, const SafetensorsFile& f,
                                            const std::vector<StructuredWeight>& weights,
                                            bool allow_optimizer);

}  // namespace xtape::layers
