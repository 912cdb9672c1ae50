// Model::save_weights / load_weights / save_checkpoint / load_checkpoint: the weights and the
// training state of a model in a safetensors file (layers/saving.hpp), addressed by the
// model's structure (saving/structure.hpp), never by layer class.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <stdexcept>

#include "io/files.hpp"
#include "layers/saving.hpp"
#include "layers/state_text.hpp"
#include "models/model.hpp"
#include "saving/structure.hpp"
#include "training/callbacks.hpp"

namespace xtape::layers {

namespace {

constexpr const char* k_weights_format = "xtape.weights";
constexpr const char* k_checkpoint_format = "xtape.checkpoint";
constexpr const char* k_optimizer_prefix = "optimizer/";
constexpr const char* k_state_prefix = "state/";
constexpr const char* k_callback_prefix = "callback/";

[[noreturn]] void file_error(const std::string& who, const std::string& path,
                             const std::string& problem) {
  throw std::runtime_error(who + ": '" + path + "': " + problem);
}

std::optional<std::int64_t> parse_int(const std::string& text) {
  std::int64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return v;
}

std::string float_text(float v) {
  char buf[32];
  const auto end = std::to_chars(buf, buf + sizeof buf, v).ptr;
  return std::string(buf, end);
}

std::optional<float> parse_float(const std::string& text) {
  float v = 0.f;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return v;
}

const std::string& meta(const std::string& who, const SafetensorsFile& f, const std::string& key) {
  const auto it = f.metadata.find(key);
  if (it == f.metadata.end()) file_error(who, f.path, "metadata entry '" + key + "' is missing");
  return it->second;
}

bool all_finite(const Tensor& t) {
  const float* p = t.data();
  for (std::size_t i = 0, n = t.size(); i < n; ++i)
    if (!std::isfinite(p[i])) return false;
  return true;
}

std::vector<std::pair<std::string, Tensor>> keyed(const std::vector<StructuredWeight>& ws) {
  std::vector<std::pair<std::string, Tensor>> out;
  for (const auto& w : ws) out.emplace_back(w.key, w.weight.value);
  return out;
}

}  // namespace

void Model::save_weights(const std::string& path) const {
  const std::string who = class_name() + "::save_weights";
  if (!built()) throw std::logic_error(who + ": model '" + name() + "' is not built");
  const auto ws = structured_weights(*this);
  for (const auto& w : ws)
    if (!all_finite(w.weight.value))
      file_error(who, path, "weight '" + w.path + "' holds NaN or infinite values");
  write_safetensors(path, keyed(ws), {{"format", k_weights_format}});
}

void Model::load_weights(const std::string& path) {
  const std::string who = class_name() + "::load_weights";
  if (!built())
    throw std::logic_error(who + ": build model '" + name() +
                           "' (or call it once) before loading weights into it");
  const SafetensorsFile f = read_safetensors(path);
  const auto fmt = f.metadata.find("format");
  const bool checkpoint = fmt != f.metadata.end() && fmt->second == k_checkpoint_format;
  const auto ws = structured_weights(*this);
  const std::vector<Tensor> values = read_structured_weights(who, f, ws, checkpoint);
  NoGrad no_grad;
  for (std::size_t i = 0; i < ws.size(); ++i) {
    Tensor w = ws[i].weight.value;
    w.assign(values[i]);
  }
}

void Model::save_checkpoint(const std::string& path, int epoch) const {
  const std::string who = class_name() + "::save_checkpoint";
  if (!built()) throw std::logic_error(who + ": model '" + name() + "' is not built");
  if (!optimizer_) throw std::logic_error(who + ": model '" + name() + "' is not compiled");
  if (epoch < 0)
    throw std::invalid_argument(who + ": epoch must be >= 0, got " + std::to_string(epoch));
  const auto ws = structured_weights(*this);
  auto tensors = keyed(ws);
  for (const auto& w : ws)
    if (!all_finite(w.weight.value))
      file_error(who, path, "weight '" + w.path + "' holds NaN or infinite values");
  const auto slot_names = optimizer_->slot_names();
  const auto& slots = optimizer_->slots();
  for (const auto& w : ws) {
    const auto it = slots.find(w.path);
    if (it == slots.end()) continue;
    for (std::size_t k = 0; k < it->second.size() && k < slot_names.size(); ++k)
      tensors.emplace_back(k_optimizer_prefix + w.key + "/" + slot_names[k], it->second[k]);
  }
  std::map<std::string, std::string> metadata = {
      {"format", k_checkpoint_format},
      {"epoch", std::to_string(epoch)},
      {"optimizer", optimizer_->name()},
      {"optimizer.iterations", std::to_string(optimizer_->iterations())},
      {"optimizer.learning_rate", float_text(optimizer_->learning_rate())},
      {"rng.shuffle", rng_state_text(shuffle_rng_.state())},
      {"rng.global", rng_state_text(global_rng().state())},
  };
  for (const auto& l : structured_layers(*this))
    for (const auto& [key, value] : l.layer->save_own_state())
      metadata[k_state_prefix + l.key + "/" + key] = value;
  if (active_callbacks_) {
    const auto keys = callback_keys(*active_callbacks_);
    for (std::size_t i = 0; i < keys.size(); ++i)
      for (const auto& [key, value] : (*active_callbacks_)[i]->save_state())
        metadata[k_callback_prefix + keys[i] + "/" + key] = value;
  }
  write_safetensors(path, tensors, metadata);
}

int Model::load_checkpoint(const std::string& path) {
  const std::string who = class_name() + "::load_checkpoint";
  if (!built())
    throw std::logic_error(who + ": build model '" + name() +
                           "' (or call it once) before loading a checkpoint into it");
  if (!optimizer_)
    throw std::logic_error(who + ": compile model '" + name() +
                           "' with the checkpoint's optimizer before loading it");
  const SafetensorsFile f = read_safetensors(path);
  const std::string& fmt = meta(who, f, "format");
  if (fmt != k_checkpoint_format)
    file_error(who, path,
               "format " + io::quoted(fmt) + " is not '" + k_checkpoint_format +
                   "' (a weights file? use load_weights)");

  // Everything is read and checked into these before the model changes.
  const auto ws = structured_weights(*this);
  const std::vector<Tensor> values = read_structured_weights(who, f, ws, true);

  const std::string& opt_name = meta(who, f, "optimizer");
  if (opt_name != optimizer_->name())
    file_error(who, path,
               "optimizer " + io::quoted(opt_name) + " saved, the model is compiled with '" +
                   optimizer_->name() + "'");
  const auto slot_names = optimizer_->slot_names();
  std::map<std::string, std::vector<Tensor>> slots;
  std::map<std::string, const StructuredWeight*> by_key;
  for (const auto& w : ws) by_key[w.key] = &w;
  for (const auto& w : ws) {
    if (!w.weight.trainable) continue;
    std::vector<Tensor> s;
    for (std::size_t k = 0; k < slot_names.size(); ++k) {
      const std::string key = k_optimizer_prefix + w.key + "/" + slot_names[k];
      if (!f.contains(key)) continue;
      const SafetensorsEntry& e = f.tensors.at(key);
      if (e.dtype != "F32")
        file_error(who, path, "tensor '" + key + "': expected dtype F32, got " + e.dtype);
      if (e.shape != w.weight.value.shape())
        file_error(who, path,
                   "tensor '" + key + "': expected shape " + shape_str(w.weight.value.shape()) +
                       ", got " + shape_str(e.shape));
      Tensor t = f.f32(key);
      if (optimizer_->slot_nonnegative(k)) {
        const float* p = t.data();
        for (std::size_t i = 0; i < t.size(); ++i)
          if (p[i] < 0.f)
            file_error(who, path,
                       "tensor '" + key + "': " + opt_name + "'s " + slot_names[k] +
                           " cannot be negative, got " + float_text(p[i]) + " at element " +
                           std::to_string(i));
      }
      s.push_back(std::move(t));
    }
    if (!s.empty() && s.size() != slot_names.size())
      file_error(who, path,
                 "optimizer state of '" + w.key + "' has " + std::to_string(s.size()) + " of the " +
                     std::to_string(slot_names.size()) + " slots of " + opt_name);
    if (!s.empty()) slots[w.path] = std::move(s);
  }
  for (const auto& [name, e] : f.tensors) {
    if (name.rfind(k_optimizer_prefix, 0) != 0) continue;
    const std::string rest = name.substr(std::strlen(k_optimizer_prefix));
    const auto slash = rest.rfind('/');
    const auto owner =
        slash == std::string::npos ? by_key.end() : by_key.find(rest.substr(0, slash));
    const bool known =
        owner != by_key.end() && slots.count(owner->second->path) &&
        std::find(slot_names.begin(), slot_names.end(), rest.substr(slash + 1)) != slot_names.end();
    if (!known)
      file_error(who, path,
                 "unknown optimizer tensor " + io::quoted(name) + " (no such trainable weight or " +
                     opt_name + " slot)");
  }

  const auto iterations = parse_int(meta(who, f, "optimizer.iterations"));
  if (!iterations || *iterations < 0)
    file_error(who, path,
               "metadata optimizer.iterations " + io::quoted(meta(who, f, "optimizer.iterations")) +
                   " is not a non-negative integer");
  if (*iterations > 0 && !slot_names.empty() && slots.empty())
    file_error(who, path,
               "metadata optimizer.iterations is " + std::to_string(*iterations) + " but no " +
                   opt_name + " slot is saved (a " + opt_name +
                   " that has taken steps has state for its variables)");
  const auto lr = parse_float(meta(who, f, "optimizer.learning_rate"));
  if (!lr || !std::isfinite(*lr) || *lr < 0.f)
    file_error(who, path,
               "metadata optimizer.learning_rate " +
                   io::quoted(meta(who, f, "optimizer.learning_rate")) +
                   " is not a finite non-negative number");
  const auto epoch = parse_int(meta(who, f, "epoch"));
  if (!epoch || *epoch < 0 || *epoch > std::numeric_limits<int>::max())
    file_error(who, path,
               "metadata epoch " + io::quoted(meta(who, f, "epoch")) + " is not a non-negative integer");
  auto rng_state = [&](const std::string& key) {
    const auto st = parse_rng_state(meta(who, f, key));
    if (!st)
      file_error(who, path,
                 "metadata " + key + " " + io::quoted(meta(who, f, key)) +
                     " is not four 16-digit hex words, not all zero");
    return *st;
  };
  const Rng::State shuffle_state = rng_state("rng.shuffle"), global_state = rng_state("rng.global");

  // Every layer's state: the entries under "state/<layer key>/", checked by a trial load into
  // the state the layer has now (restored right after, so nothing changes yet).
  const auto layers = structured_layers(*this);
  std::vector<LayerState> states(layers.size());
  std::map<std::string, std::size_t> layer_index;
  for (std::size_t i = 0; i < layers.size(); ++i) layer_index[layers[i].key] = i;
  for (const auto& [key, value] : f.metadata) {
    if (key.rfind(k_state_prefix, 0) != 0) continue;
    const std::string rest = key.substr(std::strlen(k_state_prefix));
    const auto slash = rest.rfind('/');
    const auto it =
        slash == std::string::npos ? layer_index.end() : layer_index.find(rest.substr(0, slash));
    if (it == layer_index.end())
      file_error(who, path, "metadata " + io::quoted(key) + ": the model has no layer at that place");
    states[it->second][rest.substr(slash + 1)] = value;
  }
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const LayerState now = layers[i].layer->save_own_state();
    if (now.empty() && states[i].empty()) continue;
    try {
      layers[i].layer->load_own_state(states[i]);
    } catch (const std::exception& e) {
      layers[i].layer->load_own_state(now);
      file_error(who, path, "state of layer '" + layers[i].key + "': " + e.what());
    }
    layers[i].layer->load_own_state(now);
  }

