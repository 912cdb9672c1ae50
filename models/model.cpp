#include "models/model.hpp"

#include <algorithm>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>

#include "layers/core.hpp"
#include "layers/node.hpp"
#include "models/graph.hpp"
#include "training/compiled.hpp"

namespace xtape::layers {

namespace {

std::string tensor_label(const SymbolicTensor& t) {
  const auto& n = t.node();
  return "'" + n->layer->name() + "[" + std::to_string(n->node_index) + "][" +
         std::to_string(t.index()) + "]' " + t.shape_str();
}

}  // namespace

Model::Model(std::string name) : Layer(std::move(name)), shuffle_rng_(global_rng().next_u64()) {}

Model::Model(const SymbolicTensor& input, const SymbolicTensor& output, std::string name)
    : Model(std::vector<SymbolicTensor>{input}, std::vector<SymbolicTensor>{output},
            std::move(name)) {}

Model::Model(std::vector<SymbolicTensor> inputs, std::vector<SymbolicTensor> outputs,
             std::string name)
    : Layer(std::move(name)), shuffle_rng_(global_rng().next_u64()) {
  auto g = std::make_unique<Graph>();
  if (inputs.empty()) throw std::invalid_argument("Model: a Functional model needs inputs");
  if (outputs.empty()) throw std::invalid_argument("Model: a Functional model needs outputs");
  std::set<const detail::SymbolicNode*> input_nodes;
  for (const SymbolicTensor& t : inputs) {
    if (!t.defined()) throw std::invalid_argument("Model: an input is undefined");
    if (!dynamic_cast<InputLayer*>(t.node()->layer.get()))
      throw std::invalid_argument("Model: input " + tensor_label(t) +
                                  " is not an Input(): inputs must come from Input()");
    if (!input_nodes.insert(t.node().get()).second)
      throw std::invalid_argument("Model: input " + tensor_label(t) + " is given twice");
  }
  // Walk back from the outputs (an explicit stack: no recursion on deep graphs).
  std::map<std::uint64_t, std::shared_ptr<detail::SymbolicNode>> found;
  std::vector<std::shared_ptr<detail::SymbolicNode>> stack;
  for (const SymbolicTensor& t : outputs) {
    if (!t.defined()) throw std::invalid_argument("Model: an output is undefined");
    stack.push_back(t.node());
  }
  while (!stack.empty()) {
    auto n = stack.back();
    stack.pop_back();
    if (!found.emplace(n->id, n).second) continue;
    if (n->inputs.empty() && !input_nodes.count(n.get()))
      throw std::invalid_argument("Model: the outputs depend on Input '" + n->layer->name() + "' " +
                                  batch_shape_str(n->output_shapes[0]) +
                                  ", which is not among the model's inputs");
    if (input_nodes.count(n.get())) continue;
    for (const SymbolicTensor& in : n->inputs) stack.push_back(in.node());
  }
  for (const SymbolicTensor& t : inputs)
    if (!found.count(t.node()->id)) found.emplace(t.node()->id, t.node());
  for (auto& [id, n] : found) g->nodes.push_back(n);  // ids ascend: a topological order
  g->inputs = std::move(inputs);
  g->outputs = std::move(outputs);
  graph_ = std::move(g);
  for (const auto& n : graph_->nodes) track(n->layer);
  std::vector<Shape> shapes;
  for (const SymbolicTensor& t : graph_->inputs) shapes.push_back(t.shape());
  (void)this->name();
  ensure_built_multi(shapes);
}

Model::~Model() = default;
// (Compiled is complete here through training/compiled.hpp.)
Model::Model(Model&&) noexcept = default;

std::string Model::class_name() const { return graph_ ? "Functional" : Layer::class_name(); }

std::vector<std::shared_ptr<Layer>> Model::layers() const { return sublayers(); }

std::shared_ptr<Layer> Model::get_layer(const std::string& lname) const {
  std::string names;
  for (const auto& l : layers()) {
    if (l->name() == lname) return l;
    names += (names.empty() ? "" : ", ") + l->name();
  }
  throw std::invalid_argument("model '" + name() + "' has no layer '" + lname +
                              "' (layers: " + names + ")");
}

const std::vector<SymbolicTensor>& Model::inputs() const {
  static const std::vector<SymbolicTensor> none;
  return graph_ ? graph_->inputs : none;
}

const std::vector<SymbolicTensor>& Model::outputs() const {
  static const std::vector<SymbolicTensor> none;
  return graph_ ? graph_->outputs : none;
}

void Model::build_multi(const std::vector<Shape>& input_shapes) {
  if (!graph_) {
    Layer::build_multi(input_shapes);
    return;
  }
  // A Functional model is built when it is made; its input shapes are fixed.
  std::vector<Shape> expected;
  for (const SymbolicTensor& t : graph_->inputs) expected.push_back(t.shape());
  if (input_shapes != expected) {
    std::string want, got;
    for (const Shape& s : expected) want += (want.empty() ? "" : ", ") + batch_shape_str(s);
    for (const Shape& s : input_shapes) got += (got.empty() ? "" : ", ") + batch_shape_str(s);
    throw std::invalid_argument("model '" + name() + "': expected inputs of shape " + want +
                                ", got " + got);
  }
}

std::vector<Shape> Model::compute_output_shapes(const std::vector<Shape>& input_shapes) const {
  if (!graph_) return Layer::compute_output_shapes(input_shapes);
  const_cast<Model*>(this)->build_multi(input_shapes);  // only checks the shapes
  std::vector<Shape> out;
  for (const SymbolicTensor& t : graph_->outputs) out.push_back(t.shape());
  return out;
}

Shape Model::compute_output_shape(const Shape& input_shape) const {
  if (!graph_) return Layer::compute_output_shape(input_shape);
  const auto all = compute_output_shapes({input_shape});
  if (all.size() != 1)
    throw std::invalid_argument("model '" + name() + "' has " + std::to_string(all.size()) +
                                " outputs, not one");
  return all[0];
}

std::vector<Tensor> Model::forward(const std::vector<Tensor>& inputs, bool training) {
  if (!graph_) return Layer::forward(inputs, training);
  const Graph& g = *graph_;
  if (inputs.size() != g.inputs.size())
    throw std::invalid_argument("model '" + name() + "': expected " +
                                std::to_string(g.inputs.size()) + " inputs, got " +
                                std::to_string(inputs.size()));
  // Values of every node's outputs, by node id (the tape keeps what backward needs).
  std::map<std::uint64_t, std::vector<Tensor>> values;
  for (std::size_t i = 0; i < inputs.size(); ++i) values[g.inputs[i].node()->id] = {inputs[i]};
  std::vector<Tensor> args;
  for (const auto& n : g.nodes) {
    if (values.count(n->id)) continue;  // an input
    args.clear();
    for (const SymbolicTensor& t : n->inputs)
      args.push_back(values.at(t.node()->id).at(static_cast<std::size_t>(t.index())));
    values[n->id] = n->layer->call_all(args, training);
  }
  std::vector<Tensor> out;
  for (const SymbolicTensor& t : g.outputs)
    out.push_back(values.at(t.node()->id).at(static_cast<std::size_t>(t.index())));
  return out;
}

std::vector<optim::Variable> Model::trainable_variables() const {
  std::vector<optim::Variable> vars;
  for (const Weight& w : weights())
    if (w.trainable) vars.push_back({w.name, w.value});
  return vars;
}

std::vector<std::pair<std::string, Tensor>> Model::named_weights() const {
  std::vector<std::pair<std::string, Tensor>> out;
  for (const Weight& w : weights()) out.emplace_back(w.name, w.value);
  return out;
}

std::vector<Tensor> Model::get_weights() const {
  std::vector<Tensor> out;
  for (const auto& [_, t] : named_weights()) out.push_back(t.clone());
  return out;
}

void Model::set_weights(const std::vector<Tensor>& values) {
  const auto named = named_weights();
  const std::string who = class_name() + "::set_weights";
  if (values.size() != named.size())
    throw std::invalid_argument(who + ": model '" + name() + "' has " +
                                std::to_string(named.size()) + " weights, got " +
                                std::to_string(values.size()) + " values");
  for (std::size_t i = 0; i < named.size(); ++i)
    if (!values[i].defined() || values[i].shape() != named[i].second.shape())
      throw std::invalid_argument(
          who + ": weight '" + named[i].first + "' has shape " +
          shape_str(named[i].second.shape()) + ", got " +
          (values[i].defined() ? shape_str(values[i].shape()) : "undefined"));
  NoGrad no_grad;
  for (std::size_t i = 0; i < named.size(); ++i) {
    Tensor w = named[i].second;
    w.assign(values[i]);
  }
}

}  // namespace xtape::layers

