#include "saving/model_file.hpp"

#include <cmath>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "layers/saving.hpp"
#include "saving/registry.hpp"
#include "saving/structure.hpp"

namespace xtape::layers {

namespace {

constexpr const char* k_model_format = "xtape.model";

// Restores the global RNG when it leaves scope: building layers draws initial values.
class KeepGlobalRng {
 public:
  KeepGlobalRng() : state_(global_rng().state()) {}
  ~KeepGlobalRng() { global_rng().set_state(state_); }
  KeepGlobalRng(const KeepGlobalRng&) = delete;
  KeepGlobalRng& operator=(const KeepGlobalRng&) = delete;

 private:
  Rng::State state_;
};

}  // namespace

void save_model(const Model& model, const std::string& path) {
  if (!model.built())
    throw std::logic_error("save_model: model '" + model.name() + "' is not built");
  const nlohmann::json config = {{"class_name", model.class_name()},
                                 {"config", model.get_config()}};
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& w : structured_weights(model)) {
    const float* p = w.weight.value.data();
    for (std::size_t i = 0; i < w.weight.value.size(); ++i)
      if (!std::isfinite(p[i]))
        throw std::runtime_error("save_model: '" + path + "': weight '" + w.path +
                                 "' holds NaN or infinite values");
    tensors.emplace_back(w.key, w.weight.value);
  }
  std::map<std::string, std::string> metadata = {{"format", k_model_format},
                                                 {"model_config", config.dump()}};
  if (model.compiled()) metadata["compile_config"] = model.compile_config().dump();
  write_safetensors(path, tensors, metadata);
}

std::shared_ptr<Model> load_model(const std::string& path) {
  const std::string who = "load_model";
  const SafetensorsFile f = read_safetensors(path);
  auto fail = [&](const std::string& problem) -> std::runtime_error {
    return std::runtime_error(who + ": '" + path + "': " + problem);
  };
  const auto fmt = f.metadata.find("format");
  if (fmt == f.metadata.end() || fmt->second != k_model_format)
    throw fail("not a model file (metadata format is '" +
               (fmt == f.metadata.end() ? std::string("missing") : fmt->second) + "', expected '" +
               k_model_format + "'; a weights file loads with load_weights)");
  const auto text = f.metadata.find("model_config");
  if (text == f.metadata.end()) throw fail("metadata entry 'model_config' is missing");
  nlohmann::json config;
  try {
    config = nlohmann::json::parse(text->second);
  } catch (const std::exception& e) {
    throw fail(std::string("model_config is not valid JSON: ") + e.what());
  }
  std::shared_ptr<Layer> layer;
  {
    const KeepGlobalRng keep;
    try {
      layer = layer_from_config(config);
    } catch (const std::exception& e) {
      throw fail(e.what());
    }
  }
  auto model = std::dynamic_pointer_cast<Model>(layer);
  if (!model) throw fail("model_config describes a " + layer->class_name() + ", not a model");
  if (!model->built()) throw fail("the model in model_config has no input shape to build from");
  const auto ws = structured_weights(*model);
  const std::vector<Tensor> values = read_structured_weights(who, f, ws, false);
  if (const auto cc = f.metadata.find("compile_config"); cc != f.metadata.end()) {
    // Compiled as it was saved (a fresh optimizer: its state lives in checkpoints).
    try {
      const nlohmann::json c = nlohmann::json::parse(cc->second);
      CompileOptions options;
      options.loss = c.at("loss").get<std::vector<std::string>>();
      options.metrics = c.at("metrics").get<std::vector<std::string>>();
      options.loss_weights = c.value("loss_weights", std::vector<float>{});
      options.optimizer = std::shared_ptr<optim::Optimizer>(
          optim::make_optimizer(c.at("optimizer").at("name").get<std::string>()));
      options.optimizer->set_learning_rate(c.at("optimizer").at("learning_rate").get<float>());
      model->compile(std::move(options));
    } catch (const std::exception& e) {
      throw fail(std::string("compile_config is not valid: ") + e.what());
    }
  }
  NoGrad no_grad;
  for (std::size_t i = 0; i < ws.size(); ++i) {
    Tensor w = ws[i].weight.value;
    w.assign(values[i]);
  }
  return model;
}

}  // namespace xtape::layers