  // Callback states, applied to the callbacks of the fit that runs (or runs next).
  std::map<std::string, LayerState> callback_states;
  for (const auto& [key, value] : f.metadata) {
    if (key.rfind(k_callback_prefix, 0) != 0) continue;
    const std::string rest = key.substr(std::strlen(k_callback_prefix));
    const auto slash = rest.rfind('/');
    if (slash == std::string::npos || slash == 0 || slash + 1 == rest.size())
      file_error(who, path, "metadata " + io::quoted(key) + " is not callback/<callback>/<key>");
    callback_states[rest.substr(0, slash)][rest.substr(slash + 1)] = value;
  }

  // Every check passed: change the model.
  {
    NoGrad no_grad;
    for (std::size_t i = 0; i < ws.size(); ++i) {
      Tensor w = ws[i].weight.value;
      w.assign(values[i]);
    }
  }
  optimizer_->slots() = std::move(slots);
  optimizer_->set_iterations(*iterations);
  optimizer_->set_learning_rate(*lr);
  shuffle_rng_.set_state(shuffle_state);
  global_rng().set_state(global_state);
  for (std::size_t i = 0; i < layers.size(); ++i)
    if (!states[i].empty()) layers[i].layer->load_own_state(states[i]);
  pending_callback_states_ = std::move(callback_states);
  return static_cast<int>(*epoch);
}

std::vector<std::string> Model::callback_keys(const std::vector<std::shared_ptr<Callback>>& cbs) {
  std::vector<std::string> keys;
  std::map<std::string, int> counts;
  for (const auto& cb : cbs) {
    const std::string base = to_snake_case(type_name(typeid(*cb)));
    const int n = counts[base]++;
    keys.push_back(n == 0 ? base : base + "_" + std::to_string(n));
  }
  return keys;
}

void Model::apply_callback_states(const std::vector<std::shared_ptr<Callback>>& cbs,
                                  const std::map<std::string, LayerState>& states) {
  const auto keys = callback_keys(cbs);
  for (std::size_t i = 0; i < keys.size(); ++i)
    if (const auto it = states.find(keys[i]); it != states.end()) cbs[i]->load_state(it->second);
}

}  // namespace xtape::layers
