#include "layers/einsum_dense.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "autodiff/ops.hpp"
#include "layers/initializers.hpp"

namespace xtape::layers {

namespace {
bool letters(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return std::isalpha(static_cast<unsigned char>(c)); });
}
}  // namespace

EinsumDense::EinsumDense(EinsumDenseOptions options)
    : Layer(options.name), options_(std::move(options)), activation_(get_activation(options_.activation)) {
  const std::string& eq = options_.equation;
  const auto comma = eq.find(','), arrow = eq.find("->");
  if (comma == std::string::npos || arrow == std::string::npos || arrow < comma)
    throw std::invalid_argument("EinsumDense: equation '" + eq +
                                "' is not of the form 'ab,bc->ac' (or with a leading '...')");
  input_spec_ = eq.substr(0, comma);
  kernel_spec_ = eq.substr(comma + 1, arrow - comma - 1);
  output_spec_ = eq.substr(arrow + 2);
  const bool in_dots = input_spec_.rfind("...", 0) == 0, out_dots = output_spec_.rfind("...", 0) == 0;
  if (in_dots != out_dots)
    throw std::invalid_argument("EinsumDense: equation '" + eq + "' elides the input's or the "
                                "output's leading axes but not both");
  elided_ = in_dots;
  if (elided_) {
    input_spec_ = input_spec_.substr(3);
    output_spec_ = output_spec_.substr(3);
  }
  if (!letters(input_spec_) || !letters(kernel_spec_) || !letters(output_spec_) || kernel_spec_.empty())
    throw std::invalid_argument("EinsumDense: equation '" + eq + "' must use letters (and a leading '...')");
  const std::size_t expected = elided_ ? output_spec_.size() : output_spec_.size() - 1;
  if (output_spec_.empty() || options_.output_shape.size() != expected)
    throw std::invalid_argument("EinsumDense: output_shape has " + std::to_string(options_.output_shape.size()) +
                                " extents; the equation's output '" + output_spec_ + "' needs " +
                                std::to_string(expected) + (elided_ ? "" : " (without the batch axis)"));
  for (char c : kernel_spec_)
    if (input_spec_.find(c) == std::string::npos && output_spec_.find(c) == std::string::npos)
      throw std::invalid_argument(std::string("EinsumDense: kernel letter '") + c +
                                  "' is in neither the input nor the output of '" + eq + "'");
  for (char c : options_.bias_axes)
    if (output_spec_.find(c) == std::string::npos)
      throw std::invalid_argument(std::string("EinsumDense: bias axis '") + c +
                                  "' is not in the output '" + output_spec_ + "'");
  get_initializer(options_.kernel_initializer);
  get_initializer(options_.bias_initializer);
}

Shape EinsumDense::compute_output_shape(const Shape& in) const {
  Shape out;
  if (elided_)
    out.insert(out.end(), in.begin(), in.end() - static_cast<long>(std::min(in.size(), input_spec_.size())));
  out.insert(out.end(), options_.output_shape.begin(), options_.output_shape.end());
  return out;
}

void EinsumDense::build(const Shape& in) {
  // Per-sample shapes: the batch letter (input_spec_[0], unless elided) has no extent here.
  const std::size_t skip = elided_ ? 0 : 1;
  if ((elided_ && in.size() < input_spec_.size()) || (!elided_ && in.size() + 1 != input_spec_.size()))
    throw std::invalid_argument("EinsumDense '" + name() + "': samples of shape " + shape_str(in) +
                                " do not match the equation's input '" + input_spec_ + "'");
  auto input_extent = [&](std::size_t pos) {  // position in input_spec_
    return elided_ ? in[in.size() - input_spec_.size() + pos] : in[pos - skip];
  };
  auto output_extent = [&](std::size_t pos) {  // position in output_spec_
    return options_.output_shape[pos - skip];
  };
  Shape kshape;
  for (char c : kernel_spec_) {
    const auto i = input_spec_.find(c);
    if (i != std::string::npos && (elided_ || i > 0))
      kshape.push_back(input_extent(i));
    else if (const auto o = output_spec_.find(c); o != std::string::npos && (elided_ || o > 0))
      kshape.push_back(output_extent(o));
    else
      throw std::invalid_argument(std::string("EinsumDense '") + name() + "': kernel letter '" + c +
                                  "' is the batch axis");
  }
  add_weight("kernel", kshape, get_initializer(options_.kernel_initializer), true,
             as_penalty(options_.kernel_regularizer), as_projection(options_.kernel_constraint));
  if (!options_.bias_axes.empty()) {
    std::size_t first = output_spec_.size();
    for (char c : options_.bias_axes) first = std::min(first, output_spec_.find(c));
    if (!elided_ && first == 0)
      throw std::invalid_argument("EinsumDense '" + name() + "': the bias cannot span the batch axis");
    Shape bshape;
    for (std::size_t p = first; p < output_spec_.size(); ++p)
      bshape.push_back(options_.bias_axes.find(output_spec_[p]) != std::string::npos ? output_extent(p) : 1);
    add_weight("bias", bshape, get_initializer(options_.bias_initializer), true,
               as_penalty(options_.bias_regularizer), as_projection(options_.bias_constraint));
  }
}

Tensor EinsumDense::call(const Tensor& x, bool) {
  const std::string eq = (elided_ ? "..." : "") + input_spec_ + "," + kernel_spec_ + "->" +
                         (elided_ ? "..." : "") + output_spec_;
  Tensor y = einsum(eq, {x, kernel()});
  if (!options_.bias_axes.empty()) y = y + weight("bias");
  return activation_(y);
}

nlohmann::json EinsumDense::get_config() const {
  nlohmann::json c = Layer::get_config();
  c["equation"] = options_.equation;
  c["output_shape"] = options_.output_shape;
  c["activation"] = options_.activation.empty() ? "linear" : options_.activation;
  c["bias_axes"] = options_.bias_axes.empty() ? nlohmann::json(nullptr) : nlohmann::json(options_.bias_axes);
  c["kernel_initializer"] = options_.kernel_initializer;
  c["bias_initializer"] = options_.bias_initializer;
  c["kernel_regularizer"] = options_.kernel_regularizer.config();
  c["bias_regularizer"] = options_.bias_regularizer.config();
  c["kernel_constraint"] = options_.kernel_constraint.config();
  c["bias_constraint"] = options_.bias_constraint.config();
  return c;
}

}  // namespace xtape::layers
