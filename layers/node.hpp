#pragma once
/// @file node.hpp
/// The nodes of Functional graphs (Keras's ops/node.py): each symbolic call of a layer records
/// one node holding the layer, its input SymbolicTensors and its output shapes. A node keeps its
/// inputs (and so the graph above it) alive; layers do not point back at their nodes.
#include <cstdint>
#include <memory>
#include <vector>

#include "layers/layer.hpp"

namespace xtape::detail {

struct SymbolicNode {
  std::shared_ptr<layers::Layer> layer;
  std::vector<layers::SymbolicTensor> inputs;
  /// Per-sample shapes of the outputs.
  std::vector<Shape> output_shapes;
  /// This call's index among the layer's symbolic calls ("dense[1][0]": node 1, tensor 0).
  int node_index = 0;
  /// Creation order: a node's inputs always have smaller ids, so sorting by id is a
  /// topological order.
  std::uint64_t id = 0;
};

/// Records a node (the layer must be built for `inputs`' shapes already).
std::shared_ptr<SymbolicNode> make_node(std::shared_ptr<layers::Layer> layer,
                                        std::vector<layers::SymbolicTensor> inputs,
                                        std::vector<Shape> output_shapes, int node_index);

}  // namespace xtape::detail
