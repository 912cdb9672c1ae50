#include "layers/layer.hpp"

#include <cxxabi.h>

#include <cctype>
#include <map>
#include <mutex>
#include <stdexcept>
#include <typeinfo>

namespace xtape::layers {

namespace {
std::mutex g_names_mutex;
std::map<std::string, int>& name_counts() {
  static std::map<std::string, int> counts;
  return counts;
}
}  // namespace

std::string to_snake_case(const std::string& s) {
  // Two passes, as Keras: "xWord" -> "x_Word" (an upper case letter starting a lower-case run),
  // then "aB" -> "a_B"; then lower-case everything.
  std::string a;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (i > 0 && std::isupper(static_cast<unsigned char>(s[i])) && i + 1 < s.size() &&
        std::islower(static_cast<unsigned char>(s[i + 1])) && a.back() != '_')
      a += '_';
    a += s[i];
  }
  std::string b;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (i > 0 && std::isupper(static_cast<unsigned char>(a[i])) &&
        std::islower(static_cast<unsigned char>(a[i - 1])))
      b += '_';
    b += static_cast<char>(std::tolower(static_cast<unsigned char>(a[i])));
  }
  return b;
}

std::string unique_name(const std::string& base) {
  std::lock_guard<std::mutex> lock(g_names_mutex);
  int& n = name_counts()[base];
  const std::string name = n == 0 ? base : base + "_" + std::to_string(n);
  ++n;
  return name;
}

void clear_session() {
  std::lock_guard<std::mutex> lock(g_names_mutex);
  name_counts().clear();
}

std::string batch_shape_str(const Shape& s) {
  std::string out = "(None";
  for (std::size_t d : s) out += ", " + std::to_string(d);
  return out + ")";
}

Layer::Layer(std::string name) : name_(std::move(name)) {}

const std::string& Layer::name() const {
  if (name_.empty()) name_ = unique_name(to_snake_case(class_name()));
  return name_;
}

std::string Layer::class_name() const {
  // The dynamic type's name, without namespaces: user subclasses need not declare it.
  int status = 0;
  const char* mangled = typeid(*this).name();
  char* demangled = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  std::string full = status == 0 && demangled ? demangled : mangled;
  std::free(demangled);
  // Strip template arguments and namespaces.
  if (auto lt = full.find('<'); lt != std::string::npos) full.resize(lt);
  if (auto colon = full.rfind("::"); colon != std::string::npos) full = full.substr(colon + 2);
  return full;
}

void Layer::build(const Shape&) {}

Shape Layer::compute_output_shape(const Shape& input_shape) const { return input_shape; }

void Layer::ensure_built(const Shape& input_shape) {
  if (built_) return;
  build(input_shape);
  input_shape_ = input_shape;
  built_ = true;
}

Tensor Layer::operator()(const Tensor& inputs, bool training) {
  if (inputs.ndim() == 0)
    throw std::invalid_argument("layer '" + name() + "' (" + class_name() +
                                "): expected an input with a batch axis, got a scalar");
  const Shape sample(inputs.shape().begin() + 1, inputs.shape().end());
  if (!built_) {
    ensure_built(sample);
  } else if (sample != input_shape_) {
    throw std::invalid_argument("layer '" + name() + "' (" + class_name() + "): built for inputs of shape " +
                                batch_shape_str(input_shape_) + ", got shape " + shape_str(inputs.shape()));
  }
  return call(inputs, training);
}

Tensor Layer::add_weight(const std::string& wname, const Shape& shape, const Initializer& init,
                         bool trainable) {
  for (const Weight& w : weights_)
    if (w.name == wname)
      throw std::invalid_argument("layer '" + name() + "': weight '" + wname + "' added twice");
  Tensor t(shape, 0.f);
  init(t, global_rng());
  t.set_requires_grad(trainable);
  weights_.push_back({wname, t, trainable});
  return t;
}

Tensor Layer::weight(const std::string& wname) const {
  for (const Weight& w : weights_)
    if (w.name == wname) return w.value;
  throw std::out_of_range("layer '" + name() + "' has no weight '" + wname + "'" +
                          (built_ ? "" : " (the layer is not built yet: call it once or build it)"));
}

std::vector<optim::Variable> Layer::trainable_variables() const {
  std::vector<optim::Variable> vars;
  for (const Weight& w : weights_)
    if (w.trainable) vars.push_back({name() + "/" + w.name, w.value});
  return vars;
}

std::size_t Layer::count_params() const {
  std::size_t n = 0;
  for (const Weight& w : weights_) n += w.value.size();
  return n;
}

}  // namespace xtape::layers
