#include "layers/layer.hpp"

#include "autodiff/ops.hpp"

#include <cxxabi.h>

#include <cctype>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <typeinfo>
#include <unordered_set>

#include "layers/node.hpp"
#include "layers/parametrize.hpp"

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

std::string Layer::class_name() const { return type_name(typeid(*this)); }

std::string type_name(const std::type_info& type) {
  // The dynamic type's name, without namespaces: user subclasses need not declare it.
  int status = 0;
  const char* mangled = type.name();
  char* demangled = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  std::string full = status == 0 && demangled ? demangled : mangled;
  std::free(demangled);
  // Strip template arguments and namespaces.
  if (auto lt = full.find('<'); lt != std::string::npos) full.resize(lt);
  if (auto colon = full.rfind("::"); colon != std::string::npos) full = full.substr(colon + 2);
  return full;
}

namespace {

std::string shapes_str(const std::vector<Shape>& shapes) {
  std::string out;
  for (std::size_t i = 0; i < shapes.size(); ++i)
    out += (i ? ", " : "") + batch_shape_str(shapes[i]);
  return out;
}

}  // namespace

// ---- building and shapes ----

void Layer::build(const Shape&) {}

void Layer::build_multi(const std::vector<Shape>& input_shapes) {
  if (input_shapes.size() != 1)
    throw std::invalid_argument(
        "layer '" + name() + "' (" + class_name() + "): expected one input, got " +
        std::to_string(input_shapes.size()) + ": " + shapes_str(input_shapes));
  build(input_shapes[0]);
}

// Shape inference by running the layer once on one zero sample under NoGrad, as Keras's
// compute_output_spec traces call(): the fallback for layers that do not compute their shapes.
std::vector<Shape> Layer::probe_output_shapes(const std::vector<Shape>& input_shapes) const {
  auto* self = const_cast<Layer*>(this);  // building and an inference call change no state
  self->ensure_built_multi(input_shapes);
  NoGrad no_grad;
  std::vector<Tensor> zeros;
  for (const Shape& s : input_shapes) {
    Shape b = s;
    b.insert(b.begin(), 1);
    zeros.emplace_back(b, 0.f);
  }
  std::vector<Shape> out;
  for (const Tensor& t : self->forward(zeros, false))
    out.emplace_back(t.shape().begin() + (t.ndim() ? 1 : 0), t.shape().end());
  return out;
}

Shape Layer::compute_output_shape(const Shape& input_shape) const {
  return probe_output_shapes({input_shape}).at(0);
}

Shape Layer::compute_output_shape_multi(const std::vector<Shape>& input_shapes) const {
  if (input_shapes.size() == 1) return compute_output_shape(input_shapes[0]);
  return probe_output_shapes(input_shapes).at(0);
}

std::vector<Shape> Layer::compute_output_shapes(const std::vector<Shape>& input_shapes) const {
  if (input_shapes.size() == 1) return {compute_output_shape(input_shapes[0])};
  return {compute_output_shape_multi(input_shapes)};
}

void Layer::ensure_built(const Shape& input_shape) {
  ensure_built_multi(std::vector<Shape>{input_shape});
}

namespace {
bool all_built(const Layer& l) {
  for (const auto& sub : l.sublayers())
    if (!sub->built() || !all_built(*sub)) return false;
  return true;
}
}  // namespace

void Layer::ensure_built_multi(const std::vector<Shape>& input_shapes) {
  if (built_) return;
  build_multi(input_shapes);
  input_shapes_ = input_shapes;
  built_ = true;
  // Parametrizations registered before the weights existed.
  for (const ParametrizedWeight& p : parametrizations_) {
    (void)stored_weight(p.weight);
    p.parametrization->attach(*this, p.weight);
  }
  // Sub-layers that call() builds on first use are built now, by one inference call on one
  // zero sample, as Keras builds a layer by tracing its call.
  if (!all_built(*this)) (void)probe_output_shapes(input_shapes);
}

