#include "layers/parametrize.hpp"

#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "autodiff/ops.hpp"
#include "autodiff/ops_array.hpp"
#include "autodiff/ops_elementwise.hpp"
#include "autodiff/random.hpp"

namespace xtape::layers {

void Parametrization::attach(Layer&, const std::string&) {}

nlohmann::json Parametrization::get_config() const { return nullptr; }

namespace {

std::string who(const Parametrization& p, const Layer& layer, const std::string& weight) {
  return p.class_name() + " of weight '" + weight + "' of layer '" + layer.name() + "'";
}

// The stored weight's own entry (attach adds its state beside it).
bool has_own_weight(const Layer& layer, const std::string& name) {
  for (const Weight& w : layer.own_weights())
    if (w.name == name) return true;
  return false;
}

// A weight of the parametrization's state: created on first attach, reused when the layer
// already has it (a parametrization registered again after remove_parametrizations).
Tensor state_weight(Layer& layer, const std::string& name, const Shape& shape, bool trainable) {
  if (has_own_weight(layer, name)) {
    Tensor t = layer.stored_weight(name);
    if (t.shape() == shape) return t;
    throw std::invalid_argument("layer '" + layer.name() + "': weight '" + name + "' has shape " +
                                shape_str(t.shape()) + ", the parametrization needs " +
                                shape_str(shape));
  }
  return layer.add_weight(name, shape, get_initializer("zeros"), trainable);
}

class FunctionParametrization final : public Parametrization {
 public:
  explicit FunctionParametrization(std::function<Tensor(const Tensor&)> fn) : fn_(std::move(fn)) {}
  Tensor forward(const Tensor& stored, bool) override {
    Tensor out = fn_(stored);
    if (!out.defined() || out.shape() != stored.shape())
      throw std::invalid_argument("parametrize: the function returned shape " +
                                  (out.defined() ? shape_str(out.shape()) : "(undefined)") +
                                  " for a weight of shape " + shape_str(stored.shape()) +
                                  " (it must keep the shape)");
    return out;
  }
  std::string class_name() const override { return "Function"; }

 private:
  std::function<Tensor(const Tensor&)> fn_;
};

// Every axis of a rank-`rank` weight but `keep` (already non-negative).
std::vector<int> all_axes_but(std::size_t rank, int keep) {
  std::vector<int> axes;
  for (int a = 0; a < static_cast<int>(rank); ++a)
    if (a != keep) axes.push_back(a);
  return axes;
}

class WeightStandardization final : public Parametrization {
 public:
  WeightStandardization(std::vector<int> axes, float epsilon)
      : axes_(std::move(axes)), epsilon_(epsilon) {
    if (!(epsilon_ >= 0.f))
      throw std::invalid_argument("weight_standardization: epsilon must be >= 0, got " +
                                  std::to_string(epsilon_));
  }
  void attach(Layer& layer, const std::string& weight) override {
    const std::size_t rank = layer.stored_weight(weight).ndim();
    if (rank < 2)
      throw std::invalid_argument(who(*this, layer, weight) +
                                  ": expected a weight of rank >= 2, got rank " +
                                  std::to_string(rank));
    for (int a : axes_)
      if (a < -static_cast<int>(rank) || a >= static_cast<int>(rank))
        throw std::invalid_argument(who(*this, layer, weight) + ": axis " + std::to_string(a) +
                                    " out of range for rank " + std::to_string(rank));
  }
  Tensor forward(const Tensor& stored, bool) override {
    return standardize_weight(stored, axes_, epsilon_);
  }
  std::string class_name() const override { return "WeightStandardization"; }
  nlohmann::json get_config() const override {
    return {{"axes", axes_.empty() ? nlohmann::json(nullptr) : nlohmann::json(axes_)},
            {"epsilon", epsilon_}};
  }

 private:
  std::vector<int> axes_;
  float epsilon_;
};

class WeightNormalization final : public Parametrization {
 public:
  explicit WeightNormalization(int axis) : axis_(axis) {}
  void attach(Layer& layer, const std::string& weight) override {
    const Tensor v = layer.stored_weight(weight);
    const int rank = static_cast<int>(v.ndim());
    if (rank < 1 || axis_ < -rank || axis_ >= rank)
      throw std::invalid_argument(who(*this, layer, weight) + ": axis " + std::to_string(axis_) +
                                  " out of range for a weight of shape " + shape_str(v.shape()));
    keep_ = axis_ < 0 ? axis_ + rank : axis_;
    layer_ = &layer;
    g_name_ = weight + "_g";
    Tensor g = state_weight(layer, g_name_, {v.shape()[static_cast<std::size_t>(keep_)]}, true);
    NoGrad no_grad;
    g.assign(reshape(norm(v, 2, all_axes_but(v.ndim(), keep_), false), {-1}));
  }
  Tensor forward(const Tensor& v, bool) override {
    std::vector<long> bs(v.ndim(), 1);
    bs[static_cast<std::size_t>(keep_)] = -1;
    const Tensor g = reshape(layer_->stored_weight(g_name_), bs);
    return v * (g / norm(v, 2, all_axes_but(v.ndim(), keep_), true));
  }
  std::string class_name() const override { return "WeightNormalization"; }
  nlohmann::json get_config() const override { return {{"axis", axis_}}; }

