#include "layers/conv.hpp"

#include <nlohmann/json.hpp>
#include <stdexcept>

namespace xtape::layers {

namespace {
std::pair<std::size_t, std::size_t> out_extent(std::size_t in, int k, int s, int d, Padding p) {
  const std::size_t eff = static_cast<std::size_t>(d) * (static_cast<std::size_t>(k) - 1) + 1;
  if (p == Padding::same)
    return {(in + static_cast<std::size_t>(s) - 1) / static_cast<std::size_t>(s), 0};
  if (in < eff) return {0, 0};
  return {(in - eff) / static_cast<std::size_t>(s) + 1, 0};
}

std::vector<int> expand(const std::vector<int>& v, int rank, const std::string& what,
                        const char* cls) {
  if (static_cast<int>(v.size()) == rank) return v;
  if (v.size() == 1) return std::vector<int>(static_cast<std::size_t>(rank), v[0]);
  throw std::invalid_argument(std::string(cls) + ": " + what + " needs 1 or " +
                              std::to_string(rank) + " values, got " + std::to_string(v.size()));
}
}  // namespace

Conv::Conv(int rank, ConvOptions options)
    : Layer(options.name), rank_(rank), options_(std::move(options)) {
  const char* cls = rank == 2 ? "Conv2D" : "Conv1D";
  if (options_.filters == 0)
    throw std::invalid_argument(std::string(cls) + ": filters must be positive, got 0");
  if (options_.kernel_size.empty())
    throw std::invalid_argument(std::string(cls) + ": kernel_size is required");
  kernel_size_ = expand(options_.kernel_size, rank, "kernel_size", cls);
  strides_ = expand(options_.strides, rank, "strides", cls);
  dilation_ = expand(options_.dilation_rate, rank, "dilation_rate", cls);
  for (int k : kernel_size_)
    if (k <= 0)
      throw std::invalid_argument(std::string(cls) + ": kernel_size must be positive, got " +
                                  std::to_string(k));
  for (int s : strides_)
    if (s <= 0)
      throw std::invalid_argument(std::string(cls) + ": strides must be positive, got " +
                                  std::to_string(s));
  for (int d : dilation_)
    if (d <= 0)
      throw std::invalid_argument(std::string(cls) + ": dilation_rate must be positive, got " +
                                  std::to_string(d));
  padding_ = parse_padding(options_.padding, cls);
  activation_ = get_activation(options_.activation);
  get_initializer(options_.kernel_initializer);
  get_initializer(options_.bias_initializer);
}

void Conv::build(const Shape& input_shape) {
  if (static_cast<int>(input_shape.size()) != rank_ + 1)
    throw std::invalid_argument(class_name() + " '" + name() + "': expected inputs of rank " +
                                std::to_string(rank_ + 2) + " (batch, " +
                                (rank_ == 2 ? "height, width" : "steps") + ", channels), got " +
                                batch_shape_str(input_shape));
  Shape kshape;
  for (int k : kernel_size_) kshape.push_back(static_cast<std::size_t>(k));
  kshape.push_back(input_shape.back());
  kshape.push_back(options_.filters);
  const Shape out = compute_output_shape(input_shape);
  for (std::size_t i = 0; i + 1 < out.size(); ++i)
    if (out[i] == 0)
      throw std::invalid_argument(class_name() + " '" + name() + "': input " +
                                  batch_shape_str(input_shape) + " is smaller than the kernel " +
                                  shape_str(kshape) + " with 'valid' padding");
  add_weight("kernel", kshape, get_initializer(options_.kernel_initializer));
  if (options_.use_bias)
    add_weight("bias", {options_.filters}, get_initializer(options_.bias_initializer));
}

Shape Conv::compute_output_shape(const Shape& input_shape) const {
  Shape out;
  for (int i = 0; i < rank_; ++i) {
    const std::size_t u = static_cast<std::size_t>(i);
    out.push_back(out_extent(i < static_cast<int>(input_shape.size()) ? input_shape[u] : 0,
                             kernel_size_[u], strides_[u], dilation_[u], padding_)
                      .first);
  }
  out.push_back(options_.filters);
  return out;
}

Tensor Conv::convolution_op(const Tensor& inputs, const Tensor& kernel) {
  if (rank_ == 2)
    return conv2d(inputs, kernel, {strides_[0], strides_[1]}, padding_,
                  {dilation_[0], dilation_[1]});
  return conv1d(inputs, kernel, strides_[0], padding_, dilation_[0]);
}

Tensor Conv::call(const Tensor& inputs, bool) {
  Tensor y = convolution_op(inputs, kernel());
  if (options_.use_bias) y = y + bias();
  return activation_(y);
}

nlohmann::json Conv::get_config() const {
  nlohmann::json c = Layer::get_config();
  c["filters"] = options_.filters;
  c["kernel_size"] = kernel_size_;
  c["strides"] = strides_;
  c["padding"] = options_.padding;
  c["data_format"] = "channels_last";
  c["dilation_rate"] = dilation_;
  c["groups"] = 1;
  c["activation"] = options_.activation.empty() ? "linear" : options_.activation;
  c["use_bias"] = options_.use_bias;
  c["kernel_initializer"] = options_.kernel_initializer;
  c["bias_initializer"] = options_.bias_initializer;
  return c;
}

}  // namespace xtape::layers
