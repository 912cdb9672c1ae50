#include "layers/node.hpp"

#include <atomic>
#include <stdexcept>

#include "layers/core.hpp"

namespace xtape::detail {

std::shared_ptr<SymbolicNode> make_node(std::shared_ptr<layers::Layer> layer,
                                        std::vector<layers::SymbolicTensor> inputs,
                                        std::vector<Shape> output_shapes, int node_index) {
  static std::atomic<std::uint64_t> next_id{0};
  auto node = std::make_shared<SymbolicNode>();
  node->layer = std::move(layer);
  node->inputs = std::move(inputs);
  node->output_shapes = std::move(output_shapes);
  node->node_index = node_index;
  node->id = next_id++;
  return node;
}

}  // namespace xtape::detail

namespace xtape::layers {

const Shape& SymbolicTensor::shape() const {
  if (!node_) throw std::logic_error("SymbolicTensor::shape: undefined symbolic tensor");
  return node_->output_shapes.at(static_cast<std::size_t>(index_));
}

std::shared_ptr<Layer> SymbolicTensor::layer() const { return node_ ? node_->layer : nullptr; }

SymbolicTensor::operator std::shared_ptr<Layer>() const {
  if (!node_ || !dynamic_cast<InputLayer*>(node_->layer.get()))
    throw std::invalid_argument(
        "a symbolic tensor stands for a layer only when it is an Input(); got " +
        (node_ ? "an output of layer '" + node_->layer->name() + "'" : std::string("undefined")));
  return node_->layer;
}

std::string SymbolicTensor::shape_str() const { return batch_shape_str(shape()); }

}  // namespace xtape::layers