 private:
  int axis_;
  int keep_ = 0;
  const Layer* layer_ = nullptr;  // the owner (it holds this parametrization)
  std::string g_name_;
};

class SpectralNormalization final : public Parametrization {
 public:
  SpectralNormalization(int power_iterations, float epsilon)
      : iterations_(power_iterations), epsilon_(epsilon) {
    if (iterations_ < 1)
      throw std::invalid_argument("spectral_normalization: power_iterations must be >= 1, got " +
                                  std::to_string(iterations_));
    if (!(epsilon_ > 0.f))
      throw std::invalid_argument("spectral_normalization: epsilon must be > 0, got " +
                                  std::to_string(epsilon_));
  }
  void attach(Layer& layer, const std::string& weight) override {
    const Tensor w = layer.stored_weight(weight);
    if (w.ndim() < 1 || w.size() == 0)
      throw std::invalid_argument(who(*this, layer, weight) +
                                  ": expected a non-empty weight of rank >= 1, got shape " +
                                  shape_str(w.shape()));
    cols_ = w.shape().back();
    rows_ = w.size() / cols_;
    layer_ = &layer;
    u_name_ = weight + "_u";
    v_name_ = weight + "_v";
    Tensor u = state_weight(layer, u_name_, {cols_}, false);
    (void)state_weight(layer, v_name_, {rows_}, false);
    NoGrad no_grad;
    std::vector<float> start(cols_);
    Rng& rng = global_rng();
    for (float& x : start) x = rng.normal();
    u.assign(normalized(Tensor({cols_}, start)));
    iterate(w, 15);
  }
  Tensor forward(const Tensor& w, bool training) override {
    if (training) {
      NoGrad no_grad;
      iterate(w, iterations_);
    }
    const Tensor m = reshape(w, {static_cast<long>(rows_), static_cast<long>(cols_)});
    // u and v are constants here (non-trainable weights): the gradient flows through m.
    const Tensor u = reshape(layer_->stored_weight(u_name_), {static_cast<long>(cols_), 1});
    const Tensor v = reshape(layer_->stored_weight(v_name_), {static_cast<long>(rows_), 1});
    const Tensor sigma = sum(v * matmul(m, u));
    return w / sigma;
  }
  std::string class_name() const override { return "SpectralNormalization"; }
  nlohmann::json get_config() const override {
    return {{"power_iterations", iterations_}, {"epsilon", epsilon_}};
  }

 private:
  Tensor normalized(const Tensor& x) const { return x / maximum(norm(x), epsilon_); }
  // `steps` power iterations on w as a (rows, cols) matrix; updates u and v (no recording).
  void iterate(const Tensor& w, int steps) const {
    const Tensor m = reshape(w.detach(), {static_cast<long>(rows_), static_cast<long>(cols_)});
    Tensor u = layer_->stored_weight(u_name_), v = layer_->stored_weight(v_name_);
    Tensor uc = reshape(u, {static_cast<long>(cols_), 1}), vc;
    for (int s = 0; s < steps; ++s) {
      vc = normalized(matmul(m, uc));
      uc = normalized(matmul(m, vc, true, false));
    }
    v.assign(reshape(vc, {static_cast<long>(rows_)}));
    u.assign(reshape(uc, {static_cast<long>(cols_)}));
  }