const Shape& Layer::input_shape() const {
  static const Shape none;
  return input_shapes_.empty() ? none : input_shapes_[0];
}

// ---- eager calls ----

std::vector<Shape> Layer::sample_shapes(const std::vector<Tensor>& inputs) const {
  if (inputs.empty())
    throw std::invalid_argument("layer '" + name() + "' (" + class_name() +
                                "): called on no inputs");
  std::vector<Shape> shapes;
  for (const Tensor& t : inputs) {
    if (!t.defined())
      throw std::invalid_argument("layer '" + name() + "' (" + class_name() +
                                  "): called on an undefined tensor");
    if (t.ndim() == 0)
      throw std::invalid_argument("layer '" + name() + "' (" + class_name() +
                                  "): expected an input with a batch axis, got a scalar");
    shapes.emplace_back(t.shape().begin() + 1, t.shape().end());
  }
  return shapes;
}

namespace {
// Depth of nested Layer calls on this thread: the outermost call starts a new forward pass
// and clears the losses its layers added in the last one.
thread_local int t_call_depth = 0;

void clear_call_losses(Layer& layer, std::unordered_set<const Layer*>& seen);

struct CallDepth {
  CallDepth() { ++t_call_depth; }
  ~CallDepth() { --t_call_depth; }
  CallDepth(const CallDepth&) = delete;
  CallDepth& operator=(const CallDepth&) = delete;
};
}  // namespace

void Layer::add_loss(const Tensor& loss) {
  if (!loss.defined() || loss.size() != 1)
    throw std::invalid_argument("layer '" + name() + "' (" + class_name() +
                                "): add_loss expects a one-element tensor, got " +
                                (loss.defined() ? shape_str(loss.shape()) : std::string("undefined")));
  call_losses_.push_back(reshape(loss, {}));
}

namespace {
void collect_losses(const Layer& layer, std::unordered_set<const Layer*>& seen,
                    std::vector<Tensor>& calls, std::vector<Tensor>& penalties,
                    const std::vector<Tensor>& (*own)(const Layer&)) {
  if (!seen.insert(&layer).second) return;
  for (const Tensor& t : own(layer)) calls.push_back(t);
  for (const Weight& w : layer.own_weights())
    if (w.regularizer) penalties.push_back(reshape(w.regularizer(w.value), {}));
  for (const auto& l : layer.sublayers()) collect_losses(*l, seen, calls, penalties, own);
}
}  // namespace

std::vector<Tensor> Layer::losses() const {
  std::vector<Tensor> calls, penalties;
  std::unordered_set<const Layer*> seen;
  collect_losses(*this, seen, calls, penalties,
                 [](const Layer& l) -> const std::vector<Tensor>& { return l.call_losses_; });
  calls.insert(calls.end(), penalties.begin(), penalties.end());
  return calls;
}

void Layer::apply_constraints() {
  NoGrad no_grad;
  for (const Weight& w : weights())
    if (w.constraint) {
      Tensor v = w.value;
      v.assign(w.constraint(v));
    }
}

namespace {
void clear_call_losses(Layer& layer, std::unordered_set<const Layer*>& seen) {
  if (!seen.insert(&layer).second) return;
  layer.clear_own_call_losses();
  for (const auto& l : layer.sublayers()) clear_call_losses(*l, seen);
}
}  // namespace

// For the duration of a call: the training flag the layer's parametrizations see, and one
// computation of each parametrized weight however often the call reads it.
class ParametrizationScope {
 public:
  ParametrizationScope(Layer& layer, bool training)
      : layer_(layer), active_(!layer.parametrizations_.empty()) {
    if (active_ && layer_.parametrization_depth_++ == 0) {
      layer_.parametrization_training_ = training;
      layer_.parametrized_cache_.clear();
    }
  }
  ~ParametrizationScope() {
    if (active_ && --layer_.parametrization_depth_ == 0) {
      layer_.parametrized_cache_.clear();
      layer_.parametrization_training_ = false;
    }
  }
  ParametrizationScope(const ParametrizationScope&) = delete;
  ParametrizationScope& operator=(const ParametrizationScope&) = delete;

