#include "layers/merging.hpp"

#include <nlohmann/json.hpp>
#include <stdexcept>

#include "autodiff/ops.hpp"

namespace xtape::layers {

namespace {

std::string shapes_str(const std::vector<Shape>& shapes) {
  std::string out = "[";
  for (std::size_t i = 0; i < shapes.size(); ++i)
    out += (i ? ", " : "") + batch_shape_str(shapes[i]);
  return out + "]";
}

}  // namespace

// ---- elementwise merges ----

Shape Merge::compute_output_shape_multi(const std::vector<Shape>& shapes) const {
  const std::string who = class_name() + " '" + name() + "'";
  if (shapes.size() < min_inputs() || shapes.size() > max_inputs())
    throw std::invalid_argument(
        who + ": expected " +
        (max_inputs() == min_inputs() ? "exactly " + std::to_string(min_inputs())
                                      : "at least " + std::to_string(min_inputs())) +
        " inputs, got " + std::to_string(shapes.size()) + ": " + shapes_str(shapes));
  Shape out = shapes[0];
  for (std::size_t i = 1; i < shapes.size(); ++i) {
    if (shapes[i].size() != out.size())
      throw std::invalid_argument(who + ": inputs must have the same rank, got " +
                                  shapes_str(shapes));
    for (std::size_t d = 0; d < out.size(); ++d) {
      const std::size_t a = out[d], b = shapes[i][d];
      if (a != b && a != 1 && b != 1)
        throw std::invalid_argument(who + ": inputs must have broadcastable shapes, got " +
                                    shapes_str(shapes));
      out[d] = a == 1 ? b : a;
    }
  }
  return out;
}

Shape Merge::compute_output_shape(const Shape& input_shape) const {
  return compute_output_shape_multi({input_shape});  // one input: the count error
}

void Merge::build_multi(const std::vector<Shape>& input_shapes) {
  (void)compute_output_shape_multi(input_shapes);
}

Tensor Merge::call(const std::vector<Tensor>& inputs, bool) {
  if (inputs.size() < min_inputs() || inputs.size() > max_inputs()) {
    std::vector<Shape> shapes;
    for (const Tensor& t : inputs) shapes.push_back(t.shape());
    (void)compute_output_shape_multi(shapes);  // throws the count error
  }
  Tensor y = inputs[0];
  for (std::size_t i = 1; i < inputs.size(); ++i) y = merge(y, inputs[i]);
  return finish(y, inputs.size());
}

Tensor Merge::finish(const Tensor& folded, std::size_t) const { return folded; }

Tensor Add::merge(const Tensor& a, const Tensor& b) const { return a + b; }
Tensor Subtract::merge(const Tensor& a, const Tensor& b) const { return a - b; }
Tensor Multiply::merge(const Tensor& a, const Tensor& b) const { return a * b; }
Tensor Average::merge(const Tensor& a, const Tensor& b) const { return a + b; }
Tensor Average::finish(const Tensor& folded, std::size_t count) const {
  return folded * (1.f / static_cast<float>(count));
}
// Compositions, so the tape differentiates them: max(a, b) = b + relu(a - b),
// min(a, b) = a - relu(a - b).
Tensor Maximum::merge(const Tensor& a, const Tensor& b) const { return b + relu(a - b); }
Tensor Minimum::merge(const Tensor& a, const Tensor& b) const { return a - relu(a - b); }

// ---- Concatenate ----

Concatenate::Concatenate(ConcatenateOptions options)
    : Layer(options.name), options_(std::move(options)) {
  if (options_.axis == 0)
    throw std::invalid_argument("Concatenate: axis 0 is the batch axis; got axis=0");
}

std::size_t Concatenate::sample_axis(std::size_t rank) const {
  // Axes count over the batched shape (rank + 1 axes); the batch axis is 0.
  const long full = static_cast<long>(rank) + 1;
  const long a = options_.axis < 0 ? options_.axis + full : options_.axis;
  if (a <= 0 || a >= full)
    throw std::invalid_argument("Concatenate '" + name() + "': axis " +
                                std::to_string(options_.axis) +
                                " is out of range for inputs of rank " + std::to_string(full));
  return static_cast<std::size_t>(a - 1);
}

Shape Concatenate::compute_output_shape_multi(const std::vector<Shape>& shapes) const {
  const std::string who = "Concatenate '" + name() + "'";
  if (shapes.size() < 2)
    throw std::invalid_argument(who + ": expected at least 2 inputs, got " +
                                std::to_string(shapes.size()) + ": " + shapes_str(shapes));
  const std::size_t axis = sample_axis(shapes[0].size());
  Shape out = shapes[0];
  for (std::size_t i = 1; i < shapes.size(); ++i) {
    bool ok = shapes[i].size() == out.size();
    for (std::size_t d = 0; ok && d < out.size(); ++d) ok = d == axis || shapes[i][d] == out[d];
    if (!ok)
      throw std::invalid_argument(who +
                                  ": inputs must have matching shapes except on the "
                                  "concatenation axis " +
                                  std::to_string(options_.axis) + ", got " + shapes_str(shapes));
    out[axis] += shapes[i][axis];
  }
  return out;
}

Shape Concatenate::compute_output_shape(const Shape& input_shape) const {
  return compute_output_shape_multi({input_shape});
}

void Concatenate::build_multi(const std::vector<Shape>& input_shapes) {
  (void)compute_output_shape_multi(input_shapes);
}

Tensor Concatenate::call(const std::vector<Tensor>& inputs, bool) {
  if (inputs.size() < 2) {
    std::vector<Shape> shapes;
    for (const Tensor& t : inputs) shapes.emplace_back(t.shape().begin() + 1, t.shape().end());
    (void)compute_output_shape_multi(shapes);
  }
  return concat(inputs, static_cast<int>(sample_axis(inputs[0].ndim() - 1) + 1));
}

nlohmann::json Concatenate::get_config() const {
  nlohmann::json c = Layer::get_config();
  c["axis"] = options_.axis;
  return c;
}

}  // namespace xtape::layers