  int iterations_;
  float epsilon_;
  std::size_t rows_ = 0, cols_ = 0;
  const Layer* layer_ = nullptr;  // the owner (it holds this parametrization)
  std::string u_name_, v_name_;
};

std::mutex g_mutex;
std::map<std::string, ParametrizationFactory>& factories() {
  static std::map<std::string, ParametrizationFactory> f = [] {
    std::map<std::string, ParametrizationFactory> m;
    m["WeightStandardization"] = [](const nlohmann::json& c) {
      std::vector<int> axes;
      if (c.contains("axes") && !c["axes"].is_null()) axes = c["axes"].get<std::vector<int>>();
      return weight_standardization(axes, c.value("epsilon", 1e-10f));
    };
    m["WeightNormalization"] = [](const nlohmann::json& c) {
      return weight_normalization(c.value("axis", -1));
    };
    m["SpectralNormalization"] = [](const nlohmann::json& c) {
      return spectral_normalization(c.value("power_iterations", 1), c.value("epsilon", 1e-12f));
    };
    return m;
  }();
  return f;
}

}  // namespace

Tensor standardize_weight(const Tensor& w, std::vector<int> axes, float epsilon) {
  if (axes.empty()) axes = all_axes_but(w.ndim(), static_cast<int>(w.ndim()) - 1);
  auto [mean, var] = moments(w, axes, /*keepdims=*/true);
  return (w - mean) / sqrt(var + epsilon);
}

std::shared_ptr<Parametrization> weight_standardization(std::vector<int> axes, float epsilon) {
  return std::make_shared<WeightStandardization>(std::move(axes), epsilon);
}

std::shared_ptr<Parametrization> weight_normalization(int axis) {
  return std::make_shared<WeightNormalization>(axis);
}

std::shared_ptr<Parametrization> spectral_normalization(int power_iterations, float epsilon) {
  return std::make_shared<SpectralNormalization>(power_iterations, epsilon);
}

void parametrize(Layer& layer, const std::string& weight_name, std::shared_ptr<Parametrization> p) {
  layer.add_parametrization(weight_name, std::move(p));
}

void parametrize(Layer& layer, const std::string& weight_name,
                 std::function<Tensor(const Tensor&)> fn) {
  if (!fn) throw std::invalid_argument("parametrize: an empty function");
  layer.add_parametrization(weight_name, std::make_shared<FunctionParametrization>(std::move(fn)));
}

bool is_parametrized(const Layer& layer, const std::string& weight_name) {
  for (const auto& p : layer.parametrizations())
    if (p.weight == weight_name) return true;
  return false;
}

void remove_parametrizations(Layer& layer, const std::string& weight_name,
                             bool leave_parametrized) {
  if (!is_parametrized(layer, weight_name))
    throw std::invalid_argument("remove_parametrizations: weight '" + weight_name + "' of layer '" +
                                layer.name() + "' has no parametrization");
  Tensor value;
  if (leave_parametrized) {
    NoGrad no_grad;
    value = layer.weight(weight_name).detach();
  }
  layer.drop_parametrizations(weight_name);
  if (leave_parametrized) {
    NoGrad no_grad;
    layer.stored_weight(weight_name).assign(value);
  }
}

void register_parametrization(const std::string& class_name, ParametrizationFactory factory) {
  if (class_name.empty()) throw std::invalid_argument("register_parametrization: empty name");
  if (!factory)
    throw std::invalid_argument("register_parametrization: empty factory for '" + class_name + "'");
  std::lock_guard<std::mutex> lock(g_mutex);
  factories()[class_name] = std::move(factory);
}

std::shared_ptr<Parametrization> parametrization_from_config(const std::string& class_name,
                                                             const nlohmann::json& config) {
  ParametrizationFactory factory;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    const auto it = factories().find(class_name);
    if (it != factories().end()) factory = it->second;
  }
  if (!factory)
    throw std::invalid_argument(
        "unknown parametrization '" + class_name + "'" +
        (class_name == "Function"
             ? std::string(": a C++ callable is not data; give it a Parametrization class and "
                           "register_parametrization(name, factory) before loading")
             : ": register_parametrization(\"" + class_name + "\", factory) before loading"));
  try {
    auto p = factory(config.is_null() ? nlohmann::json::object() : config);
    if (!p) throw std::invalid_argument("the factory returned null");
    return p;
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument("parametrization '" + class_name + "': bad config: " + e.what());
  }
}

// ---- StandardizedConv2D ----

StandardizedConv2D::StandardizedConv2D(StandardizedConvOptions options)
    : Conv2D(static_cast<ConvOptions>(options)), epsilon_(options.epsilon) {
  if (!(epsilon_ >= 0.f))
    throw std::invalid_argument("StandardizedConv2D: epsilon must be >= 0, got " +
                                std::to_string(epsilon_));
}

Tensor StandardizedConv2D::convolution_op(const Tensor& inputs, const Tensor& kernel) {
  return Conv2D::convolution_op(inputs, standardize_weight(kernel, {0, 1, 2}, epsilon_));
}

nlohmann::json StandardizedConv2D::get_config() const {
  nlohmann::json c = Conv2D::get_config();
  c["epsilon"] = epsilon_;
  return c;
}

}  // namespace xtape::layers