 private:
  Layer& layer_;
  bool active_;
};

Tensor Layer::checked_call(const std::vector<Tensor>& inputs, bool training, bool all,
                           std::vector<Tensor>* outputs) {
  if (t_call_depth == 0) {
    std::unordered_set<const Layer*> seen;
    clear_call_losses(*this, seen);
  }
  CallDepth depth;
  const std::vector<Shape> shapes = sample_shapes(inputs);
  if (!built_) {
    ensure_built_multi(shapes);
  } else if (shapes != input_shapes_) {
    std::string got;
    for (std::size_t i = 0; i < inputs.size(); ++i)
      got += (i ? ", " : "") + shape_str(inputs[i].shape());
    throw std::invalid_argument("layer '" + name() + "' (" + class_name() +
                                "): built for inputs of shape " + shapes_str(input_shapes_) +
                                ", got shape " + got);
  }
  ParametrizationScope scope(*this, training);
  std::vector<Tensor> out = forward(inputs, training);
  if (all) {
    *outputs = std::move(out);
    return {};
  }
  if (out.size() != 1)
    throw std::invalid_argument("layer '" + name() + "' (" + class_name() + ") returned " +
                                std::to_string(out.size()) +
                                " outputs: use call_all() for several");
  return out[0];
}

Tensor Layer::operator()(const Tensor& inputs, bool training) {
  return checked_call({inputs}, training, false, nullptr);
}

Tensor Layer::operator()(const std::vector<Tensor>& inputs, bool training) {
  return checked_call(inputs, training, false, nullptr);
}

std::vector<Tensor> Layer::call_all(const std::vector<Tensor>& inputs, bool training) {
  std::vector<Tensor> out;
  checked_call(inputs, training, true, &out);
  return out;
}

Tensor Layer::call(const Tensor&, bool) {
  throw std::logic_error("layer '" + name() + "' (" + class_name() +
                         ") takes a list of inputs, or overrides neither call(): got one tensor");
}

Tensor Layer::call(const std::vector<Tensor>& inputs, bool training) {
  if (inputs.size() != 1)
    throw std::invalid_argument("layer '" + name() + "' (" + class_name() +
                                "): expected one input, got " + std::to_string(inputs.size()));
  return call(inputs[0], training);
}

std::vector<Tensor> Layer::forward(const std::vector<Tensor>& inputs, bool training) {
  return {call(inputs, training)};
}

// ---- symbolic calls ----

std::vector<SymbolicTensor> Layer::call_all(const std::vector<SymbolicTensor>& inputs) {
  const std::shared_ptr<Layer> self = weak_from_this().lock();
  if (!self)
    throw std::invalid_argument("layer '" + name() + "' (" + class_name() +
                                "): a layer called on symbolic tensors must be held by a "
                                "std::shared_ptr; create it with make<" +
                                class_name() + ">(...)");
  if (inputs.empty())
    throw std::invalid_argument("layer '" + name() + "' (" + class_name() +
                                "): called on no inputs");
  std::vector<Shape> shapes;
  for (const SymbolicTensor& t : inputs) {
    if (!t.defined())
      throw std::invalid_argument("layer '" + name() + "' (" + class_name() +
                                  "): called on an undefined symbolic tensor");
    shapes.push_back(t.shape());
  }
  std::vector<Shape> out_shapes;
  try {
    if (built_ && shapes != input_shapes_)
      throw std::invalid_argument("it was built for inputs of shape " + shapes_str(input_shapes_));
    ensure_built_multi(shapes);
    out_shapes = compute_output_shapes(shapes);
  } catch (const std::exception& e) {
    throw std::invalid_argument("layer '" + name() + "' (" + class_name() +
                                ") cannot be called on inputs of shape " + shapes_str(shapes) +
                                ": " + e.what());
  }
  auto node = detail::make_node(self, inputs, out_shapes, node_count_++);
  std::vector<SymbolicTensor> out;
  for (std::size_t i = 0; i < out_shapes.size(); ++i) out.emplace_back(node, static_cast<int>(i));
  return out;
}

