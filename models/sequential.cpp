#include "models/sequential.hpp"

#include <nlohmann/json.hpp>
#include <stdexcept>

#include "layers/core.hpp"

namespace xtape::layers {

Sequential::Sequential(std::vector<std::shared_ptr<Layer>> layers, std::string name)
    : Model(std::move(name)) {
  (void)this->name();  // named before its layers, as Keras names it
  for (auto& l : layers) add(std::move(l));
}

void Sequential::add(std::shared_ptr<Layer> layer) {
  if (!layer) throw std::invalid_argument("Sequential::add: null layer");
  const auto& stack = sublayers();
  if (auto* in = dynamic_cast<InputLayer*>(layer.get())) {
    if (!stack.empty())
      throw std::invalid_argument("Sequential::add: an Input must be the first layer of '" +
                                  name() + "'");
    track(layer);
    ensure_built(in->shape());
    return;
  }
  track(layer);
  if (built()) {  // extend the built stack
    Shape s = input_shape();
    for (std::size_t i = 0; i + 1 < stack.size(); ++i) s = stack[i]->compute_output_shape(s);
    stack.back()->ensure_built(s);
  }
}

void Sequential::build(const Shape& input_shape) {
  Shape s = input_shape;
  for (const auto& l : sublayers()) {
    l->ensure_built(s);
    s = l->compute_output_shape(s);
  }
}

Tensor Sequential::call(const Tensor& x, bool training) {
  Tensor h = x;
  for (const auto& l : sublayers()) h = (*l)(h, training);
  return h;
}

Shape Sequential::compute_output_shape(const Shape& input_shape) const {
  Shape s = input_shape;
  for (const auto& l : sublayers()) s = l->compute_output_shape(s);
  return s;
}

nlohmann::json Sequential::get_config() const {
  nlohmann::json c = {{"name", name()}, {"trainable", trainable()}, {"dtype", "float32"}};
  nlohmann::json ls = nlohmann::json::array();
  for (const auto& l : sublayers())
    ls.push_back({{"class_name", l->class_name()}, {"config", l->get_config()}});
  c["layers"] = ls;
  if (built()) {
    nlohmann::json shape = nlohmann::json::array({nullptr});
    for (std::size_t d : input_shape()) shape.push_back(d);
    c["build_input_shape"] = shape;
  }
  return c;
}

}  // namespace xtape::layers
