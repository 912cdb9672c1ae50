#pragma once
/// @file parametrize.hpp
/// Weight parametrizations (PyTorch's torch.nn.utils.parametrize): a layer whose weight `name`
/// is parametrized by `p` reads `p(stored)` wherever it reads `weight(name)`, and the tape
/// differentiates through `p` to the stored value, which is what the optimizer updates.
///
///   parametrize(conv, "kernel", weight_standardization());   // the founding recipe, one line
///   parametrize(dense, "kernel", weight_normalization());    // w = g * v / |v|
///   parametrize(conv, "kernel", spectral_normalization());   // w / sigma(w), power iteration
///   parametrize(dense, "kernel", [](const Tensor& w) { return w * mask; });  // any callable
///
/// A layer not built yet takes the parametrization when it builds. Within one call of the
/// layer each parametrized weight is computed once (all reads of it share the result, as under
/// PyTorch's parametrize.cached()); outside a call every read computes it in inference mode.
/// Parametrizations that need state add weights to the layer ("kernel_g" for weight
/// normalization, "kernel_u" and "kernel_v" for spectral normalization), so checkpoints and
/// model files save and restore them, and the built-in ones are part of the layer's config.
#include <functional>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "autodiff/tensor.hpp"
#include "layers/conv.hpp"
#include "layers/layer.hpp"

namespace xtape::layers {

/// A function of a stored weight that a layer uses in its place.
class Parametrization {
 public:
  virtual ~Parametrization() = default;
  /// The weight the layer sees, computed from the stored one with recorded ops. `training` is
  /// the flag of the layer call reading it (false outside a call); state may advance with it.
  virtual Tensor forward(const Tensor& stored, bool training) = 0;
  /// Called once, when the parametrization is registered on a built layer (or when the layer
  /// builds): may add the weights it needs to `layer` and check the stored weight's shape
  /// (throwing std::invalid_argument naming itself, the layer and the shape).
  virtual void attach(Layer& layer, const std::string& weight_name);
  /// Registered class name ("WeightStandardization", ...).
  virtual std::string class_name() const = 0;
  /// Options as JSON, or null when the parametrization cannot be rebuilt from data (a C++
  /// callable): a model holding one saves, but loading it needs the parametrization registered.
  virtual nlohmann::json get_config() const;
};

/// Registers `p` on `layer`'s weight `weight_name` (applied after the ones registered
/// before). Throws std::invalid_argument when the layer has no such weight (once built), when
/// `p` is null, or when the weight is not the layer's own (a path into a sub-layer:
/// parametrize the sub-layer).
void parametrize(Layer& layer, const std::string& weight_name, std::shared_ptr<Parametrization> p);
/// A callable as a parametrization ("Function" in configs: not restorable from a file).
void parametrize(Layer& layer, const std::string& weight_name,
                 std::function<Tensor(const Tensor&)> fn);
template <class L, class P>
void parametrize(const std::shared_ptr<L>& layer, const std::string& weight_name, P&& p) {
  if (!layer) throw std::invalid_argument("parametrize: null layer");
  parametrize(static_cast<Layer&>(*layer), weight_name, std::forward<P>(p));
}

/// True when `weight_name` of `layer` is parametrized.
bool is_parametrized(const Layer& layer, const std::string& weight_name);
/// Removes the parametrizations of `weight_name`. With `leave_parametrized` (PyTorch's
/// default) the stored weight takes the parametrized value, so the layer computes the same;
/// otherwise it keeps the stored value. The weights the parametrizations added stay (their
/// values are kept for checkpoints already written). Throws when the weight has none.
void remove_parametrizations(Layer& layer, const std::string& weight_name,
                             bool leave_parametrized = true);

/// (w - mean(w)) / sqrt(var(w) + epsilon) over `axes` (default: every axis but the last, the
/// filters' axis of a Keras kernel): weight standardization, arXiv:1903.10520, with the same
/// ops, so the same bits, as the founding recipe's convolution_op.
Tensor standardize_weight(const Tensor& w, std::vector<int> axes = {}, float epsilon = 1e-10f);

/// Weight standardization as a parametrization.
std::shared_ptr<Parametrization> weight_standardization(std::vector<int> axes = {},
                                                        float epsilon = 1e-10f);
/// Weight normalization (Salimans & Kingma 2016; torch.nn.utils.parametrizations.weight_norm):
/// w = g * v / |v|, the norm over every axis but `axis` (default -1: per filter or unit of a
/// Keras kernel). Adds the trainable weight "<name>_g" (the norms, shape (extent of axis,)),
/// initialised to |v| so the layer computes what it did; v is the stored weight.
std::shared_ptr<Parametrization> weight_normalization(int axis = -1);
/// Spectral normalization (Miyato et al. 2018; keras.layers.SpectralNormalization,
/// torch.nn.utils.parametrizations.spectral_norm): w / sigma, sigma the largest singular value
/// of w as a matrix (rows: every axis but the last; columns: the last), estimated by
/// `power_iterations` steps of power iteration per training call from the vectors kept in the
/// non-trainable weights "<name>_u" (columns) and "<name>_v" (rows). sigma = u . (W v) with u
/// and v held constant, as PyTorch differentiates it. Registration runs 15 iterations from a
/// random u (the global RNG), as PyTorch does. `epsilon` guards the normalizations.
std::shared_ptr<Parametrization> spectral_normalization(int power_iterations = 1,
                                                        float epsilon = 1e-12f);

/// Makes a parametrization from its config (class_name and get_config's object), for loading.
using ParametrizationFactory =
    std::function<std::shared_ptr<Parametrization>(const nlohmann::json& config)>;
/// Registers (or replaces) a parametrization class for loading from configs.
void register_parametrization(const std::string& class_name, ParametrizationFactory factory);
/// The parametrization a config entry describes; throws std::invalid_argument naming the class
/// when it is unknown (a "Function" parametrization needs registering under a name of its own).
std::shared_ptr<Parametrization> parametrization_from_config(const std::string& class_name,
                                                             const nlohmann::json& config);

/// Conv2D with a standardized kernel (the founding recipe's layer, built in): the convolution
/// uses standardize_weight(kernel, {0, 1, 2}, epsilon). Its config is Conv2D's plus "epsilon".
struct StandardizedConvOptions : ConvOptions {
  float epsilon = 1e-10f;
};
class StandardizedConv2D : public Conv2D {
 public:
  using Options = StandardizedConvOptions;
  explicit StandardizedConv2D(StandardizedConvOptions options);
  Tensor convolution_op(const Tensor& inputs, const Tensor& kernel) override;
  nlohmann::json get_config() const override;
  std::string class_name() const override { return "StandardizedConv2D"; }
  float epsilon() const { return epsilon_; }

 private:
  float epsilon_;
};

}  // namespace xtape::layers