SymbolicTensor Layer::operator()(const SymbolicTensor& inputs) {
  return (*this)(std::vector<SymbolicTensor>{inputs});
}

SymbolicTensor Layer::operator()(const std::vector<SymbolicTensor>& inputs) {
  auto out = call_all(inputs);
  if (out.size() != 1)
    throw std::invalid_argument("layer '" + name() + "' (" + class_name() + ") has " +
                                std::to_string(out.size()) +
                                " outputs: use call_all() to get them all");
  return out[0];
}

// ---- weights and sub-layers ----

Tensor Layer::add_weight(const std::string& wname, const Shape& shape, const Initializer& init,
                         bool trainable, std::function<Tensor(const Tensor&)> regularizer,
                         std::function<Tensor(const Tensor&)> constraint) {
  for (const Weight& w : weights_)
    if (w.name == wname)
      throw std::invalid_argument("layer '" + name() + "': weight '" + wname + "' added twice");
  Tensor t(shape, 0.f);
  init(t, global_rng());
  t.set_requires_grad(trainable && trainable_);
  weights_.push_back({wname, t, trainable, std::move(regularizer), std::move(constraint)});
  return t;
}

Tensor Layer::weight(const std::string& wname) const {
  for (const Weight& w : weights_)
    if (w.name == wname) return parametrizations_.empty() ? w.value : parametrized(wname, w.value);
  const std::size_t slash = wname.find('/');
  if (slash != std::string::npos) {
    // Through the sub-layer, so that its parametrizations apply.
    for (const auto& sub : sublayers_)
      if (sub->name() == wname.substr(0, slash)) {
        const std::string rest = wname.substr(slash + 1);
        for (const Weight& w : sub->weights())
          if (w.name == rest) return sub->weight(rest);
      }
    for (const Weight& w : weights())
      if (w.name == wname) return w.value;
  }
  return stored_weight(wname);
}

Tensor Layer::stored_weight(const std::string& wname) const {
  for (const Weight& w : weights_)
    if (w.name == wname) return w.value;
  if (wname.find('/') != std::string::npos)
    for (const Weight& w : weights())
      if (w.name == wname) return w.value;
  throw std::out_of_range(
      "layer '" + name() + "' has no weight '" + wname + "'" +
      (built_ ? "" : " (the layer is not built yet: call it once or build it)"));
}

Tensor Layer::parametrized(const std::string& wname, const Tensor& stored) const {
  bool any = false;
  for (const ParametrizedWeight& p : parametrizations_) any = any || p.weight == wname;
  if (!any) return stored;
  const bool in_call = parametrization_depth_ > 0;
  if (in_call) {
    const auto it = parametrized_cache_.find(wname);
    if (it != parametrized_cache_.end()) return it->second;
  }
  Tensor value = stored;
  for (const ParametrizedWeight& p : parametrizations_)
    if (p.weight == wname)
      value = p.parametrization->forward(value, in_call && parametrization_training_);
  if (in_call) parametrized_cache_[wname] = value;
  return value;
}

