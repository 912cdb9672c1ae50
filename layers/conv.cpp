#include "layers/conv.hpp"

#include <cctype>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace xtape::layers {

namespace {
std::pair<std::size_t, std::size_t> out_extent(std::size_t in, int k, int s, int d, Padding p) {
  const std::size_t eff = static_cast<std::size_t>(d) * (static_cast<std::size_t>(k) - 1) + 1;
  if (p == Padding::same || p == Padding::causal)
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

namespace {
std::string conv_class(int rank, ConvKind kind) {
  const std::string r = std::to_string(rank) + "D";
  switch (kind) {
    case ConvKind::transpose:
      return "Conv" + r + "Transpose";
    case ConvKind::depthwise:
      return "DepthwiseConv" + r;
    case ConvKind::separable:
      return "SeparableConv" + r;
    default:
      return "Conv" + r;
  }
}

}  // namespace

Conv::Conv(int rank, ConvOptions options, ConvKind kind)
    : Layer(options.name), rank_(rank), kind_(kind), options_(std::move(options)) {
  const std::string cls_name = conv_class(rank, kind);
  const char* cls = cls_name.c_str();
  if (rank < 1 || rank > 3 || (rank == 3 && kind != ConvKind::regular))
    throw std::invalid_argument(std::string(cls) +
                                ": convolutions of rank 1 and 2, and regular ones of rank 3, "
                                "exist; got rank " +
                                std::to_string(rank));
  if (options_.filters == 0 && kind != ConvKind::depthwise)
    throw std::invalid_argument(std::string(cls) + ": filters must be positive, got 0");
  if ((kind == ConvKind::depthwise || kind == ConvKind::separable) &&
      options_.depth_multiplier == 0)
    throw std::invalid_argument(std::string(cls) + ": depth_multiplier must be positive, got 0");
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
  if (options_.groups == 0)
    throw std::invalid_argument(std::string(cls) + ": groups must be positive, got 0");
  if (options_.groups != 1) {
    if (kind != ConvKind::regular)
      throw std::invalid_argument(std::string(cls) +
                                  ": groups is for Conv1D, Conv2D and Conv3D only");
    if (options_.filters % options_.groups != 0)
      throw std::invalid_argument(
          std::string(cls) + ": filters (" + std::to_string(options_.filters) +
          ") must be divisible by groups (" + std::to_string(options_.groups) + ")");
  }
  if (!options_.output_padding.empty()) {
    if (kind != ConvKind::transpose)
      throw std::invalid_argument(std::string(cls) +
                                  ": output_padding is for transposed convolutions only");
    output_padding_ = expand(options_.output_padding, rank, "output_padding", cls);
    for (int i = 0; i < rank; ++i)
      if (output_padding_[static_cast<std::size_t>(i)] < 0 ||
          output_padding_[static_cast<std::size_t>(i)] >= strides_[static_cast<std::size_t>(i)])
        throw std::invalid_argument(
            std::string(cls) + ": output_padding must be in [0, stride), got " +
            std::to_string(output_padding_[static_cast<std::size_t>(i)]) + " for stride " +
            std::to_string(strides_[static_cast<std::size_t>(i)]));
  }
  std::string lower = options_.padding;
  for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (lower == "causal") {
    if (rank != 1 || kind != ConvKind::regular)
      throw std::invalid_argument(std::string(cls) +
                                  ": padding 'causal' is for Conv1D only (expected 'valid' or "
                                  "'same')");
    padding_ = Padding::causal;
  } else {
    padding_ = parse_padding(options_.padding, cls);
  }
  activation_ = get_activation(options_.activation);
  get_initializer(options_.kernel_initializer);
  get_initializer(options_.bias_initializer);
  get_initializer(options_.depthwise_initializer);
  get_initializer(options_.pointwise_initializer);
}

std::size_t Conv::out_channels(std::size_t in_channels) const {
  return kind_ == ConvKind::depthwise ? in_channels * options_.depth_multiplier : options_.filters;
}

void Conv::build(const Shape& input_shape) {
  if (static_cast<int>(input_shape.size()) != rank_ + 1)
    throw std::invalid_argument(class_name() + " '" + name() + "': expected inputs of rank " +
                                std::to_string(rank_ + 2) + " (batch, " +
                                (rank_ == 3   ? "depth, height, width"
                                 : rank_ == 2 ? "height, width"
                                              : "steps") +
                                ", channels), got " + batch_shape_str(input_shape));
  const std::size_t cin = input_shape.back();
  if (cin % options_.groups != 0)
    throw std::invalid_argument(class_name() + " '" + name() + "': input channels (" +
                                std::to_string(cin) + ") must be divisible by groups (" +
                                std::to_string(options_.groups) + ")");
  Shape kshape;
  for (int k : kernel_size_) kshape.push_back(static_cast<std::size_t>(k));
  switch (kind_) {
    case ConvKind::regular:
      kshape.insert(kshape.end(), {cin / options_.groups, options_.filters});
      break;
    case ConvKind::transpose:
      kshape.insert(kshape.end(), {options_.filters, cin});
      break;
    default:
      kshape.insert(kshape.end(), {cin, options_.depth_multiplier});
      break;
  }
  const Shape out = compute_output_shape(input_shape);
  for (std::size_t i = 0; i + 1 < out.size(); ++i)
    if (out[i] == 0)
      throw std::invalid_argument(class_name() + " '" + name() + "': input " +
                                  batch_shape_str(input_shape) + " is smaller than the kernel " +
                                  shape_str(kshape) + " with 'valid' padding");
  const auto reg = as_penalty(options_.kernel_regularizer);
  const auto proj = as_projection(options_.kernel_constraint);
  if (kind_ == ConvKind::separable) {
    add_weight("depthwise_kernel", kshape, get_initializer(options_.depthwise_initializer), true,
               reg, proj);
    Shape pshape(static_cast<std::size_t>(rank_), 1);
    pshape.insert(pshape.end(), {cin * options_.depth_multiplier, options_.filters});
    add_weight("pointwise_kernel", pshape, get_initializer(options_.pointwise_initializer), true,
               reg, proj);
  } else {
    add_weight("kernel", kshape,
               get_initializer(kind_ == ConvKind::depthwise ? options_.depthwise_initializer
                                                            : options_.kernel_initializer),
               true, reg, proj);
  }
  if (options_.use_bias)
    add_weight("bias", {out_channels(cin)}, get_initializer(options_.bias_initializer), true,
               as_penalty(options_.bias_regularizer), as_projection(options_.bias_constraint));
}

Shape Conv::compute_output_shape(const Shape& input_shape) const {
  Shape out;
  for (int i = 0; i < rank_; ++i) {
    const std::size_t u = static_cast<std::size_t>(i);
    const std::size_t in = i < static_cast<int>(input_shape.size()) ? input_shape[u] : 0;
    if (kind_ == ConvKind::transpose)
      out.push_back(conv_transpose_length(
          in, static_cast<std::size_t>(kernel_size_[u]), strides_[u], padding_,
          output_padding_.empty() ? -1 : output_padding_[u], dilation_[u], "Conv transpose layer"));
    else
      out.push_back(out_extent(in, kernel_size_[u], strides_[u], dilation_[u], padding_).first);
  }
  out.push_back(out_channels(input_shape.empty() ? 0 : input_shape.back()));
  return out;
}

Tensor Conv::convolution_op(const Tensor& inputs, const Tensor& kernel) {
  const int op0 = output_padding_.empty() ? -1 : output_padding_[0];
  const int op1 = output_padding_.size() > 1 ? output_padding_[1] : -1;
  switch (kind_) {
    case ConvKind::transpose:
      if (rank_ == 2)
        return conv2d_transpose(inputs, kernel, {strides_[0], strides_[1]}, padding_, {op0, op1},
                                {dilation_[0], dilation_[1]});
      return conv1d_transpose(inputs, kernel, strides_[0], padding_, op0, dilation_[0]);
    case ConvKind::depthwise:
    case ConvKind::separable: {
      Tensor y = rank_ == 2 ? depthwise_conv2d(inputs, kernel, {strides_[0], strides_[1]}, padding_,
                                               {dilation_[0], dilation_[1]})
                            : depthwise_conv1d(inputs, kernel, strides_[0], padding_, dilation_[0]);
      if (kind_ == ConvKind::depthwise) return y;
      return rank_ == 2 ? conv2d(y, pointwise_kernel()) : conv1d(y, pointwise_kernel());
    }
    default: {
      auto one = [&](const Tensor& x, const Tensor& k) {
        if (rank_ == 3)
          return conv3d(x, k, {strides_[0], strides_[1], strides_[2]}, padding_,
                        {dilation_[0], dilation_[1], dilation_[2]});
        if (rank_ == 2)
          return conv2d(x, k, {strides_[0], strides_[1]}, padding_, {dilation_[0], dilation_[1]});
        return conv1d(x, k, strides_[0], padding_, dilation_[0]);
      };
      const std::size_t g = options_.groups;
      if (g == 1) return one(inputs, kernel);
      const int gi = static_cast<int>(g);
      if (rank_ == 2)
        return conv2d(inputs, kernel, {strides_[0], strides_[1]}, padding_,
                      {dilation_[0], dilation_[1]}, gi);
      if (rank_ == 1) return conv1d(inputs, kernel, strides_[0], padding_, dilation_[0], gi);
      // Each group: its slice of the input channels with its slice of the filters.
      const int last = static_cast<int>(inputs.ndim()) - 1;
      const auto cin = static_cast<std::int64_t>(inputs.shape().back() / g);
      const auto cout = static_cast<std::int64_t>(kernel.shape().back() / g);
      const int kl = static_cast<int>(kernel.ndim()) - 1;
      std::vector<Tensor> outs;
      for (std::size_t i = 0; i < g; ++i) {
        const auto gi = static_cast<std::int64_t>(i);
        outs.push_back(one(slice(inputs, last, gi * cin, (gi + 1) * cin),
                           slice(kernel, kl, gi * cout, (gi + 1) * cout)));
      }
      return concat(outs, last);
    }
  }
}

Tensor Conv::call(const Tensor& inputs, bool) {
  Tensor y = convolution_op(inputs, kernel());
  if (options_.use_bias) y = y + bias();
  y = activation_(y);
  if (options_.activity_regularizer.defined()) add_loss(options_.activity_regularizer(y));
  return y;
}

nlohmann::json Conv::get_config() const {
  nlohmann::json c = Layer::get_config();
  if (kind_ != ConvKind::depthwise) c["filters"] = options_.filters;
  c["kernel_size"] = kernel_size_;
  c["strides"] = strides_;
  c["padding"] = options_.padding;
  if (kind_ == ConvKind::transpose)
    c["output_padding"] =
        output_padding_.empty() ? nlohmann::json(nullptr) : nlohmann::json(output_padding_);
  c["data_format"] = "channels_last";
  c["dilation_rate"] = dilation_;
  if (kind_ == ConvKind::regular) c["groups"] = options_.groups;
  if (kind_ == ConvKind::depthwise || kind_ == ConvKind::separable)
    c["depth_multiplier"] = options_.depth_multiplier;
  c["activation"] = options_.activation.empty() ? "linear" : options_.activation;
  c["use_bias"] = options_.use_bias;
  if (kind_ == ConvKind::regular || kind_ == ConvKind::transpose)
    c["kernel_initializer"] = options_.kernel_initializer;
  if (kind_ == ConvKind::depthwise || kind_ == ConvKind::separable)
    c["depthwise_initializer"] = options_.depthwise_initializer;
  if (kind_ == ConvKind::separable) c["pointwise_initializer"] = options_.pointwise_initializer;
  c["bias_initializer"] = options_.bias_initializer;
  c["kernel_regularizer"] = options_.kernel_regularizer.config();
  c["bias_regularizer"] = options_.bias_regularizer.config();
  c["activity_regularizer"] = options_.activity_regularizer.config();
  c["kernel_constraint"] = options_.kernel_constraint.config();
  c["bias_constraint"] = options_.bias_constraint.config();
  return c;
}

}  // namespace xtape::layers
