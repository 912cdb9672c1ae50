#pragma once
/// @file ops.hpp
/// The differentiable primitives of xtape. Every op records its backward rule on the tape when
/// an input requires a gradient and recording is on (see NoGrad). Shape errors throw
/// std::invalid_argument naming the op and the shapes involved.
#include <array>
#include <string>
#include <utility>
#include <vector>

#include "autodiff/ops_elementwise.hpp"
#include "autodiff/random.hpp"
#include "autodiff/tensor.hpp"

namespace xtape {

// ---- elementwise arithmetic, NumPy broadcasting both ways (autodiff/ops/elementwise.cpp) ----
Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator+(const Tensor& a, float b);
Tensor operator-(const Tensor& a, float b);
Tensor operator*(const Tensor& a, float b);
Tensor operator/(const Tensor& a, float b);
Tensor operator+(float a, const Tensor& b);
Tensor operator-(float a, const Tensor& b);
Tensor operator*(float a, const Tensor& b);
Tensor operator/(float a, const Tensor& b);
Tensor operator-(const Tensor& a);

/// Shape of broadcasting a with b (NumPy rules: shapes align at the last axis, an extent of 1
/// stretches to the other extent, 0 included, and other extents must be equal); throws
/// std::invalid_argument naming `op`.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);
/// Sums `x` down to `shape` (the inverse of broadcasting `shape` to x.shape()): the one helper
/// every broadcasting backward rule uses.
Tensor sum_to(const Tensor& x, const Shape& shape);

// ---- elementwise functions ----
Tensor sqrt(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
/// x ** p for a scalar exponent.
Tensor pow(const Tensor& x, float p);
Tensor abs(const Tensor& x);
Tensor square(const Tensor& x);
/// max(x, 0); relu(NaN) is NaN, and the gradient passes where the result is NaN (PyTorch).
Tensor relu(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor tanh(const Tensor& x);
/// min(max(x, lo), hi); the gradient passes where lo <= x <= hi.
Tensor clip(const Tensor& x, float lo, float hi);

// ---- reductions (autodiff/ops/reduce.cpp). Empty `axes` means every axis; negative axes count
// from the end. ----
Tensor sum(const Tensor& x, std::vector<int> axes = {}, bool keepdims = false);
/// Mean over `axes`; NaN for groups of no elements (an axis of extent 0), as NumPy and PyTorch.
Tensor mean(const Tensor& x, std::vector<int> axes = {}, bool keepdims = false);
/// Maximum; the gradient goes to the first maximal element of each reduced group. NaN counts
/// as greater than every number (IEEE, PyTorch): a group holding NaN gives NaN, and its
/// gradient goes to the group's first NaN (PyTorch's max over a dimension). Throws
/// std::invalid_argument when a group is empty (a maximum of no elements has no value).
Tensor max(const Tensor& x, std::vector<int> axes = {}, bool keepdims = false);
/// (mean, population variance) over `axes`, as tf.nn.moments. A composition of primitives.
std::pair<Tensor, Tensor> moments(const Tensor& x, std::vector<int> axes, bool keepdims = false);

// ---- linear algebra and shapes (linalg.cpp, shape.cpp) ----
/// (m, k) x (k, n) -> (m, n); batched: (..., m, k) x (..., k, n) with broadcast batch dims;
/// a 2-d operand is shared across the batch.
Tensor matmul(const Tensor& a, const Tensor& b);
/// Same data, new shape; one extent may be -1 (inferred).
Tensor reshape(const Tensor& x, const std::vector<long>& shape);
/// Flattens axes start_axis.. into one: flatten(x) is 1-d, flatten(x, 1) keeps the batch axis.
Tensor flatten(const Tensor& x, int start_axis = 0);
/// Permutes axes; an empty perm reverses them.
Tensor transpose(const Tensor& x, std::vector<int> perm = {});
/// Concatenates along `axis` (shapes must agree elsewhere).
Tensor concat(const std::vector<Tensor>& xs, int axis);
/// Rows [start, stop) of axis 0 (a copy).
Tensor slice_rows(const Tensor& x, std::size_t start, std::size_t stop);
/// Rows of axis 0 picked by index (a copy), e.g. a shuffled mini-batch.
Tensor gather_rows(const Tensor& x, const std::vector<std::size_t>& rows);

// ---- convolution and pooling (conv.cpp, pool.cpp), NHWC like Keras ----
/// TensorFlow's padding rules; `causal` (conv1d only) pads dilation * (k - 1) before the steps,
/// so output t depends on inputs up to t * stride (Keras's Conv1D padding="causal").
enum class Padding { valid, same, causal };
/// "valid" or "same" (case-insensitive); throws std::invalid_argument naming `who` otherwise.
Padding parse_padding(const std::string& name, const char* who);

/// input (n, h, w, cin), kernel (kh, kw, cin / groups, cout) -> (n, oh, ow, cout). With
/// groups > 1 (dividing cin and cout), filter block i of cout / groups sees input channel
/// block i only (Keras's Conv2D groups). Throws std::invalid_argument when the kernel's
/// channels times groups are not the input's or groups does not divide cout.
Tensor conv2d(const Tensor& input, const Tensor& kernel, std::array<int, 2> strides = {1, 1},
              Padding padding = Padding::valid, std::array<int, 2> dilation = {1, 1},
              int groups = 1);
/// input (n, w, cin), kernel (k, cin / groups, cout) -> (n, ow, cout); groups as conv2d's.
Tensor conv1d(const Tensor& input, const Tensor& kernel, int stride = 1,
              Padding padding = Padding::valid, int dilation = 1, int groups = 1);
/// Transposed convolution (Keras's Conv2DTranspose): input (n, h, w, cin), kernel
/// (kh, kw, filters, cin) -> (n, H, W, filters), the adjoint of conv2d from (H, W) to (h, w).
/// H follows Keras (deconv_output_length): with output_padding -1 (None), h * stride, plus
/// max(dilated k - stride, 0) for 'valid'; else (h - 1) * stride + dilated k - 2 * pad +
/// output_padding, pad = dilated k / 2 for 'same'. output_padding must be below the stride.
Tensor conv2d_transpose(const Tensor& input, const Tensor& kernel,
                        std::array<int, 2> strides = {1, 1}, Padding padding = Padding::valid,
                        std::array<int, 2> output_padding = {-1, -1},
                        std::array<int, 2> dilation = {1, 1});
/// One output extent of a transposed convolution (Keras's deconv_output_length, see
/// conv2d_transpose; output_padding -1 is None). Throws std::invalid_argument naming `op` when
/// output_padding is not below the stride or no output remains.
std::size_t conv_transpose_length(std::size_t in, std::size_t kernel, int stride, Padding padding,
                                  int output_padding, int dilation,
                                  const char* op = "conv_transpose");
/// input (n, w, cin), kernel (k, filters, cin) -> (n, W, filters); see conv2d_transpose.
Tensor conv1d_transpose(const Tensor& input, const Tensor& kernel, int stride = 1,
                        Padding padding = Padding::valid, int output_padding = -1,
                        int dilation = 1);
/// Depthwise convolution (Keras's DepthwiseConv2D): input (n, h, w, cin), kernel
/// (kh, kw, cin, multiplier) -> (n, oh, ow, cin * multiplier), output channel c * multiplier + m
/// from input channel c and filter m.
Tensor depthwise_conv2d(const Tensor& input, const Tensor& kernel,
                        std::array<int, 2> strides = {1, 1}, Padding padding = Padding::valid,
                        std::array<int, 2> dilation = {1, 1});
/// input (n, w, cin), kernel (k, cin, multiplier) -> (n, ow, cin * multiplier).
Tensor depthwise_conv1d(const Tensor& input, const Tensor& kernel, int stride = 1,
                        Padding padding = Padding::valid, int dilation = 1);
/// Window max over (n, h, w, c); strides default to the pool size when {0, 0}. NaN counts as
/// greater than every number: a window holding NaN gives NaN, and the gradient goes to its
/// first NaN; otherwise to its first maximal element.
Tensor max_pool2d(const Tensor& x, std::array<int, 2> pool_size,
                  std::array<int, 2> strides = {0, 0}, Padding padding = Padding::valid);
/// Window mean over the in-bounds positions (TensorFlow's "same" semantics).
Tensor avg_pool2d(const Tensor& x, std::array<int, 2> pool_size,
                  std::array<int, 2> strides = {0, 0}, Padding padding = Padding::valid);

// ---- volumes (volume.cpp), NDHWC like Keras: compositions of the 2-d ops ----
/// input (n, d, h, w, cin), kernel (kd, kh, kw, cin, cout) -> (n, od, oh, ow, cout), each axis
/// as conv2d's. Throws std::invalid_argument naming conv3d for a wrong rank, mismatched
/// channels, non-positive strides or dilation, or an input smaller than the window ('valid').
Tensor conv3d(const Tensor& input, const Tensor& kernel, std::array<int, 3> strides = {1, 1, 1},
              Padding padding = Padding::valid, std::array<int, 3> dilation = {1, 1, 1});
/// Window max over (n, d, h, w, c); strides default to the pool size when {0, 0, 0}. NaN and
/// gradient as max_pool2d (the first maximal element in (d, h, w) order).
Tensor max_pool3d(const Tensor& x, std::array<int, 3> pool_size,
                  std::array<int, 3> strides = {0, 0, 0}, Padding padding = Padding::valid);
/// Window mean over the in-bounds positions of (n, d, h, w, c) (TensorFlow's "same").
Tensor avg_pool3d(const Tensor& x, std::array<int, 3> pool_size,
                  std::array<int, 3> strides = {0, 0, 0}, Padding padding = Padding::valid);

/// Upsamples x (n, h, w, c) by the integer factors size = (sh, sw) to (n, h sh, w sw, c):
/// "nearest" repeats every pixel, "bilinear" interpolates with half-pixel centers along h then
/// w, the edges clamped (tf.image.resize's bilinear, Keras's UpSampling2D). Differentiable any
/// number of times. Throws std::invalid_argument naming "upsample2d" for a rank other than 4, a
/// factor of 0 or another interpolation.
Tensor upsample2d(const Tensor& x, std::array<std::size_t, 2> size,
                  const std::string& interpolation = "nearest");

// ---- neural-network ops (nn.cpp) ----
Tensor softmax(const Tensor& x, int axis = -1);
Tensor log_softmax(const Tensor& x, int axis = -1);
/// Inverted dropout: zeroes with probability `rate`, scales survivors by 1/(1-rate).
/// Identity when !training or rate == 0. Throws std::invalid_argument unless 0 <= rate < 1.
Tensor dropout(const Tensor& x, float rate, bool training, Rng& rng);
/// A constant tensor of `shape` (no gradient) of mean + stddev * z, z standard normals from a
/// counter-based generator keyed by one draw of `rng` (kernels::normal_fill, autodiff/ops/
/// random.cpp): vectorised, and the same values for any thread count.
Tensor random_normal(const Shape& shape, float mean, float stddev, Rng& rng);
/// Per-sample categorical cross-entropy (n,) from one-hot/probability targets (n, k).
/// From probabilities (Keras semantics): predictions are renormalised to sum 1 and clipped to
/// [1e-7, 1 - 1e-7]; from logits: computed with log_softmax. As in Keras's TensorFlow backend,
/// probabilities produced by softmax() over the last axis are scored from that softmax's logits
/// (exact, and the gradient does not vanish where a probability saturates).
Tensor categorical_crossentropy(const Tensor& y_true, const Tensor& y_pred,
                                bool from_logits = false);
/// Per-sample cross-entropy (n,) from integer class labels stored as floats (n,).
Tensor sparse_categorical_crossentropy(const Tensor& labels, const Tensor& y_pred,
                                       bool from_logits = false);

}  // namespace xtape

// Indexing and movement, more reductions, contractions (issue 12).
#include "autodiff/ops_array.hpp"