void Layer::add_parametrization(const std::string& wname, std::shared_ptr<Parametrization> p) {
  const std::string who = "parametrize: layer '" + name() + "' (" + class_name() + ")";
  if (!p) throw std::invalid_argument(who + ": null parametrization");
  if (wname.find('/') != std::string::npos)
    throw std::invalid_argument(who + ": '" + wname +
                                "' is a sub-layer's weight; parametrize that layer");
  if (built_) {
    bool own = false;
    std::string names;
    for (const Weight& w : weights_) {
      own = own || w.name == wname;
      names += (names.empty() ? "" : ", ") + w.name;
    }
    if (!own)
      throw std::invalid_argument(who + " has no weight '" + wname + "' (its weights: " +
                                  (names.empty() ? "none" : names) + ")");
    p->attach(*this, wname);
  }
  parametrizations_.push_back({wname, std::move(p)});
  parametrized_cache_.clear();
}

void Layer::drop_parametrizations(const std::string& wname) {
  std::erase_if(parametrizations_, [&](const ParametrizedWeight& p) { return p.weight == wname; });
  parametrized_cache_.clear();
}

namespace {

void collect_weights(const Layer& layer, const std::string& prefix, bool enclosing_trainable,
                     std::unordered_set<const void*>& seen, std::vector<Weight>& out) {
  const bool on = enclosing_trainable && layer.trainable();
  for (const Weight& w : layer.own_weights())
    if (seen.insert(w.value.id()).second)
      out.push_back({prefix + w.name, w.value, w.trainable && on, w.regularizer, w.constraint});
  for (const auto& sub : layer.sublayers())
    collect_weights(*sub, prefix + sub->name() + "/", on, seen, out);
}

bool contains_layer(const Layer& root, const Layer* target) {
  if (&root == target) return true;
  for (const auto& sub : root.sublayers())
    if (contains_layer(*sub, target)) return true;
  return false;
}

}  // namespace

std::vector<Weight> Layer::weights() const {
  std::vector<Weight> out;
  std::unordered_set<const void*> seen;
  collect_weights(*this, "", true, seen, out);
  return out;
}

std::vector<optim::Variable> Layer::trainable_variables() const {
  std::vector<optim::Variable> vars;
  for (const Weight& w : weights())
    if (w.trainable) vars.push_back({name() + "/" + w.name, w.value});
  return vars;
}

std::size_t Layer::count_params() const {
  std::size_t n = 0;
  for (const Weight& w : weights()) n += w.value.size();
  return n;
}

void Layer::track_layer(const std::shared_ptr<Layer>& layer) {
  if (!layer)
    throw std::invalid_argument("layer '" + name() + "' (" + class_name() + "): track(null)");
  if (contains_layer(*layer, this))
    throw std::invalid_argument("layer '" + name() + "' (" + class_name() + "): tracking '" +
                                layer->name() + "' would make it contain itself");
  for (const auto& l : sublayers_)
    if (l == layer) return;
  (void)layer->name();  // names are given in tracking order
  if (!trainable_) layer->set_trainable(false);
  sublayers_.push_back(layer);
}

void Layer::set_trainable(bool trainable) {
  trainable_ = trainable;
  for (const auto& sub : sublayers_) sub->set_trainable(trainable);
  refresh_requires_grad(true);
}

void Layer::refresh_requires_grad(bool enclosing_trainable) {
  for (Weight& w : weights_)
    w.value.set_requires_grad(w.trainable && trainable_ && enclosing_trainable);
}

void Layer::load_own_state(const LayerState& state) {
  if (!state.empty())
    throw std::invalid_argument("layer '" + name() + "' (" + class_name() +
                                ") keeps no state, got entry '" + state.begin()->first + "'");
}

nlohmann::json Layer::get_config() const {
  nlohmann::json c = {{"name", name()}, {"trainable", trainable_}, {"dtype", "float32"}};
  if (!parametrizations_.empty()) {
    nlohmann::json list = nlohmann::json::array();
    for (const ParametrizedWeight& p : parametrizations_)
      list.push_back({{"weight", p.weight},
                      {"class_name", p.parametrization->class_name()},
                      {"config", p.parametrization->get_config()}});
    c["parametrizations"] = std::move(list);
  }
  return c;
}

}  // namespace xtape::layers