namespace xtape::layers {

namespace {

// A node's index among its layer's nodes within one graph (Keras re-indexes a model's nodes
// so that its config does not depend on calls outside the model).
using LocalIndex = std::map<const detail::SymbolicNode*, int>;

nlohmann::json history(const SymbolicTensor& t, const LocalIndex& local) {
  return {t.node()->layer->name(), local.at(t.node().get()), t.index()};
}

nlohmann::json keras_tensor(const SymbolicTensor& t, const LocalIndex& local) {
  nlohmann::json shape = nlohmann::json::array({nullptr});
  for (std::size_t d : t.shape()) shape.push_back(d);
  return {
      {"class_name", "__keras_tensor__"},
      {"config", {{"shape", shape}, {"dtype", "float32"}, {"keras_history", history(t, local)}}}};
}

}  // namespace

nlohmann::json Model::get_config() const {
  nlohmann::json c = Layer::get_config();
  if (!graph_) return c;
  // Keras 3's Functional config: every layer with the nodes that call it, inputs as
  // keras_history triples (layer name, node index, tensor index).
  nlohmann::json ls = nlohmann::json::array();
  std::vector<const Layer*> order;
  LocalIndex local;
  std::map<const Layer*, int> counts;
  for (const auto& n : graph_->nodes) {
    if (std::find(order.begin(), order.end(), n->layer.get()) == order.end())
      order.push_back(n->layer.get());
    local[n.get()] = counts[n->layer.get()]++;
  }
  for (const Layer* l : order) {
    nlohmann::json inbound = nlohmann::json::array();
    for (const auto& n : graph_->nodes) {
      if (n->layer.get() != l || n->inputs.empty()) continue;
      nlohmann::json args = nlohmann::json::array();
      if (n->inputs.size() == 1) {
        args.push_back(keras_tensor(n->inputs[0], local));
      } else {
        nlohmann::json list = nlohmann::json::array();
        for (const SymbolicTensor& t : n->inputs) list.push_back(keras_tensor(t, local));
        args.push_back(list);
      }
      inbound.push_back({{"args", args}, {"kwargs", nlohmann::json::object()}});
    }
    ls.push_back({{"class_name", l->class_name()},
                  {"config", l->get_config()},
                  {"name", l->name()},
                  {"inbound_nodes", inbound}});
  }
  c["layers"] = ls;
  nlohmann::json ins = nlohmann::json::array(), outs = nlohmann::json::array();
  for (const SymbolicTensor& t : graph_->inputs) ins.push_back(history(t, local));
  for (const SymbolicTensor& t : graph_->outputs) outs.push_back(history(t, local));
  c["input_layers"] = ins;
  c["output_layers"] = outs;
  return c;
}

}  // namespace xtape::layers
