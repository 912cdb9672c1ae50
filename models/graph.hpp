#pragma once
/// @file graph.hpp
/// Internal: a Functional model's graph.
#include <memory>
#include <vector>

#include "layers/node.hpp"
#include "models/model.hpp"

namespace xtape::layers {

struct Model::Graph {
  std::vector<SymbolicTensor> inputs, outputs;
  /// Every node from the inputs to the outputs, in creation (topological) order.
  std::vector<std::shared_ptr<detail::SymbolicNode>> nodes;
};

}  // namespace xtape::layers
